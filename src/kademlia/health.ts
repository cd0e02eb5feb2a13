import type { Contact } from './contact'

/**
 * What PeerHealth remembers of one peer (an ip:port), as PER numbers of one
 * Float64Array from `at`: a smoothed round-trip time and its mean deviation, ms
 * (RFC 6298; srtt is NaN until the first sample); its calls in a row that went
 * unanswered or were passed over (a call passed over that then times out counts
 * once); when its last miss was and when a call to it was last passed over
 * (ms, the node's clock; -Infinity if never); when it was last called or timed.
 * As an object a peer cost ~150 bytes, most of it doubles boxed one by one,
 * and 10 000 nodes in one process remember ~200 peers each.
 */
const SRTT = 0
const RTTVAR = 1
const MISSES = 2
const FAILED_AT = 3
const SLOW_AT = 4
const TOUCHED_AT = 5
const PER = 6

/** RFC 6298's update of the estimate at t[at]: the first sample sets srtt and half of it as rttvar. */
function sample(t: Float64Array, at: number, rttMs: number): void {
  const srtt = t[at + SRTT]
  if (Number.isNaN(srtt)) {
    t[at + SRTT] = rttMs
    t[at + RTTVAR] = rttMs / 2
  } else {
    t[at + RTTVAR] = 0.75 * t[at + RTTVAR] + 0.25 * Math.abs(srtt - rttMs)
    t[at + SRTT] = 0.875 * srtt + 0.125 * rttMs
  }
}

/** No pass-over sooner than this: below it, scheduling jitter in a busy process would pass over live peers. */
export const MIN_TIMEOUT_MS = 50
/** Before any answer was timed, a peer is passed over after this (TCP's initial RTO). */
export const INITIAL_TIMEOUT_MS = 1000
/** How long a failed peer is skipped by lookups unless it is heard from again. */
export const FAILURE_MEMORY_MS = 10 * 60 * 1000
/**
 * Misses in a row before a peer is skipped (BEP 5: a node is bad after it
 * fails "multiple queries in a row"). One is not enough: at 1 % loss each way,
 * 2 % of calls to live peers go unanswered, and skipping a live peer for
 * FAILURE_MEMORY_MS after each one hid the node nearest a target from about
 * 5 % of lookups in the simulated week (issue 20). A dead peer costs one more
 * pass-over, which frees its slot at the peer's own timeout.
 */
export const MISSES_TO_SKIP = 2
/** Peers remembered at most; the least recently touched are forgotten first. */
const MAX_PEERS = 8192
/**
 * A peer not called for this long is forgotten: its estimate is stale and it has
 * probably left. Without it, every address a node ever called stayed until
 * MAX_PEERS (about 0.8 MB a node), which the simulated week showed growing by a
 * tenth of the heap a day.
 */
export const PEER_MEMORY_MS = 60 * 60 * 1000

/**
 * Round-trip times and recent failures of the peers this node calls, for
 * lookups that do not wait on the dead: each call is passed over after its
 * peer's own timeout (srtt + 4 rttvar, as TCP and dht-rpc's adaptive timeouts
 * do), a peer never timed gets this node's estimate over all peers, and a peer
 * that missed calls in a row is skipped for a while. Time is passed in,
 * so the rules run the same on simulated time.
 */
export class PeerHealth {
  /** ip:port -> where its record starts in `table`, in touch order (the least recently touched first). */
  private readonly peers = new Map<string, number>()
  /** Records of PER numbers; the first is this node's estimate over every peer, for peers never timed. */
  private table = new Float64Array(8 * PER)
  /** Records freed by forgotten peers, for the next new one. */
  private readonly free: number[] = []
  /** Records handed out so far (the network's included). */
  private used = 1

  constructor(
    /** The ceiling: a call is never passed over later than its transport's waitTimeout. */
    private readonly ceilingMs: number,
    /** The node's clock, ms. */
    private readonly now: () => number,
  ) {
    this.table[SRTT] = NaN
  }

  /** When a call to `c` should be given up on for the lookup's sake (its late answer is still used). */
  timeoutFor(c: Contact): number {
    const t = this.table
    const at = this.peers.get(c.addressKey)
    const timed = at !== undefined && !Number.isNaN(t[at + SRTT])
    const srtt = timed ? t[at + SRTT] : t[SRTT]
    // an untimed peer gets twice the deviation: it is an estimate of the network, not of that peer
    const rttvar = timed ? t[at + RTTVAR] : 2 * t[RTTVAR]
    const timeout = Number.isNaN(srtt) ? INITIAL_TIMEOUT_MS : srtt + 4 * rttvar
    return Math.min(this.ceilingMs, Math.max(MIN_TIMEOUT_MS, timeout))
  }

  /** `c` answered after `rttMs`. */
  answered(c: Contact, rttMs: number): void {
    const at = this.touch(c)
    const t = this.table
    t[at + MISSES] = 0
    sample(t, at, rttMs)
    sample(t, 0, rttMs)
  }

  /** A call to `c`, sent at `sentAt`, went unanswered at `now`. */
  failed(c: Contact, now: number, sentAt: number): void {
    const at = this.touch(c)
    const t = this.table
    // passed over since it was sent: this call's miss is counted already
    if (t[at + SLOW_AT] < sentAt) t[at + MISSES]++
    t[at + FAILED_AT] = now
  }

  /** A lookup passed over a call to `c` at `now`: a miss, whatever answer may still come. */
  slow(c: Contact, now: number): void {
    const at = this.touch(c)
    const t = this.table
    t[at + MISSES]++
    t[at + FAILED_AT] = t[at + SLOW_AT] = now
  }

  /** Whether `c` missed MISSES_TO_SKIP calls in a row, the last less than FAILURE_MEMORY_MS ago, and nothing was heard from it since. */
  recentlyFailed(c: Contact, now: number): boolean {
    const at = this.peers.get(c.addressKey)
    return at !== undefined && this.table[at + MISSES] >= MISSES_TO_SKIP && now - this.table[at + FAILED_AT] < FAILURE_MEMORY_MS
  }

  /** `c` sent us something: whatever failed before, it is alive now. */
  heardFrom(c: Contact): void {
    const at = this.peers.get(c.addressKey)
    if (at !== undefined) this.table[at + MISSES] = 0
  }

  get size(): number {
    return this.peers.size
  }

  /** The record of `c`, made the most recently touched (a new one if it had none); may grow `table`. */
  private touch(c: Contact): number {
    const key = c.addressKey
    const now = this.now()
    let at = this.peers.get(key)
    if (at !== undefined) this.peers.delete(key)
    else {
      if (this.peers.size >= MAX_PEERS) this.forget(this.peers.keys().next().value!)
      at = this.allocate()
      const t = this.table
      t[at + SRTT] = NaN
      t[at + RTTVAR] = 0
      t[at + MISSES] = 0
      t[at + FAILED_AT] = -Infinity
      t[at + SLOW_AT] = -Infinity
    }
    this.table[at + TOUCHED_AT] = now
    // the map is in touch order, so the idle ones are at its front
    for (const [k, old] of this.peers) {
      if (this.table[old + TOUCHED_AT] > now - PEER_MEMORY_MS) break
      this.forget(k)
    }
    this.peers.set(key, at)
    return at
  }

  private forget(key: string): void {
    this.free.push(this.peers.get(key)!)
    this.peers.delete(key)
  }

  private allocate(): number {
    const reused = this.free.pop()
    if (reused !== undefined) return reused
    if (this.used * PER === this.table.length) {
      const grown = new Float64Array(this.table.length * 2)
      grown.set(this.table)
      this.table = grown
    }
    return this.used++ * PER
  }
}
