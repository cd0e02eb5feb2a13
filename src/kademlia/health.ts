import type { Contact } from './contact'

/** A smoothed round-trip time and its mean deviation, ms (RFC 6298); srtt is NaN until the first sample. */
interface Rtt {
  srtt: number
  rttvar: number
}

/** RFC 6298's update: the first sample sets srtt and half of it as rttvar. */
function sample(e: Rtt, rttMs: number): void {
  if (Number.isNaN(e.srtt)) {
    e.srtt = rttMs
    e.rttvar = rttMs / 2
  } else {
    e.rttvar = 0.75 * e.rttvar + 0.25 * Math.abs(e.srtt - rttMs)
    e.srtt = 0.875 * e.srtt + 0.125 * rttMs
  }
}

/** What PeerHealth remembers of one peer (an ip:port). */
interface Peer extends Rtt {
  /** Its calls in a row that went unanswered or were passed over; a call passed over that then times out counts once. */
  misses: number
  /** When its last miss was (ms, the node's clock); -Infinity if none was. */
  failedAt: number
  /** When a call to it was last passed over; -Infinity if none was. */
  slowAt: number
  /** When it was last called or timed. */
  touchedAt: number
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
  private readonly peers = new Map<string, Peer>()
  /** This node's estimate over every peer, for peers never timed. */
  private readonly network: Rtt = { srtt: NaN, rttvar: 0 }

  constructor(
    /** The ceiling: a call is never passed over later than its transport's waitTimeout. */
    private readonly ceilingMs: number,
    /** The node's clock, ms. */
    private readonly now: () => number,
  ) {}

  /** When a call to `c` should be given up on for the lookup's sake (its late answer is still used). */
  timeoutFor(c: Contact): number {
    const p = this.peers.get(c.addressKey)
    const timed = p !== undefined && !Number.isNaN(p.srtt)
    const srtt = timed ? p.srtt : this.network.srtt
    // an untimed peer gets twice the deviation: it is an estimate of the network, not of that peer
    const rttvar = timed ? p.rttvar : 2 * this.network.rttvar
    const t = Number.isNaN(srtt) ? INITIAL_TIMEOUT_MS : srtt + 4 * rttvar
    return Math.min(this.ceilingMs, Math.max(MIN_TIMEOUT_MS, t))
  }

  /** `c` answered after `rttMs`. */
  answered(c: Contact, rttMs: number): void {
    const p = this.touch(c)
    p.misses = 0
    sample(p, rttMs)
    sample(this.network, rttMs)
  }

  /** A call to `c`, sent at `sentAt`, went unanswered at `now`. */
  failed(c: Contact, now: number, sentAt: number): void {
    const p = this.touch(c)
    // passed over since it was sent: this call's miss is counted already
    if (p.slowAt < sentAt) p.misses++
    p.failedAt = now
  }

  /** A lookup passed over a call to `c` at `now`: a miss, whatever answer may still come. */
  slow(c: Contact, now: number): void {
    const p = this.touch(c)
    p.misses++
    p.failedAt = p.slowAt = now
  }

  /** Whether `c` missed MISSES_TO_SKIP calls in a row, the last less than FAILURE_MEMORY_MS ago, and nothing was heard from it since. */
  recentlyFailed(c: Contact, now: number): boolean {
    const p = this.peers.get(c.addressKey)
    return p !== undefined && p.misses >= MISSES_TO_SKIP && now - p.failedAt < FAILURE_MEMORY_MS
  }

  /** `c` sent us something: whatever failed before, it is alive now. */
  heardFrom(c: Contact): void {
    const p = this.peers.get(c.addressKey)
    if (p !== undefined) p.misses = 0
  }

  get size(): number {
    return this.peers.size
  }

  private touch(c: Contact): Peer {
    const key = c.addressKey
    const now = this.now()
    let p = this.peers.get(key)
    if (p !== undefined) this.peers.delete(key)
    else {
      p = { srtt: NaN, rttvar: 0, misses: 0, failedAt: -Infinity, slowAt: -Infinity, touchedAt: now }
      if (this.peers.size >= MAX_PEERS) this.peers.delete(this.peers.keys().next().value!)
    }
    p.touchedAt = now
    // the map is in touch order, so the idle ones are at its front
    for (const [k, old] of this.peers) {
      if (old.touchedAt > now - PEER_MEMORY_MS) break
      this.peers.delete(k)
    }
    this.peers.set(key, p)
    return p
  }
}
