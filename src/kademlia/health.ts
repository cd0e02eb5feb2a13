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
  /** When its last call went unanswered, or was passed over as slow (ms, the node's clock); -Infinity if none was. */
  failedAt: number
}

/** No pass-over sooner than this: below it, scheduling jitter in a busy process would pass over live peers. */
export const MIN_TIMEOUT_MS = 50
/** Before any answer was timed, a peer is passed over after this (TCP's initial RTO). */
export const INITIAL_TIMEOUT_MS = 1000
/** How long a failed peer is skipped by lookups unless it is heard from again. */
export const FAILURE_MEMORY_MS = 10 * 60 * 1000
/** Peers remembered at most; the least recently touched are forgotten first. */
const MAX_PEERS = 8192

/**
 * Round-trip times and recent failures of the peers this node calls, for
 * lookups that do not wait on the dead: each call is passed over after its
 * peer's own timeout (srtt + 4 rttvar, as TCP and dht-rpc's adaptive timeouts
 * do), a peer never timed gets this node's estimate over all peers, and a peer
 * whose last call went unanswered is skipped for a while. Time is passed in,
 * so the rules run the same on simulated time.
 */
export class PeerHealth {
  private readonly peers = new Map<string, Peer>()
  /** This node's estimate over every peer, for peers never timed. */
  private readonly network: Rtt = { srtt: NaN, rttvar: 0 }

  constructor(
    /** The ceiling: a call is never passed over later than its transport's waitTimeout. */
    private readonly ceilingMs: number,
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
    p.failedAt = -Infinity
    sample(p, rttMs)
    sample(this.network, rttMs)
  }

  /** A call to `c` went unanswered at `now`. */
  failed(c: Contact, now: number): void {
    this.touch(c).failedAt = now
  }

  /** A lookup passed over a call to `c` at `now`: until `c` answers, other lookups leave it out too. */
  slow(c: Contact, now: number): void {
    this.touch(c).failedAt = now
  }

  /** Whether `c`'s last call went unanswered (or was passed over) less than FAILURE_MEMORY_MS ago, and nothing was heard from it since. */
  recentlyFailed(c: Contact, now: number): boolean {
    const p = this.peers.get(c.addressKey)
    return p !== undefined && now - p.failedAt < FAILURE_MEMORY_MS
  }

  /** `c` sent us something: whatever failed before, it is alive now. */
  heardFrom(c: Contact): void {
    const p = this.peers.get(c.addressKey)
    if (p !== undefined) p.failedAt = -Infinity
  }

  get size(): number {
    return this.peers.size
  }

  private touch(c: Contact): Peer {
    const key = c.addressKey
    let p = this.peers.get(key)
    if (p !== undefined) this.peers.delete(key)
    else {
      p = { srtt: NaN, rttvar: 0, failedAt: -Infinity }
      if (this.peers.size >= MAX_PEERS) this.peers.delete(this.peers.keys().next().value!)
    }
    this.peers.set(key, p)
    return p
  }
}
