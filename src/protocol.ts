import { isIPv6 } from 'node:net'
import { CallHosts, bindHost } from './address'
import { Encoder } from './codec'
import {
  RPCArgumentError,
  RPCEncodeError,
  RPCError,
  RPCOverloadedError,
  RPCSizeError,
  closedError,
  notListening,
} from './errors'
import { createTransport, type BackendChoice } from './loader'
import { MAX_CONCURRENCY, MAX_SOCKET_BUFFER, boolean, describe, oneOf, port as checkPort, positive, timeoutMs } from './validate'
import { RateLimitedLog } from './log'
import type { Address, BackendName, Transport, TransportSink, WireDropReason, WireStats } from './transport'

export type { Address, BackendName }

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
   * Native backend only: where datagrams are received. 'loop' (default): on
   * Node's own event loop, no thread hop. 'thread': on the Rust runtime's
   * thread, handed over in batches through a threadsafe function.
   * RPCUDP_NATIVE_IO=loop|thread overrides the default.
   */
  nativeIo?: 'loop' | 'thread'
}

export type Handler = (sender: Address, ...args: any[]) => unknown

type AnyFn = (...args: any[]) => any
/** A typed proxy over a peer's methods; any other name still works untyped. */
export type CallProxy<Remote> = {
  [K in keyof Remote]: Remote[K] extends AnyFn
    ? (address: Address, ...args: Parameters<Remote[K]>) => Promise<CallResult<Awaited<ReturnType<Remote[K]>>>>
    : never
} & { [name: string]: (address: Address, ...args: any[]) => Promise<CallResult<any>> }

export interface CallOptions {
  /** Seconds, > 0 and <= 2147483.647 like waitTimeout; overrides waitTimeout for this call. */
  timeout?: number
}

export interface Stats extends WireStats {
  handlersRunning: number
  handlerErrors: number
  unknownMethods: number
  replyTooLarge: number
  replyUnencodable: number
  dropped: Record<WireDropReason | 'handlersBusy', number>
  droppedTotal: number
}

type Resolve = (r: CallResult<any>) => void

const TIMEOUT: CallResult<never> = Object.freeze([false, null, Object.freeze({ code: 'timeout', message: 'no answer within the timeout' })]) as any
const CLOSED: CallResult<never> = Object.freeze([false, null, Object.freeze({ code: 'closed', message: 'the protocol was closed' })]) as any

/** Wire codes of error replies (docs/PROTOCOL.md) and how callers see them. */
const FAILURE_BY_WIRE_CODE: Record<string, FailureCode> = {
  unknown_method: 'unknownMethod',
  handler_error: 'handlerError',
  overloaded: 'overloaded',
  reply_too_large: 'replyTooLarge',
  reply_unencodable: 'replyUnencodable',
}

/** A peer's error-reply code as a FailureCode: own keys only, so `constructor` or `__proto__` is just unknown. */
function failureCode(wireCode: string): FailureCode {
  return Object.hasOwn(FAILURE_BY_WIRE_CODE, wireCode) ? FAILURE_BY_WIRE_CODE[wireCode] : 'remoteError'
}

function nativeIo(choice: unknown): 'loop' | 'thread' {
  return oneOf('nativeIo', choice ?? (process.env.RPCUDP_NATIVE_IO || 'loop'), ['loop', 'thread'])
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
  private readonly waitTimeoutMs: number
  private readonly maxOutstanding: number
  private readonly maxHandlers: number
  private readonly errorReplies: boolean
  private readonly exposeErrors: boolean
  private readonly encoder: Encoder
  private readonly handlers = new Map<string, Handler>()
  private readonly pending = new Map<number, Resolve>()
  private readonly log = new RateLimitedLog()
  private state: 'new' | 'binding' | 'listening' | 'closed' = 'new'
  /** Call hosts as the transport takes them; set by listen() (the socket's family decides where '' leads). */
  private hosts: CallHosts | null = null
  private token = 0
  private counters = { handlersRunning: 0, handlerErrors: 0, unknownMethods: 0, replyTooLarge: 0, replyUnencodable: 0, handlersBusy: 0 }

  constructor(options: RPCProtocolOptions = {}) {
    if (options === null || typeof options !== 'object') throw new RPCArgumentError(`options must be an object, got ${describe(options)}`)
    this.waitTimeoutMs = timeoutMs('waitTimeout', options.waitTimeout, 5)
    // A datagram's payload is at most 65507 bytes, 21 of them the header.
    const maxBodySize = positive('maxBodySize', options.maxBodySize, 8192, 65507 - 21, true)
    this.maxOutstanding = positive('maxOutstanding', options.maxOutstanding, 262144, MAX_CONCURRENCY, true)
    this.maxHandlers = positive('maxHandlers', options.maxHandlers, 4096, MAX_CONCURRENCY, true)
    this.errorReplies = boolean('errorReplies', options.errorReplies, true)
    this.exposeErrors = boolean('exposeErrors', options.exposeErrors, false)
    this.encoder = new Encoder(maxBodySize)
    this.transport = createTransport(options.backend ?? 'auto', {
      maxBodySize,
      maxOutstanding: this.maxOutstanding,
      checkSender: boolean('checkSender', options.checkSender, true),
      recvBufferSize: positive('recvBufferSize', options.recvBufferSize, 4 << 20, MAX_SOCKET_BUFFER, true),
      sendBufferSize: positive('sendBufferSize', options.sendBufferSize, 4 << 20, MAX_SOCKET_BUFFER, true),
      nativeIo: nativeIo(options.nativeIo),
    })
    this.call = this.makeCallProxy()
  }

  /** Which backend this protocol runs on. */
  get backend(): BackendName {
    return this.transport.backend
  }

  /**
   * Binds the UDP socket; port 0 picks a free one. `host` is an IP literal
   * (IPv6 with a zone, `fe80::1%eth0`, for link-local), `localhost`
   * (127.0.0.1) or '' (every IPv4 interface). Resolves to the bound [host, port].
   */
  async listen(port: number = 0, host: string = '0.0.0.0'): Promise<Address> {
    if (this.state === 'closed') throw closedError()
    if (this.state !== 'new') throw new RPCArgumentError('listen() was already called')
    checkPort(port, true)
    const h = bindHost(host)
    this.state = 'binding'
    try {
      const bound = await this.transport.bind(port, h, this.sink)
      this.hosts = new CallHosts(isIPv6(h))
      // close() may have run while the bind was in flight
      if ((this.state as string) === 'closed') throw closedError()
      this.state = 'listening'
      return bound
    } catch (err) {
      if (this.state === 'binding') this.state = 'new'
      throw err
    }
  }

  /** Registers a handler for `name` without subclassing; it takes precedence over an `rpc_<name>` method. */
  handle(name: string, handler: Handler): this {
    if (typeof name !== 'string' || typeof handler !== 'function')
      throw new RPCArgumentError('handle(name, handler) takes a string and a function')
    this.handlers.set(name, handler)
    return this
  }

  /** Calls `name` on the peer at `address`; the explicit form of `call.<name>(address, ...args)`. */
  callRemote<T = any>(address: Address, name: string, args: readonly unknown[] = [], options?: CallOptions): Promise<CallResult<T>> {
    try {
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

  /** Settles every outstanding call as `[false, null, {code: 'closed'}]` and releases the socket. */
  async close(): Promise<void> {
    if (this.state === 'closed') return
    const wasOpen = this.state !== 'new'
    this.state = 'closed'
    if (wasOpen) this.transport.close()
    const pending = [...this.pending.values()]
    this.pending.clear()
    for (const resolve of pending) resolve(CLOSED)
  }

  stats(): Stats {
    const wire = this.transport.stats()
    const { handlersBusy, ...rest } = this.counters
    const dropped = { ...wire.dropped, handlersBusy }
    let droppedTotal = 0
    for (const k in dropped) droppedTotal += dropped[k as keyof typeof dropped]
    return { ...wire, ...rest, outstanding: this.pending.size, dropped, droppedTotal }
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
    if (this.pending.size >= this.maxOutstanding) throw new RPCOverloadedError(this.maxOutstanding)
    const len = this.encoder.encodeRequest(name, args)
    let token = (this.token + 1) >>> 0
    while (this.pending.has(token)) token = (token + 1) >>> 0
    this.token = token
    this.transport.call(host, address[1], this.encoder.bytes, len, waitMs, token)
    return new Promise<CallResult<any>>((resolve) => this.pending.set(token, resolve))
  }

  private makeCallProxy(): CallProxy<Remote> {
    const cache = new Map<string, (address: Address, ...args: unknown[]) => Promise<CallResult<any>>>()
    return new Proxy({} as CallProxy<Remote>, {
      get: (_target, name) => {
        if (typeof name !== 'string') return undefined
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
    onResponse: (token, value) => this.settle(token, [true, value]),
    onErrorReply: (token, code, message) =>
      this.settle(token, [false, null, Object.freeze({ code: failureCode(code), message, remoteCode: code })]),
    onTimeout: (token) => this.settle(token, TIMEOUT),
  }

  private settle(token: number, result: CallResult<any>) {
    const resolve = this.pending.get(token)
    if (resolve === undefined) return // settled by close() already
    this.pending.delete(token)
    resolve(result)
  }

  private serve(id: Buffer, sender: Address, name: string, args: unknown[]) {
    const handler = this.findHandler(name)
    if (handler === undefined) {
      this.counters.unknownMethods++
      this.log.log(`no handler for ${JSON.stringify(name)} (from ${sender[0]}:${sender[1]})`)
      return this.fail(id, sender, 'unknown_method', `no method ${JSON.stringify(name)}`)
    }
    if (this.counters.handlersRunning >= this.maxHandlers) {
      this.counters.handlersBusy++
      return this.fail(id, sender, 'overloaded', `${this.maxHandlers} handlers already running`)
    }
    let result: unknown
    let thenable: boolean
    try {
      result = handler.call(this, sender, ...args)
      // Inside the try: a hostile `then` getter must not escape into the receive loop.
      thenable = result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function'
    } catch (err) {
      return this.handlerFailed(id, sender, name, err)
    }
    if (thenable) {
      this.counters.handlersRunning++
      Promise.resolve(result).then(
        (value) => {
          this.counters.handlersRunning--
          this.answer(id, sender, value)
        },
        (err) => {
          this.counters.handlersRunning--
          this.handlerFailed(id, sender, name, err)
        },
      )
    } else this.answer(id, sender, result)
  }

  private answer(id: Buffer, sender: Address, value: unknown) {
    if (this.state !== 'listening') return
    let len: number
    try {
      len = this.encoder.encode(value)
    } catch (err) {
      if (err instanceof RPCSizeError) {
        this.counters.replyTooLarge++
        return this.fail(id, sender, 'reply_too_large', err.message)
      }
      this.counters.replyUnencodable++
      return this.fail(id, sender, 'reply_unencodable', err instanceof RPCEncodeError ? err.message : String(err))
    }
    this.transport.reply(id, sender[0], sender[1], this.encoder.bytes, len)
  }

  private handlerFailed(id: Buffer, sender: Address, name: string, err: unknown) {
    this.counters.handlerErrors++
    const message = err instanceof Error ? err.message : String(err)
    this.log.log(`handler ${JSON.stringify(name)} failed: ${message}`)
    this.fail(id, sender, 'handler_error', this.exposeErrors ? message : 'the handler failed')
  }

  private fail(id: Buffer, sender: Address, code: string, message: string) {
    if (this.errorReplies && this.state === 'listening') this.transport.replyError(id, sender[0], sender[1], code, message.slice(0, 256))
  }
}

export { RPCError }
