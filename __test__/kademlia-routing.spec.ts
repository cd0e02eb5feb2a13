/** Unit tests of the Kademlia building blocks: digest, the routing table and its buckets, storage, values. */
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { Contact } from '../src/kademlia/contact'
import { KademliaValueError, digest } from '../src/kademlia'
import { ID_SPACE, bigIntToKey, toKey, type IdKey } from '../src/kademlia/ids'
import { NO_DIVERSITY } from '../src/kademlia/diversity'
import { RoutingTable } from '../src/kademlia/routing'
import { ForgetfulStorage } from '../src/kademlia/storage'
import { checkDhtValue } from '../src/kademlia/values'
import { waitFor } from './helpers/kademlia-sim'
import { prng } from './helpers/raw'

/** The reference distance arithmetic, independent of the code under test. */
const keyToBigInt = (key: IdKey): bigint => BigInt('0x' + Buffer.from(key, 'latin1').toString('hex'))

/** The IdKey of an id whose first bytes are `prefix` and the rest zero. */
function idOf(...prefix: number[]): IdKey {
  const id = Buffer.alloc(20)
  Buffer.from(prefix).copy(id)
  return toKey(id)
}

let port = 1000
/** Each contact on its own /24, so the diversity bounds (tested on their own below) never refuse one. */
const contact = (key: IdKey) => {
  const n = port++
  return new Contact(key, `10.${(n >> 8) & 255}.${n & 255}.1`, n)
}
const ZERO = idOf()
const hex = (key: IdKey) => Buffer.from(key, 'latin1').toString('hex')

test('digest is sha1 of the UTF-8 string or of the bytes, like Python kademlia.utils.digest', (t) => {
  // hashlib.sha1(b'hello').hexdigest()
  t.is(digest('hello').toString('hex'), 'aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d')
  t.deepEqual(digest(Buffer.from('hello')), digest('hello'))
  // 'é' is two bytes in UTF-8
  t.deepEqual(digest('é'), digest(Buffer.from([0xc3, 0xa9])))
  t.throws(() => digest(42 as any), { code: 'ERR_KAD_INVALID_ARGUMENT' })
})

test('a full bucket that holds this node splits; one that does not splits while its depth is not a multiple of 5', (t) => {
  const pinged: Contact[] = []
  const table = new RoutingTable(ZERO, 2, (h) => pinged.push(h))
  table.add(contact(idOf(0x80)))
  table.add(contact(idOf(0xc0)))
  t.is(table.buckets.length, 1)
  // the only bucket holds this node's id (0): it splits; the upper half, depth 1, splits again
  table.add(contact(idOf(0xe0)))
  t.deepEqual(
    table.buckets.map((b) => [b.low, b.high]),
    [
      [0n, (1n << 159n) - 1n],
      [1n << 159n, (1n << 159n) + (1n << 158n) - 1n],
      [(1n << 159n) + (1n << 158n), ID_SPACE - 1n],
    ],
  )
  t.is(table.size, 3)
  t.deepEqual(pinged, [])
})

test('a full bucket at depth 5 away from this node does not split: its head is pinged and the newcomer waits as a replacement', (t) => {
  const pinged: Contact[] = []
  const table = new RoutingTable(ZERO, 2, (h) => pinged.push(h))
  const f8 = contact(idOf(0xf8)) // 11111000
  const fc = contact(idOf(0xfc)) // 11111100: shares 5 bits with f8
  const f9 = contact(idOf(0xf9))
  table.add(f8)
  table.add(fc)
  table.add(f9)
  t.is(table.buckets.length, 2)
  const far = table.bucketFor(f8)
  t.is(far.depth(), 5)
  t.deepEqual([...far.nodes.values()], [f8, fc])
  t.deepEqual([...far.replacements.values()], [f9])
  t.deepEqual(pinged, [f8], 'the least recently seen contact is pinged')
  // the ping failed: the head goes, the newest replacement takes its place
  table.remove(f8)
  t.deepEqual([...far.nodes.values()], [fc, f9])
  t.is(far.replacements.size, 0)
})

test('a contact seen again becomes the most recently seen; a stale address does not evict the live one', (t) => {
  const table = new RoutingTable(ZERO, 3, () => {})
  const a = contact(idOf(0x81))
  const b = contact(idOf(0x82))
  table.add(a)
  table.add(b)
  table.add(a)
  t.deepEqual([...table.bucketFor(a).nodes.values()], [b, a])
  table.remove(new Contact(a.key, '10.9.9.9', 1))
  t.true(table.has(a))
  table.remove(a)
  t.false(table.has(a))
})

test('the replacement cache holds at most 5 * ksize, newest kept', (t) => {
  const table = new RoutingTable(ZERO, 2, () => {})
  // the bucket's two contacts share 5 bits (11111000, 11111100), so it never splits again
  table.add(contact(idOf(0xf8)))
  table.add(contact(idOf(0xfc)))
  const ids = Array.from({ length: 20 }, (_, i) => idOf(0xf9, i))
  for (const id of ids) table.add(contact(id))
  const far = table.bucketFor(contact(ids[0]))
  t.is(far.nodes.size, 2)
  t.is(far.replacements.size, 10)
  t.true(far.replacements.has(ids[19]))
  t.false(far.replacements.has(ids[9]))
})

test('an unverified request sender waits in a full bucket\'s cache unpinged; it takes a freed slot only after answering the ping it is handed', (t) => {
  const pinged: Contact[] = []
  const table = new RoutingTable(ZERO, 2, (c) => pinged.push(c))
  const f8 = contact(idOf(0xf8))
  const fc = contact(idOf(0xfc))
  table.add(f8)
  table.add(fc)
  table.add(contact(idOf(0x01))) // splits the table: f8 and fc, sharing 5 bits, fill a bucket that no longer splits
  const low = contact(idOf(0x02))
  // a bucket with room (here the one holding this node) is not offered: the caller verifies the sender first
  t.false(table.offer(low))
  t.true(table.isNew(low))
  const f9 = contact(idOf(0xf9))
  t.true(table.offer(f9))
  const far = table.bucketFor(f8)
  t.deepEqual([...far.replacements.values()], [f9])
  t.true(far.unverified.has(f9.key))
  t.deepEqual(pinged, [f8], 'a newcomer to the cache has the head pinged, as Python does')
  t.true(table.offer(f9))
  t.deepEqual(pinged, [f8], 'one seen again does not')
  t.false(table.offer(new Contact(f8.key, '10.9.9.9', 1)), 'a known id at a new address is verified first')
  // the head failed: the unverified newest replacement is handed out for a ping, and the slot waits for its answer
  table.remove(f8)
  t.deepEqual(pinged, [f8, f9])
  t.deepEqual([...far.nodes.values()], [fc])
  t.false(
    table.findNeighbors(contact(idOf(0xfb)).key, 5).some((c) => c.key === f9.key),
    'an unverified replacement is never handed out in answers',
  )
  table.add(f9) // it answered
  t.deepEqual([...far.nodes.values()], [fc, f9])
  t.false(far.unverified.has(f9.key))
  t.is(far.replacements.size, 0)
})

test('a replacement that does not answer hands the slot on to the next; a verified one takes it at once', (t) => {
  const pinged: Contact[] = []
  const table = new RoutingTable(ZERO, 2, (c) => pinged.push(c))
  const [f8, fc, f9, fa] = [0xf8, 0xfc, 0xf9, 0xfa].map((b) => contact(idOf(b)))
  table.add(f8)
  table.add(fc)
  table.add(contact(idOf(0x01)))
  table.add(f9) // verified (added after answering): cached
  table.offer(fa) // unverified, and the newest
  const far = table.bucketFor(f8)
  table.remove(f8)
  t.is(pinged.at(-1), fa)
  t.deepEqual([...far.nodes.values()], [fc])
  table.remove(fa) // its ping went unanswered
  t.deepEqual([...far.nodes.values()], [fc, f9])
  t.is(far.replacements.size, 0)
})

test('this node never enters its own table, and ids at a bucket edge land in that bucket', (t) => {
  const table = new RoutingTable(ZERO, 1, () => {})
  table.add(new Contact(ZERO, '10.1.0.9', 9))
  t.is(table.size, 0)
  t.false(table.isNew(new Contact(ZERO, '10.1.0.9', 9)))
  table.add(contact(idOf(0x80)))
  table.add(contact(idOf(0x40))) // splits at 2^159
  const top = bigIntToKey((1n << 159n) - 1n) // the last id of the lower bucket (Python's `<` puts it in the next)
  t.is(table.bucketIndex(top), 0)
  t.is(table.bucketIndex(bigIntToKey(1n << 159n)), 1)
  t.is(table.bucketIndex(bigIntToKey(ID_SPACE - 1n)), table.buckets.length - 1)
})

test('findNeighbors returns the k nearest by XOR distance, nearest first, without the target or the asker', (t) => {
  const rnd = prng(7)
  const self = randomBytes(20)
  // the contacts share a few /24s: the diversity bounds (tested on their own) would refuse most
  const table = new RoutingTable(toKey(self), 20, () => {}, NO_DIVERSITY)
  for (let i = 0; i < 400; i++) {
    // a third share their first 3 bytes with this node: distances that tie on their first 24 bits
    const id = Buffer.from(Array.from({ length: 20 }, (_, j) => (i % 3 === 0 && j < 3 ? self[j] : Math.floor(rnd() * 256))))
    table.add(Contact.fromId(id, '10.2.' + (i >> 8) + '.' + (i & 255), 5000 + i))
  }
  const inTable = table.buckets.flatMap((b) => [...b.nodes.values()])
  t.true(inTable.length > 40, `the table holds ${inTable.length} contacts`)
  for (let round = 0; round < 60; round++) {
    // a contact's own id, random ids, and ids sharing 1..5 bytes with this node (where buckets are deepest)
    const nearSelf = Buffer.from(self.map((b, j) => (j < 1 + (round % 5) ? b : Math.floor(rnd() * 256))))
    // and ids sharing 1..3 bytes with a contact, as where a lookup ends: the k nearest then span the buckets on both sides of the target's
    const near = Buffer.from(inTable[(round * 7) % inTable.length].key, 'latin1').map((b, j) => (j < 1 + (round % 3) ? b : Math.floor(rnd() * 256)))
    const target = round === 0 ? inTable[3].key : toKey(round % 3 === 0 ? near : round % 2 ? randomBytes(20) : nearSelf)
    const asker = inTable[round % inTable.length].address
    const expected = inTable
      .filter((c) => c.key !== target && !c.sameHomeAs(asker))
      .sort((a, b) => {
        const da = keyToBigInt(a.key) ^ keyToBigInt(target)
        const db = keyToBigInt(b.key) ^ keyToBigInt(target)
        return da < db ? -1 : da > db ? 1 : 0
      })
      .slice(0, 20)
    t.deepEqual(
      table.findNeighbors(target, 20, asker).map((c) => hex(c.key)),
      expected.map((c) => hex(c.key)),
    )
  }
  t.deepEqual(table.findNeighbors(toKey(randomBytes(20)), 0), [])
})

test('findNeighbors stays exact while contacts come and go between repeated questions about the same targets', (t) => {
  const rnd = prng(11)
  const randomId = () => Buffer.from(Array.from({ length: 20 }, () => Math.floor(rnd() * 256)))
  const self = randomId()
  const table = new RoutingTable(toKey(self), 8, () => {}, NO_DIVERSITY) // one /24: no diversity bounds
  const targets = Array.from({ length: 6 }, () => toKey(randomId()))
  const added: Contact[] = []
  let checked = 0
  for (let step = 0; step < 3000; step++) {
    const r = rnd()
    if (r < 0.45 || added.length < 10) {
      // sometimes a known id at a new address, which must replace the old one in answers
      const reuse = added.length > 0 && r < 0.05
      const id = reuse ? Buffer.from(added[Math.floor(rnd() * added.length)].key, 'latin1') : randomId()
      const c = Contact.fromId(id, '10.4.0.' + (step % 250), 6000 + (step % 1000))
      table.add(c)
      added.push(c)
    } else if (r < 0.6) table.remove(added[Math.floor(rnd() * added.length)])
    else {
      const target = targets[Math.floor(rnd() * targets.length)]
      const inTable = table.buckets.flatMap((b) => [...b.nodes.values()])
      const asker = r < 0.8 ? inTable[Math.floor(rnd() * inTable.length)]?.address : undefined
      const expected = inTable
        .filter((c) => c.key !== target && (asker === undefined || !c.sameHomeAs(asker)))
        .sort((a, b) => {
          const da = keyToBigInt(a.key) ^ keyToBigInt(target)
          const db = keyToBigInt(b.key) ^ keyToBigInt(target)
          return da < db ? -1 : da > db ? 1 : 0
        })
        .slice(0, 8)
      const got = table.findNeighbors(target, 8, asker)
      t.deepEqual(
        got.map((c) => `${hex(c.key)}@${c.ip}:${c.port}`),
        expected.map((c) => `${hex(c.key)}@${c.ip}:${c.port}`),
        `step ${step}`,
      )
      checked++
    }
  }
  t.true(checked > 1000, `${checked} answers checked`)
})

test('lonely buckets are those without a lookup in their range for the given time', async (t) => {
  const table = new RoutingTable(ZERO, 2, () => {})
  t.deepEqual(table.lonelyBuckets(10_000), [])
  await new Promise((r) => setTimeout(r, 30))
  t.is(table.lonelyBuckets(20).length, 1)
  table.findNeighbors(idOf(1))
  t.is(table.lonelyBuckets(20).length, 0)
})

test('storage forgets values after the TTL and keeps at most maxKeys, oldest dropped first', async (t) => {
  const s = new ForgetfulStorage(0.05, 3)
  for (let i = 0; i < 5; i++) s.set(idOf(i), i)
  t.is(s.size, 3)
  t.is(s.get(idOf(0)), undefined)
  t.is(s.get(idOf(4)), 4)
  t.deepEqual(
    s.olderThan(0).map(([, v]) => v),
    [2, 3, 4],
  )
  s.set(idOf(2), 'again') // a new store refreshes its age
  t.deepEqual(
    s.olderThan(0).map(([, v]) => v),
    [3, 4, 'again'],
  )
  await waitFor(() => s.get(idOf(4)) === undefined, 2000, 'the TTL')
  t.is(s.size, 0)
})

test('values: int, float, bool, str and bytes only, and only what fits in one store request', (t) => {
  for (const v of [0, -1, 1.5, NaN, 2n ** 63n, true, false, '', 'x', Buffer.alloc(0), new Uint8Array([1])]) t.notThrows(() => checkDhtValue(v, 8192))
  t.true(Buffer.isBuffer(checkDhtValue(new Uint8Array([1]), 8192)))
  for (const v of [null, undefined, [1], { a: 1 }, new Map(), Symbol('x'), () => 1])
    t.throws(() => checkDhtValue(v, 8192), { instanceOf: KademliaValueError, code: 'ERR_KAD_VALUE' })
  t.throws(() => checkDhtValue(2n ** 64n, 8192), { instanceOf: KademliaValueError })
  t.throws(() => checkDhtValue('\ud800', 8192), { instanceOf: KademliaValueError })
  t.notThrows(() => checkDhtValue('x'.repeat(8000), 8192))
  t.throws(() => checkDhtValue('x'.repeat(8192), 8192), { instanceOf: KademliaValueError, message: /limit is 8192/ })
})

test('knowsNearerThanSelf agrees with a scan of every contact', (t) => {
  const rnd = prng(9)
  const randomKey = () => toKey(Buffer.from(Array.from({ length: 20 }, () => Math.floor(rnd() * 256))))
  const self = randomKey()
  const table = new RoutingTable(self, 8, () => {}, NO_DIVERSITY) // one host: no diversity bounds
  for (let i = 0; i < 300; i++) table.add(new Contact(randomKey(), '10.3.0.1', 1000 + i))
  const contacts = table.buckets.flatMap((b) => [...b.nodes.keys()])
  let nearer = 0
  for (let i = 0; i < 500; i++) {
    // keys near this node, where the answer varies, and anywhere
    const key = i % 2 ? randomKey() : toKey(Buffer.from(Buffer.from(self, 'latin1').map((b, j) => (j < 1 + (i % 4) ? b : Math.floor(rnd() * 256)))))
    const distance = (x: IdKey) => keyToBigInt(x) ^ keyToBigInt(key)
    const expected = contacts.some((c) => distance(c) < distance(self))
    t.is(table.knowsNearerThanSelf(key), expected)
    if (expected) nearer++
  }
  t.true(nearer > 50 && nearer < 450, `${nearer} of 500 keys have a nearer contact`)
  t.false(table.knowsNearerThanSelf(self))
})
