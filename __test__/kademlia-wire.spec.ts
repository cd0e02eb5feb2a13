/** The Kademlia codec fast path: pre-encoded answers and the neighbour-list decoder, against the generic codec. */
import test from 'ava'
import fc from 'fast-check'
import { Decoder, Encoder } from '../src/codec'
import { Contact } from '../src/kademlia/contact'
import { decodeNeighbours, encodeNeighbours, newWireCounters, parseFindReply, parseNeighbour } from '../src/kademlia/wire'
import { toKey } from '../src/kademlia/ids'
import { IPV4, IPV6 } from '../src/kademlia/reach'

const id = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => Buffer.from(b))
const ip = fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom('not an ip', ''))
const entry = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(id, ip, fc.integer({ min: 0, max: 70000 })) },
  { weight: 1, arbitrary: fc.anything() },
)

test('encodeNeighbours writes the bytes the generic encoder writes for [id, ip, port] entries', (t) => {
  const enc = new Encoder(1 << 16)
  fc.assert(
    fc.property(fc.array(fc.tuple(id, fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 1, max: 65535 })), { maxLength: 40 }), (list) => {
      const contacts = list.map(([i, a, p]) => Contact.fromId(i, a, p))
      const len = enc.encode(contacts.map((c) => [c.id, c.ip, c.port]))
      const expected = Buffer.from(enc.bytes.subarray(0, len))
      const got = enc.encode(encodeNeighbours(contacts))
      t.deepEqual(Buffer.from(enc.bytes.subarray(0, got)), expected)
    }),
  )
})

test('decodeNeighbours then parseFindReply gives the contacts and counters the generic decoder does', (t) => {
  const enc = new Encoder(1 << 16)
  const dec = new Decoder()
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 30 }), fc.integer({ min: 1, max: 25 }), (list, ksize) => {
      let len: number
      try {
        len = enc.encode(list)
      } catch {
        return
      }
      const bytes = Buffer.from(enc.bytes.subarray(0, len))
      const self = Contact.fromId(Buffer.alloc(20), '127.0.0.1', 1).key
      const fast = newWireCounters()
      const slow = newWireCounters()
      const a = parseFindReply(decodeNeighbours(bytes, 0, len) ?? dec.decode(bytes, 0, len), ksize, self, IPV4 | IPV6, fast, true)
      const b = parseFindReply(dec.decode(bytes, 0, len), ksize, self, IPV4 | IPV6, slow, true)
      t.deepEqual(a, b)
      t.deepEqual(fast, slow)
    }),
  )
})

test('decodeNeighbours takes the common shape and declines every other one', (t) => {
  const enc = new Encoder(4096)
  const body = (v: unknown) => Buffer.from(enc.bytes.subarray(0, enc.encode(v)))
  const good = body([[Buffer.alloc(20, 1), '10.0.0.1', 4000]])
  t.is(decodeNeighbours(good, 0, good.length)?.contacts[0].port, 4000)
  for (const bad of [
    [[Buffer.alloc(19, 1), '10.0.0.1', 4000]],
    [[Buffer.alloc(20, 1), 'nope', 4000]],
    [[Buffer.alloc(20, 1), '10.0.0.1', 0]],
    [[Buffer.alloc(20, 1), '10.0.0.1', 65536]],
    [[Buffer.alloc(20, 1), '10.0.0.1']],
    { value: 1 },
  ]) {
    const b = body(bad)
    t.is(decodeNeighbours(b, 0, b.length), undefined)
  }
  t.is(decodeNeighbours(good, 0, good.length - 1), undefined)
})

test('an empty ip is never a neighbour, whatever was cached before (the caches start at a literal isIP accepts)', (t) => {
  t.is(parseNeighbour([Buffer.alloc(20, 1), '', 1]), undefined)
  const counters = newWireCounters()
  const body = new Encoder(256)
  const len = body.encode([[Buffer.alloc(20, 2), '', 7]])
  const decoded = decodeNeighbours(Buffer.from(body.bytes.subarray(0, len)), 0, len)
  const reply = parseFindReply(decoded ?? [[Buffer.alloc(20, 2), '', 7]], 20, toKey(Buffer.alloc(20)), IPV4 | IPV6, counters, false)
  t.deepEqual(reply, { nodes: [] })
  t.is(counters.badNeighbours, 1)
})
