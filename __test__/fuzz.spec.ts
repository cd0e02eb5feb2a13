/**
 * Fuzzing: 100 000 seeded random and mutated datagrams fired at a live server
 * of each backend (every one must be accounted for, the server must stay up
 * and small, and both backends must classify the stream identically), then
 * fast-check properties of the shared TypeScript codec.
 */
import test from 'ava'
import fc from 'fast-check'
import { DecodeFailure, Decoder, Encoder, MAX_DEPTH, idle, sharedEncoder } from '../src/codec'
import { RPCEncodeError, RPCProtocol } from '../src/index'
import { eachBackend, eachBackendSerial, listening } from './helpers/backends'
import { ERROR, REQUEST, RESPONSE, RawPeer, datagram, gc, prng, rcvbufErrors, received, requestBody, settledRss, sleep, until, valueBody } from './helpers/raw'

const DATAGRAMS = 100_000
const WARMUP = 20_000
const SEED = 0x5eed_f422

// ---------------------------------------------------------------- the datagram stream

/** A seeded stream of hostile datagrams: random bytes, valid templates, mutations of them, deep nesting. */
function* fuzzStream(seed: number, count: number): Generator<Buffer> {
  const rnd = prng(seed)
  const int = (n: number) => Math.floor(rnd() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]
  const bytes = (n: number) => {
    const b = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) b[i] = int(256)
    return b
  }
  const id = () => bytes(20)
  const str = () => {
    let s = ''
    for (let n = int(12); n > 0; n--) s += String.fromCharCode(97 + int(26))
    return rnd() < 0.8 ? s : s + 'ü€😀'.repeat(1 + int(3))
  }
  const value = (depth: number): unknown => {
    const k = int(depth > 3 ? 8 : 11)
    switch (k) {
      case 0: return null
      case 1: return rnd() < 0.5
      case 2: return int(256) - 128
      case 3: return int(2 ** 32) * (rnd() < 0.5 ? -1 : 1) * 1000
      case 4: return rnd() * 1e6
      case 5: return str()
      case 6: return bytes(int(40))
      case 7: return 2n ** 63n + BigInt(int(1000))
      case 8: return Array.from({ length: int(5) }, () => value(depth + 1))
      case 9: return Object.fromEntries(Array.from({ length: int(4) }, () => [str(), value(depth + 1)]))
      default: return new Map([[int(100), value(depth + 1)]])
    }
  }
  const nested = (depth: number) => {
    const open = Array.from({ length: depth }, () => (rnd() < 0.5 ? [0x91] : [0x81, 0x01])).flat()
    return Buffer.from([...open, 0xc0])
  }
  const template = (): Buffer => {
    switch (int(6)) {
      case 0:
      case 1: return datagram(REQUEST, id(), requestBody(pick(['echo', 'echo', 'nope', str()]), Array.from({ length: int(4) }, () => value(1))))
      case 2: return datagram(RESPONSE, id(), valueBody(value(0)))
      case 3: return datagram(ERROR, id(), valueBody([pick(['unknown_method', 'handler_error', 'overloaded', str()]), str()]))
      case 4: return datagram(REQUEST, id(), Buffer.concat([Buffer.from([0x92, 0xa4]), Buffer.from('echo'), Buffer.from([0x91]), nested(28 + int(10))]))
      default: return datagram(int(3), id(), nested(25 + int(15)))
    }
  }
  const MARKERS = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xc6, 0xc7, 0xcb, 0xcf, 0xd3, 0xd4, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff]
  const mutate = (d: Buffer): Buffer => {
    let b = Buffer.from(d)
    for (let m = 1 + int(4); m > 0; m--) {
      const at = int(Math.max(b.length, 1))
      switch (int(9)) {
        case 0: if (b.length) b[at] ^= 1 << int(8); break
        case 1: if (b.length) b[at] = int(256); break
        case 2: if (b.length) b[at] = pick(MARKERS); break
        case 3: b = b.subarray(0, at); break
        case 4: b = Buffer.concat([b, bytes(1 + int(8))]); break
        case 5: b = Buffer.concat([b.subarray(0, at), bytes(1), b.subarray(at)]); break
        case 6: b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]); break
        case 7: if (b.length) b[0] = int(5); break
        default: if (b.length > 25) b.fill(0xff, 21 + int(b.length - 25), undefined); break
      }
    }
    return b
  }
  for (let i = 0; i < count; i++) {
    const r = rnd()
    if (r < 0.1) yield bytes(int(40))
    else if (r < 0.2) yield Buffer.concat([Buffer.from([int(3)]), bytes(21 + int(300))])
    else if (r < 0.3) yield template()
    else yield mutate(template())
  }
}

// ---------------------------------------------------------------- live-socket fuzz

const classified: Partial<Record<string, Record<string, number>>> = {}

eachBackendSerial(`live fuzz: ${DATAGRAMS} hostile datagrams, every one accounted for, server alive and bounded`, async (t, backend) => {
  t.timeout(120_000)
  const collect = gc()
  const make = (o: object) => new RPCProtocol(o).handle('echo', (_sender, ...args) => args).handle('fence', () => 'ok')
  const { proto: server, address } = await listening(t, make, { backend })
  const peer = await RawPeer.open('127.0.0.1', 0, false) // discards the answers and error replies it gets
  t.teardown(() => peer.close())
  // Memory is compared after the first WARMUP datagrams, split in two so V8's heap sizing (not a leak)
  // stays out of it: the JavaScript heap in use, and RSS outside the V8 heap (the Rust core, buffers).
  let rssWarm = 0
  let heapWarm = 0
  let buffersWarm = 0
  const kernelBefore = rcvbufErrors()
  const base = server.stats()
  const counted = () => received(server.stats()) - received(base)

  const started = performance.now()
  let sent = 0
  let sendErrors = 0
  const onSent = (err: Error | null) => void (err && sendErrors++)
  for (const d of fuzzStream(SEED, DATAGRAMS)) {
    peer.socket.send(d, address[1], address[0], onSent)
    sent++
    // pace: never more than 256 datagrams ahead of the server, so the kernel has no reason to drop any
    if (sent % 32 === 0) while (sent - counted() > 256) await new Promise((r) => setImmediate(r))
    if (sent === WARMUP) {
      await until(() => counted() >= sent, 5000, 'the warm-up datagrams').catch(() => {})
      rssWarm = (await settledRss(collect)) - process.memoryUsage().heapTotal / 2 ** 20
      heapWarm = process.memoryUsage().heapUsed
      buffersWarm = process.memoryUsage().arrayBuffers
    }
  }
  await until(() => counted() >= sent - sendErrors, 5000, 'the server to account for every datagram').catch(() => {})
  const elapsed = performance.now() - started
  await sleep(50)
  const s = server.stats()
  const kernelDrops = rcvbufErrors() - kernelBefore
  const total = counted()
  await until(() => server.stats().handlersRunning === 0, 2000, 'handlers to finish').catch(() => {})
  const rssAfter = (await settledRss(collect)) - process.memoryUsage().heapTotal / 2 ** 20
  const heapAfter = process.memoryUsage().heapUsed
  const buffersAfter = process.memoryUsage().arrayBuffers
  const figures = {
    backend,
    sent,
    sendErrors,
    counted: total,
    kernelDrops,
    elapsedMs: Math.round(elapsed),
    requestsReceived: s.requestsReceived - base.requestsReceived,
    responsesSent: s.responsesSent,
    errorsSent: s.errorsSent,
    dropped: s.dropped,
    nonHeapRssGrowthAfterWarmupMB: +(rssAfter - rssWarm).toFixed(1),
    heapGrowthAfterWarmupMB: +((heapAfter - heapWarm) / 2 ** 20).toFixed(1),
    buffersGrowthAfterWarmupMB: +((buffersAfter - buffersWarm) / 2 ** 20).toFixed(1),
  }
  t.log(JSON.stringify(figures))

  t.is(sendErrors, 0)
  // every datagram is counted exactly once: as a request, an answer, or one drop reason
  t.true(total <= sent, `counted ${total} of ${sent}`)
  t.true(sent - total <= kernelDrops, `${sent - total} datagrams unaccounted for, kernel dropped ${kernelDrops}`)
  // the stream exercised every path
  for (const r of ['tooShort', 'unknownType', 'malformed', 'tooDeep', 'badRequest', 'badUtf8', 'unsupportedType', 'unmatchedResponse'] as const)
    t.true(s.dropped[r] > 100, `${r}: ${s.dropped[r]}`)
  t.true(s.requestsReceived > 1000)
  t.is(s.responsesReceived + s.errorsReceived, 0, 'nothing the server never asked for was accepted as an answer')
  // every request got exactly one answer (echo is synchronous and always encodable)
  t.is(s.responsesSent + s.errorsSent, s.requestsReceived)
  t.is(s.dropped.sendFailed, 0)
  // bounded: nothing is retained per datagram (80 000 datagrams after the warm-up)
  t.true(rssAfter - rssWarm < 16, `RSS outside the V8 heap grew ${rssAfter - rssWarm} MB after the warm-up`)
  t.true(buffersAfter - buffersWarm < 2 * 2 ** 20, `Buffers grew ${(buffersAfter - buffersWarm) / 2 ** 20} MB after the warm-up`)
  t.true(heapAfter - heapWarm < 4 * 2 ** 20, `heap grew ${(heapAfter - heapWarm) / 2 ** 20} MB after the warm-up`)
  // alive: answers a normal call, and a raw fence
  const { proto: client } = await listening(t, (o) => new RPCProtocol(o), { backend })
  t.deepEqual(await client.callRemote(address, 'echo', [1, 'two', { three: 3 }]), [true, [1, 'two', { three: 3 }]])
  await peer.fence(address)
  // all counted means none of these datagrams was lost (kernel drops elsewhere on the host do not matter)
  if (sent === total) classified[backend] = { ...s.dropped, requestsReceived: s.requestsReceived }
})

test.serial('both backends classify the fuzz stream identically', (t) => {
  t.truthy(classified.native, 'the native run lost datagrams')
  t.truthy(classified.pure, 'the pure run lost datagrams')
  t.deepEqual(classified.native, classified.pure)
})

// ---------------------------------------------------------------- codec properties

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER)
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)
const text = fc.string({ unit: 'binary', maxLength: 40 })

/** Values in the mapping (docs/PROTOCOL.md), in the form they decode to, except: undefined -> null, Uint8Array -> Buffer. */
const leaf = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.boolean(),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double(),
  fc.constantFrom(-0, NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53), 2 ** 64),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }).filter((b) => b < MIN_SAFE || b > MAX_SAFE),
  text,
  fc.string({ unit: 'grapheme', maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }),
)
const { value } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 6 },
    leaf,
    fc.array(tie('value'), { maxLength: 6 }),
    fc.dictionary(text, tie('value'), { maxKeys: 6 }),
    // a map with a key that is not a string stays a Map
    fc
      .tuple(fc.oneof(fc.integer(), fc.boolean(), fc.constant(null)), tie('value'), fc.array(fc.tuple(fc.oneof(fc.integer(), text), tie('value')), { maxLength: 4 }))
      .map(([k, v, rest]) => new Map<unknown, unknown>([[k, v], ...rest])),
  ),
}))

/** Structural equality in the decoded form: Object.is for scalars, bytes for binaries, entries for maps. */
function same(a: unknown, b: unknown): boolean {
  if (a === undefined) a = null
  if (b === undefined) b = null
  if (a instanceof Uint8Array || b instanceof Uint8Array)
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0
  if (Array.isArray(a) || Array.isArray(b))
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]))
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map && b instanceof Map) || a.size !== b.size) return false
    // msgpack maps are unordered, and integer-like string keys reorder when a decoded object becomes a Map
    const rest = [...b.entries()]
    for (const [k, v] of a) {
      const i = rest.findIndex(([k2, v2]) => same(k, k2) && same(v, v2))
      if (i < 0) return false
      rest.splice(i, 1)
    }
    return true
  }
  if (a !== null && typeof a === 'object' && b !== null && typeof b === 'object') {
    const ka = Object.keys(a)
    const kb = Object.keys(b)
    return ka.length === kb.length && ka.every((k, i) => k === kb[i] && same((a as any)[k], (b as any)[k]))
  }
  return Object.is(a, b)
}

const encoder = new Encoder(1 << 20)
const decoder = new Decoder()
const roundTrip = (v: unknown) => decoder.decode(encoder.bytes, 0, encoder.encode(v))
const REASONS = new Set(['malformed', 'badUtf8', 'tooDeep', 'unsupportedType'])

/** Decoding must either return a value or throw a DecodeFailure with one of its reasons. */
function decodesOrFails(bytes: Uint8Array): unknown {
  const buf = Buffer.from(bytes)
  try {
    return { ok: decoder.decode(buf, 0, buf.length) }
  } catch (err) {
    if (!(err instanceof DecodeFailure) || !REASONS.has(err.reason)) throw err
    return { failed: err.reason }
  }
}

test('codec: encode -> decode round-trips every value of the mapping', (t) => {
  fc.assert(
    fc.property(value, (v) => same(roundTrip(v), v)),
    { numRuns: 3000, seed: SEED },
  )
  // and a request body decodes to [name, args]
  fc.assert(
    fc.property(text, fc.array(value, { maxLength: 5 }), (name, args) =>
      same(decoder.decode(encoder.bytes, 0, encoder.encodeRequest(name, args)), [name, args]),
    ),
    { numRuns: 1000, seed: SEED },
  )
  t.pass()
})

test('codec: nesting up to MAX_DEPTH round-trips, one more is refused on both sides', (t) => {
  let v: unknown = 1
  for (let i = 0; i < MAX_DEPTH; i++) v = [v]
  t.deepEqual(roundTrip(v), v)
  t.throws(() => encoder.encode([v]), { instanceOf: RPCEncodeError })
  const deep = Buffer.from([...new Array(MAX_DEPTH + 1).fill(0x91), 0x01])
  t.deepEqual(decodesOrFails(deep), { failed: 'tooDeep' })
})

test('codec: decoding arbitrary bytes never throws anything but DecodeFailure', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => void decodesOrFails(b)), { numRuns: 20000, seed: SEED })
  // biased towards msgpack structure: valid encodings with a few bytes changed, cut or extended
  const mutated = fc
    .tuple(value, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), fc.uint8Array({ maxLength: 4 }))
    .map(([v, edits, cut, tail]) => {
      const b = Buffer.from(encoder.bytes.subarray(0, encoder.encode(v)))
      for (const [at, byte] of edits) b[at % b.length] = byte
      return Buffer.concat([b.subarray(0, b.length - (cut % 3)), tail])
    })
  fc.assert(fc.property(mutated, (b) => void decodesOrFails(b)), { numRuns: 10000, seed: SEED })
  t.pass()
})

test('codec: whatever decodes re-encodes and decodes to the same value', (t) => {
  const anyBytes = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    value.map((v) => {
      const b = Buffer.from(encoder.bytes.subarray(0, encoder.encode(v)))
      if (b.length) b[b.length >> 1] ^= 0x01
      return b
    }),
  )
  let decoded = 0
  fc.assert(
    fc.property(anyBytes, (b) => {
      const r = decodesOrFails(b) as { ok?: unknown }
      if (!('ok' in r)) return true
      decoded++
      return same(roundTrip(r.ok), r.ok)
    }),
    { numRuns: 10000, seed: SEED },
  )
  t.true(decoded > 1000, `only ${decoded} inputs decoded`)
})

test('codec: the decoder never allocates for lengths the bytes do not hold', (t) => {
  // 4 G-element containers and a 4 GiB string in a handful of bytes fail fast, without allocating
  const before = process.memoryUsage().arrayBuffers
  let malformed = 0
  for (const b of [[0xdd, 0xff, 0xff, 0xff, 0xff], [0xdf, 0xff, 0xff, 0xff, 0xff], [0xdb, 0xff, 0xff, 0xff, 0xff], [0xc6, 0xff, 0xff, 0xff, 0xff]])
    for (let i = 0; i < 10000; i++) if ((decodesOrFails(Buffer.from(b)) as { failed?: string }).failed === 'malformed') malformed++
  t.is(malformed, 40000)
  t.true(process.memoryUsage().arrayBuffers - before < 1 << 20)
})


// ---------------------------------------------------------------- regressions the properties found

const AWKWARD_STRINGS = ['\ufeff', '\ufeffleading BOM', 'trailing BOM\ufeff', '\u0000nul\u0000', '😀 astral', '\u2028\u2029', 'x'.repeat(23) + 'é', '\ufffd']

test('codec: awkward strings (a leading U+FEFF, NUL, astral) decode verbatim', (t) => {
  for (const s of AWKWARD_STRINGS) {
    t.is(roundTrip(s), s, JSON.stringify(s))
    t.deepEqual(roundTrip({ [s]: s }), { [s]: s })
  }
})

eachBackend('awkward strings cross the wire verbatim, as method names, arguments and results', async (t, backend) => {
  const make = (o: object) => {
    const p = new RPCProtocol(o).handle('echo', (_sender, ...args) => args)
    for (const s of AWKWARD_STRINGS) p.handle(s, () => s)
    return p
  }
  const { address } = await listening(t, make, { backend })
  const { proto: client } = await listening(t, (o) => new RPCProtocol(o), { backend })
  t.deepEqual(await client.callRemote(address, 'echo', AWKWARD_STRINGS), [true, AWKWARD_STRINGS])
  for (const s of AWKWARD_STRINGS) t.deepEqual(await client.callRemote(address, s, []), [true, s])
})

test('codec: idle() never hands out a busy encoder, so a getter that encodes mid-encode leaves both values intact', (t) => {
  const outer = sharedEncoder(8192)
  t.is(sharedEncoder(8192), outer, 'one encoder per body limit')
  t.is(idle(outer), outer)
  let inner: Encoder | undefined
  let innerBytes: Buffer | undefined
  const value = {
    a: 'before',
    get b() {
      inner = idle(outer)
      innerBytes = Buffer.from(inner.bytes.subarray(0, inner.encode(['nested', 7])))
      return 'getter'
    },
    c: 'after',
  }
  const len = outer.encode(value)
  t.not(inner, outer)
  t.deepEqual(decoder.decode(outer.bytes, 0, len), { a: 'before', b: 'getter', c: 'after' })
  t.deepEqual(decoder.decode(innerBytes!, 0, innerBytes!.length), ['nested', 7])
  t.false(outer.busy, 'idle again after the encode')
  t.throws(() => outer.encode({ d: new Date() }), { instanceOf: RPCEncodeError })
  t.false(outer.busy, 'idle again after an encode that threw')
  t.is(idle(outer), outer)
})

eachBackend('a call made from a getter while another call is being encoded: both arrive intact', async (t, backend) => {
  const { address } = await listening(t, (o) => new RPCProtocol(o).handle('echo', (_sender, v) => v), { backend })
  const { proto: a } = await listening(t, (o) => new RPCProtocol(o), { backend })
  const { proto: b } = await listening(t, (o) => new RPCProtocol(o), { backend })
  let nested: Promise<unknown> | undefined
  const arg = {
    x: 1,
    get y() {
      nested = b.callRemote(address, 'echo', ['from the getter'])
      return 2
    },
  }
  t.deepEqual(await a.callRemote(address, 'echo', [arg]), [true, { x: 1, y: 2 }])
  t.deepEqual(await nested, [true, 'from the getter'])
})
