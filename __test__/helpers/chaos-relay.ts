/**
 * An in-process UDP relay that impairs traffic the way a bad network does:
 * loss, duplication, reordering and jitter, each decided by a seeded PRNG so a
 * failing run can be replayed from its seed.
 *
 *   client --> [front] relay [back] --> server
 *   client <-- [front] relay [back] <-- server
 *
 * The client calls the relay's front address and the answers come back from
 * that same address, so the client's sender check (checkSender) holds; the
 * server sees the relay's back socket as its peer.
 */
import { createSocket, type Socket } from 'node:dgram'
import { prng } from './raw'

export interface ChaosOptions {
  seed: number
  /** Probability a datagram is dropped. */
  loss: number
  /** Probability a (surviving) datagram is delivered twice. */
  duplicate: number
  /** Probability a datagram copy is held back by a random delay, letting later ones overtake it. */
  delay: number
  /** Largest delay in ms (uniform in [0, maxDelayMs]). */
  maxDelayMs: number
}

export interface ChaosCounts {
  received: number
  lost: number
  duplicated: number
  delayed: number
  /** Copies that left after a datagram that arrived later than them. */
  reordered: number
  sent: number
}

export class ChaosRelay {
  readonly counts: ChaosCounts = { received: 0, lost: 0, duplicated: 0, delayed: 0, reordered: 0, sent: 0 }
  /** Everything passes untouched while false. */
  impair = true
  private client: [string, number] | null = null
  private readonly rand: () => number
  private readonly timers = new Set<NodeJS.Timeout>()
  private seq = 0
  private lastSentSeq = 0
  private closed = false

  private constructor(
    private readonly front: Socket,
    private readonly back: Socket,
    private readonly target: [string, number],
    private readonly options: ChaosOptions,
  ) {
    this.rand = prng(options.seed)
    front.on('message', (msg, rinfo) => {
      this.client = [rinfo.address, rinfo.port]
      this.forward(msg, (m) => back.send(m, target[1], target[0]))
    })
    back.on('message', (msg, rinfo) => {
      // only the server talks to the back socket; anything else is not relayed
      if (rinfo.port !== target[1] || this.client === null) return
      const [host, port] = this.client
      this.forward(msg, (m) => front.send(m, port, host))
    })
  }

  static async open(target: [string, number], options: ChaosOptions, host = '127.0.0.1'): Promise<ChaosRelay> {
    const bind = async () => {
      const s = createSocket('udp4')
      await new Promise<void>((resolve) => s.bind(0, host, resolve))
      s.setRecvBufferSize(4 << 20)
      s.setSendBufferSize(4 << 20)
      return s
    }
    return new ChaosRelay(await bind(), await bind(), target, options)
  }

  get address(): [string, number] {
    const a = this.front.address()
    return [a.address, a.port]
  }

  private forward(msg: Buffer, send: (m: Buffer) => void) {
    if (this.closed) return
    this.counts.received++
    const seq = ++this.seq
    const out = (m: Buffer) => {
      if (this.closed) return
      if (seq < this.lastSentSeq) this.counts.reordered++
      this.lastSentSeq = Math.max(this.lastSentSeq, seq)
      this.counts.sent++
      send(m)
    }
    if (!this.impair) return out(msg)
    const o = this.options
    if (this.rand() < o.loss) {
      this.counts.lost++
      return
    }
    const copies = this.rand() < o.duplicate ? 2 : 1
    if (copies === 2) this.counts.duplicated++
    for (let i = 0; i < copies; i++) {
      if (this.rand() < o.delay) {
        this.counts.delayed++
        const timer = setTimeout(() => {
          this.timers.delete(timer)
          out(msg)
        }, Math.floor(this.rand() * (o.maxDelayMs + 1)))
        this.timers.add(timer)
      } else out(msg)
    }
  }

  close() {
    this.closed = true
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    this.front.close()
    this.back.close()
  }
}
