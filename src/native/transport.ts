import { DecodeFailure, Decoder } from '../codec'
import { RPCArgumentError, RPCOverloadedError, RPCSocketError, closedError } from '../errors'
import { RateLimitedLog } from '../log'
import { DropPublisher, reportHeldBack } from '../diagnostics'
import { WIRE_DROP_REASONS, type Address, type Transport, type TransportOptions, type TransportSink, type WireDropReason, type WireStats } from '../transport'
import { DROP_REASONS, NATIVE_ERROR_CODES } from '../wire-names'
import { formatIPv6 } from './ipv6'

/** The addon's surface: the types napi-rs generates from crates/rpcudp-node (binding.d.ts). */
export type NativeBinding = typeof import('../../binding')
type NativeSocketHandle = InstanceType<NativeBinding['NativeSocket']>

// Event tags of the batch format (docs/DESIGN.md).
const REQUEST = 0
const RESPONSE = 1
const ERROR = 2
const TIMEOUT = 3
const DROPPED = 4
const SOCKET_ERROR = 5

function addressEnd(batch: Buffer, at: number): number {
  return at + (batch[at] === 4 ? 7 : 23)
}

type NativeErrorCode = (typeof NATIVE_ERROR_CODES)[number]

/** The typed error the pure backend would throw, for each code the addon's errors carry. */
const FROM_NATIVE: Record<NativeErrorCode, (message: string, options: TransportOptions, err: unknown) => Error> = {
  ERR_CLOSED: () => closedError(),
  ERR_INVALID_ADDRESS: (message) => new RPCArgumentError(message),
  ERR_INVALID_ARGUMENT: (message) => new RPCArgumentError(message),
  ERR_OVERLOADED: (_, options) => new RPCOverloadedError(options.maxOutstanding),
  // RPCProtocol checks sizes and encodes before the addon sees a body: these are socket-level surprises.
  ERR_BODY_TOO_LARGE: (message, _, err) => new RPCSocketError(message, err),
  ERR_IO: (message, _, err) => new RPCSocketError(message, err),
  ERR_ENCODE: (message, _, err) => new RPCSocketError(message, err),
  ERR_DECODE: (message, _, err) => new RPCSocketError(message, err),
}

/** An error the addon threw, as the typed error the pure backend would throw (by its `code`, never its message). */
function translate(err: unknown, options: TransportOptions): Error {
  const code = (err as { code?: unknown } | null)?.code
  const message = err instanceof Error ? err.message : String(err)
  const make = typeof code === 'string' && Object.hasOwn(FROM_NATIVE, code) ? FROM_NATIVE[code as NativeErrorCode] : undefined
  return make ? make(message, options, err) : new RPCSocketError(message, err)
}

/**
 * A lone datagram leaves at once; under load the addon hands datagrams to the
 * runtime thread (crates/rpcudp-node/src/turn.rs), and one `commit()` at the
 * end of the event-loop turn wakes it for every socket (a wake-up per datagram
 * would cost a system call, and in a VM an interrupt to the other core, each).
 */
let commitScheduled = false
function scheduleCommit(binding: NativeBinding): void {
  if (commitScheduled) return
  commitScheduled = true
  setImmediate(() => {
    commitScheduled = false
    binding.commit()
  })
}

/**
 * The native backend: the Rust core validates, matches and times out; this
 * class only turns each batch of events into sink calls, decoding bodies with
 * the shared codec.
 */
export class NativeTransport implements Transport {
  readonly backend = 'native' as const
  private socket: NativeSocketHandle | null = null
  private sink: TransportSink | null = null
  private refed = true
  private readonly decoder = new Decoder()
  private readonly log = new RateLimitedLog()
  private readonly drops = new DropPublisher()
  /** `%zone` by IPv6 scope id: link-local senders are few, and naming one is a system call. */
  private readonly zones = new Map<number, string>()
  /** Rust validated every body already; these count anything the JS decoder still refuses (a mapping bug). */
  private readonly jsDropped: Partial<Record<WireDropReason, number>> = {}
  private socketErrors = 0
  /** The counters as they were at close(): the core's go with its socket. */
  private closedStats: WireStats | null = null

  constructor(
    private readonly binding: NativeBinding,
    private readonly options: TransportOptions,
  ) {}

  async bind(port: number, host: string, sink: TransportSink): Promise<Address> {
    const socket = new this.binding.NativeSocket()
    const o = this.options
    let bound: { host: string; port: number }
    try {
      bound = socket.bind(
        host,
        port,
        {
          maxBody: o.maxBodySize,
          maxOutstanding: o.maxOutstanding,
          checkSender: o.checkSender,
          recvBuffer: o.recvBufferSize,
          sendBuffer: o.sendBufferSize,
          io: o.nativeIo,
          ratePerSecond: o.perSource?.requestsPerSecond,
          rateBurst: o.perSource?.burst,
          maxSources: o.perSource?.maxSources,
          reflectionAllowance: o.reflection?.allowance,
          reflectionFactor: o.reflection?.factor,
          reflectionMaxSources: o.reflection?.maxSources,
        },
        (batch, length) => this.onBatch(batch, length ?? batch.length),
      )
    } catch (err) {
      const typed = translate(err, o)
      if (typed instanceof RPCArgumentError) throw typed
      throw new RPCSocketError(`cannot bind ${host}:${port}: ${typed.message}`, err)
    }
    this.socket = socket
    this.sink = sink
    if (!this.refed) socket.unref()
    return [bound.host, bound.port]
  }

  call(host: string, port: number, body: Buffer, len: number, timeoutMs: number, token: number): void {
    try {
      this.socket!.call(host, port, body, len, timeoutMs, token)
    } catch (err) {
      throw translate(err, this.options)
    }
    scheduleCommit(this.binding)
  }

  reply(id: Buffer, host: string, port: number, body: Buffer, len: number): void {
    try {
      if (this.socket!.reply(id, host, port, body, len)) scheduleCommit(this.binding)
      else reportHeldBack(this.log, this.drops, host, port) // counted by the core
    } catch (err) {
      this.log.log(`reply failed: ${translate(err, this.options).message}`)
    }
  }

  replyError(id: Buffer, host: string, port: number, code: string, message: string): void {
    try {
      if (this.socket!.replyError(id, host, port, code, message)) scheduleCommit(this.binding)
      else reportHeldBack(this.log, this.drops, host, port) // counted by the core
    } catch (err) {
      this.log.log(`error reply failed: ${translate(err, this.options).message}`)
    }
  }

  cancel(token: number): void {
    this.socket?.cancel(token)
  }

  close(): void {
    const socket = this.socket
    if (socket === null) return
    this.closedStats = this.stats()
    this.socket = null
    this.sink = null
    socket.close()
  }

  ref(): void {
    this.refed = true
    this.socket?.ref()
  }

  unref(): void {
    this.refed = false
    this.socket?.unref()
  }

  stats(): WireStats {
    if (this.socket === null && this.closedStats !== null) return { ...this.closedStats, outstanding: 0, socketErrors: this.socketErrors }
    const s = this.socket?.stats()
    // The core also has handlersBusy and closing reasons; in Node, RPCProtocol counts those.
    const dropped = {} as Record<WireDropReason, number>
    for (const r of WIRE_DROP_REASONS) dropped[r] = (s?.dropped[r] ?? 0) + (this.jsDropped[r] ?? 0)
    return {
      requestsSent: s?.requestsSent ?? 0,
      requestsReceived: s?.requestsReceived ?? 0,
      responsesSent: s?.responsesSent ?? 0,
      responsesReceived: s?.responsesReceived ?? 0,
      errorsSent: s?.errorsSent ?? 0,
      errorsReceived: s?.errorsReceived ?? 0,
      timeouts: s?.timeouts ?? 0,
      outstanding: s?.outstanding ?? 0,
      dropped,
      socketErrors: this.socketErrors,
      recvBufferSize: s?.recvBufferSize ?? 0,
      sendBufferSize: s?.sendBufferSize ?? 0,
      sourcesTracked: s?.sourcesTracked ?? 0,
      reflectionSources: s?.reflectionSources ?? 0,
    }
  }

  /** The `addr` record at `at`: u8 family (4|6), 4 or 16 address bytes, u16 port, then for IPv6 a u32 scope id. */
  private readAddress(batch: Buffer, at: number): Address {
    if (batch[at] === 4) return [`${batch[at + 1]}.${batch[at + 2]}.${batch[at + 3]}.${batch[at + 4]}`, batch.readUInt16LE(at + 5)]
    const scope = batch.readUInt32LE(at + 19)
    const host = formatIPv6(batch, at + 1)
    return [scope === 0 ? host : `${host}%${this.zone(scope)}`, batch.readUInt16LE(at + 17)]
  }

  private zone(scope: number): string {
    let name = this.zones.get(scope)
    if (name === undefined) {
      name = this.binding.interfaceName(scope)
      this.zones.set(scope, name)
    }
    return name
  }

  /**
   * `batch` may be the core's reusable buffer: nothing read from it outlives
   * this call (ids and values are copies). Every event is handed on even if
   * the sink throws for one (the core has retired those calls: each must still
   * settle); the first exception is rethrown at the end, as an uncaught one.
   */
  private onBatch(batch: Buffer, end: number) {
    let p = 0
    let failure: { error: unknown } | null = null
    while (p < end && this.sink !== null) {
      const tag = batch[p]
      if (tag === SOCKET_ERROR) {
        this.socketErrors++
        this.log.log(`socket error ${batch.readInt32LE(p + 1)}: the socket is no longer polled`)
        p += 5
        continue
      }
      if (tag === DROPPED) {
        const [host, port] = this.readAddress(batch, p + 2)
        const reason = DROP_REASONS[batch[p + 1]]
        this.log.log(`dropped datagram (${reason}) from ${host}:${port}`)
        this.drops.publish(reason, [host, port])
        p = addressEnd(batch, p + 2)
        continue
      }
      if (tag === TIMEOUT) {
        const token = batch.readUInt32LE(p + 1)
        p += 9
        failure = this.dispatch(failure, () => this.sink?.onTimeout(token))
        continue
      }
      let token = 0
      let id: Buffer | null = null
      let sender: Address | null = null
      if (tag === REQUEST) {
        id = Buffer.allocUnsafe(20)
        batch.copy(id, 0, p + 1, p + 21)
        sender = this.readAddress(batch, p + 21)
        p = addressEnd(batch, p + 21)
      } else {
        token = batch.readUInt32LE(p + 1)
        p += 9
      }
      const len = batch.readUInt32LE(p)
      p += 4
      if (tag === RESPONSE) {
        const start = p
        p += len
        failure = this.dispatch(failure, () => {
          const reason = this.sink?.onResponse(token, batch, start, start + len)
          if (reason !== undefined) this.undecodable(token, reason, sender)
        })
        continue
      }
      let value: unknown
      try {
        value = this.decoder.decode(batch, p, p + len)
      } catch (err) {
        p += len
        if (!(err instanceof DecodeFailure)) throw err
        if (tag === REQUEST) this.countUndecodable(err.reason, sender)
        else failure = this.dispatch(failure, () => this.undecodable(token, err.reason, sender))
        continue
      }
      p += len
      failure = this.dispatch(failure, () => {
        const sink = this.sink!
        if (tag === REQUEST) {
          const [name, args] = value as [string, unknown[]]
          sink.onRequest(id!, sender!, name, args)
        } else if (tag === ERROR) {
          const [code, message] = value as [string, string]
          sink.onErrorReply(token, code, message)
        }
      })
    }
    if (failure !== null) throw failure.error
  }

  private countUndecodable(reason: WireDropReason, sender: Address | null) {
    this.jsDropped[reason] = (this.jsDropped[reason] ?? 0) + 1
    this.log.log(`dropped a body the core accepted (${reason})`)
    this.drops.publish(reason, sender)
  }

  /** The core has already retired this call: settle it rather than leave it hanging. */
  private undecodable(token: number, reason: WireDropReason, sender: Address | null) {
    this.countUndecodable(reason, sender)
    this.sink?.onErrorReply(token, 'undecodable_reply', reason)
  }

  /** Runs one sink call; keeps the first exception for onBatch to rethrow once the batch is done. */
  private dispatch(failure: { error: unknown } | null, deliver: () => void): { error: unknown } | null {
    try {
      deliver()
    } catch (error) {
      return failure ?? { error }
    }
    return failure
  }
}
