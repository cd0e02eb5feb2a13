import { RPCArgumentError, RPCBackendError } from './errors'
import { NativeTransport, type NativeBinding } from './native/transport'
import { PureTransport } from './pure/transport'
import type { BackendName, Transport, TransportOptions } from './transport'
import { oneOf } from './validate'

export type BackendChoice = 'auto' | BackendName

type LoadResult = { binding: NativeBinding; error?: undefined } | { binding?: undefined; error: unknown }
let loaded: LoadResult | undefined

/**
 * Loads the addon once, on first use (never at import, so importing rpcudp
 * cannot throw). RPCUDP_NATIVE_PATH points at another binary (or at nothing,
 * to simulate a platform without one).
 */
function loadNative(): LoadResult {
  if (loaded === undefined) {
    const path = process.env.RPCUDP_NATIVE_PATH ?? '../binding.js'
    try {
      loaded = { binding: require(path) as NativeBinding }
    } catch (error) {
      loaded = { error }
    }
  }
  return loaded
}

/** Whether the native backend can run here, and if not, why. */
export function nativeBackend(): { available: true } | { available: false; reason: string } {
  const r = loadNative()
  return r.binding ? { available: true } : { available: false, reason: describeLoadError(r.error) }
}

function describeLoadError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  const causes = error instanceof Error && Array.isArray((error as any).cause) ? (error as any).cause : []
  return [message, ...causes.map((c: unknown) => (c instanceof Error ? c.message : String(c)))].join('; ')
}

export function resolveBackend(option: unknown): BackendName {
  const choice = oneOf<BackendChoice>('backend', option, ['auto', 'native', 'pure'])
  if (choice !== 'auto') return choice
  const env = process.env.RPCUDP_BACKEND
  if (env !== undefined && env !== '') {
    if (env !== 'native' && env !== 'pure') throw new RPCArgumentError(`RPCUDP_BACKEND must be 'native' or 'pure', got ${JSON.stringify(env)}`)
    return env
  }
  return loadNative().binding ? 'native' : 'pure'
}

export function createTransport(choice: BackendChoice, options: TransportOptions): Transport {
  if (resolveBackend(choice) === 'pure') return new PureTransport(options)
  const r = loadNative()
  if (!r.binding) throw new RPCBackendError(`the native backend cannot load here: ${describeLoadError(r.error)}`, r.error)
  return new NativeTransport(r.binding, options)
}
