import { RPCArgumentError, RPCBackendError } from './errors'
import { NativeTransport, type NativeBinding } from './native/transport'
import { PureTransport } from './pure/transport'
import type { BackendName, Transport, TransportOptions } from './transport'
import { debug } from './log'
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

/**
 * The napi-rs platform package holding this platform's addon (npm/<triple>/ in
 * a checkout), or undefined where none is built (package.json napi.targets).
 */
export function platformPackage(platform: string = process.platform, arch: string = process.arch, musl: boolean = isMusl()): string | undefined {
  const abi = platform === 'linux' ? (musl ? '-musl' : '-gnu') : platform === 'win32' ? '-msvc' : ''
  const triple = `${platform}-${arch}${abi}`
  return PLATFORM_TRIPLES.includes(triple) ? `rpcudp-${triple}` : undefined
}

/** The npm/ directories: one per napi.targets entry. */
export const PLATFORM_TRIPLES = ['linux-x64-gnu', 'linux-x64-musl', 'linux-arm64-gnu', 'darwin-x64', 'darwin-arm64', 'win32-x64-msvc']

function isMusl(): boolean {
  if (process.platform !== 'linux') return false
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
  return header?.glibcVersionRuntime === undefined
}

/**
 * Why the addon did not load, in terms a user can act on. napi's loader
 * (binding.js, generated) throws one generic error (npm's optional-dependency
 * bug) whose `cause` chain holds the message of each attempt, a WASI package
 * among them: when every attempt was "Cannot find module", this platform's
 * package is simply not installed; otherwise the first other failure (a wrong
 * libc, a corrupt file) is the cause.
 */
function describeLoadError(error: unknown): string {
  const attempts: string[] = []
  for (let c = error instanceof Error ? error.cause : undefined; c instanceof Error; c = c.cause) attempts.push(c.message)
  if (attempts.length === 0) return `RPCUDP_NATIVE_PATH=${process.env.RPCUDP_NATIVE_PATH} does not load: ${messageOf(error)}`
  const real = attempts.reverse().find((m) => !m.startsWith('Cannot find module '))
  const pkg = platformPackage()
  if (real !== undefined) return `${pkg ?? 'the addon'} is installed but does not load: ${real}`
  return pkg === undefined
    ? `no prebuilt addon exists for ${process.platform}-${process.arch}; build one from a checkout (npm run build:native)`
    : `${pkg}, the package holding this platform's addon, is not installed (npm install ${pkg}; npm skips it when optional dependencies are omitted)`
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e))

export function resolveBackend(option: unknown): BackendName {
  const choice = oneOf<BackendChoice>('backend', option, ['auto', 'native', 'pure'])
  if (choice !== 'auto') return choice
  const env = process.env.RPCUDP_BACKEND
  if (env !== undefined && env !== '') {
    if (env !== 'native' && env !== 'pure') throw new RPCArgumentError(`RPCUDP_BACKEND must be 'native' or 'pure', got ${JSON.stringify(env)}`)
    return env
  }
  const r = loadNative()
  if (r.binding) return 'native'
  if (!fellBack) debug("backend 'auto' runs on pure: the native backend cannot load here: %s", describeLoadError(r.error))
  fellBack = true
  return 'pure'
}
let fellBack = false

export function createTransport(choice: BackendChoice, options: TransportOptions): Transport {
  if (resolveBackend(choice) === 'pure') return new PureTransport(options)
  const r = loadNative()
  if (!r.binding) throw new RPCBackendError(`the native backend cannot load here: ${describeLoadError(r.error)}`, r.error)
  const loopUnavailable = options.nativeIo === 'loop' ? loopIoUnavailable() : undefined
  if (loopUnavailable) throw new RPCBackendError(`nativeIo 'loop' cannot work on ${currentRuntime()}: ${loopUnavailable}; use nativeIo 'thread' (the default here)`)
  return new NativeTransport(r.binding, options)
}
