import { DecodeFailure, Decoder } from '../codec'
import { RPCArgumentError, RPCSocketError, closedError } from '../errors'
import { RateLimitedLog } from '../log'
import { WIRE_DROP_REASONS, type Address, type Transport, type TransportOptions, type TransportSink, type WireDropReason, type WireStats } from '../transport'
import { formatIPv6 } from './ipv6'

/** The addon's surface (crates/rpcudp-node); binding.d.ts has the generated types. */
export interface NativeBinding {
  NativeSocket: new () => NativeSocketHandle
}

interface NativeSocketHandle {
  bind(
    host: string,
    port: number,
    options: {
      maxBody: number
      maxOutstanding: number
      checkSender: boolean
      recvBuffer: number
      sendBuffer: number
      io: string
      ratePerSecond?: number
      rateBurst?: number
      maxSources?: number
    },
    onEvents: (batch: Buffer, length?: number) => void,
  ): { host: string; port: number }
  call(host: string, port: number, body: Buffer, len: number, timeoutMs: number, token: number): void
  reply(id: Buffer, host: string, port: number, body: Buffer, len: number): void
  replyError(id: Buffer, host: string, port: number, code: string, message: string): void
  cancel(token: number): boolean
  flush(): void
  stats(): Omit<WireStats, 'dropped'> & { dropped: Record<string, number> }
  ref(): void
  unref(): void
  close(): void
}

// Event tags of the batch format (docs/DESIGN.md).
const REQUEST = 0
const RESPONSE = 1
const ERROR = 2
const TIMEOUT = 3
const DROPPED = 4

/** The core's DropReason, in its `as u8` order. */
const CORE_DROP_REASONS = [...WIRE_DROP_REASONS.filter((r) => r !== 'rateLimited'), 'handlersBusy', 'rateLimited', 'closing']

/** The `addr` record at `at`: u8 family (4|6), 4 or 16 address bytes, u16 port. */
function readAddress(batch: Buffer, at: number): Address {
  if (batch[at] === 4) return [`${batch[at + 1]}.${batch[at + 2]}.${batch[at + 3]}.${batch[at + 4]}`, batch.readUInt16LE(at + 5)]
  return [formatIPv6(batch, at + 1), batch.readUInt16LE(at + 17)]
}

function addressEnd(batch: Buffer, at: number): number {
  return at + (batch[at] === 4 ? 7 : 19)
}

/** "ERR_CODE: message" from the addon, as the typed error the pure backend would throw. */
function translate(err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err)
  if (message.startsWith('ERR_CLOSED')) return closedError()
  if (message.startsWith('ERR_INVALID_ADDRESS')) return new RPCArgumentError(message.slice(21))
  return new RPCSocketError(message, err)
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
  /** Rust validated every body already; these count anything the JS decoder still refuses (a mapping bug). */
  private readonly jsDropped: Partial<Record<WireDropReason, number>> = {}
  /** The counters as they were at close(): the core's go with its socket. */
  private closedStats: WireStats | null = null
  /** A datagram already left in this event-loop turn; the turn's later ones wait in the outbox. */
  private turnOpen = false
  private queued = 0
  private readonly endTurn = () => {
    this.turnOpen = false
    if (this.queued > 0) {
      this.queued = 0
      this.socket?.flush()
    }
  }

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
        },
        (batch, length) => this.onBatch(batch, length ?? batch.length),
      )
    } catch (err) {
      throw new RPCSocketError(`cannot bind ${host}:${port}: ${err instanceof Error ? err.message : String(err)}`, err)
    }
    this.socket = socket
    this.sink = sink
    if (!this.refed) socket.unref()
    return [bound.host, bound.port]
  }

  // Datagrams are queued in the core. The first of an event-loop turn leaves at
  // once, so a lone call waits for no loop phase; the rest leave together at the
  // turn's end (setImmediate), one sendmmsg for all a batch of events or a burst
  // of calls produced.
  private scheduleFlush() {
    if (this.turnOpen) {
      this.queued++
      return
    }
    this.turnOpen = true
    this.socket!.flush()
    setImmediate(this.endTurn)
  }

  call(host: string, port: number, body: Buffer, len: number, timeoutMs: number, token: number): void {
    try {
      this.socket!.call(host, port, body, len, timeoutMs, token)
    } catch (err) {
      throw translate(err)
    }
    this.scheduleFlush()
  }

  reply(id: Buffer, host: string, port: number, body: Buffer, len: number): void {
    try {
      this.socket!.reply(id, host, port, body, len)
      this.scheduleFlush()
    } catch (err) {
      this.log.log(`reply failed: ${translate(err).message}`)
    }
  }

  replyError(id: Buffer, host: string, port: number, code: string, message: string): void {
    try {
      this.socket!.replyError(id, host, port, code, message)
      this.scheduleFlush()
    } catch (err) {
      this.log.log(`error reply failed: ${translate(err).message}`)
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
    if (this.socket === null && this.closedStats !== null) return { ...this.closedStats, outstanding: 0 }
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
      recvBufferSize: s?.recvBufferSize ?? 0,
      sendBufferSize: s?.sendBufferSize ?? 0,
      sourcesTracked: s?.sourcesTracked ?? 0,
    }
  }

  /** `batch` may be the core's reusable buffer: nothing read from it outlives this call (ids and values are copies). */
  private onBatch(batch: Buffer, end: number) {
    let p = 0
    while (p < end && this.sink !== null) {
      const tag = batch[p]
      if (tag === TIMEOUT) {
        this.sink.onTimeout(batch.readUInt32LE(p + 1))
        p += 9
        continue
      }
      if (tag === DROPPED) {
        const [host, port] = readAddress(batch, p + 2)
        this.log.log(`dropped datagram (${CORE_DROP_REASONS[batch[p + 1]]}) from ${host}:${port}`)
        p = addressEnd(batch, p + 2)
        continue
      }
      let token = 0
      let id: Buffer | null = null
      let sender: Address | null = null
      if (tag === REQUEST) {
        id = Buffer.allocUnsafe(20)
        batch.copy(id, 0, p + 1, p + 21)
        sender = readAddress(batch, p + 21)
        p = addressEnd(batch, p + 21)
      } else {
        token = batch.readUInt32LE(p + 1)
        p += 9
      }
      const len = batch.readUInt32LE(p)
      p += 4
      let value: unknown
      try {
        value = this.decoder.decode(batch, p, p + len)
      } catch (err) {
        p += len
        if (!(err instanceof DecodeFailure)) throw err
        this.jsDropped[err.reason] = (this.jsDropped[err.reason] ?? 0) + 1
        this.log.log(`dropped a body the core accepted (${err.reason})`)
        // The core has already retired this call: settle it rather than leave it hanging.
        if (tag !== REQUEST) this.sink.onErrorReply(token, 'undecodable_reply', err.reason)
        continue
      }
      p += len
      if (tag === REQUEST) {
        const [name, args] = value as [string, unknown[]]
        this.sink.onRequest(id!, sender!, name, args)
      } else if (tag === RESPONSE) this.sink.onResponse(token, value)
      else if (tag === ERROR) {
        const [code, message] = value as [string, string]
        this.sink.onErrorReply(token, code, message)
      }
    }
  }
}
