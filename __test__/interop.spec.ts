/**
 * Live interop with the real Python rpcudp 5.0.1 (u-msgpack-python 2.8.0) on
 * loopback, for both backends. The Python side is __test__/python/peer.py,
 * driven through __test__/helpers/python.ts. The value mapping checked here is
 * the table in docs/PROTOCOL.md.
 */
import test, { type ExecutionContext } from 'ava'
import { createSocket } from 'node:dgram'
import { setTimeout as sleep } from 'node:timers/promises'
import { inspect } from 'node:util'
import { DecodeFailure, Decoder, Encoder } from '../src/codec'
import { RPCEncodeError, RPCProtocol, RPCSizeError, type Address, type BackendName, type RPCProtocolOptions } from '../src/index'
import { eachBackend, listening } from './helpers/backends'
import { PythonPeer } from './helpers/python'

// ---------------------------------------------------------------------------
// The value-mapping table: every row of docs/PROTOCOL.md's table.
// ---------------------------------------------------------------------------

interface Row {
  name: string
  /** The JavaScript value TypeScript sends (absent: a value only Python produces). */
  js?: unknown
  /** The Python value it arrives as, and the value Python sends for this row (a Python expression). */
  py: string
  /** What TypeScript decodes when Python sends `py` (default: `js`). */
  fromPy?: unknown
  /** What Python gets back when TypeScript echoes `fromPy` (default: `py`). */
  back?: string
}

const has = (row: Row, key: keyof Row) => Object.prototype.hasOwnProperty.call(row, key)
const fromPy = (row: Row) => (has(row, 'fromPy') ? row.fromPy : row.js)

const nest = (depth: number, leaf: unknown = 0): unknown => {
  let v = leaf
  for (let i = 0; i < depth; i++) v = [v]
  return v
}
const bytes256 = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 256))
const keys16 = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i]))
const nullProto = Object.assign(Object.create(null), { a: 1 })

const ROWS: Row[] = [
  // nil and bool
  { name: 'null', js: null, py: 'None' },
  { name: 'undefined', js: undefined, py: 'None', fromPy: null },
  { name: 'true', js: true, py: 'True' },
  { name: 'false', js: false, py: 'False' },
  // positive ints at every width
  { name: 'int 0', js: 0, py: '0' },
  { name: 'int 127 (fixint)', js: 127, py: '127' },
  { name: 'int 128 (uint8)', js: 128, py: '128' },
  { name: 'int 255', js: 255, py: '255' },
  { name: 'int 256 (uint16)', js: 256, py: '256' },
  { name: 'int 65535', js: 65535, py: '65535' },
  { name: 'int 65536 (uint32)', js: 65536, py: '65536' },
  { name: 'int 2^32-1', js: 2 ** 32 - 1, py: '2**32-1' },
  { name: 'int 2^32 (uint64)', js: 2 ** 32, py: '2**32' },
  { name: 'int 2^53-1 (max safe)', js: Number.MAX_SAFE_INTEGER, py: '2**53-1' },
  { name: 'int 2^53 (BigInt)', js: 2n ** 53n, py: '2**53' },
  { name: 'int 2^63', js: 2n ** 63n, py: '2**63' },
  { name: 'int 2^64-1 (uint64 max)', js: 2n ** 64n - 1n, py: '2**64-1' },
  // negative ints at every width
  { name: 'int -1', js: -1, py: '-1' },
  { name: 'int -32 (negative fixint)', js: -32, py: '-32' },
  { name: 'int -33 (int8)', js: -33, py: '-33' },
  { name: 'int -128', js: -128, py: '-128' },
  { name: 'int -129 (int16)', js: -129, py: '-129' },
  { name: 'int -32768', js: -32768, py: '-32768' },
  { name: 'int -32769 (int32)', js: -32769, py: '-32769' },
  { name: 'int -2^31', js: -(2 ** 31), py: '-2**31' },
  { name: 'int -2^31-1 (int64)', js: -(2 ** 31) - 1, py: '-2**31-1' },
  { name: 'int -(2^53-1)', js: -Number.MAX_SAFE_INTEGER, py: '-(2**53-1)' },
  { name: 'int -2^53 (BigInt)', js: -(2n ** 53n), py: '-2**53' },
  { name: 'int -2^63 (int64 min)', js: -(2n ** 63n), py: '-2**63' },
  // BigInts in the safe range arrive back as numbers
  { name: 'BigInt 5n', js: 5n, py: '5', fromPy: 5 },
  { name: 'BigInt -2^31-1', js: -(2n ** 31n) - 1n, py: '-2**31-1', fromPy: -(2 ** 31) - 1 },
  { name: 'BigInt 2^40', js: 2n ** 40n, py: '2**40', fromPy: 2 ** 40 },
  // floats
  { name: 'float 1.5', js: 1.5, py: '1.5' },
  { name: 'float -2.25', js: -2.25, py: '-2.25' },
  { name: 'float 0.1', js: 0.1, py: '0.1' },
  { name: 'float 1e300', js: 1e300, py: '1e300' },
  { name: 'float 5e-324 (subnormal)', js: 5e-324, py: '5e-324' },
  { name: 'float -0', js: -0, py: '-0.0' },
  { name: 'float NaN', js: NaN, py: "float('nan')" },
  { name: 'float Infinity', js: Infinity, py: "float('inf')" },
  { name: 'float -Infinity', js: -Infinity, py: "float('-inf')" },
  { name: 'Number 2^53 (not a safe integer: float)', js: 2 ** 53, py: 'float(2**53)' },
  { name: 'Number 2^64 (float)', js: 2 ** 64, py: 'float(2**64)' },
  { name: 'Number -2^63 (float)', js: -(2 ** 63), py: '-float(2**63)' },
  { name: 'Python float 1.0 (integral: a JS number, back as int)', py: '1.0', fromPy: 1, back: '1' },
  { name: 'Python float -3.0', py: '-3.0', fromPy: -3, back: '-3' },
  // strings
  { name: 'str empty', js: '', py: "''" },
  { name: 'str ascii', js: 'hello', py: "'hello'" },
  { name: 'str 31 bytes (fixstr max)', js: 'a'.repeat(31), py: "'a'*31" },
  { name: 'str 32 bytes (str8)', js: 'a'.repeat(32), py: "'a'*32" },
  { name: 'str 256 bytes (str16)', js: 'a'.repeat(256), py: "'a'*256" },
  { name: 'str NUL', js: 'a\u0000b', py: "'a\\x00b'" },
  { name: 'str 2-byte UTF-8', js: 'é', py: "'\\u00e9'" },
  { name: 'str 3-byte UTF-8', js: '€', py: "'\\u20ac'" },
  { name: 'str non-BMP', js: '😀', py: "'\\U0001F600'" },
  { name: 'str mixed', js: 'naïve 日本語 🎉 𝄞', py: "'na\\u00efve \\u65e5\\u672c\\u8a9e \\U0001F389 \\U0001D11E'" },
  { name: 'str 6000 UTF-8 bytes', js: '€'.repeat(2000), py: "'\\u20ac'*2000" },
  // bin
  { name: 'bin empty', js: Buffer.alloc(0), py: "b''" },
  { name: 'bin 00 ff', js: Buffer.from([0, 255]), py: "b'\\x00\\xff'" },
  { name: 'bin 300 bytes (bin16)', js: bytes256, py: 'bytes(list(range(256)) + list(range(44)))' },
  { name: 'Uint8Array (arrives back as Buffer)', js: new Uint8Array([1, 2, 3]), py: "b'\\x01\\x02\\x03'", fromPy: Buffer.from([1, 2, 3]) },
  // arrays
  { name: 'array empty', js: [], py: '[]' },
  { name: 'array nested empty', js: [[]], py: '[[]]' },
  { name: 'array mixed', js: [1, 'a', null, true, 1.5, Buffer.from('b')], py: "[1, 'a', None, True, 1.5, b'b']" },
  { name: 'array 16 (array16)', js: Array.from({ length: 16 }, (_, i) => i), py: 'list(range(16))' },
  { name: 'array 30 deep (deepest a request argument may be)', js: nest(30), py: 'nest(30)' },
  { name: 'Python tuple (a JS array, back as list)', py: "(1, 'a', (2,))", fromPy: [1, 'a', [2]], back: "[1, 'a', [2]]" },
  // maps
  { name: 'map empty', js: {}, py: '{}' },
  { name: 'map str keys (plain object)', js: { a: 1, b: [1, 2], c: { d: null } }, py: "{'a': 1, 'b': [1, 2], 'c': {'d': None}}" },
  { name: 'map 16 keys (map16)', js: keys16, py: "dict([('k' + str(i), i) for i in range(16)])" },
  { name: 'map int keys (Map)', js: new Map([[1, 'a'], [2, 'b']]), py: "{1: 'a', 2: 'b'}" },
  { name: 'map bin keys (Map)', js: new Map([[Buffer.from('k'), 1]]), py: "{b'k': 1}" },
  { name: 'map mixed str/int keys (Map)', js: new Map<unknown, unknown>([['a', 1], [1, 'b']]), py: "{'a': 1, 1: 'b'}" },
  { name: 'map nil/bool/float keys (Map)', js: new Map<unknown, unknown>([[null, 1], [true, 2], [1.5, 3]]), py: '{None: 1, True: 2, 1.5: 3}' },
  { name: 'map array key (Python tuple key)', js: new Map([[[1, 2], 'x']]), py: "{(1, 2): 'x'}" },
  { name: 'map nested in Map', js: new Map<unknown, unknown>([[1, { a: new Map([[2, 'z']]) }]]), py: "{1: {'a': {2: 'z'}}}" },
  { name: 'Map with only str keys (arrives back as object)', js: new Map([['a', 1]]), py: "{'a': 1}", fromPy: { a: 1 } },
  { name: 'null-prototype object', js: nullProto, py: "{'a': 1}", fromPy: { a: 1 } },
  { name: "object with an own '__proto__' key", js: JSON.parse('{"__proto__": 1, "x": 2}'), py: "{'__proto__': 1, 'x': 2}" },
  { name: 'object with integer-like str keys', js: { b: 1, '1': 2 }, py: "{'b': 1, '1': 2}" },
]
const ROW = new Map(ROWS.map((r) => [r.name, r]))

/** Strict structural equality: number vs BigInt, -0 vs 0, NaN equals NaN, Buffer only equals Buffer, Map order, prototypes. */
function sameJs(a: unknown, b: unknown): boolean {
  if (typeof a !== typeof b) return false
  if (typeof a === 'number') return Object.is(a, b)
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b)
  if (Array.isArray(a) || Array.isArray(b))
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJs(x, b[i]))
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map && b instanceof Map) || a.size !== b.size) return false
    const ea = [...a]
    const eb = [...b]
    return ea.every(([k, v], i) => sameJs(k, eb[i][0]) && sameJs(v, eb[i][1]))
  }
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && sameJs((a as any)[k], (b as any)[k]))
}

const show = (v: unknown) => inspect(v, { depth: 40, breakLength: Infinity, maxStringLength: 80 })

/** The TypeScript server a Python client calls. */
class TsServer extends RPCProtocol {
  rpc_echo(_sender: Address, x: unknown) {
    return x
  }
  async rpc_echo_async(_sender: Address, x: unknown) {
    await sleep(0)
    return x
  }
  rpc_check(_sender: Address, name: string, x: unknown) {
    const row = ROW.get(name)
    return [row !== undefined && sameJs(x, fromPy(row)), show(x)]
  }
  rpc_boom(): never {
    throw new Error('boom')
  }
  async rpc_boom_async(): Promise<never> {
    await sleep(0)
    throw new Error('boom')
  }
  rpc_blob(_sender: Address, n: number) {
    return 'x'.repeat(n)
  }
  rpc_unencodable() {
    return new Date()
  }
  rpc_mul(_sender: Address, i: number, k: number) {
    return [i, i * k]
  }
  async rpc_mul_async(_sender: Address, i: number, k: number) {
    await sleep(Math.random() * 5)
    return [i, i * k]
  }
  rpc_sender(sender: Address) {
    return sender
  }
}

async function tsServer(t: ExecutionContext, backend: BackendName, options: RPCProtocolOptions = {}) {
  return listening(t, (o) => new TsServer(o), { backend, waitTimeout: 0.5, ...options })
}

async function tsClient(t: ExecutionContext, backend: BackendName, options: RPCProtocolOptions = {}) {
  return (await listening(t, (o) => new RPCProtocol<any>(o), { backend, waitTimeout: 10, ...options })).proto
}

async function peerWithCases(t: ExecutionContext): Promise<PythonPeer> {
  const peer = await PythonPeer.start(t)
  await peer.cases(Object.fromEntries(ROWS.map((r) => [r.name, [r.py, r.back ?? null]])))
  return peer
}

// ---------------------------------------------------------------------------
// Value mapping, live
// ---------------------------------------------------------------------------

eachBackend('TypeScript client -> Python server: every mapping row, sync and async handlers', async (t, backend) => {
  const peer = await peerWithCases(t)
  const client = await tsClient(t, backend)
  const addr = peer.address
  await Promise.all(
    ROWS.map(async (row) => {
      // Python builds the value itself and returns it: what TypeScript decodes.
      const [ok, value] = await client.call.value(addr, row.name)
      t.true(ok, `${row.name}: value`)
      t.true(sameJs(value, fromPy(row)), `${row.name}: Python sent ${row.py}, TypeScript got ${show(value)}, want ${show(fromPy(row))}`)
      if (!has(row, 'js')) return
      for (const method of ['check', 'check_async']) {
        const r = await client.call[method](addr, row.name, row.js)
        t.true(r[0], `${row.name}: ${method} answered`)
        const [same, seen] = r[1] as [boolean, string]
        t.true(same, `${row.name}: ${method}: TypeScript sent ${show(row.js)}, Python saw ${seen}, want ${row.py}`)
      }
      for (const method of ['echo', 'echo_async']) {
        const r = await client.call[method](addr, row.js)
        t.true(r[0], `${row.name}: ${method} answered`)
        t.true(sameJs(r[1], fromPy(row)), `${row.name}: ${method} came back as ${show(r[1])}, want ${show(fromPy(row))}`)
      }
    }),
  )
  t.is(client.stats().droppedTotal, 0)
})

eachBackend('Python client -> TypeScript server: every mapping row, sync and async handlers', async (t, backend) => {
  const peer = await peerWithCases(t)
  const { proto: server, address } = await tsServer(t, backend)
  const results: Array<{ name: string; check: [boolean, string] | string; echo: [boolean, boolean, string]; echoAsync: [boolean, boolean, string] }> =
    await peer.command('rows', { host: address[0], port: address[1], names: ROWS.map((r) => r.name), timeout: 10 })
  t.is(results.length, ROWS.length)
  for (const r of results) {
    const row = ROW.get(r.name)!
    t.true(Array.isArray(r.check) && r.check[0] === true, `${r.name}: Python sent ${row.py}; TypeScript saw ${show(r.check)}, want ${show(fromPy(row))}`)
    t.deepEqual(r.echo.slice(0, 2), [true, true], `${r.name}: echo came back to Python as ${r.echo[2]}, want ${row.back ?? row.py}`)
    t.deepEqual(r.echoAsync.slice(0, 2), [true, true], `${r.name}: echo_async came back to Python as ${r.echoAsync[2]}, want ${row.back ?? row.py}`)
  }
  const s = server.stats()
  t.is(s.droppedTotal, 0)
  t.is(s.requestsReceived, 3 * ROWS.length)
  t.deepEqual(await peer.command('outstanding'), 0)
})

// The original README's client calls sayhi(('', 1234), ...): Python 5.0.1 sends to INADDR_ANY, which the kernel delivers locally.
eachBackend("'' as the call host reaches the local host both ways, as in Python", async (t, backend) => {
  const peer = await PythonPeer.start(t)
  const { proto: client, address: clientAddress } = await listening(t, (o) => new RPCProtocol<any>(o), { backend, waitTimeout: 10 })
  t.deepEqual(await client.call.echo(['', peer.address[1]], 'hi'), [true, 'hi'])
  // Python sees the call come from the client's loopback address, and the answer passes the sender check.
  t.deepEqual(await client.call.sender(['', peer.address[1]]), [true, clientAddress])
  const { address } = await tsServer(t, backend)
  t.like(await peer.command('call', { host: '', port: address[1], method: 'echo', args: ["'hi'"], timeout: 5 }), { answered: true, describe: "str('hi')" })
})

eachBackend('values TypeScript cannot represent: RPCEncodeError before anything is sent', async (t, backend) => {
  const peer = await PythonPeer.start(t)
  const client = await tsClient(t, backend)
  class Thing {
    x = 1
  }
  const refused: Array<[string, unknown]> = [
    ['Date', new Date()],
    ['Set', new Set([1])],
    ['class instance', new Thing()],
    ['function', () => 1],
    ['Symbol', Symbol('s')],
    ['BigInt 2^64', 2n ** 64n],
    ['BigInt -2^63-1', -(2n ** 63n) - 1n],
    ['lone surrogate', 'a\ud800b'],
    ['lone low surrogate in a long string', 'x'.repeat(100) + '\udc00'],
    ['Int16Array', new Int16Array(2)],
    ['ArrayBuffer', new ArrayBuffer(2)],
    ['Date inside a map', { when: new Date() }],
    ['argument nested 31 deep (33 containers with the request)', nest(31)],
  ]
  for (const [what, value] of refused) {
    const err = await t.throwsAsync(client.call.echo(peer.address, value), { instanceOf: RPCEncodeError }, what)
    t.is(err?.code, 'ERR_RPC_ENCODE', what)
  }
  t.is(client.stats().requestsSent, 0)
  // the deepest argument that is allowed does go through
  const [ok, v] = await client.call.echo(peer.address, nest(30))
  t.true(ok)
  t.true(sameJs(v, nest(30)))
})

eachBackend('values umsgpack cannot unpack (unhashable or Python-equal map keys): the request is lost, the call times out', async (t, backend) => {
  const peer = await PythonPeer.start(t)
  const client = await tsClient(t, backend)
  const echo = (v: unknown) => client.callRemote(peer.address, 'echo', [v], { timeout: 0.5 })
  const results = await Promise.all([
    echo(new Map([[{ a: 1 }, 1]])), // a dict key: unhashable in Python
    echo(new Map<unknown, unknown>([[1, 'a'], [true, 'b']])), // 1 == True in Python
    echo(new Map<unknown, unknown>([[1, 'a'], [1n, 'b']])), // distinct JS keys, the same int on the wire
  ])
  for (const r of results) t.deepEqual(r, [false, null, { code: 'timeout', message: 'no answer within the timeout' }])
  const logs = await peer.logsUntil((ls) => ls.filter((l) => l.startsWith('task exception: ')).length >= 3)
  t.is(logs.filter((l) => l.startsWith('task exception: UnhashableKeyException')).length, 1, logs.join('\n'))
  t.is(logs.filter((l) => l.startsWith('task exception: DuplicateKeyException')).length, 2, logs.join('\n'))
  // an array key is fine: Python makes it a tuple
  const [ok, v] = await client.call.echo(peer.address, new Map([[[1, [2]], 'x']]))
  t.true(ok)
  t.true(sameJs(v, new Map([[[1, [2]], 'x']])))
})

eachBackend('values Python sends that TypeScript cannot accept: counted drops, the call times out', async (t, backend) => {
  const peer = await peerWithCases(t)
  await peer.cases({
    datetime: ['datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)', null],
    ext: ["Ext(5, b'abc')", null],
    'nest 32': ['nest(32)', null],
    'nest 33': ['nest(33)', null],
    '2**64': ['2**64', null],
  })
  const client = await tsClient(t, backend)
  const addr = peer.address
  const value = (name: string, timeout = 0.5) => client.callRemote(addr, 'value', [name], { timeout })
  const [datetime, ext, nest32, nest33, huge] = await Promise.all([
    value('datetime'),
    value('ext'),
    value('nest 32', 5),
    value('nest 33'),
    value('2**64'),
  ])
  for (const [what, r] of [['datetime (ext -1)', datetime], ['Ext(5)', ext], ['33 nested arrays', nest33], ['2**64', huge]] as const)
    t.deepEqual(r, [false, null, { code: 'timeout', message: 'no answer within the timeout' }], what)
  t.true(nest32[0], 'a reply of 32 nested arrays is accepted')
  t.true(sameJs(nest32[1], nest(32)))
  await waitFor(() => client.stats().dropped.unsupportedType === 2 && client.stats().dropped.tooDeep === 1)
  const s = client.stats()
  t.is(s.dropped.unsupportedType, 2)
  t.is(s.dropped.tooDeep, 1)
  t.is(s.timeouts, 4)
  // Python could not even pack 2**64: an unretrieved task exception on its side, nothing sent.
  const logs = await peer.logsUntil((ls) => ls.some((l) => /UnsupportedTypeException/.test(l)))
  t.true(logs.some((l) => /UnsupportedTypeException.*huge unsigned int/.test(l)), logs.join('\n'))
})

eachBackend('requests from Python that TypeScript drops: too deep, invalid UTF-8, short', async (t, backend) => {
  const peer = await PythonPeer.start(t)
  const { proto: server, address } = await tsServer(t, backend)
  // 31 nested arrays in an argument is 33 containers in the request body: dropped, Python times out.
  const deep = await peer.call(address, 'echo', ['nest(31)'], { timeout: 0.5 })
  t.is(deep.answered, false)
  const ok = await peer.call(address, 'echo', ['nest(30)'], { timeout: 2, expect: 'nest(30)' })
  t.true(ok.answered && ok.same)
  // Raw datagrams from the Python client's socket: a request whose argument is invalid UTF-8, and 21 bytes.
  const id = '11'.repeat(20)
  const badUtf8 = '00' + id + '92' + 'a4' + Buffer.from('echo').toString('hex') + '91' + 'a2' + 'c328'
  await peer.command('sendraw', { host: address[0], port: address[1], hex: badUtf8 })
  await peer.command('sendraw', { host: address[0], port: address[1], hex: '00' + id })
  await waitFor(() => server.stats().dropped.badUtf8 === 1 && server.stats().dropped.tooShort === 1 && server.stats().dropped.tooDeep === 1)
  const s = server.stats()
  t.is(s.dropped.tooDeep, 1)
  t.is(s.dropped.badUtf8, 1)
  t.is(s.dropped.tooShort, 1)
  t.is(s.requestsReceived, 1)
})

async function waitFor(cond: () => boolean, ms = 3000) {
  const end = Date.now() + ms
  while (!cond() && Date.now() < end) await sleep(10)
}

// ---------------------------------------------------------------------------
// Failures and timeouts
// ---------------------------------------------------------------------------

eachBackend('Python client -> TypeScript server: unknown method, throwing handlers, unencodable and too-large replies time out after wait_timeout', async (t, backend) => {
  const peer = await PythonPeer.start(t)
  const { proto: server, address } = await tsServer(t, backend)
  const started = Date.now()
  const results = await Promise.all([
    peer.call(address, 'nope', [], { timeout: 0.5 }),
    peer.call(address, 'boom', [], { timeout: 0.5 }),
    peer.call(address, 'boom_async', [], { timeout: 0.5 }),
    peer.call(address, 'unencodable', [], { timeout: 0.5 }),
    peer.call(address, 'blob', ['8190'], { timeout: 0.5 }), // reply body 8193 bytes
  ])
  t.true(Date.now() - started >= 450)
  for (const r of results) t.deepEqual([r.answered, r.describe], [false, 'None'])
  await waitFor(() => server.stats().errorsSent === 5)
  const s = server.stats()
  t.is(s.errorsSent, 5, 'TypeScript answered each with an error reply (type 0x02)')
  t.is(s.unknownMethods, 1)
  t.is(s.handlerErrors, 2)
  t.is(s.replyUnencodable, 1)
  t.is(s.replyTooLarge, 1)
  // Python unpacked each 0x02 body, then ignored the unknown type; nothing raised.
  const unknown = (ls: string[]) => ls.filter((l) => l.startsWith('Received unknown message from'))
  const logs = await peer.logsUntil((ls) => unknown(ls).length >= 5)
  t.is(unknown(logs).length, 5, logs.join('\n'))
  t.false(logs.some((l) => l.startsWith('task exception')), logs.join('\n'))
  // Python is still fine afterwards
  const after = await peer.call(address, 'echo', ["'still here'"], { timeout: 2, expect: "'still here'" })
  t.true(after.answered && after.same)
})

eachBackend('TypeScript client -> Python server: unknown method and throwing handlers time out after waitTimeout', async (t, backend) => {
  const peer = await PythonPeer.start(t)
  const client = await tsClient(t, backend, { waitTimeout: 0.5 })
  const started = Date.now()
  const results = await Promise.all([client.call.nope(peer.address), client.call.boom(peer.address), client.call.boom_async(peer.address)])
  t.true(Date.now() - started >= 450)
  for (const r of results) t.deepEqual(r, [false, null, { code: 'timeout', message: 'no answer within the timeout' }])
  t.is(client.stats().timeouts, 3)
  const logs = await peer.logsUntil((ls) => ls.filter((l) => l === 'task exception: ValueError: boom').length >= 2 && ls.some((l) => l.includes('rpc_nope')))
  t.true(logs.includes('PeerServer has no callable method rpc_nope; ignoring request'), logs.join('\n'))
  t.is(logs.filter((l) => l === 'task exception: ValueError: boom').length, 2, logs.join('\n'))
})

// ---------------------------------------------------------------------------
// The 8 KiB limit at its exact edge
// ---------------------------------------------------------------------------

const requestLen = (name: string, args: unknown[]) => new Encoder(1 << 16).encodeRequest(name, args)

eachBackend('8 KiB request limit: both sides refuse at 8193 body bytes and send 8192', async (t, backend) => {
  const peer = await PythonPeer.start(t)
  const { proto: server, address } = await tsServer(t, backend)
  const client = await tsClient(t, backend)
  // ['echo', ['x' * n]] is 10 + n bytes of msgpack
  t.is(requestLen('echo', ['x'.repeat(8182)]), 8192)
  // Python -> TypeScript: the largest request Python sends is accepted.
  const largest = await peer.call(address, 'echo', ["'x'*8182"], { timeout: 2, expect: "'x'*8182" })
  t.is(largest.bodyLen, 8192)
  t.true(largest.answered && largest.same, JSON.stringify(largest))
  const tooBig = await peer.call(address, 'echo', ["'x'*8183"], { timeout: 2 })
  t.is(tooBig.raised, 'MalformedMessage')
  t.is(tooBig.bodyLen, 8193)
  t.is(server.stats().requestsReceived, 1)
  // TypeScript -> Python: 8192 goes through, 8193 is refused like Python refuses it.
  const [ok, echoed] = await client.call.echo(peer.address, 'x'.repeat(8182))
  t.true(ok)
  t.is(echoed, 'x'.repeat(8182))
  const err = await t.throwsAsync(client.call.echo(peer.address, 'x'.repeat(8183)), { instanceOf: RPCSizeError })
  t.is(err?.code, 'ERR_RPC_TOO_LARGE')
  t.is((err as RPCSizeError).limit, 8192)
  t.is((err as RPCSizeError).size, 8193)
  // a multi-byte edge: the limit counts UTF-8 bytes, not characters
  t.is(requestLen('echo', ['€'.repeat(2727) + 'x']), 8192)
  t.true((await client.call.echo(peer.address, '€'.repeat(2727) + 'x'))[0])
  await t.throwsAsync(client.call.echo(peer.address, '€'.repeat(2727) + 'xx'), { instanceOf: RPCSizeError })
  t.is(client.stats().requestsSent, 2)
})

eachBackend('8 KiB reply limit: TypeScript sends a 8192-byte reply, refuses 8193; accepts Python replies of any size', async (t, backend) => {
  const peer = await PythonPeer.start(t)
  const { proto: server, address } = await tsServer(t, backend)
  const client = await tsClient(t, backend)
  t.is(new Encoder(1 << 16).encode('x'.repeat(8189)), 8192)
  const edge = await peer.call(address, 'blob', ['8189'], { timeout: 2, expect: "'x'*8189" })
  t.true(edge.answered && edge.same)
  const over = await peer.call(address, 'blob', ['8190'], { timeout: 0.5 })
  t.false(over.answered)
  t.is(server.stats().replyTooLarge, 1)
  // Python has no limit on replies; TypeScript takes them (up to what fits a datagram).
  const [ok, big] = await client.call.blob(peer.address, 20000)
  t.true(ok)
  t.is(big, 'x'.repeat(20000))
})

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

eachBackend('1000 interleaved calls TypeScript -> Python, each answer matched to its call', async (t, backend) => {
  const peer = await PythonPeer.start(t)
  const client = await tsClient(t, backend, { waitTimeout: 10 })
  const results = await Promise.all(
    Array.from({ length: 1000 }, (_, i) => client.callRemote(peer.address, i % 2 ? 'mul_async' : 'mul', [i, 3 + (i % 7)])),
  )
  let good = 0
  results.forEach((r, i) => {
    if (r[0] && sameJs(r[1], [i, i * (3 + (i % 7))])) good++
    else t.fail(`call ${i}: ${show(r)}`)
  })
  t.is(good, 1000)
  t.is(client.stats().responsesReceived, 1000)
})

eachBackend('1000 interleaved calls Python -> TypeScript, each answer matched to its call', async (t, backend) => {
  const peer = await PythonPeer.start(t)
  const { proto: server, address } = await tsServer(t, backend)
  const r = await peer.command('burst', { host: address[0], port: address[1], n: 1000, methods: ['mul', 'mul_async'], window: 1000, timeout: 10 })
  t.deepEqual(r, { n: 1000, missing: 0, wrong: [], wrongCount: 0 })
  t.is(server.stats().requestsReceived, 1000)
  t.is(server.stats().responsesSent, 1000)
})

// ---------------------------------------------------------------------------
// Byte for byte (codec only: one run, not per backend)
// ---------------------------------------------------------------------------

test('[codec] our encoder writes the bytes umsgpack.packb writes', async (t) => {
  const peer = await PythonPeer.start(t)
  // every row except the ones whose JS form packs differently on purpose
  const differs = new Set([
    'object with integer-like str keys', // JS orders integer-like keys first: same map, other byte order
  ])
  const rows = ROWS.filter((r) => has(r, 'js') && !differs.has(r.name))
  const extra: Array<[unknown, string]> = [
    [2 ** 32 + 1, '2**32+1'],
    [-(2 ** 32), '-2**32'],
    [Number.MIN_SAFE_INTEGER, '-(2**53-1)'],
    [2n ** 32n - 1n, '2**32-1'],
    [-(2n ** 31n), '-2**31'],
    [0n, '0'],
    ['a'.repeat(255), "'a'*255"],
    ['a'.repeat(65535), "'a'*65535"],
    ['a'.repeat(65536), "'a'*65536"],
    [Buffer.alloc(255, 7), "b'\\x07'*255"],
    [Buffer.alloc(256, 7), "b'\\x07'*256"],
    [Buffer.alloc(65536, 7), "b'\\x07'*65536"],
    [Array.from({ length: 15 }, () => 1), '[1]*15'],
    [Array.from({ length: 65536 }, () => 1), '[1]*65536'],
    [Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, i])), "dict([('k' + str(i), i) for i in range(15)])"],
    [new Map(Array.from({ length: 65536 }, (_, i) => [i, 0])), 'dict([(i, 0) for i in range(65536)])'],
    [nest(32), 'nest(32)'],
  ]
  const cases: Array<[unknown, string, string]> = [
    ...rows.map((r): [unknown, string, string] => [r.js, r.py, r.name]),
    ...extra.map(([v, p]): [unknown, string, string] => [v, p, p]),
  ]
  const hex = await peer.packb(cases.map((c) => c[1]))
  const enc = new Encoder(1 << 20)
  cases.forEach(([value, py, name], i) => {
    const ours = enc.bytes.subarray(0, enc.encode(value)).toString('hex')
    t.is(ours, hex[i], `${name} (${py})`)
  })
  // whole request bodies, as Python's call proxy packs them: [name, args-tuple]
  const requests: Array<[string, unknown[], string[]]> = [
    ['sayhi', ['Snake Plissken'], ["'Snake Plissken'"]],
    ['store', [Buffer.from('key'), 2n ** 64n - 1n, { a: [1.5, null] }], ["b'key'", '2**64-1', "{'a': [1.5, None]}"]],
    ['ping', [], []],
  ]
  for (const [name, args, pyArgs] of requests) {
    const theirs = await peer.command('packrequest', { name, args: pyArgs })
    t.is(enc.bytes.subarray(0, enc.encodeRequest(name, args)).toString('hex'), theirs, name)
  }
})

test('[codec] our decoder reads what umsgpack.packb writes, including forms we never write', async (t) => {
  const peer = await PythonPeer.start(t)
  const dec = new Decoder()
  const decodeHex = (h: string) => {
    const b = Buffer.from(h, 'hex')
    return dec.decode(b, 0, b.length)
  }
  const rows = ROWS
  const hex = await peer.packb(rows.map((r) => r.py))
  rows.forEach((r, i) => t.true(sameJs(decodeHex(hex[i]), fromPy(r)), `${r.name}: ${show(decodeHex(hex[i]))}`))
  // float32 (umsgpack's force_float_precision='single'; neither side sends it by default)
  const [f32] = await peer.packb(['1.5'], 'single')
  t.is(f32, 'ca3fc00000')
  t.is(decodeHex(f32), 1.5)
  // ext types, including the timestamp umsgpack writes for datetime, are refused
  for (const e of ["Ext(5, b'abc')", 'datetime.datetime(2020, 1, 1)', "[1, Ext(-3, b'x')]"]) {
    const [h] = await peer.packb([e])
    const err = t.throws(() => decodeHex(h), { instanceOf: DecodeFailure }, e)
    t.is(err?.reason, 'unsupportedType', e)
  }
  // invalid UTF-8 is refused; umsgpack refuses it too
  t.is((t.throws(() => decodeHex('a2c328'), { instanceOf: DecodeFailure }) as DecodeFailure).reason, 'badUtf8')
  await t.throwsAsync(peer.command('unpackb', { hex: 'a2c328' }), { message: /InvalidStringException/ })
  // what TypeScript packs, umsgpack reads as the same value (spot check of the table's other direction)
  const enc = new Encoder(1 << 16)
  const v = new Map<unknown, unknown>([[Buffer.from('k'), [2n ** 64n - 1n, -0, 'é']]])
  const r = await peer.command('unpackb', { hex: enc.bytes.subarray(0, enc.encode(v)).toString('hex'), expect: "{b'k': [2**64-1, -0.0, '\\u00e9']}" })
  t.true(r.same, r.describe)
})

// ---------------------------------------------------------------------------
// Python's own handling of odd datagrams (the behaviour docs/PROTOCOL.md describes)
// ---------------------------------------------------------------------------

test('[python] how rpcudp 5.0.1 treats short, unknown-type, undecodable and oddly shaped datagrams', async (t) => {
  const peer = await PythonPeer.start(t)
  const sock = createSocket('udp4')
  t.teardown(() => sock.close())
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve))
  const answers: Buffer[] = []
  sock.on('message', (m) => answers.push(m))
  const id = (n: number) => Buffer.alloc(20, n)
  const send = (b: Buffer) => new Promise<void>((resolve) => sock.send(b, peer.address[1], peer.address[0], () => resolve()))
  const enc = new Encoder(1 << 16)
  const body = (v: unknown) => Buffer.from(enc.bytes.subarray(0, enc.encode(v)))
  // 21 bytes: too small
  await send(Buffer.concat([Buffer.from([0]), id(1)]))
  // unknown type 0x02 with a valid body: unpacked, then ignored
  await send(Buffer.concat([Buffer.from([2]), id(2), body(['unknown_method', 'x'])]))
  // unknown type 0x07 with an undecodable body: the unpack raises first
  await send(Buffer.concat([Buffer.from([7]), id(3), Buffer.from([0xc1])]))
  // a request with trailing bytes after the body: Python ignores them and answers
  await send(Buffer.concat([Buffer.from([0]), id(4), body(['echo', ['trailing']]), Buffer.from([0xc0])]))
  // args given as a string: Python splats it into characters and answers
  await send(Buffer.concat([Buffer.from([0]), id(5), body(['describe', 'z'])]))
  // a map with a duplicate key: umsgpack raises
  await send(Buffer.concat([Buffer.from([0]), id(6), Buffer.from('92a46563686f9182a16101a16102', 'hex')]))
  // a response nobody asked for
  await send(Buffer.concat([Buffer.from([1]), id(7), body('late')]))
  await waitFor(() => answers.length >= 2)
  const patterns = [
    /^received datagram too small from/,
    /^Received unknown message from/,
    /^task exception: ReservedCodeException/,
    /^task exception: DuplicateKeyException/,
    /^received unknown message .* from/,
  ]
  const logs = await peer.logsUntil((ls) => patterns.every((re) => ls.some((l) => re.test(l))))
  await sleep(50) // no third answer straggling in
  const has = (re: RegExp) => t.true(logs.some((l) => re.test(l)), `${re}\n${logs.join('\n')}`)
  patterns.forEach(has)
  const byId = new Map(answers.map((a) => [a[1], new Decoder().decode(a, 21, a.length)]))
  t.is(answers.length, 2)
  t.is(byId.get(4), 'trailing')
  t.is(byId.get(5), "str('z')")
  t.true(answers.every((a) => a[0] === 1))
})
