import { randomFillSync } from 'node:crypto'
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { isIPv4, isIPv6 } from 'node:net'
import { DecodeFailure, Decoder, idle, sharedEncoder } from '../codec'
import { RPCSocketError } from '../errors'
import { RateLimitedLog } from '../log'
import { DropPublisher, reportHeldBack } from '../diagnostics'
import {
  WIRE_DROP_REASONS,
  type Address,
  type Transport,
  type TransportOptions,
  type TransportSink,
  type WireDropReason,
  type WireStats,
} from '../transport'
import { DeadlineWheel, type WheelNode } from './wheel'
import { canonicalHost, fromMappedV4, withoutZone } from '../address'
import { SourceLimiter } from './limits'
import { ReflectionGuard } from './reflection'

const HEADER = 21
const MIN_DATAGRAM = 22
/** The largest UDP payload over IPv4; the core drops anything longer (IPv6 allows a little more). */
const MAX_DATAGRAM = 65507
const REQUEST = 0
const RESPONSE = 1
const ERROR = 2
const TICK_MS = 10

interface Outstanding extends WheelNode {
  key: number
  /** The request as sent; its bytes 1..21 are the id an answer must carry. */
  datagram: Buffer
  token: number
  /** Who may answer: the target without its zone (see withoutZone). */
  host: string
  port: number
}

/**
 * The pure-TypeScript backend on node:dgram: the same rules as the Rust core
 * (validation, matching, deadlines, counters) so the two are indistinguishable.
 */
export class PureTransport implements Transport {
  readonly backend = 'pure' as const
  private socket: Socket | null = null
  private sink: TransportSink | null = null
  private v6 = false
  private refed = true
  /** Socket buffer sizes the kernel granted (receive, send). */
  private granted: [number, number] = [0, 0]
  /** Keyed by 30 bits of the random id (a small integer key is cheapest); the full id is compared on match. */
  private readonly table = new Map<number, Outstanding>()
  /** The same calls by token, for cancel(). */
  private readonly byToken = new Map<number, Outstanding>()
  private readonly limiter: SourceLimiter | null
  private readonly guard: ReflectionGuard | null
  private readonly wheel = new DeadlineWheel<Outstanding>(performance.now(), TICK_MS)
  private timer: NodeJS.Timeout | null = null
  private readonly decoder = new Decoder()
  private readonly log = new RateLimitedLog()
  private readonly drops = new DropPublisher()
  private idPool = Buffer.alloc(0)
  private idPos = 0
  // The last host routed, memoised: most traffic goes to few peers, and isIPv4 is a regex.
  private lastHost = ''
  private lastTarget = ''
  private lastAnswerer = ''
  private readonly counters = {
    requestsSent: 0,
    requestsReceived: 0,
    responsesSent: 0,
    responsesReceived: 0,
    errorsSent: 0,
    errorsReceived: 0,
    timeouts: 0,
    socketErrors: 0,
  }
  private readonly dropped = Object.fromEntries(WIRE_DROP_REASONS.map((r) => [r, 0])) as Record<WireDropReason, number>

  constructor(private readonly options: TransportOptions) {
    this.limiter = options.perSource && new SourceLimiter(options.perSource)
    this.guard = options.reflection && new ReflectionGuard(options.reflection)
  }

  bind(port: number, host: string, sink: TransportSink): Promise<Address> {
    this.v6 = isIPv6(host)
    const socket = createSocket({ type: this.v6 ? 'udp6' : 'udp4', ipv6Only: false, lookup: literalLookup })
    this.socket = socket
    this.sink = sink
    return new Promise((resolve, reject) => {
      const onBindError = (err: Error) => {
        this.socket = null
        reject(new RPCSocketError(`cannot bind ${host}:${port}: ${err.message}`, err))
      }
      socket.once('error', onBindError)
      socket.bind(port, host, () => {
        socket.off('error', onBindError)
        // Sends report failures to their callback, so an 'error' after bind is the receive side's: count it, never throw.
        socket.on('error', (err) => {
          this.counters.socketErrors++
          this.log.log(`socket error: ${err.message}`)
        })
        socket.on('message', (msg, rinfo) => this.receive(msg, rinfo))
        this.setBufferSizes(socket)
        if (!this.refed) socket.unref()
        const a = socket.address()
        resolve([fromMappedV4(a.address), a.port])
      })
    })
  }

  private setBufferSizes(socket: Socket) {
    // Best effort: the kernel caps at rmem_max/wmem_max; stats() reports what was granted.
    // Not on Deno: its node:dgram spends time on every datagram received in
    // proportion to SO_RCVBUF (2 000 round trips: 173 ms at its default, 4.3 s
    // at 4 MiB; the send buffer costs nothing), so its default is kept there.
    if (process.versions.deno === undefined)
      try {
        socket.setRecvBufferSize(this.options.recvBufferSize)
      } catch {}
    try {
      socket.setSendBufferSize(this.options.sendBufferSize)
    } catch {}
    try {
      this.granted = [socket.getRecvBufferSize(), socket.getSendBufferSize()]
    } catch {}
  }

  call(host: string, port: number, body: Buffer, len: number, timeoutMs: number, token: number): void {
    this.route(host)
    // dgram keeps the buffer until the send completes, so each datagram is its own copy.
    const datagram = Buffer.allocUnsafe(HEADER + len)
    datagram[0] = REQUEST
    let key: number
    do {
      this.writeId(datagram)
      key = datagram.readUInt32BE(1) >>> 2
    } while (this.table.has(key))
    body.copy(datagram, HEADER, 0, len)
    const entry: Outstanding = {
      key,
      datagram,
      token,
      host: this.lastAnswerer,
      port,
      deadline: performance.now() + timeoutMs,
      wheelPrev: null,
      wheelNext: null,
      wheelSlot: 0,
    }
    this.table.set(key, entry)
    this.byToken.set(token, entry)
    this.wheel.insert(entry)
    if (this.timer === null) this.startTimer()
    this.counters.requestsSent++
    this.guard?.called(host, datagram.length)
    this.socket!.send(datagram, port, this.lastTarget, this.onSent)
  }

  reply(id: Buffer, host: string, port: number, body: Buffer, len: number): void {
    this.route(host)
    if (!this.mayReply(host, port, HEADER + len)) return
    this.counters.responsesSent++
    this.send(RESPONSE, id, body, len, port)
  }

  replyError(id: Buffer, host: string, port: number, code: string, message: string): void {
    const encoder = idle(sharedEncoder(this.options.maxBodySize))
    const len = encoder.encodeErrorReply(code, message)
    this.route(host)
    if (!this.mayReply(host, port, HEADER + len)) return
    this.counters.errorsSent++
    this.send(ERROR, id, encoder.bytes, len, port)
  }

  cancel(token: number): void {
    const entry = this.byToken.get(token)
    if (entry === undefined) return
    this.forget(entry)
    this.wheel.remove(entry)
  }

  close(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    this.table.clear()
    this.byToken.clear()
    this.wheel.clear(() => {})
    const socket = this.socket
    this.socket = null
    this.sink = null
    if (socket) socket.close()
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
    const [recvBufferSize, sendBufferSize] = this.granted
    return {
      ...this.counters,
      outstanding: this.table.size,
      dropped: { ...this.dropped },
      recvBufferSize,
      sendBufferSize,
      sourcesTracked: this.limiter?.size ?? 0,
      reflectionSources: this.guard?.size ?? 0,
    }
  }

  /**
   * Sets lastTarget (where to send: an IPv4 peer is reached from a dual-stack
   * IPv6 socket through its mapped form) and lastAnswerer (how answers from it
   * are recognised) for `host`, which RPCProtocol has already normalised
   * (CallHosts) or this transport reported as a sender.
   */
  private route(host: string): void {
    if (host === this.lastHost) return
    this.lastTarget = this.v6 && isIPv4(host) ? '::ffff:' + host : host
    this.lastAnswerer = withoutZone(host)
    this.lastHost = host
  }

  /** The reflection bound: false (counted, logged) when `host` never answered a call and has had its share. */
  private mayReply(host: string, port: number, bytes: number): boolean {
    if (this.guard === null || this.guard.mayReply(host, bytes)) return true
    this.dropped.unverified++
    reportHeldBack(this.log, this.drops, host, port)
    return false
  }

  /** Sends an answer to `port` at the host last routed. */
  private send(type: number, id: Buffer, body: Buffer, len: number, port: number) {
    // dgram keeps the buffer until the send completes, so each datagram gets its own copy.
    const datagram = Buffer.allocUnsafe(HEADER + len)
    datagram[0] = type
    id.copy(datagram, 1, 0, 20)
    body.copy(datagram, HEADER, 0, len)
    this.socket!.send(datagram, port, this.lastTarget, this.onSent)
  }

  // Without a callback node:dgram discards send errors (EACCES, EINVAL, ENOBUFS...) silently.
  private readonly onSent = (err: Error | null) => {
    if (err) this.drop('sendFailed', err.message)
  }

  /** Random id bytes into datagram[1..21]. */
  private writeId(datagram: Buffer) {
    if (this.idPos + 20 > this.idPool.length) {
      // One randomFillSync per 204 ids: the entropy syscall is the costly part.
      this.idPool = randomFillSync(Buffer.allocUnsafeSlow(4080))
      this.idPos = 0
    }
    this.idPool.copy(datagram, 1, this.idPos, this.idPos + 20)
    this.idPos += 20
  }

  private startTimer() {
    this.timer = setInterval(() => this.expire(), TICK_MS)
    this.timer.unref()
  }

  private expire() {
    this.wheel.expire(performance.now(), (entry) => {
      this.forget(entry)
      this.counters.timeouts++
      this.sink?.onTimeout(entry.token)
    })
    if (this.wheel.size === 0 && this.timer) {
      clearInterval(this.timer)
      this.timer = null
    }
  }

  private forget(entry: Outstanding) {
    this.table.delete(entry.key)
    this.byToken.delete(entry.token)
  }

  private drop(reason: WireDropReason, detail: string, from?: RemoteInfo) {
    this.dropped[reason]++
    this.log.log(`dropped datagram (${reason}): ${detail}`)
    this.drops.publish(reason, from === undefined ? null : [fromMappedV4(from.address), from.port])
  }

  private receive(msg: Buffer, rinfo: RemoteInfo) {
    if (msg.length > MAX_DATAGRAM) return this.drop('oversize', `${msg.length} bytes from ${rinfo.address}:${rinfo.port}`, rinfo)
    // Every byte counts toward what the sender may be sent, whatever it turns out to be.
    this.guard?.received(fromMappedV4(rinfo.address), msg.length)
    if (msg.length < MIN_DATAGRAM) return this.drop('tooShort', `${msg.length} bytes from ${rinfo.address}:${rinfo.port}`, rinfo)
    const type = msg[0]
    if (type > ERROR) return this.drop('unknownType', `type ${type} from ${rinfo.address}:${rinfo.port}`, rinfo)
    // Before decoding, as in the core: a flood must not buy validation work. No reply: a reply amplifies.
    if (type === REQUEST && this.limiter !== null && !this.limiter.admit(performance.now(), fromMappedV4(rinfo.address)))
      return this.drop('rateLimited', `request from ${rinfo.address}:${rinfo.port} beyond its source's rate`, rinfo)
    if (type === RESPONSE) return this.receiveResponse(msg, rinfo)
    let body: unknown
    try {
      body = this.decoder.decode(msg, HEADER, msg.length)
    } catch (err) {
      if (err instanceof DecodeFailure) return this.drop(err.reason, `from ${rinfo.address}:${rinfo.port}`, rinfo)
      throw err
    }
    if (type === REQUEST) {
      if (!Array.isArray(body) || body.length !== 2 || typeof body[0] !== 'string' || !Array.isArray(body[1]))
        return this.drop('badRequest', `request from ${rinfo.address}:${rinfo.port} is not [name, args]`, rinfo)
      this.counters.requestsReceived++
      return this.sink!.onRequest(msg.subarray(1, HEADER), [fromMappedV4(rinfo.address), rinfo.port], body[0], body[1])
    }
    if (type === ERROR && !(Array.isArray(body) && body.length === 2 && typeof body[0] === 'string' && typeof body[1] === 'string'))
      return this.drop('badRequest', `error reply from ${rinfo.address}:${rinfo.port} is not [code, message]`, rinfo)
    const entry = this.match(msg, rinfo)
    if (entry === undefined) return
    this.forget(entry)
    this.wheel.remove(entry)
    this.counters.errorsReceived++
    const [code, message] = body as [string, string]
    this.sink!.onErrorReply(entry.token, code, message)
  }

  /**
   * The sink decodes a matched answer's body, so that a call's own decoder sees
   * the bytes. The counters are the same as decoding first: an undecodable body
   * is counted by its reason whether or not it matches a call, and leaves the call waiting.
   */
  private receiveResponse(msg: Buffer, rinfo: RemoteInfo) {
    const entry = this.match(msg, rinfo, true)
    if (entry === undefined) return
    const reason = this.sink!.onResponse(entry.token, msg, HEADER, msg.length)
    if (reason !== undefined) return this.drop(reason, `from ${rinfo.address}:${rinfo.port}`, rinfo)
    this.forget(entry)
    this.wheel.remove(entry)
    this.counters.responsesReceived++
  }

  /** The outstanding call an answer is for, or undefined once it is counted as a drop (an unchecked body first by its decode failure). */
  private match(msg: Buffer, rinfo: RemoteInfo, bodyUnchecked = false): Outstanding | undefined {
    const entry = this.table.get(msg.readUInt32BE(1) >>> 2)
    const unmatched = entry === undefined || msg.compare(entry.datagram, 1, HEADER, 1, HEADER) !== 0
    const wrongSender = !unmatched && this.options.checkSender && (entry.port !== rinfo.port || entry.host !== senderHost(rinfo))
    if (!unmatched && !wrongSender) {
      // It echoed an id only the addressee saw: it can receive.
      this.guard?.verified(fromMappedV4(rinfo.address))
      return entry
    }
    if (bodyUnchecked) {
      try {
        this.decoder.decode(msg, HEADER, msg.length)
      } catch (err) {
        if (err instanceof DecodeFailure) this.drop(err.reason, `from ${rinfo.address}:${rinfo.port}`, rinfo)
        else throw err
        return undefined
      }
    }
    if (unmatched) this.drop('unmatchedResponse', `unknown, late or duplicate id from ${rinfo.address}:${rinfo.port}`, rinfo)
    else this.drop('wrongSender', `answer for ${entry!.host}:${entry!.port} came from ${rinfo.address}:${rinfo.port}`, rinfo)
    return undefined
  }
}

/** A sender's host as route() spells an answerer, for the sender check. */
function senderHost(rinfo: RemoteInfo): string {
  return rinfo.family === 'IPv4' ? rinfo.address : withoutZone(canonicalHost(fromMappedV4(rinfo.address)))
}

/**
 * node:dgram resolves the address of every send through dns.lookup, which for
 * an IP literal still costs a regex and a nextTick. route() has already checked
 * that every address is a literal, so answer at once.
 */
function literalLookup(host: string, family: unknown, callback: (err: null, address: string, family: number) => void) {
  // dgram asks with the socket's family (4 or 6), and route() only hands it addresses of that family.
  callback(null, host, family === 6 ? 6 : 4)
}
