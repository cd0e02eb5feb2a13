import { isIPv6 } from 'node:net'
import { CallHosts, bindHost } from './address'
import { DecodeFailure, Decoder, Encoder, idle, sharedEncoder, type DecodeReason } from './codec'
import {
  RPCArgumentError,
  RPCStateError,
  RPCEncodeError,
  RPCError,
  RPCOverloadedError,
  RPCSizeError,
  closedError,
  notListening,
} from './errors'
import { createTransport, defaultNativeIo, type BackendChoice, type NativeIo } from './loader'
import { MAX_CONCURRENCY, MAX_SOCKET_BUFFER, boolean, checkKeys, describe, oneOf, port as checkPort, positive, timeoutMs } from './validate'
import { RateLimitedLog } from './log'
import { DropPublisher, callChannel, closeChannel, handleChannel, owned, traced, type CallTraceContext, type HandleTraceContext } from './diagnostics'
import { sourceKey } from './source-key'
import type { Address, BackendName, RateConfig, ReflectionConfig, Transport, TransportSink, WireDropReason, WireStats } from './transport'

export type { Address, BackendName }

/** Node 20.0–20.3 and other runtimes without the well-known symbol use the one Node polyfilled it with, as Node's own classes do. */
const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? (Symbol.for('nodejs.asyncDispose') as typeof Symbol.asyncDispose)

/** Why a call came back `[false, null, failure]`. */
export type FailureCode =
  | 'timeout' // no answer within waitTimeout (the only outcome a Python peer ever produces)
  | 'closed' // close() was called while the call was outstanding
  | 'unknownMethod' // the peer has no such method (error reply)
  | 'handlerError' // the peer's handler threw or rejected (error reply)
  | 'overloaded' // the peer was running maxHandlers handlers already (error reply)
  | 'replyTooLarge' // the peer's answer was over its maxBodySize (error reply)
  | 'replyUnencodable' // the peer's answer had no msgpack form (error reply)
  | 'remoteError' // an error reply with a code this version does not know
  | 'aborted' // the call's AbortSignal fired before an answer came
  | 'handlerTimeout' // the peer's handler ran past its handlerTimeout (error reply)

export interface CallFailure {
  readonly code: FailureCode
  readonly message: string
  /** For an error reply: the code the peer sent, as received (`code` is 'remoteError' when this version does not know it). */
  readonly remoteCode?: string
}

/** `[true, result]` when the peer answered, `[false, null, failure]` otherwise; never rejects for a network outcome. */
export type CallResult<T = unknown> = [ok: true, result: T] | [ok: false, result: null, failure: CallFailure]

/**
 * Every option is checked in the constructor, the same way for both backends:
 * a value of the wrong type or out of its range throws RPCArgumentError.
 */
export interface RPCProtocolOptions {
  /** Seconds to wait for an answer (Python's wait_timeout): a number > 0 and <= 2147483.647 (setTimeout's 2^31 − 1 ms). Default 5. */
  waitTimeout?: number
  /** 'auto' (default): native when the binary loads, else pure. RPCUDP_BACKEND=native|pure overrides 'auto'. */
  backend?: BackendChoice
  /** Largest msgpack body sent, request or reply: an integer 1..65486 (a UDP datagram less the header). Default 8192, Python's limit. */
  maxBodySize?: number
  /** Calls waiting for an answer at once, an integer 1..2^24; beyond it a call rejects with RPCOverloadedError. Default 262144. */
  maxOutstanding?: number
  /** Async handlers running at once, an integer 1..2^24; beyond it requests are dropped (counted as handlersBusy). Default 4096. */
  maxHandlers?: number
  /** Answer a failed request with an error reply that Python peers ignore. A boolean; default true. */
  errorReplies?: boolean
  /** Put the handler's error message in error replies (it may reveal internals to peers). A boolean; default false. */
  exposeErrors?: boolean
  /** Accept an answer only from the address the call went to (zones aside). A boolean; default true; turn off for multihomed peers. */
  checkSender?: boolean
  /** Socket buffer sizes requested, integers 1..2^31 − 1 (best effort; stats() reports what the kernel granted). Default 4 MiB. */
  recvBufferSize?: number
  sendBufferSize?: number
  /**
   * Native backend only: where datagrams are received. 'loop' (default on
   * Node): on Node's own event loop, no thread hop. 'thread' (default on Bun
   * and Deno, where 'loop' cannot work and asking for it throws
   * RPCBackendError): on the Rust runtime's thread, handed over in batches
   * through a threadsafe function. RPCUDP_NATIVE_IO=loop|thread overrides the default.
   */
  nativeIo?: NativeIo
  /**
   * Seconds an async handler may run. Then its slot is freed, the caller gets a
   * 'handler_timeout' error reply, the handler's signal (`handlerSignal`) fires
   * and its late result is discarded. Default: no limit.
   */
  handlerTimeout?: number
  /** Inbound limits per source (an IPv4 address, or an IPv6 /64). Off unless given. */
  perSource?: PerSourceOptions
  /**
   * Bounds what is sent to a source (an IPv4 address, or an IPv6 /64) that has
   * never answered a call of ours: at most `allowance` + `factor` x the bytes
   * received from it. A spoofed request names its victim as sender, so this
   * caps how much a node reflects at someone who never asked. Replies beyond it
   * are dropped, counted as unverified. Our own calls are always sent, and
   * counted. Off unless given (`{}` takes the defaults; `false` is off);
   * KademliaNode turns it on unless its `rpc.reflection` is `false`.
   */
  reflection?: ReflectionOptions | false
}

export interface ReflectionOptions {
  /** Bytes any source may be sent before its own bytes count. Default 8192. */
  allowance?: number
  /** Bytes that may be sent per byte received, beyond the allowance. Default 2. */
  factor?: number
  /** Sources tracked; beyond it the least recently seen is forgotten (and starts afresh). Default 65536. */
  maxSources?: number
}

export interface PerSourceOptions {
  /**
   * Token bucket per source: requests beyond it are dropped, with no reply (a
   * reply would amplify), and counted as rateLimited. Native enforces it in
   * Rust, before JavaScript sees the datagram. Default: no rate limit.
   */
  requestsPerSecond?: number
  /** The bucket's capacity (>= 1). Default 2 x requestsPerSecond. */
  burst?: number
  /** Async handlers one source may hold; beyond it 'overloaded' (counted as handlersBusy). Default: only maxHandlers. */
  maxHandlers?: number
  /** Sources the rate limit tracks; beyond it the least recently seen is forgotten. Default 65536. */
  maxSources?: number
}

export interface CloseOptions {
  /**
   * Seconds to drain: requests are refused (dropped, counted as closing) while
   * running handlers may still answer and outstanding calls settle; then the
   * rest settle as 'closed'. Default 0: close at once.
   */
  drain?: number
}

export type Handler = (sender: Address, ...args: any[]) => unknown

type AnyFn = (...args: any[]) => any
/**
 * A typed proxy over a peer's methods; any other name still works untyped. The
 * untyped fallback is `any` because under `noUncheckedIndexedAccess` an index
 * signature's value is possibly undefined, which would make `call.nosuch(...)`
 * uncallable; the typed names are unaffected (an intersection's declared
 * property wins over the other side's index signature).
 */
export type CallProxy<Remote> = {
  [K in keyof Remote]: Remote[K] extends AnyFn
    ? (address: Address, ...args: Parameters<Remote[K]>) => Promise<CallResult<Awaited<ReturnType<Remote[K]>>>>
    : never
} & { [name: string]: any }

/**
 * A client's view of a server class: its `rpc_<name>(sender, ...args)` methods
 * as `<name>(...args)`, so `new RPCProtocol<RemoteOf<MyServer>>()` types
 * `client.call.<name>(address, ...args)`.
 */
export type RemoteOf<Server> = {
  [K in keyof Server as K extends `rpc_${infer Name}` ? (Server[K] extends AnyFn ? Name : never) : never]: Server[K] extends (
    sender: Address,
    ...args: infer A
  ) => infer R
    ? (...args: A) => R
    : never
}

export interface CallOptions {
  /** Seconds, > 0 and <= 2147483.647 like waitTimeout; overrides waitTimeout for this call. */
  timeout?: number
  /**
   * Aborting settles the call at once as `[false, null, {code: 'aborted'}]`; a
   * late answer is counted as unmatchedResponse. An already-aborted signal sends nothing.
   */
  signal?: AbortSignal
  /**
   * Parses this call's answer body straight from its bytes [start, end), which
   * are valid only during the call. Returns undefined for a body it does not
   * take, which is then decoded as usual; a caller that knows its answers'
   * shape (a Kademlia neighbour list) skips building generic values for them.
   */
  decode?: BodyDecoder
}

export type BodyDecoder = (buf: Buffer, start: number, end: number) => unknown

export interface Stats extends WireStats {
  handlersRunning: number
  handlerErrors: number
  unknownMethods: number
  replyTooLarge: number
  replyUnencodable: number
  handlerTimeouts: number
  dropped: Record<WireDropReason | 'handlersBusy' | 'closing', number>
  droppedTotal: number
}

type Resolve = (r: CallResult<any>) => void

/** The handler call running now, so `handlerSignal` can create its controller on demand. */
interface HandlerContext {
  controller: AbortController | null
}

const TIMEOUT: CallResult<never> = Object.freeze([false, null, Object.freeze({ code: 'timeout', message: 'no answer within the timeout' })]) as any
const CLOSED: CallResult<never> = Object.freeze([false, null, Object.freeze({ code: 'closed', message: 'the protocol was closed' })]) as any

/** Wire codes of error replies (docs/PROTOCOL.md) and how callers see them. */
const FAILURE_BY_WIRE_CODE: Record<string, FailureCode> = {
  unknown_method: 'unknownMethod',
  handler_error: 'handlerError',
  overloaded: 'overloaded',
  reply_too_large: 'replyTooLarge',
  reply_unencodable: 'replyUnencodable',
  handler_timeout: 'handlerTimeout',
}

/** A peer's error-reply code as a FailureCode: own keys only, so `constructor` or `__proto__` is just unknown. */
function failureCode(wireCode: string): FailureCode {
  return Object.hasOwn(FAILURE_BY_WIRE_CODE, wireCode) ? FAILURE_BY_WIRE_CODE[wireCode] : 'remoteError'
}

/**
 * Names the call proxy does not turn into remote calls, because the language or
 * common tools probe objects for them: a function under `then` makes the proxy a
 * thenable, so `await`ing or returning it from an async function would call the
 * peer's `then` and hang or reject; `toJSON` (JSON.stringify), `inspect` (old
 * util.inspect), `asymmetricMatch` (jest/vitest), `$$typeof` (React), `nodeType`
 * (DOM checks in pretty-format), `__esModule` (ES module interop). Symbols
 * (util.inspect.custom, Symbol.toPrimitive, Symbol.toStringTag, Symbol.iterator)
 * are never remote either. A peer method of such a name is reachable through callRemote.
 */
const NOT_REMOTE: ReadonlySet<string> = new Set(['then', 'catch', 'finally', 'toJSON', 'inspect', 'asymmetricMatch', '$$typeof', 'nodeType', '__esModule'])

/** The keys of RPCProtocolOptions and PerSourceOptions; `satisfies` keeps each list and its interface in step. */
const OPTION_KEYS = Object.keys({
  waitTimeout: 0, backend: 0, maxBodySize: 0, maxOutstanding: 0, maxHandlers: 0, errorReplies: 0, exposeErrors: 0,
  checkSender: 0, recvBufferSize: 0, sendBufferSize: 0, nativeIo: 0, handlerTimeout: 0, perSource: 0,
  reflection: 0,
} satisfies Record<keyof RPCProtocolOptions, 0>)
const PER_SOURCE_KEYS = Object.keys({ requestsPerSecond: 0, burst: 0, maxHandlers: 0, maxSources: 0 } satisfies Record<keyof PerSourceOptions, 0>)

const REFLECTION_KEYS = Object.keys({ allowance: 0, factor: 0, maxSources: 0 } satisfies Record<keyof ReflectionOptions, 0>)

/** Largest perSource.maxSources: the core links its table with u32 indices. */
const MAX_SOURCES = 2 ** 32 - 2

/** Seconds as milliseconds for an optional deadline (handlerTimeout, drain): null when absent. */
function optionalTimeoutMs(name: string, v: unknown): number | null {
  return v === undefined ? null : timeoutMs(name, v, 0)
}

interface PerSourceLimits {
  rate: RateConfig | null
  maxHandlers: number
}

function perSourceLimits(o: PerSourceOptions | undefined): PerSourceLimits | null {
  if (o === undefined) return null
  if (o === null || typeof o !== 'object') throw new RPCArgumentError(`perSource must be an object, got ${describe(o)}`)
  checkKeys('perSource', o, PER_SOURCE_KEYS)
  const maxSources = positive('perSource.maxSources', o.maxSources, 65536, MAX_SOURCES, true)
  const maxHandlers = positive('perSource.maxHandlers', o.maxHandlers, Infinity, MAX_CONCURRENCY, true)
  if (o.requestsPerSecond === undefined) {
    if (o.burst !== undefined) throw new RPCArgumentError('perSource.burst needs perSource.requestsPerSecond')
    return { rate: null, maxHandlers }
  }
  const requestsPerSecond = positive('perSource.requestsPerSecond', o.requestsPerSecond, 0, Number.MAX_VALUE, false)
  const burst = positive('perSource.burst', o.burst, Math.max(1, 2 * requestsPerSecond), Number.MAX_VALUE, false)
  if (burst < 1) throw new RPCArgumentError(`perSource.burst must be at least 1 (one request), got ${burst}`)
  return { rate: { requestsPerSecond, burst, maxSources }, maxHandlers }
}

function reflectionBound(o: ReflectionOptions | false | undefined): ReflectionConfig | null {
  if (o === undefined || o === false) return null
  if (o === null || typeof o !== 'object') throw new RPCArgumentError(`reflection must be an object, got ${describe(o)}`)
  checkKeys('reflection', o, REFLECTION_KEYS)
  return {
    allowance: positive('reflection.allowance', o.allowance, 8192, 2 ** 53 - 1, true),
    factor: positive('reflection.factor', o.factor, 2, Number.MAX_VALUE, false),
    maxSources: positive('reflection.maxSources', o.maxSources, 65536, MAX_SOURCES, true),
  }
}

/** An async handler's outcome on `rpcudp:handle`, published as tracePromise would: error (if any), asyncStart, asyncEnd. */
function asyncOutcome(trace: HandleTraceContext, key: 'result' | 'error', value: unknown) {
  trace[key] = value
  if (key === 'error') handleChannel.error.publish(trace)
  handleChannel.asyncStart.publish(trace)
  handleChannel.asyncEnd.publish(trace)
}

function aborted(signal: AbortSignal): CallResult<never> {
  const reason = signal.reason instanceof Error ? `: ${signal.reason.message}` : ''
  return [false, null, Object.freeze({ code: 'aborted' as const, message: `the call was aborted${reason}` })]
}

function nativeIo(choice: unknown): NativeIo {
  return oneOf('nativeIo', choice ?? (process.env.RPCUDP_NATIVE_IO || defaultNativeIo()), ['loop', 'thread'])
}

function checkAddress(address: unknown): asserts address is [unknown, number] {
  if (!Array.isArray(address) || address.length < 2)
    throw new RPCArgumentError(`address must be [host, port], got ${describe(address)}`)
  checkPort(address[1], false)
}

/**
 * RPC over UDP with Python rpcudp's semantics. Subclass it and define
 * `rpc_<name>(sender, ...args)` methods, or register handlers with `handle()`;
 * call a peer's methods with `call.<name>(address, ...args)`.
 */
export class RPCProtocol<Remote extends object = {}> {
  /** `proto.call.sayhi(['127.0.0.1', 1234], 'Snake')` calls the peer's `rpc_sayhi`. */
  readonly call: CallProxy<Remote>
  private readonly transport: Transport
  private readonly io: NativeIo
  private readonly waitTimeoutMs: number
  private readonly maxOutstanding: number
  private readonly maxHandlers: number
  private readonly handlerTimeoutMs: number | null
  private readonly perSourceMaxHandlers: number
  /** Async handlers running per source (sourceKey), when perSource.maxHandlers is set; entries go at 0. */
  private readonly handlersBySource = new Map<string, number>()
  /** Running async handlers whose signal was asked for, to abort at close(). */
  private readonly signalled = new Set<AbortController>()
  /** Calls waiting on each AbortSignal, so one listener serves them all. */
  private readonly bySignal = new WeakMap<AbortSignal, Set<number>>()
  private lastSignal: AbortSignal | null = null
  private lastCalls: Set<number> | null = null
  private current: HandlerContext | null = null
  private bound: Address | null = null
  private closing: Promise<void> | null = null
  private drained: (() => void) | null = null
  private readonly errorReplies: boolean
  private readonly exposeErrors: boolean
  private readonly encoder: Encoder
  private readonly decoder = new Decoder()
  /** CallOptions.decode by token, for the calls that gave one. */
  private readonly bodyDecoders = new Map<number, BodyDecoder>()
  private readonly handlers = new Map<string, Handler>()
  private readonly pending = new Map<number, Resolve>()
  private readonly log = new RateLimitedLog()
  private readonly drops = new DropPublisher()
  private state: 'new' | 'binding' | 'listening' | 'draining' | 'closed' = 'new'
  /** Call hosts as the transport takes them; set by listen() (the socket's family decides where '' leads). */
  private hosts: CallHosts | null = null
  private token = 0
  private counters = { handlersRunning: 0, handlerErrors: 0, unknownMethods: 0, replyTooLarge: 0, replyUnencodable: 0, handlerTimeouts: 0, handlersBusy: 0, closing: 0 }

  constructor(options: RPCProtocolOptions = {}) {
    if (options === null || typeof options !== 'object') throw new RPCArgumentError(`options must be an object, got ${describe(options)}`)
    checkKeys('RPCProtocol options', options, OPTION_KEYS)
    this.waitTimeoutMs = timeoutMs('waitTimeout', options.waitTimeout, 5)
    // A datagram's payload is at most 65507 bytes, 21 of them the header.
    const maxBodySize = positive('maxBodySize', options.maxBodySize, 8192, 65507 - 21, true)
    this.maxOutstanding = positive('maxOutstanding', options.maxOutstanding, 262144, MAX_CONCURRENCY, true)
    this.maxHandlers = positive('maxHandlers', options.maxHandlers, 4096, MAX_CONCURRENCY, true)
    this.handlerTimeoutMs = optionalTimeoutMs('handlerTimeout', options.handlerTimeout)
    const perSource = perSourceLimits(options.perSource)
    this.perSourceMaxHandlers = perSource?.maxHandlers ?? Infinity
    this.errorReplies = boolean('errorReplies', options.errorReplies, true)
    this.exposeErrors = boolean('exposeErrors', options.exposeErrors, false)
    this.encoder = sharedEncoder(maxBodySize)
    this.io = nativeIo(options.nativeIo)
    this.transport = createTransport(options.backend ?? 'auto', {
      maxBodySize,
      maxOutstanding: this.maxOutstanding,
      checkSender: boolean('checkSender', options.checkSender, true),
      recvBufferSize: positive('recvBufferSize', options.recvBufferSize, 4 << 20, MAX_SOCKET_BUFFER, true),
      sendBufferSize: positive('sendBufferSize', options.sendBufferSize, 4 << 20, MAX_SOCKET_BUFFER, true),
      nativeIo: this.io,
      perSource: perSource?.rate ?? null,
      reflection: reflectionBound(options.reflection),
    })
    this.call = this.makeCallProxy()
  }

  /** Which backend this protocol runs on. */
  get backend(): BackendName {
    return this.transport.backend
  }

  /** Where the native backend receives ('loop' or 'thread'); undefined on the pure backend. */
  get nativeIo(): NativeIo | undefined {
    return this.transport.backend === 'native' ? this.io : undefined
  }

  /**
   * Binds the UDP socket; port 0 picks a free one. `host` is an IP literal
   * (IPv6 with a zone, `fe80::1%eth0`, for link-local), `localhost`
   * (127.0.0.1) or '' (every IPv4 interface). Resolves to the bound [host, port].
   */
  async listen(port: number = 0, host: string = '0.0.0.0'): Promise<Address> {
    if (this.state === 'closed' || this.state === 'draining') throw closedError()
    if (this.state !== 'new') throw new RPCStateError('ERR_RPC_ALREADY_LISTENING', 'listen() was already called')
    checkPort(port, true)
    const h = bindHost(host)
    this.state = 'binding'
    try {
      const bound = await this.transport.bind(port, h, this.sink)
      this.hosts = new CallHosts(isIPv6(h))
      // close() may have run while the bind was in flight
      if ((this.state as string) === 'closed') throw closedError()
      this.state = 'listening'
      this.bound = bound
      return [...bound]
    } catch (err) {
      if (this.state === 'binding') this.state = 'new'
      throw err
    }
  }

  /** The bound [host, port], or null before listen() and after close(), like dgram's address(). */
  address(): Address | null {
    return this.bound && [this.bound[0], this.bound[1]]
  }

  /**
   * The AbortSignal of the handler being invoked now; it fires when the handler
   * runs past handlerTimeout or the protocol closes. Read it in the handler's
   * synchronous part (before its first await), e.g. `const signal = this.handlerSignal`
   * in an `rpc_<name>` method or `proto.handlerSignal` in a `handle()` function;
   * the handler keeps its `(sender, ...args)` signature. Outside a handler it
   * throws RPCStateError. It costs nothing to handlers that never read it.
   */
  get handlerSignal(): AbortSignal {
    const ctx = this.current
    if (ctx === null) throw new RPCStateError('ERR_RPC_NO_HANDLER', 'handlerSignal is only available while a handler is being invoked')
    ctx.controller ??= new AbortController()
    return ctx.controller.signal
  }

  /** Registers a handler for `name` without subclassing; it takes precedence over an `rpc_<name>` method. */
  handle<A extends any[], R>(name: string, handler: (sender: Address, ...args: A) => R): this {
    if (typeof name !== 'string' || typeof handler !== 'function')
      throw new RPCArgumentError('handle(name, handler) takes a string and a function')
    this.handlers.set(name, handler as Handler)
    return this
  }

  /** Calls `name` on the peer at `address`; the explicit form of `call.<name>(address, ...args)`. */
  callRemote<T = any>(address: Address, name: string, args: readonly unknown[] = [], options?: CallOptions): Promise<CallResult<T>> {
    try {
      if (traced(callChannel)) return this.tracedCall(address, name, args, options)
      return this.startCall(address, name, args, options)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Like dgram's: an unref'd protocol does not keep the process alive by itself. */
  ref(): this {
    this.transport.ref()
    return this
  }

  unref(): this {
    this.transport.unref()
    return this
  }

  /**
   * Settles every outstanding call as `[false, null, {code: 'closed'}]`, fires
   * running handlers' signals and releases the socket. With `drain`, first
   * refuses new requests and waits up to `drain` seconds for running handlers
   * to answer and outstanding calls to settle.
   */
  close(options: CloseOptions = {}): Promise<void> {
    try {
      return this.startClose(options)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** `await using proto = new RPCProtocol()` closes it (at once, no drain) when the scope ends. */
  [asyncDispose](): Promise<void> {
    return this.close()
  }

  private startClose(options: CloseOptions): Promise<void> {
    if (this.closing !== null) return this.closing
    if (this.state === 'closed') return Promise.resolve()
    if (options === null || typeof options !== 'object') throw new RPCArgumentError('close() takes { drain?: seconds }')
    const drainMs = options.drain === 0 ? null : optionalTimeoutMs('drain', options.drain)
    if (drainMs === null || this.state !== 'listening') {
      this.shutdown()
      return Promise.resolve()
    }
    this.state = 'draining'
    this.closing = new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.drained = null
        resolve()
      }
      const timer = setTimeout(done, drainMs)
      this.drained = done
      this.checkDrained()
    }).then(() => this.shutdown())
    return this.closing
  }

  private shutdown() {
    const wasOpen = this.state !== 'new'
    this.state = 'closed'
    this.bound = null
    if (wasOpen) this.transport.close()
    const pending = [...this.pending.values()]
    this.pending.clear()
    this.bodyDecoders.clear()
    for (const resolve of pending) resolve(CLOSED)
    for (const controller of this.signalled) controller.abort(closedError())
    this.signalled.clear()
    this.lastSignal = null
    this.lastCalls = null
    if (closeChannel.hasSubscribers) closeChannel.publish({ protocol: this })
  }

  /** While draining: close as soon as nothing is left to wait for. */
  private checkDrained() {
    if (this.drained !== null && this.pending.size === 0 && this.counters.handlersRunning === 0) this.drained()
  }

  stats(): Stats {
    const wire = this.transport.stats()
    const { handlersBusy, closing, ...rest } = this.counters
    const dropped = { ...wire.dropped, handlersBusy, closing }
    let droppedTotal = 0
    for (const k in dropped) droppedTotal += dropped[k as keyof typeof dropped]
    return { ...wire, ...rest, outstanding: this.pending.size, dropped, droppedTotal }
  }

  private get open(): boolean {
    return this.state === 'listening' || this.state === 'draining'
  }

  private startCall(address: Address, name: string, args: readonly unknown[], options?: CallOptions): Promise<CallResult<any>> {
    if (this.state !== 'listening') throw this.state === 'closed' ? closedError() : notListening()
    checkAddress(address)
    const host = this.hosts!.resolve(address[0])
    if (typeof name !== 'string') throw new RPCArgumentError('method name must be a string')
    if (!Array.isArray(args)) throw new RPCArgumentError('args must be an array')
    if (options !== undefined && (options === null || typeof options !== 'object'))
      throw new RPCArgumentError(`call options must be an object, got ${describe(options)}`)
    const waitMs = options?.timeout === undefined ? this.waitTimeoutMs : timeoutMs('timeout', options.timeout, 0)
    const signal = options?.signal
    if (signal !== undefined && !(signal instanceof AbortSignal))
      throw new RPCArgumentError(`signal must be an AbortSignal, got ${describe(signal)}`)
    if (signal?.aborted) return Promise.resolve(aborted(signal))
    if (this.pending.size >= this.maxOutstanding) throw new RPCOverloadedError(this.maxOutstanding)
    const encoder = idle(this.encoder)
    const len = encoder.encodeRequest(name, args)
    let token = (this.token + 1) >>> 0
    while (this.pending.has(token)) token = (token + 1) >>> 0
    this.token = token
    this.transport.call(host, address[1], encoder.bytes, len, waitMs, token)
    const decode = options?.decode
    if (decode !== undefined) {
      if (typeof decode !== 'function') throw new RPCArgumentError(`decode must be a function, got ${describe(decode)}`)
      this.bodyDecoders.set(token, decode)
    }
    if (signal === undefined) return new Promise<CallResult<any>>((resolve) => this.pending.set(token, resolve))
    const waiting = this.callsOn(signal)
    waiting.add(token)
    return new Promise<CallResult<any>>((resolve) =>
      this.pending.set(token, (r) => {
        waiting.delete(token)
        resolve(r)
      }),
    )
  }

  /** startCall published on `rpcudp:call`; the result's failure code goes on the context before asyncStart. */
  private tracedCall(address: Address, name: string, args: readonly unknown[], options?: CallOptions): Promise<CallResult<any>> {
    const ctx = owned<CallTraceContext>({ address, method: name, backend: this.transport.backend }, 'protocol', this)
    return callChannel.tracePromise(
      () =>
        this.startCall(address, name, args, options).then((r) => {
          if (!r[0]) ctx.code = r[2].code
          return r
        }),
      ctx,
    )
  }

  /**
   * The calls waiting on `signal`. One abort listener per signal serves them
   * all, however many share it: adding an EventTarget listener costs
   * microseconds, a Set entry nanoseconds.
   */
  private callsOn(signal: AbortSignal): Set<number> {
    // A lookup's calls share a signal: skip the WeakMap for a run of them.
    if (signal === this.lastSignal) return this.lastCalls!
    let tokens = this.bySignal.get(signal)
    if (tokens === undefined) {
      const waiting = new Set<number>()
      signal.addEventListener('abort', () => this.abortCalls(signal, waiting))
      this.bySignal.set(signal, waiting)
      tokens = waiting
    }
    this.lastSignal = signal
    this.lastCalls = tokens
    return tokens
  }

  /** `signal` fired: its calls settle as 'aborted' and the transport forgets them, so a late answer is unmatched. */
  private abortCalls(signal: AbortSignal, tokens: Set<number>) {
    const result = aborted(signal)
    for (const token of [...tokens]) {
      const resolve = this.pending.get(token)
      if (resolve === undefined) continue
      this.pending.delete(token)
      this.bodyDecoders.delete(token)
      this.transport.cancel(token)
      resolve(result)
    }
    tokens.clear()
    this.checkDrained()
  }

  private makeCallProxy(): CallProxy<Remote> {
    const cache = new Map<string, (address: Address, ...args: unknown[]) => Promise<CallResult<any>>>()
    return new Proxy({} as CallProxy<Remote>, {
      get: (target, name) => {
        if (typeof name !== 'string' || NOT_REMOTE.has(name)) return undefined
        // toString, constructor, hasOwnProperty...: what String(), instanceof checks and loggers expect of an object
        if (name in Object.prototype) return Reflect.get(target, name)
        let fn = cache.get(name)
        if (!fn) {
          fn = (address: Address, ...args: unknown[]) => this.callRemote(address, name, args)
          cache.set(name, fn)
        }
        return fn
      },
    })
  }

  private findHandler(name: string): Handler | undefined {
    const registered = this.handlers.get(name)
    if (registered) return registered
    const method = (this as any)['rpc_' + name]
    return typeof method === 'function' ? method : undefined
  }

  private readonly sink: TransportSink = {
    onRequest: (id, sender, name, args) => this.serve(id, sender, name, args),
    onResponse: (token, buf, start, end) => this.receiveAnswer(token, buf, start, end),
    onErrorReply: (token, code, message) =>
      this.settle(token, [false, null, Object.freeze({ code: failureCode(code), message, remoteCode: code })]),
    onTimeout: (token) => this.settle(token, TIMEOUT),
  }

  /** Decodes an answer body with its call's decoder, then the generic one; a body neither takes leaves the call unsettled. */
  private receiveAnswer(token: number, buf: Buffer, start: number, end: number): DecodeReason | undefined {
    let value = this.bodyDecoders.size === 0 ? undefined : this.bodyDecoders.get(token)?.(buf, start, end)
    if (value === undefined) {
      try {
        value = this.decoder.decode(buf, start, end)
      } catch (err) {
        if (err instanceof DecodeFailure) return err.reason
        throw err
      }
    }
    this.settle(token, [true, value])
    return undefined
  }

  private settle(token: number, result: CallResult<any>) {
    const resolve = this.pending.get(token)
    if (resolve === undefined) return // settled by close() already
    this.pending.delete(token)
    if (this.bodyDecoders.size !== 0) this.bodyDecoders.delete(token)
    resolve(result)
    if (this.drained !== null) this.checkDrained()
  }

  private serve(id: Buffer, sender: Address, name: string, args: unknown[]) {
    if (this.state === 'draining') {
      this.counters.closing++
      this.drops.publish('closing', sender)
      return
    }
    const handler = this.findHandler(name)
    if (handler === undefined) {
      this.counters.unknownMethods++
      this.log.log(`no handler for ${JSON.stringify(name)} (from ${sender[0]}:${sender[1]})`)
      return this.fail(id, sender, 'unknown_method', `no method ${JSON.stringify(name)}`)
    }
    if (this.counters.handlersRunning >= this.maxHandlers) {
      this.counters.handlersBusy++
      this.drops.publish('handlersBusy', sender)
      return this.fail(id, sender, 'overloaded', `${this.maxHandlers} handlers already running`)
    }
    let source: string | null = null
    if (this.perSourceMaxHandlers !== Infinity) {
      source = sourceKey(sender[0])
      if ((this.handlersBySource.get(source) ?? 0) >= this.perSourceMaxHandlers) {
        this.counters.handlersBusy++
        this.drops.publish('handlersBusy', sender)
        return this.fail(id, sender, 'overloaded', `${this.perSourceMaxHandlers} handlers already running for this source`)
      }
    }
    const ctx: HandlerContext = { controller: null }
    const trace = traced(handleChannel) ? owned<HandleTraceContext>({ sender, method: name }, 'protocol', this) : null
    const outer = this.current
    this.current = ctx
    let result: unknown
    let thenable: boolean
    try {
      // traceSync publishes start and end, and error (with ctx.error) if the handler throws
      result = trace === null ? handler.call(this, sender, ...args) : handleChannel.traceSync(handler, trace, this, sender, ...args)
      // Inside the try: a hostile `then` getter must not escape into the receive loop.
      thenable = result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function'
    } catch (err) {
      return this.handlerFailed(id, sender, name, err)
    } finally {
      this.current = outer
    }
    if (thenable) this.await(id, sender, name, result as PromiseLike<unknown>, ctx.controller, source, trace)
    else this.answer(id, sender, result)
  }

  /** Holds a handler slot (and its source's) until `result` settles or handlerTimeout frees it; whichever comes first answers. */
  private await(
    id: Buffer,
    sender: Address,
    name: string,
    result: PromiseLike<unknown>,
    controller: AbortController | null,
    source: string | null,
    trace: HandleTraceContext | null,
  ) {
    this.counters.handlersRunning++
    if (source !== null) this.handlersBySource.set(source, (this.handlersBySource.get(source) ?? 0) + 1)
    if (controller !== null) this.signalled.add(controller)
    let timer: NodeJS.Timeout | null = null
    let released = false
    /** Frees the slot once; false if it was freed already (the late outcome is discarded). */
    const release = (): boolean => {
      if (released) return false
      released = true
      this.counters.handlersRunning--
      if (source !== null) {
        const n = this.handlersBySource.get(source)! - 1
        if (n === 0) this.handlersBySource.delete(source)
        else this.handlersBySource.set(source, n)
      }
      if (controller !== null) this.signalled.delete(controller)
      if (timer !== null) clearTimeout(timer)
      return true
    }
    const ms = this.handlerTimeoutMs
    if (ms !== null) {
      timer = setTimeout(() => {
        if (!release()) return
        this.counters.handlerTimeouts++
        const err = new RPCError('ERR_RPC_HANDLER_TIMEOUT', `the handler ran past handlerTimeout (${ms / 1000} s)`)
        if (trace !== null) asyncOutcome(trace, 'error', err)
        controller?.abort(err)
        this.log.log(`handler ${JSON.stringify(name)} ran past handlerTimeout (${ms / 1000} s)`)
        this.fail(id, sender, 'handler_timeout', `no answer within ${ms / 1000} s`)
        this.checkDrained()
      }, ms)
      timer.unref()
    }
    Promise.resolve(result).then(
      (value) => {
        if (!release()) return
        if (trace !== null) asyncOutcome(trace, 'result', value)
        this.answer(id, sender, value)
        this.checkDrained()
      },
      (err) => {
        if (!release()) return
        if (trace !== null) asyncOutcome(trace, 'error', err)
        this.handlerFailed(id, sender, name, err)
        this.checkDrained()
      },
    )
  }

  private answer(id: Buffer, sender: Address, value: unknown) {
    if (!this.open) return
    const encoder = idle(this.encoder)
    let len: number
    try {
      len = encoder.encode(value)
    } catch (err) {
      if (err instanceof RPCSizeError) {
        this.counters.replyTooLarge++
        return this.fail(id, sender, 'reply_too_large', err.message)
      }
      this.counters.replyUnencodable++
      return this.fail(id, sender, 'reply_unencodable', err instanceof RPCEncodeError ? err.message : String(err))
    }
    this.transport.reply(id, sender[0], sender[1], encoder.bytes, len)
  }

  private handlerFailed(id: Buffer, sender: Address, name: string, err: unknown) {
    this.counters.handlerErrors++
    const message = err instanceof Error ? err.message : String(err)
    this.log.log(`handler ${JSON.stringify(name)} failed: ${message}`)
    this.fail(id, sender, 'handler_error', this.exposeErrors ? message : 'the handler failed')
  }

  private fail(id: Buffer, sender: Address, code: string, message: string) {
    if (this.errorReplies && this.open) this.transport.replyError(id, sender[0], sender[1], code, message.slice(0, 256))
  }
}

export { RPCError }
