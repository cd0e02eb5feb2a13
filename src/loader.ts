import { RPCArgumentError, RPCBackendError } from './errors'
import { NativeTransport, type NativeBinding } from './native/transport'
import { PureTransport } from './pure/transport'
import type { BackendName, Transport, TransportOptions } from './transport'
import { oneOf } from './validate'

export type BackendChoice = 'auto' | BackendName
export type NativeIo = 'loop' | 'thread'
/** The JavaScript runtime hosting rpcudp: what the native backend can rely on differs. */
export type Runtime = 'node' | 'bun' | 'deno'

export function currentRuntime(): Runtime {
  if (process.versions.bun !== undefined) return 'bun'
  if (process.versions.deno !== undefined) return 'deno'
  return 'node'
}

/**
 * Why nativeIo 'loop' cannot work on this runtime (undefined where it can).
 * 'loop' polls the socket with libuv's uv_poll through Node-API's event loop;
 * 'thread' needs only threadsafe functions, which every runtime here has.
 */
export function loopIoUnavailable(runtime: Runtime = currentRuntime()): string | undefined {
  if (runtime === 'bun') return "Bun's Node-API has no libuv: uv_poll_init_socket is not implemented (it panics)"
  if (runtime === 'deno')
    return "Deno's uv_poll reports readiness once per uv_poll_start (a polling thread that exits after the first event), so a 'loop' socket goes deaf after its first batch"
  return undefined
}

/** nativeIo when neither the option nor RPCUDP_NATIVE_IO chooses: 'loop' where it works. */
export function defaultNativeIo(runtime: Runtime = currentRuntime()): NativeIo {
  return loopIoUnavailable(runtime) === undefined ? 'loop' : 'thread'
}

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

/** Where the native backend stands on this runtime, common to both answers of nativeBackend(). */
export interface NativeRuntimeInfo {
  runtime: Runtime
  /** The nativeIo a protocol gets by default here. */
  defaultIo: NativeIo
  /** Set where nativeIo 'loop' cannot work (asking for it throws RPCBackendError): why. */
  loopUnavailable?: string
}

/** Whether the native backend can run here, and if not, why; and which I/O modes this runtime allows. */
export function nativeBackend(): ({ available: true } | { available: false; reason: string }) & NativeRuntimeInfo {
  const runtime = currentRuntime()
  const loopUnavailable = loopIoUnavailable(runtime)
  const info: NativeRuntimeInfo = { runtime, defaultIo: defaultNativeIo(runtime), ...(loopUnavailable && { loopUnavailable }) }
  const r = loadNative()
  return r.binding ? { available: true, ...info } : { available: false, reason: describeLoadError(r.error), ...info }
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
  const loopUnavailable = options.nativeIo === 'loop' ? loopIoUnavailable() : undefined
  if (loopUnavailable) throw new RPCBackendError(`nativeIo 'loop' cannot work on ${currentRuntime()}: ${loopUnavailable}; use nativeIo 'thread' (the default here)`)
  return new NativeTransport(r.binding, options)
}
