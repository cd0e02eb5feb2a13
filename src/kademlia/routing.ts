import type { Address } from '../protocol'
import { compareContacts, type Contact } from './contact'
import { systemClock } from './clock'
import { DEFAULT_DIVERSITY, fitsAmong, type DiversityBounds } from './diversity'
import { ID_BYTES, ID_SPACE, bigIntToKey, keyHead, sharedPrefixBits, type IdKey } from './ids'

/**
 * A k-bucket (Python's kademlia.routing.KBucket): up to `ksize` contacts in
 * least-recently-seen order, plus a replacement cache of the latest contacts
 * that arrived while it was full.
 */
export class KBucket {
  /** Contacts, oldest first (a Map keeps insertion order, like Python's OrderedDict). */
  readonly nodes = new Map<IdKey, Contact>()
  readonly replacements = new Map<IdKey, Contact>()
  /** Replacements known only from requests, whose address may be forged: none takes a slot before it answers a ping. */
  readonly unverified = new Set<IdKey>()
  /** When a lookup last went through its range, or a contact in it was added or seen again (ms, the node's clock). */
  lastUpdated: number
  /** The range's ends as IdKeys, which compare in id order. */
  readonly lowKey: IdKey
  readonly highKey: IdKey
  /** Ranges come from halving, so each is every id with the same first `prefixBits` bits. */
  readonly prefixBits: number

  constructor(
    /** The id range this bucket covers, both ends inclusive. */
    readonly low: bigint,
    readonly high: bigint,
    readonly ksize: number,
    readonly maxReplacements: number,
    readonly diversity: DiversityBounds,
    createdAt: number,
  ) {
    this.lastUpdated = createdAt
    this.lowKey = bigIntToKey(low)
    this.highKey = bigIntToKey(high)
    this.prefixBits = ID_BYTES * 8 + 1 - (high - low + 1n).toString(2).length
  }

  /** Whether some id in this bucket could be nearer `target` than `worst` is (the bucket's prefix decides). */
  mayHoldNearer(target: IdKey, worst: IdKey): boolean {
    for (let i = 0; i < ID_BYTES; i++) {
      const bits = this.prefixBits - i * 8
      const mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : (0xff00 >> bits) & 0xff
      const t = target.charCodeAt(i)
      const d = ((this.lowKey.charCodeAt(i) ^ t) & mask) - (worst.charCodeAt(i) ^ t)
      if (d !== 0) return d < 0
    }
    return false
  }

  touch(now: number): void {
    this.lastUpdated = now
  }

  hasInRange(key: IdKey): boolean {
    return this.lowKey <= key && key <= this.highKey
  }

  /**
   * 'added' if it is in the bucket now; 'full' if the bucket is full and it
   * went into the replacement cache; 'refused' if its host or network already
   * holds its diversity bound of the bucket (or of the cache).
   */
  add(contact: Contact): 'added' | 'full' | 'refused' {
    const known = this.nodes.get(contact.key)
    if (known !== undefined) {
      // seen again: it becomes the most recently seen (at the address it was heard from, which the caller verified)
      this.nodes.delete(contact.key)
      if (known.subnetKey !== contact.subnetKey && !fitsAmong(contact, this.nodes.values(), this.diversity)) {
        this.nodes.set(known.key, known)
        return 'refused'
      }
      this.nodes.set(contact.key, contact)
      return 'added'
    }
    if (this.nodes.size < this.ksize) {
      if (!fitsAmong(contact, this.nodes.values(), this.diversity)) return 'refused'
      this.dropReplacement(contact.key)
      this.nodes.set(contact.key, contact)
      return 'added'
    }
    return this.cache(contact, true)
  }

  /**
   * Puts a contact into the replacement cache, as its most recently seen;
   * `verified` says whether it answered this node. An unverified sighting of a
   * verified replacement at the same address keeps it verified.
   */
  cache(contact: Contact, verified: boolean): 'full' | 'refused' {
    const known = this.replacements.get(contact.key)
    if (known === undefined && !fitsAmong(contact, this.replacements.values(), this.diversity)) return 'refused'
    const wasVerified = known !== undefined && !this.unverified.has(contact.key) && known.ip === contact.ip && known.port === contact.port
    this.replacements.delete(contact.key)
    this.replacements.set(contact.key, contact)
    if (verified || wasVerified) this.unverified.delete(contact.key)
    else this.unverified.add(contact.key)
    if (this.replacements.size > this.maxReplacements) this.dropReplacement(this.replacements.keys().next().value!)
    return 'full'
  }

  private dropReplacement(key: IdKey): void {
    this.replacements.delete(key)
    this.unverified.delete(key)
  }

  /**
   * Removes a contact; the most recently seen replacement that fits the
   * bounds takes its place (paper, section 4.1). If that one is unverified it
   * is returned instead, for the caller to ping: it takes the slot when it
   * answers, and when it does not, its own removal hands the slot on.
   */
  remove(contact: Contact): Contact | undefined {
    this.dropReplacement(contact.key)
    this.nodes.delete(contact.key)
    if (this.nodes.size >= this.ksize) return undefined
    let newest: Contact | undefined
    for (const r of this.replacements.values()) if (fitsAmong(r, this.nodes.values(), this.diversity)) newest = r
    if (newest === undefined || this.unverified.has(newest.key)) return newest
    this.dropReplacement(newest.key)
    this.nodes.set(newest.key, newest)
    return undefined
  }

  /** Unverified replacements are left out: in a bucket with room they would take a slot unpinged, and they come back when heard from again. */
  split(): [KBucket, KBucket] {
    const mid = (this.low + this.high) / 2n
    const one = new KBucket(this.low, mid, this.ksize, this.maxReplacements, this.diversity, this.lastUpdated)
    const two = new KBucket(mid + 1n, this.high, this.ksize, this.maxReplacements, this.diversity, this.lastUpdated)
    for (const c of this.nodes.values()) (c.key <= one.highKey ? one : two).add(c)
    for (const c of this.replacements.values()) if (!this.unverified.has(c.key)) (c.key <= one.highKey ? one : two).add(c)
    return [one, two]
  }

  /** Bits shared by the ids of every contact in the bucket (Python's depth()). */
  depth(): number {
    let first: IdKey | undefined
    let depth = ID_BYTES * 8
    for (const c of this.nodes.values()) {
      if (first === undefined) first = c.key
      else depth = Math.min(depth, sharedPrefixBits(first, c.key))
    }
    return depth
  }

  /** The least recently seen contact. */
  head(): Contact | undefined {
    return this.nodes.values().next().value
  }
}

/** Puts `c` into `out`, the k nearest `target` so far in order, if it is nearer than the last of k (th: keyHead(target)). */
function insertNearest(out: Contact[], c: Contact, k: number, target: IdKey, th: number): void {
  if (out.length < k) out.push(c)
  else if (compareContacts(c, out[k - 1], target, th) < 0) out[k - 1] = c
  else return
  for (let i = out.length - 1; i > 0 && compareContacts(c, out[i - 1], target, th) < 0; i--) {
    out[i] = out[i - 1]
    out[i - 1] = c
  }
}

/** A bucket's replacement cache holds this many times ksize contacts. */
const REPLACEMENT_FACTOR = 5

/**
 * The routing table (Python's kademlia.routing.RoutingTable): buckets that
 * split when full if they hold this node's own id or their depth is not a
 * multiple of 5 (paper, section 4.2); otherwise the least recently seen
 * contact is pinged through `ping`, and the newcomer waits in the
 * replacement cache. `ping` is also handed an unverified replacement that
 * would take a freed slot: it takes it once it answers.
 */
export class RoutingTable {
  buckets: KBucket[]
  /** Contacts refused because their host or network held its diversity bound of a bucket. */
  diversityRefused = 0

  constructor(
    private readonly selfKey: IdKey,
    readonly ksize: number,
    private readonly ping: (contact: Contact) => void,
    private readonly diversity: DiversityBounds = DEFAULT_DIVERSITY,
    /** The node's clock (ms). */
    private readonly now: () => number = systemClock.now,
  ) {
    this.buckets = [this.newBucket(0n, ID_SPACE - 1n)]
  }

  private newBucket(low: bigint, high: bigint) {
    return new KBucket(low, high, this.ksize, this.ksize * REPLACEMENT_FACTOR, this.diversity, this.now())
  }

  /** The index of the bucket whose range holds `key` (ranges are inclusive; Python's `<` misplaces each range's top id). */
  bucketIndex(key: IdKey): number {
    let lo = 0
    let hi = this.buckets.length - 1
    while (lo < hi) {
      const m = (lo + hi) >> 1
      if (key > this.buckets[m].highKey) lo = m + 1
      else hi = m
    }
    return lo
  }

  bucketFor(contact: Contact): KBucket {
    return this.buckets[this.bucketIndex(contact.key)]
  }

  /**
   * A contact the table has not seen (Python's is_new_node); this node itself
   * never is. Unlike Python, one waiting in the replacement cache is not new:
   * Python welcomes it again, with a store of every key it should hold, each
   * time it is heard from.
   */
  isNew(contact: Contact): boolean {
    if (contact.key === this.selfKey) return false
    const bucket = this.bucketFor(contact)
    return !bucket.nodes.has(contact.key) && !bucket.replacements.has(contact.key)
  }

  has(contact: Contact): boolean {
    const c = this.bucketFor(contact).nodes.get(contact.key)
    return c !== undefined && c.ip === contact.ip && c.port === contact.port
  }

  /** False if the contact was refused (this node's own id, or past a diversity bound); true if it is in a bucket or its replacement cache. */
  add(contact: Contact): boolean {
    if (contact.key === this.selfKey) return false
    // before any split: a full bucket caches the newcomer before it is found to split
    const cached = this.bucketFor(contact).replacements.has(contact.key)
    for (;;) {
      const index = this.bucketIndex(contact.key)
      const bucket = this.buckets[index]
      const outcome = bucket.add(contact)
      if (outcome === 'added') {
        // BEP 5's freshness: a bucket is fresh while its contacts are heard from, not only while lookups pass through it
        bucket.touch(this.now())
        return true
      }
      if (outcome === 'refused') {
        this.diversityRefused++
        return false
      }
      if (this.splittable(bucket)) {
        this.buckets.splice(index, 1, ...bucket.split())
        continue
      }
      if (!cached) this.pingHead(bucket)
      return true
    }
  }

  /**
   * A request's sender that the table does not hold at this address, before
   * it is verified. Where its bucket is full and may not split, it waits in
   * the replacement cache unverified (true), as Python's newcomer would, and
   * nothing is sent to it: its address may be forged, and a replacement is
   * never handed out in answers nor called. Otherwise (false) it could take a
   * slot, and the caller verifies it first. A newcomer to the cache has the
   * head pinged, as add() does; one seen again does not, so a peer that keeps
   * asking costs no ping per request.
   */
  offer(contact: Contact): boolean {
    if (contact.key === this.selfKey) return true
    const bucket = this.bucketFor(contact)
    if (bucket.nodes.size < this.ksize || bucket.nodes.has(contact.key) || this.splittable(bucket)) return false
    const cached = bucket.replacements.has(contact.key)
    if (bucket.cache(contact, false) === 'refused') this.diversityRefused++
    else if (!cached) this.pingHead(bucket)
    return true
  }

  private splittable(bucket: KBucket): boolean {
    return bucket.hasInRange(this.selfKey) || bucket.depth() % 5 !== 0
  }

  private pingHead(bucket: KBucket): void {
    const head = bucket.head()
    if (head !== undefined) this.ping(head)
  }

  /** Removes the contact if the table holds it at this address (a stale address must not evict the live one). */
  remove(contact: Contact): void {
    const bucket = this.bucketFor(contact)
    const known = bucket.nodes.get(contact.key) ?? bucket.replacements.get(contact.key)
    if (known === undefined || known.ip !== contact.ip || known.port !== contact.port) return
    const candidate = bucket.remove(known)
    if (candidate !== undefined) this.ping(candidate)
  }

  /**
   * The `k` contacts nearest `target` by XOR distance, nearest first, without
   * `target` itself and without contacts at `exclude` (the asking node).
   * Unlike Python's TableTraverser walk, every bucket that could hold a nearer
   * contact is considered, so these are the exact k nearest the table knows.
   * Buckets are visited outwards from the target's, and a side ends at its
   * first bucket that cannot hold a nearer contact than the k-th found.
   *
   * With `prefer` (family bits, reach.ts), the k nearest of those families
   * come first, and only when fewer than k exist do the nearest of the others
   * fill the rest: an answer to a single-stack asker holds what it can reach,
   * and a dual-stack one may still use the rest. Contacts of the others are
   * only gathered while the preferred ones do not fill k, so a table of one
   * family answers as fast as without `prefer`.
   */
  findNeighbors(target: IdKey, k = this.ksize, exclude?: Address, prefer?: number): Contact[] {
    if (k <= 0) return []
    const buckets = this.buckets
    const home = this.bucketIndex(target)
    buckets[home].touch(this.now())
    const th = keyHead(target)
    const out: Contact[] = []
    let others: Contact[] | undefined
    let below = home - 1
    let above = home + 1
    for (let index = home, fromBelow = true; ; fromBelow = !fromBelow) {
      const bucket = buckets[index]
      if (out.length === k && !bucket.mayHoldNearer(target, out[k - 1].key)) {
        // Buckets are aligned halvings, so those holding ids that share at least as many leading bits with the target
        // as the k-th nearest does are contiguous around the target's own: past the first one outside, a side holds
        // nothing nearer. Stopping there spares a cold table most of its buckets (each a cache miss when a request lands).
        if (sharedPrefixBits(bucket.lowKey, target) < sharedPrefixBits(out[k - 1].key, target)) {
          if (index < home) below = -1
          else above = buckets.length
        }
      } else {
        for (const c of bucket.nodes.values()) {
          if (c.key === target || (exclude !== undefined && c.port === exclude[1] && c.ip === exclude[0])) continue
          if (prefer === undefined || (c.family & prefer) !== 0) insertNearest(out, c, k, target, th)
          else if (out.length < k) insertNearest((others ??= []), c, k, target, th)
        }
      }
      if (below < 0 && above >= buckets.length) break
      index = (fromBelow && below >= 0) || above >= buckets.length ? below-- : above++
    }
    if (others !== undefined) for (let i = 0; out.length < k && i < others.length; i++) out.push(others[i])
    return out
  }

  /**
   * Whether the table knows a contact nearer `key` than this node. Those share
   * more leading bits with `key` than this node does, so they all lie in the
   * id range of `key`'s first shared + 1 bits; buckets are halvings, so that
   * range lies inside the bucket holding `key`, or is split over buckets that
   * each lie inside it. No allocation: welcome_if_new asks this for every
   * stored key each time a new node is heard from.
   */
  knowsNearerThanSelf(key: IdKey): boolean {
    const shared = sharedPrefixBits(this.selfKey, key)
    if (shared === ID_BYTES * 8) return false // the key is this node's id: nothing is nearer
    const bits = shared + 1
    const home = this.bucketIndex(key)
    if (this.buckets[home].prefixBits <= bits) {
      for (const c of this.buckets[home].nodes.keys()) if (sharedPrefixBits(c, key) >= bits) return true
      return false
    }
    const inRange = (b: KBucket | undefined) => b !== undefined && sharedPrefixBits(b.lowKey, key) >= bits
    for (let i = home; inRange(this.buckets[i]); i--) if (this.buckets[i].nodes.size > 0) return true
    for (let i = home + 1; inRange(this.buckets[i]); i++) if (this.buckets[i].nodes.size > 0) return true
    return false
  }

  /** Buckets with no lookup in their range for `ageMs` (Python's lonely_buckets, there fixed at an hour). */
  lonelyBuckets(ageMs: number): KBucket[] {
    const before = this.now() - ageMs
    return this.buckets.filter((b) => b.lastUpdated < before)
  }

  get size(): number {
    let n = 0
    for (const b of this.buckets) n += b.nodes.size
    return n
  }
}
