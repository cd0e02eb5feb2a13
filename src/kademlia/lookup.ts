import { compareContacts, type Contact } from './contact'
import { DiversityCounter, type DiversityBounds } from './diversity'
import { compareDistance, keyHead, type IdKey } from './ids'
import { valueIdentity, type KademliaValue } from './values'
import type { FindReply } from './wire'

/** Bounds on one lookup, so hostile or lossy peers cannot keep it going. */
export interface LookupLimits {
  /** Hops from the first peers asked: a candidate named by an answer at hop n is asked at hop n + 1. */
  maxRounds: number
  /** Calls in total. */
  maxCalls: number
}

export interface LookupConfig extends LookupLimits {
  k: number
  alpha: number
  findValue: boolean
  /** A value lookup that asks each of the k nearest rather than ending at the first value (signed records: the newest wins). */
  collect?: boolean
  diversity: DiversityBounds
}

export interface LookupResult {
  /** The nearest nodes that answered (or were not reached yet when a limit cut the lookup), nearest first, at most k. */
  nodes: Contact[]
  /** For a value lookup that found it: the value most answers held (answers that came together). */
  value?: KademliaValue
  /** The nearest node that answered without the value (a value lookup caches the value there). */
  nearestWithoutValue?: Contact
  /** For a collecting lookup: each peer that answered with a value, and the value. */
  held?: Map<Contact, KademliaValue>
  /** Hops: the deepest hop asked. */
  rounds: number
  calls: number
  /** Calls passed over as slow (their late answers were still used if they came in time). */
  passedOver: number
  /** Candidates left out: recently failed, or past a diversity bound. */
  skipped: number
  /** A limit ended the lookup before it converged. */
  cut: boolean
}

const ACTIVE = 0
const SLOW = 1
const ANSWERED = 2
const FAILED = 3

/** One call of a lookup. */
export interface Query {
  readonly peer: Contact
  readonly hop: number
  /** When the lookup stops waiting for it (ms on the caller's clock). */
  readonly passAt: number
  /** 1, or 2 for the one second chance the alpha nearest candidates that missed once get. */
  readonly attempt: number
  state: typeof ACTIVE | typeof SLOW | typeof ANSWERED | typeof FAILED
}

/**
 * An iterative lookup as a state machine with no I/O and no clock of its own
 * (time is passed in), so the same rules run on sockets and on simulated time:
 *
 * - `alpha` calls are kept in flight, not synchronous rounds: every answer
 *   lets the next candidate in at once. When an answer brings nothing nearer
 *   than what was known, up to k run at once (Python's "ask all of the k
 *   nearest when a round found nothing nearer").
 * - A call still unanswered at its peer's timeout (PeerHealth: srtt + 4
 *   rttvar, waitTimeout the ceiling) is passed over: it leaves the k nearest
 *   and frees its slot, and its answer is still used if it comes before the
 *   lookup ends.
 * - When nothing else is left to ask, the `alpha` nearest candidates that
 *   failed or were passed over once are asked once more, together: a lost
 *   datagram must not drop the node nearest the target from the answer (at 1 %
 *   loss each way it did in about 2 % of lookups in the simulated week). The
 *   second attempt waits twice the timeout. Dead ones cost one more (double)
 *   timeout at the end, not one each.
 * - It ends when each of the k nearest candidates that are neither failed nor
 *   passed over has answered, at the first value found (value lookups that do
 *   not collect; Python waits for the round and takes the most common value),
 *   or at a limit.
 *
 * Candidates are ids at addresses (Python's NodeHeap keys by id and keeps the
 * first address, so a peer naming real ids at bogus addresses hides the real
 * nodes), recently failed peers are left out, and one host or network can
 * hold only its diversity bound of them.
 */
export class LookupState {
  /** Every candidate, nearest first. */
  private readonly all: Contact[] = []
  private readonly byId = new Map<IdKey, Contact[]>()
  /** Hop at which each candidate would be asked. */
  private readonly hops = new Map<Contact, number>()
  private readonly queries = new Map<Contact, Query>()
  private readonly diversity: DiversityCounter
  private readonly targetHead: number
  private readonly values: KademliaValue[] = []
  private readonly held = new Map<Contact, KademliaValue>()
  private nearestWithoutValue: Contact | undefined
  /** Calls in flight to the k nearest live candidates, as the last next() counted them. */
  private waiting = 0
  private stalled = false
  private cut = false
  private rounds = 0
  private calls = 0
  private passedOver = 0
  private skipped = 0

  constructor(
    readonly target: IdKey,
    private readonly config: LookupConfig,
    /** Candidates to leave out (PeerHealth.recentlyFailed). */
    private readonly skip: (c: Contact) => boolean,
  ) {
    this.targetHead = keyHead(target)
    this.diversity = new DiversityCounter(config.diversity)
  }

  /** Adds candidates that would be asked at `hop`. */
  push(contacts: readonly Contact[], hop: number): void {
    for (const c of contacts) {
      const same = this.byId.get(c.key)
      if (same !== undefined && same.some((x) => x.port === c.port && x.ip === c.ip)) continue
      if (this.skip(c) || !this.diversity.admit(c)) {
        this.skipped++
        continue
      }
      if (same === undefined) this.byId.set(c.key, [c])
      else same.push(c)
      this.hops.set(c, hop)
      let lo = 0
      let hi = this.all.length
      while (lo < hi) {
        const m = (lo + hi) >> 1
        if (compareContacts(this.all[m], c, this.target, this.targetHead) < 0) lo = m + 1
        else hi = m
      }
      this.all.splice(lo, 0, c)
    }
  }

  /** The calls to make now; `timeoutFor` gives each peer's pass-over timeout (ms). */
  next(now: number, timeoutFor: (c: Contact) => number): Query[] {
    const out: Query[] = []
    this.cut = false
    this.waiting = 0
    if (this.values.length > 0) return out
    const { k, maxCalls, maxRounds } = this.config
    const parallel = this.stalled ? k : this.config.alpha
    let visible = 0
    const secondChances: Contact[] = []
    for (const c of this.all) {
      const q = this.queries.get(c)
      if (q !== undefined && (q.state === SLOW || q.state === FAILED)) {
        if (q.attempt === 1 && secondChances.length < this.config.alpha) secondChances.push(c)
        continue
      }
      if (++visible > k) break
      if (q !== undefined) {
        if (q.state === ACTIVE) this.waiting++
        continue
      }
      const hop = this.hops.get(c)!
      if (this.calls >= maxCalls || hop > maxRounds) {
        this.cut = true
        continue
      }
      // a call to a candidate that has fallen out of the k nearest no longer holds a slot
      if (this.waiting >= parallel) break
      out.push(this.ask(c, hop, 1, now, timeoutFor))
    }
    // the lookup would end: the alpha nearest that missed once (and have not missed twice, here or elsewhere) are asked again
    if (out.length === 0 && this.waiting === 0)
      for (const c of secondChances) {
        if (this.calls >= maxCalls) {
          this.cut = true
          break
        }
        if (!this.skip(c)) out.push(this.ask(c, this.hops.get(c)!, 2, now, timeoutFor))
      }
    return out
  }

  private ask(c: Contact, hop: number, attempt: number, now: number, timeoutFor: (c: Contact) => number): Query {
    // a second chance waits twice as long (TCP's backoff): a peer passed over because its timeout was the
    // network's estimate, not its own, is often still answering the first attempt
    const query: Query = { peer: c, hop, attempt, passAt: now + timeoutFor(c) * attempt, state: ACTIVE }
    this.queries.set(c, query)
    this.waiting++
    this.calls++
    if (hop > this.rounds) this.rounds = hop
    return query
  }

  /** `q` was answered (undefined: malformed, which counts as failed). */
  answered(q: Query, reply: FindReply): void {
    if (reply === undefined) return this.failed(q)
    // the first attempt's late answer may come after the second was sent: the first answer of the two counts
    const current = this.queries.get(q.peer)!
    if (current.state === ANSWERED) return
    current.state = ANSWERED
    q.state = ANSWERED
    if ('value' in reply) {
      if (this.config.collect) this.held.set(q.peer, reply.value)
      else this.values.push(reply.value)
      return
    }
    if (this.config.findValue && (this.nearestWithoutValue === undefined || compareDistance(q.peer.key, this.nearestWithoutValue.key, this.target) < 0))
      this.nearestWithoutValue = q.peer
    const nearest = this.nearestLive()
    this.push(reply.nodes, q.hop + 1)
    this.stalled = this.nearestLive() === nearest
  }

  /** `q` went unanswered, or its peer is gone for this lookup. */
  failed(q: Query): void {
    q.state = FAILED
  }

  /**
   * Passes over the calls whose time is up (telling `passed` of each); returns
   * the earliest pass-over time still ahead (when to call expire() again), or
   * undefined if none is.
   */
  expire(now: number, passed?: (q: Query) => void): number | undefined {
    let earliest: number | undefined
    for (const q of this.queries.values()) {
      if (q.state !== ACTIVE) continue
      if (q.passAt <= now) {
        q.state = SLOW
        this.passedOver++
        passed?.(q)
      } else if (earliest === undefined || q.passAt < earliest) earliest = q.passAt
    }
    return earliest
  }

  /**
   * Call after next(): a value was found (value lookups end at the first), or
   * no call to the k nearest live candidates is in flight and none is left to
   * make. Calls to candidates that fell out of the k nearest are not waited for.
   */
  get done(): boolean {
    return this.values.length > 0 || this.waiting === 0
  }

  result(): LookupResult {
    const nodes: Contact[] = []
    const seen = new Set<IdKey>()
    for (const c of this.all) {
      if (nodes.length === this.config.k) break
      const q = this.queries.get(c)
      if (q !== undefined && q.state !== ANSWERED) continue
      if (seen.has(c.key)) continue
      seen.add(c.key)
      nodes.push(c)
    }
    const found = this.values.length > 0
    return {
      nodes,
      value: found ? mostCommon(this.values) : undefined,
      nearestWithoutValue: found ? this.nearestWithoutValue : undefined,
      held: this.config.collect ? this.held : undefined,
      rounds: this.rounds,
      calls: this.calls,
      passedOver: this.passedOver,
      skipped: this.skipped,
      cut: !found && this.cut,
    }
  }

  /** The nearest candidate neither failed nor passed over. */
  private nearestLive(): Contact | undefined {
    for (const c of this.all) {
      const q = this.queries.get(c)
      if (q === undefined || q.state === ACTIVE || q.state === ANSWERED) return c
    }
    return undefined
  }
}

/** The value most peers answered with; Python logs a warning when they differ and does the same. */
function mostCommon(values: KademliaValue[]): KademliaValue {
  const counts = new Map<string, { value: KademliaValue; n: number }>()
  let best: { value: KademliaValue; n: number } | undefined
  for (const value of values) {
    const id = valueIdentity(value)
    const entry = counts.get(id) ?? { value, n: 0 }
    entry.n++
    counts.set(id, entry)
    if (best === undefined || entry.n > best.n) best = entry
  }
  return best!.value
}
