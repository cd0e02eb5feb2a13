/**
 * An in-process network for Kademlia tests: no sockets. Every message goes
 * through rpcudp's msgpack codec (so a node only ever sees what the wire can
 * carry) and may be lost (seeded, so a run is repeatable).
 *
 * Without a clock, a message is delivered on a later turn of the event loop
 * and a lost one resolves its call as a timeout at once: the scenario tests
 * logic, not clocks. With a SimClock, each hop takes the two hosts' delays on
 * simulated time, and a lost message (or one a partition cuts) resolves its
 * call as a timeout when the call's own timeout runs out, as on a socket.
 */
import { Decoder, Encoder } from '../../src/codec'
import type { KademliaTransport } from '../../src/kademlia'
import type { KademliaCallOptions } from '../../src/kademlia/transport'
import type { Address, BodyDecoder, CallResult, Handler } from '../../src/protocol'
import { prng } from './raw'
import type { SimClock } from './sim-clock'

const TIMEOUT: CallResult<never> = [false, null, { code: 'timeout', message: 'lost in the simulated network' }]

export class SimNetwork {
  /** Probability that a request, or its answer, is lost. */
  loss = 0
  /** Calls made, by method name. */
  readonly calls: Record<string, number> = {}
  readonly random: () => number
  private readonly endpoints = new Map<string, SimTransport>()
  private readonly encoder = new Encoder(8192)
  private readonly decoder = new Decoder()
  /** With a clock: whether a message from one address can reach another now (a partition returns false across it). */
  reachable: (from: Address, to: Address) => boolean = () => true
  /** With a clock: seconds a call waits when its options give no timeout (RPCProtocol's waitTimeout). */
  callTimeout = 5
  /** With a clock: each host's one-way delay, ms. */
  private readonly delays = new Map<string, number>()
  private nextPort = 1

  constructor(
    seed = 1,
    private readonly clock?: SimClock,
  ) {
    this.random = prng(seed)
  }

  /** A node id from the seeded generator, so a scenario's topology repeats too. */
  id(): Buffer {
    return Buffer.from(Array.from({ length: 20 }, () => Math.floor(this.random() * 256)))
  }

  /** A transport with the next free address, 10.x.y.1:port: each node on its own /24, as on a real network, so the diversity bounds see distinct hosts. */
  transport(): SimTransport {
    const n = this.nextPort++
    return new SimTransport(this, ['10.' + ((n >> 8) & 255) + '.' + (n & 255) + '.1', 4000 + (n % 1000)])
  }

  /** A transport at a chosen address (several hosts behind one IP, one /24, ...). */
  transportAt(address: Address): SimTransport {
    return new SimTransport(this, address)
  }

  register(t: SimTransport) {
    const key = t.address.join(':')
    this.endpoints.set(key, t)
    // 5..45 ms each way: a hop between two hosts takes 10..90 ms
    if (this.clock !== undefined) this.delays.set(key, 5 + Math.floor(this.random() * 40))
  }

  unregister(t: SimTransport) {
    const key = t.address.join(':')
    this.endpoints.delete(key)
    this.delays.delete(key)
  }

  /** Resolves once no call was made for 20 turns of the event loop (every message in flight has been delivered). */
  async quiet(): Promise<void> {
    for (let last = -1, still = 0; still < 20; ) {
      await new Promise((r) => setImmediate(r))
      const now = this.totalCalls()
      still = now === last ? still + 1 : 0
      last = now
    }
  }

  totalCalls(): number {
    return Object.values(this.calls).reduce((a, b) => a + b, 0)
  }

  /** What the wire does to a value: encode, decode (throws for what msgpack cannot carry). */
  wire(value: unknown, decode?: BodyDecoder): unknown {
    const len = this.encoder.encode(value)
    const bytes = Buffer.from(this.encoder.bytes.subarray(0, len))
    return decode?.(bytes, 0, len) ?? this.decoder.decode(bytes, 0, len)
  }

  deliver(from: Address, to: Address, name: string, args: unknown[], options?: KademliaCallOptions): Promise<CallResult<unknown>> {
    this.calls[name] = (this.calls[name] ?? 0) + 1
    return this.clock === undefined ? this.deliverNow(from, to, name, args, options?.decode) : this.deliverTimed(this.clock, from, to, name, args, options)
  }

  private async deliverNow(from: Address, to: Address, name: string, args: unknown[], decode?: BodyDecoder): Promise<CallResult<unknown>> {
    const sent = this.wire(args) as unknown[]
    await new Promise((r) => setImmediate(r))
    const target = this.endpoints.get(to.join(':'))
    if (target === undefined || this.random() < this.loss) return TIMEOUT
    const handler = target.handlers.get(name)
    if (handler === undefined) return [false, null, { code: 'unknownMethod', message: name }]
    let result: unknown
    try {
      result = await handler([from[0], from[1]], ...sent)
    } catch (err) {
      return [false, null, { code: 'handlerError', message: String(err) }]
    }
    if (this.random() < this.loss) return TIMEOUT
    return [true, this.wire(result, decode)]
  }

  private deliverTimed(clock: SimClock, from: Address, to: Address, name: string, args: unknown[], options?: KademliaCallOptions): Promise<CallResult<unknown>> {
    const sent = this.wire(args) as unknown[]
    const fromKey = from.join(':')
    const toKey = to.join(':')
    const deadline = clock.now() + (options?.timeout ?? this.callTimeout) * 1000
    return new Promise((resolve) => {
      let settled = false
      const settle = (r: CallResult<unknown>) => {
        if (settled) return
        settled = true
        clock.clearTimeout(expiry)
        options?.signal?.removeEventListener('abort', onAbort)
        resolve(r)
      }
      const onAbort = () => settle([false, null, { code: 'aborted', message: 'aborted' }])
      options?.signal?.addEventListener('abort', onAbort, { once: true })
      // whatever happens on the way, the call gives up at its deadline
      const expiry = clock.setTimeout(() => settle(TIMEOUT), deadline - clock.now())
      const hop = (a: string, b: string) => (this.delays.get(a) ?? 0) + (this.delays.get(b) ?? 0)
      const target = this.endpoints.get(toKey)
      if (target === undefined || this.random() < this.loss || !this.reachable(from, to)) return
      clock.setTimeout(async () => {
        if (this.endpoints.get(toKey) !== target) return
        const handler = target.handlers.get(name)
        let result: CallResult<unknown>
        if (handler === undefined) result = [false, null, { code: 'unknownMethod', message: name }]
        else
          try {
            result = [true, await handler([from[0], from[1]], ...sent)]
          } catch (err) {
            result = [false, null, { code: 'handlerError', message: String(err) }]
          }
        if (this.random() < this.loss || !this.reachable(to, from)) return
        const answer: CallResult<unknown> = result[0] ? [true, this.wire(result[1], options?.decode)] : result
        clock.setTimeout(() => {
          if (this.endpoints.has(fromKey)) settle(answer)
        }, hop(toKey, fromKey))
      }, hop(fromKey, toKey))
    })
  }
}

export class SimTransport implements KademliaTransport {
  readonly handlers = new Map<string, Handler>()
  private open = false

  constructor(
    private readonly net: SimNetwork,
    readonly address: Address,
  ) {}

  async listen(): Promise<Address> {
    this.open = true
    this.net.register(this)
    return this.address
  }

  call(address: Address, name: string, args: unknown[], options?: KademliaCallOptions): Promise<CallResult<unknown>> {
    if (!this.open) return Promise.reject(new Error('closed'))
    return this.net.deliver(this.address, address, name, args, options)
  }

  serve(handlers: Record<string, Handler>): void {
    for (const [name, h] of Object.entries(handlers)) this.handlers.set(name, h)
  }

  async close(): Promise<void> {
    this.open = false
    this.net.unregister(this)
  }
}

/** Resolves once `cond()` holds; fails after `ms`. */
export async function waitFor(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}
