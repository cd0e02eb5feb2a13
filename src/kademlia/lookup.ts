import { compareContacts, type Contact } from './contact'
import { compareDistance, keyHead, type IdKey } from './ids'
import type { KademliaProtocol } from './protocol'
import { valueIdentity, type KademliaValue } from './values'
import type { FindReply } from './wire'

/** Bounds on one lookup, so hostile or lossy peers cannot keep it going. */
export interface LookupLimits {
  /** Rounds of parallel calls. */
  maxRounds: number
  /** Calls in total. */
  maxCalls: number
}

export interface LookupResult {
  /** The nearest nodes that answered (or were not reached yet when a limit cut the lookup), nearest first, at most k. */
  nodes: Contact[]
  /** For a value lookup that found it: the value most answers held. */
  value?: KademliaValue
  rounds: number
  calls: number
  /** A limit ended the lookup before it converged. */
  cut: boolean
}

/**
 * Python's NodeHeap: every candidate heard of, nearest first; only the k
 * nearest are "visible", so dropping a silent node lets the next one in.
 * Python keys candidates by id alone (the first address heard wins); here a
 * candidate is an id at an address, so a peer that names known ids at bogus
 * addresses cannot hide the real nodes.
 */
class Shortlist {
  /** Nearest first. */
  private all: Contact[] = []
  /** Candidates by id (usually one address each). */
  private readonly byId = new Map<IdKey, Contact[]>()
  private readonly contacted = new Set<Contact>()
  private readonly targetHead: number

  constructor(
    private readonly target: IdKey,
    private readonly k: number,
  ) {
    this.targetHead = keyHead(target)
  }

  push(contacts: readonly Contact[]): void {
    for (const c of contacts) {
      const same = this.byId.get(c.key)
      if (same === undefined) this.byId.set(c.key, [c])
      else if (same.some((x) => x.port === c.port && x.ip === c.ip)) continue
      else same.push(c)
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

  /** Drops candidates that did not answer; they stay known, so nobody re-adds them. */
  remove(silent: ReadonlySet<Contact>): void {
    if (silent.size > 0) this.all = this.all.filter((c) => !silent.has(c))
  }

  visible(): Contact[] {
    return this.all.slice(0, this.k)
  }

  /** The visible nodes, each id once (an id heard at two addresses that both answered counts once). */
  result(): Contact[] {
    const seen = new Set<IdKey>()
    return this.visible().filter((c) => {
      if (seen.has(c.key)) return false
      seen.add(c.key)
      return true
    })
  }

  uncontacted(): Contact[] {
    return this.visible().filter((c) => !this.contacted.has(c))
  }

  markContacted(c: Contact): void {
    this.contacted.add(c)
  }
}

/** Whether two visible lists hold the same candidates in the same order. */
function sameCandidates(a: readonly Contact[], b: readonly Contact[] | undefined): boolean {
  return b !== undefined && a.length === b.length && a.every((c, i) => c === b[i])
}

/**
 * An iterative lookup (Python's SpiderCrawl): each round asks the `alpha`
 * nearest not yet asked, or all of them when the previous round brought
 * nothing nearer; it ends when every visible node was asked, when a value is
 * found (value lookups), or at a limit.
 */
export async function lookup(
  protocol: KademliaProtocol,
  target: IdKey,
  peers: readonly Contact[],
  alpha: number,
  limits: LookupLimits,
  findValue: boolean,
): Promise<LookupResult> {
  const k = protocol.ksize
  const shortlist = new Shortlist(target, k)
  shortlist.push(peers)
  // the nearest node that answered without the value: it gets a copy (paper, section 2.3)
  let nearestWithoutValue: Contact | undefined
  let lastVisible: Contact[] | undefined
  let rounds = 0
  let calls = 0
  for (;;) {
    const visible = shortlist.visible()
    const count = sameCandidates(visible, lastVisible) ? k : alpha
    lastVisible = visible
    const batch = shortlist.uncontacted().slice(0, Math.min(count, limits.maxCalls - calls))
    if (batch.length === 0 || rounds >= limits.maxRounds) {
      const cut = shortlist.uncontacted().length > 0
      return { nodes: shortlist.result(), rounds, calls, cut }
    }
    rounds++
    calls += batch.length
    for (const peer of batch) shortlist.markContacted(peer)
    const replies: FindReply[] = await Promise.all(
      batch.map((peer) => (findValue ? protocol.callFindValue(peer, target) : protocol.callFindNode(peer, target))),
    )
    const silent = new Set<Contact>()
    const values: KademliaValue[] = []
    replies.forEach((reply, i) => {
      const peer = batch[i]
      if (reply === undefined) silent.add(peer)
      else if ('value' in reply) values.push(reply.value)
      else {
        if (findValue && (nearestWithoutValue === undefined || compareDistance(peer.key, nearestWithoutValue.key, target) < 0))
          nearestWithoutValue = peer
        shortlist.push(reply.nodes)
      }
    })
    shortlist.remove(silent)
    if (values.length > 0) {
      const value = mostCommon(values)
      if (nearestWithoutValue !== undefined) await protocol.callStore(nearestWithoutValue, target, value)
      return { nodes: shortlist.result(), value, rounds, calls, cut: false }
    }
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
