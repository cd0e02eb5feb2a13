import type { Address } from '../protocol'
import type { Contact } from './contact'
import { ID_SPACE, compareDistance } from './ids'

/**
 * A k-bucket (Python's kademlia.routing.KBucket): up to `ksize` contacts in
 * least-recently-seen order, plus a replacement cache of the latest contacts
 * that arrived while it was full.
 */
export class KBucket {
  /** Contacts, oldest first (a Map keeps insertion order, like Python's OrderedDict). */
  readonly nodes = new Map<string, Contact>()
  readonly replacements = new Map<string, Contact>()
  lastUpdated = performance.now()

  constructor(
    /** The id range this bucket covers, both ends inclusive. */
    readonly low: bigint,
    readonly high: bigint,
    readonly ksize: number,
    readonly maxReplacements: number,
  ) {}

  touch(): void {
    this.lastUpdated = performance.now()
  }

  hasInRange(long: bigint): boolean {
    return this.low <= long && long <= this.high
  }

  /** True if it went into the bucket; false if the bucket is full and it went into the replacement cache. */
  add(contact: Contact): boolean {
    if (this.nodes.has(contact.key)) {
      // seen again: it becomes the most recently seen
      this.nodes.delete(contact.key)
      this.nodes.set(contact.key, contact)
      return true
    }
    if (this.nodes.size < this.ksize) {
      this.nodes.set(contact.key, contact)
      return true
    }
    this.replacements.delete(contact.key)
    this.replacements.set(contact.key, contact)
    if (this.replacements.size > this.maxReplacements) this.replacements.delete(this.replacements.keys().next().value!)
    return false
  }

  /** Removes a contact; the most recently seen replacement takes its place (paper, section 4.1). */
  remove(contact: Contact): void {
    this.replacements.delete(contact.key)
    if (!this.nodes.delete(contact.key)) return
    let newest: Contact | undefined
    for (const r of this.replacements.values()) newest = r
    if (newest !== undefined) {
      this.replacements.delete(newest.key)
      this.nodes.set(newest.key, newest)
    }
  }

  split(): [KBucket, KBucket] {
    const mid = (this.low + this.high) / 2n
    const one = new KBucket(this.low, mid, this.ksize, this.maxReplacements)
    const two = new KBucket(mid + 1n, this.high, this.ksize, this.maxReplacements)
    for (const c of [...this.nodes.values(), ...this.replacements.values()]) (c.long <= mid ? one : two).add(c)
    return [one, two]
  }

  /** Bits shared by the ids of every contact in the bucket (Python's depth()). */
  depth(): number {
    let first: bigint | undefined
    let depth = 160
    for (const c of this.nodes.values()) {
      if (first === undefined) first = c.long
      else {
        const x = first ^ c.long
        if (x !== 0n) depth = Math.min(depth, 160 - x.toString(2).length)
      }
    }
    return depth
  }

  /** The least recently seen contact. */
  head(): Contact | undefined {
    return this.nodes.values().next().value
  }
}

/**
 * The routing table (Python's kademlia.routing.RoutingTable): buckets that
 * split when full if they hold this node's own id or their depth is not a
 * multiple of 5 (paper, section 4.2); otherwise the least recently seen
 * contact is pinged through `pingHead`, and the newcomer waits in the
 * replacement cache.
 */
export class RoutingTable {
  buckets: KBucket[]
  private readonly selfLong: bigint

  constructor(
    private readonly selfContact: { id: Buffer; long: bigint; key: string },
    readonly ksize: number,
    private readonly pingHead: (head: Contact) => void,
    private readonly replacementFactor = 5,
  ) {
    this.selfLong = selfContact.long
    this.buckets = [this.newBucket(0n, ID_SPACE - 1n)]
  }

  private newBucket(low: bigint, high: bigint) {
    return new KBucket(low, high, this.ksize, this.ksize * this.replacementFactor)
  }

  /** The index of the bucket whose range holds `long` (ranges are inclusive; Python's `<` misplaces each range's top id). */
  bucketIndex(long: bigint): number {
    let lo = 0
    let hi = this.buckets.length - 1
    while (lo < hi) {
      const m = (lo + hi) >> 1
      if (long > this.buckets[m].high) lo = m + 1
      else hi = m
    }
    return lo
  }

  bucketFor(contact: Contact): KBucket {
    return this.buckets[this.bucketIndex(contact.long)]
  }

  /** A contact the table has not seen in its bucket (Python's is_new_node); this node itself never is. */
  isNew(contact: Contact): boolean {
    return contact.key !== this.selfContact.key && !this.bucketFor(contact).nodes.has(contact.key)
  }

  has(contact: Contact): boolean {
    const c = this.bucketFor(contact).nodes.get(contact.key)
    return c !== undefined && c.ip === contact.ip && c.port === contact.port
  }

  add(contact: Contact): void {
    if (contact.key === this.selfContact.key) return
    for (;;) {
      const index = this.bucketIndex(contact.long)
      const bucket = this.buckets[index]
      if (bucket.add(contact)) return
      if (bucket.hasInRange(this.selfLong) || bucket.depth() % 5 !== 0) {
        const [one, two] = bucket.split()
        this.buckets.splice(index, 1, one, two)
        continue
      }
      const head = bucket.head()
      if (head !== undefined) this.pingHead(head)
      return
    }
  }

  /** Removes the contact if the table holds it at this address (a stale address must not evict the live one). */
  remove(contact: Contact): void {
    const bucket = this.bucketFor(contact)
    const known = bucket.nodes.get(contact.key) ?? bucket.replacements.get(contact.key)
    if (known !== undefined && known.ip === contact.ip && known.port === contact.port) bucket.remove(known)
  }

  /**
   * The `k` contacts nearest `target` by XOR distance, nearest first, without
   * `target` itself and without contacts at `exclude` (the asking node).
   * Unlike Python's TableTraverser walk, every bucket is considered, so these
   * are the exact k nearest the table knows.
   */
  findNeighbors(target: Buffer, k = this.ksize, exclude?: Address): Contact[] {
    if (k <= 0) return []
    this.buckets[this.bucketIndex(BigInt('0x' + target.toString('hex')))].touch()
    const out: Contact[] = []
    for (const bucket of this.buckets) {
      for (const c of bucket.nodes.values()) {
        if (target.equals(c.id) || (exclude !== undefined && c.sameHomeAs(exclude))) continue
        if (out.length < k) out.push(c)
        else if (compareDistance(c.id, out[k - 1].id, target) < 0) out[k - 1] = c
        else continue
        for (let i = out.length - 1; i > 0 && compareDistance(out[i].id, out[i - 1].id, target) < 0; i--) {
          const t = out[i]
          out[i] = out[i - 1]
          out[i - 1] = t
        }
      }
    }
    return out
  }

  /** Buckets with no lookup in their range for `ageMs` (Python's lonely_buckets, there fixed at an hour). */
  lonelyBuckets(ageMs: number): KBucket[] {
    const before = performance.now() - ageMs
    return this.buckets.filter((b) => b.lastUpdated < before)
  }

  get size(): number {
    let n = 0
    for (const b of this.buckets) n += b.nodes.size
    return n
  }
}
