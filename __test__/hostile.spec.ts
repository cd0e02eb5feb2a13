/**
 * Hostile peers: malformed datagrams for every drop reason, spoofed answers,
 * misbehaving handlers, limits, and IPv6 / dual-stack. Every test runs on both
 * backends, which must agree to the counter.
 */
import test, { type ExecutionContext } from 'ava'
import { RPCOverloadedError, RPCArgumentError, RPCProtocol, type BackendName, type RPCProtocolOptions } from '../src/index'
import type { WireDropReason } from '../src/transport'
import { BACKENDS, eachBackend, listening } from './helpers/backends'
import { ERROR, REQUEST, RESPONSE, RawPeer, datagram, delta, newId, requestBody, sleep, until, valueBody } from './helpers/raw'

const ID = Buffer.alloc(20, 0x5a)
const dg = (type: number, body: number[] | Buffer) => datagram(type, ID, body)
const str = (s: string) => [0xa0 | s.length, ...Buffer.from(s)]
const nestedArrays = (n: number, tail: number[] = [0x01]) => [...new Array(n).fill(0x91), ...tail]

/** Datagrams that must be dropped, by the reason they must be counted under (same on both backends). */
// oversize needs IPv6 (an IPv4 datagram cannot exceed the limit): its own test below.
// rateLimited has its own tests (controls.spec.ts); unverified is a held-back reply (reflection.spec.ts).
const VECTORS: Record<Exclude<WireDropReason, 'wrongSender' | 'sendFailed' | 'oversize' | 'rateLimited' | 'unverified'>, Buffer[]> = {
  tooShort: [
    Buffer.alloc(0),
    Buffer.from([REQUEST]),
    dg(REQUEST, []), // header only: 21 bytes
    dg(9, []), // length is checked before the type
  ],
  unknownType: [dg(3, [0xc0]), dg(0x80, [0x92, ...str('x'), 0x90]), dg(0xff, [0xc0])],
  malformed: [
    dg(REQUEST, [0xc1]), // the reserved marker
    dg(REQUEST, [0x92, 0xa1]), // str runs past the end
    dg(RESPONSE, [0xc0, 0xc0]), // trailing bytes
    dg(REQUEST, [0x95, 0x01]), // array claims more elements than there are bytes
    dg(REQUEST, [0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]), // str32 of 4 GiB
    dg(REQUEST, [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]), // array32 of 4 G elements
    dg(RESPONSE, [0xdf, 0x7f, 0xff, 0xff, 0xff, 0x01]), // map32 of 2 G pairs
    dg(RESPONSE, [0xc6, 0, 0, 0, 5, 1]), // bin32 short
    dg(RESPONSE, [0xcb, 0, 0]), // float64 short
    dg(RESPONSE, [0xdc, 0x00]), // array16 header short
    // nesting at the depth limit whose last header also lies about its length: the length is checked first
    dg(RESPONSE, nestedArrays(33, [])),
    dg(RESPONSE, [...new Array(32).fill(0x91), 0x81]),
  ],
  tooDeep: [
    dg(RESPONSE, nestedArrays(33)),
    dg(RESPONSE, nestedArrays(32, [0x90])), // an empty 33rd container is still one too many
    dg(RESPONSE, [...new Array(33).fill([0x81, 0x01]).flat(), 0x01]), // maps
    dg(REQUEST, [0x92, ...str('echo'), ...nestedArrays(32)]), // deep args
    dg(REQUEST, nestedArrays(40)), // depth is checked before the request shape
  ],
  badRequest: [
    dg(REQUEST, [0x90]), // []
    dg(REQUEST, [0x91, ...str('echo')]), // ["echo"]
    dg(REQUEST, [0x92, 0x01, 0x90]), // [1, []]
    dg(REQUEST, [0x92, ...str('echo'), 0x01]), // ["echo", 1]
    dg(REQUEST, [0x93, ...str('echo'), 0x90, 0xc0]), // three elements
    dg(REQUEST, [0x80]), // {}
    dg(REQUEST, [0xc0]), // nil
    dg(ERROR, [0x92, 0x01, 0xa0]), // error reply [1, ""]
    dg(ERROR, [0x91, ...str('x')]), // error reply ["x"]
    dg(ERROR, [...str('x')]), // error reply "x"
  ],
  badUtf8: [
    dg(REQUEST, [0x92, 0xa1, 0xff, 0x90]), // method name
    dg(RESPONSE, [0xa2, 0xc3, 0x28]),
    dg(REQUEST, [0x92, ...str('echo'), 0x91, 0xa3, 0xed, 0xa0, 0x80]), // an encoded surrogate
    dg(RESPONSE, [0xa2, 0xc0, 0xaf]), // overlong
    dg(RESPONSE, [0x81, 0xa1, 0xfe, 0x01]), // map key
  ],
  unsupportedType: [
    dg(RESPONSE, [0xd4, 0x01, 0x00]), // fixext1
    dg(RESPONSE, [0xd6, 0xff, 0, 0, 0, 0]), // the msgpack timestamp ext
    dg(REQUEST, [0x92, ...str('echo'), 0x91, 0xc7, 0x01, 0x05, 0x00]), // ext8 in args
    dg(RESPONSE, [0x91, 0xd4]), // ext is refused at its marker, before its length
  ],
  unmatchedResponse: [
    dg(RESPONSE, [0xc0]), // no call outstanding with this id
    datagram(RESPONSE, newId(), valueBody({ a: 1 })),
    dg(ERROR, [0x92, ...str('unknown_method'), ...str('x')]), // a well-formed error reply nobody asked for
  ],
}

function server(t: ExecutionContext, backend: BackendName, options: RPCProtocolOptions = {}, host?: string) {
  const make = (o: RPCProtocolOptions) =>
    new RPCProtocol(o).handle('fence', () => 'ok').handle('echo', (_sender, ...args) => args)
  return listening(t, make, { ...options, backend }, host)
}

async function rawPeer(t: ExecutionContext, host = '127.0.0.1', port = 0) {
  const peer = await RawPeer.open(host, port)
  t.teardown(() => peer.close())
  return peer
}

for (const [reason, vectors] of Object.entries(VECTORS)) {
  eachBackend(`drops ${reason} datagrams, counts exactly that, keeps serving`, async (t, backend) => {
    const { proto, address } = await server(t, backend)
    const peer = await rawPeer(t)
    const before = proto.stats()
    for (const v of vectors) await peer.send(v, address)
    const fence = await peer.fence(address)
    t.deepEqual(fence.msg.subarray(21), valueBody('ok'))
    // the drops, plus the fence request and its answer, and nothing else
    t.deepEqual(delta(before, proto.stats()), {
      [`dropped.${reason}`]: vectors.length,
      droppedTotal: vectors.length,
      requestsReceived: 1,
      responsesSent: 1,
    })
    // no datagram other than the fence's answer came back
    await sleep(20)
    t.is(peer.received.length, 0)
    const client = (await listening(t, (o) => new RPCProtocol(o), { backend })).proto
    t.deepEqual(await client.callRemote(address, 'echo', [1, 'two']), [true, [1, 'two']])
  })
}

test('both backends classify every vector identically', async (t) => {
  const counts: Record<string, Record<string, number>> = {}
  for (const backend of BACKENDS) {
    const { proto, address } = await server(t, backend)
    const peer = await rawPeer(t)
    for (const vectors of Object.values(VECTORS)) for (const v of vectors) await peer.send(v, address)
    await peer.fence(address)
    counts[backend] = proto.stats().dropped
  }
  t.deepEqual(counts.native, counts.pure)
})

// ---------------------------------------------------------------- spoofing

/** A client and a silent peer it calls; the test answers (or not) by hand. */
async function callSilentPeer(t: ExecutionContext, backend: BackendName, options: RPCProtocolOptions = {}) {
  const { proto: client, address: clientAddr } = await listening(t, (o) => new RPCProtocol(o), { ...options, backend })
  const target = await rawPeer(t)
  const settled: { value?: unknown } = {}
  const call = client.callRemote(target.address, 'echo', ['hi']).then((r) => (settled.value = r))
  const request = await target.next((r) => r.msg[0] === REQUEST)
  const id = request.msg.subarray(1, 21)
  t.deepEqual(request.msg.subarray(21), requestBody('echo', ['hi']))
  return { client, clientAddr, target, id, call, settled }
}

eachBackend('an answer with the right id from another port or IP is dropped as wrongSender', async (t, backend) => {
  const { client, clientAddr, target, id, call, settled } = await callSilentPeer(t, backend)
  const otherPort = await rawPeer(t)
  const sameHostPort = await rawPeer(t, '127.0.0.2', target.address[1]).catch(() => null) // same port, other IP
  const before = client.stats()
  await otherPort.send(datagram(RESPONSE, id, valueBody('spoofed')), clientAddr)
  await otherPort.send(datagram(ERROR, id, valueBody(['handler_error', 'spoofed'])), clientAddr)
  if (sameHostPort) await sameHostPort.send(datagram(RESPONSE, id, valueBody('spoofed')), clientAddr)
  const spoofs = sameHostPort ? 3 : 2
  await until(() => client.stats().dropped.wrongSender === spoofs, 10000, 'wrongSender drops')
  await sleep(30)
  t.is(settled.value, undefined, 'a spoofed answer settled the call')
  t.is(client.stats().outstanding, 1)
  // the real answer still gets through, once
  await target.send(datagram(RESPONSE, id, valueBody('real')), clientAddr)
  t.deepEqual(await call, [true, 'real'])
  await target.send(datagram(RESPONSE, id, valueBody('again')), clientAddr)
  await until(() => client.stats().dropped.unmatchedResponse === 1, 10000, 'the duplicate to be dropped')
  t.deepEqual(delta(before, client.stats()), {
    'dropped.wrongSender': spoofs,
    'dropped.unmatchedResponse': 1,
    droppedTotal: spoofs + 1,
    responsesReceived: 1,
    outstanding: -1,
  })
})

eachBackend('answers with random ids never resolve a call', async (t, backend) => {
  const { proto: client, address: clientAddr } = await listening(t, (o) => new RPCProtocol(o), { backend, waitTimeout: 0.4 })
  const target = await rawPeer(t)
  const started = performance.now()
  const call = client.callRemote(target.address, 'echo', ['hi'])
  const request = await target.next((r) => r.msg[0] === REQUEST)
  const id = request.msg.subarray(1, 21)
  // from the very address the call went to, every id but the right one
  const N = 2000
  for (let i = 0; i < N; i++) {
    const wrong = newId()
    if (i % 4 === 0) {
      wrong.set(id.subarray(0, 19)) // even ids one byte away
      wrong[19] = id[19] ^ (1 + (i % 255))
    }
    await target.send(datagram(i % 2 ? RESPONSE : ERROR, wrong, i % 2 ? valueBody(i) : valueBody(['overloaded', ''])), clientAddr)
  }
  const r = await call
  t.deepEqual(r, [false, null, { code: 'timeout', message: 'no answer within the timeout' }])
  t.true(performance.now() - started >= 390)
  // On a loaded machine the call may time out while forged answers are still queued: wait for all of them.
  await until(() => client.stats().dropped.unmatchedResponse >= N, 10000, 'every forged answer to be counted')
  const s = client.stats()
  t.is(s.dropped.unmatchedResponse, N)
  t.is(s.responsesReceived + s.errorsReceived, 0)
  t.is(s.timeouts, 1)
})

eachBackend('checkSender: false accepts an answer from any address (the documented trade-off)', async (t, backend) => {
  const { clientAddr, id, call } = await callSilentPeer(t, backend, { checkSender: false })
  const other = await rawPeer(t)
  await other.send(datagram(RESPONSE, id, valueBody('from elsewhere')), clientAddr)
  t.deepEqual(await call, [true, 'from elsewhere'])
})

// ---------------------------------------------------------------- handlers

class Misbehaving extends RPCProtocol {
  rpc_throws() {
    throw new Error('secret detail')
  }
  async rpc_rejects() {
    throw new Error('async secret')
  }
  rpc_rejectsNonError() {
    return Promise.reject('a string')
  }
  rpc_function() {
    return () => 1
  }
  rpc_date() {
    return new Date()
  }
  rpc_instance() {
    return new (class Point {
      x = 1
    })()
  }
  async rpc_asyncDate() {
    return new Date()
  }
  rpc_loneSurrogate() {
    return 'a\ud800b'
  }
  rpc_big() {
    return 'x'.repeat(9000)
  }
  async rpc_bigAsync() {
    return { list: new Array(3000).fill('abc') }
  }
  rpc_ok(_sender: unknown, x: unknown) {
    return ['ok', x]
  }
}

const failure = (code: string, message?: string) => [false, null, message === undefined ? { code } : { code, message }]
const codeOf = (r: unknown[]) => (r[0] ? r : [r[0], r[1], { code: (r[2] as any).code }])

eachBackend('misbehaving handlers: callers get error replies, the server keeps serving', async (t, backend) => {
  const { server: srv, address, client } = await pairOf(t, backend, {})
  const call = (name: string) => client.callRemote(address, name, [])
  const handlerError = (message: string) => [false, null, { code: 'handlerError', message, remoteCode: 'handler_error' }]
  t.deepEqual(await call('throws'), handlerError('the handler failed'))
  t.deepEqual(await call('rejects'), handlerError('the handler failed'))
  t.deepEqual(await call('rejectsNonError'), handlerError('the handler failed'))
  for (const name of ['function', 'date', 'instance', 'asyncDate', 'loneSurrogate'])
    t.deepEqual(codeOf(await call(name)), failure('replyUnencodable'), name)
  for (const name of ['big', 'bigAsync']) t.deepEqual(codeOf(await call(name)), failure('replyTooLarge'), name)
  t.deepEqual(codeOf(await call('nope')), failure('unknownMethod'))
  t.deepEqual(await client.callRemote(address, 'ok', [42]), [true, ['ok', 42]])
  const s = srv.stats()
  t.like(s, { handlerErrors: 3, replyUnencodable: 5, replyTooLarge: 2, unknownMethods: 1, errorsSent: 11, responsesSent: 1, handlersRunning: 0 })
  t.is(s.droppedTotal, 0)
  t.like(client.stats(), { errorsReceived: 11, responsesReceived: 1, timeouts: 0 })
})

eachBackend('exposeErrors puts the handler message in the error reply', async (t, backend) => {
  const { address, client } = await pairOf(t, backend, { exposeErrors: true })
  for (const [name, text] of [['throws', 'secret detail'], ['rejects', 'async secret'], ['rejectsNonError', 'a string']])
    t.deepEqual(await client.callRemote(address, name, []), [false, null, { code: 'handlerError', message: text, remoteCode: 'handler_error' }], name)
})

eachBackend('errorReplies: false answers failures with silence (callers time out)', async (t, backend) => {
  const { server: srv, address, client } = await pairOf(t, backend, { errorReplies: false, waitTimeout: 0.3 })
  const names = ['throws', 'rejects', 'function', 'big', 'nope']
  const results = await Promise.all(names.map((n) => client.callRemote(address, n, [])))
  for (const r of results) t.deepEqual(codeOf(r), failure('timeout'))
  t.like(srv.stats(), { errorsSent: 0, handlerErrors: 2, replyUnencodable: 1, replyTooLarge: 1, unknownMethods: 1 })
  t.deepEqual(await client.callRemote(address, 'ok', [1]), [true, ['ok', 1]])
})

eachBackend('handlers that never settle fill maxHandlers; the rest is refused as overloaded', async (t, backend) => {
  let started = 0
  const release: (() => void)[] = []
  const make = (o: RPCProtocolOptions) =>
    new RPCProtocol(o)
      .handle('hang', () => new Promise(() => void started++))
      .handle('hold', () => new Promise<string>((r) => release.push(() => r('released'))))
      .handle('ok', () => 'ok')
  const { proto: srv, address } = await listening(t, make, { backend, maxHandlers: 2 })
  const { proto: client } = await listening(t, (o) => new RPCProtocol(o), { backend, waitTimeout: 0.5 })
  const hung = [client.callRemote(address, 'hang', []), client.callRemote(address, 'hold', [])]
  await until(() => srv.stats().handlersRunning === 2, 10000, 'two running handlers')
  t.deepEqual(codeOf(await client.callRemote(address, 'hang', [])), failure('overloaded'))
  t.deepEqual(codeOf(await client.callRemote(address, 'ok', [])), failure('overloaded')) // the limit covers every request
  t.is(started, 1)
  t.is(srv.stats().dropped.handlersBusy, 2)
  t.deepEqual((await Promise.all(hung)).map(codeOf), [failure('timeout'), failure('timeout')])
  release.shift()!() // the held handler finishes after its caller gave up: its answer is unmatched there
  await until(() => client.stats().dropped.unmatchedResponse === 1, 10000, 'the late answer to be dropped')
  await until(() => srv.stats().handlersRunning === 1, 10000, 'the held handler to finish')
  t.deepEqual(await client.callRemote(address, 'ok', []), [true, 'ok'])
  t.like(srv.stats(), { handlersRunning: 1, errorsSent: 2 })
})

eachBackend('maxOutstanding: the call past the limit rejects with RPCOverloadedError', async (t, backend) => {
  const { proto: client } = await listening(t, (o) => new RPCProtocol(o), { backend, maxOutstanding: 3, waitTimeout: 0.3 })
  const silent = await rawPeer(t)
  const calls = [1, 2, 3].map((i) => client.callRemote(silent.address, 'x', [i]))
  const err = await t.throwsAsync(client.callRemote(silent.address, 'x', [4]), { instanceOf: RPCOverloadedError })
  t.is(err?.code, 'ERR_RPC_OVERLOADED')
  await t.throwsAsync(client.call.x(silent.address), { instanceOf: RPCOverloadedError })
  t.is(client.stats().outstanding, 3)
  for (const r of await Promise.all(calls)) t.deepEqual(codeOf(r), failure('timeout'))
  // room again once they settled
  const again = client.callRemote(silent.address, 'x', [5], { timeout: 0.05 })
  t.deepEqual(codeOf(await again), failure('timeout'))
  t.is(client.stats().requestsSent, 4)
})

eachBackend('a failed send is counted as sendFailed and the call times out', async (t, backend) => {
  const { proto: client } = await listening(t, (o) => new RPCProtocol(o), { backend, waitTimeout: 0.2 })
  // no SO_BROADCAST: the kernel refuses the send (EACCES)
  const r = await client.callRemote(['255.255.255.255', 9], 'x', [])
  t.deepEqual(codeOf(r), failure('timeout'))
  t.like(client.stats(), { requestsSent: 1, timeouts: 1, droppedTotal: 1 })
  t.is(client.stats().dropped.sendFailed, 1)
})

eachBackend('socket buffers: 4 MiB requested by default, the granted size reported', async (t, backend) => {
  const { proto } = await listening(t, (o) => new RPCProtocol(o), { backend })
  const s = proto.stats()
  const rmemMax = Number(require('node:fs').readFileSync('/proc/sys/net/core/rmem_max', 'utf8'))
  // Linux reports twice the size set (bookkeeping overhead), capped at rmem_max unless forced
  t.true(s.recvBufferSize >= 2 * Math.min(4 << 20, rmemMax), `recvBufferSize ${s.recvBufferSize}`)
  t.true(s.sendBufferSize > 0)
  const { proto: small } = await listening(t, (o) => new RPCProtocol(o), { backend, recvBufferSize: 65536, sendBufferSize: 65536 })
  t.like(small.stats(), { recvBufferSize: 131072, sendBufferSize: 131072 })
})

// ---------------------------------------------------------------- IPv6

async function pairOf(t: ExecutionContext, backend: BackendName, options: RPCProtocolOptions, serverHost = '127.0.0.1', clientHost = serverHost) {
  const s = await listening(t, (o) => new Misbehaving(o), { ...options, backend }, serverHost)
  const c = await listening(t, (o) => new RPCProtocol(o), { ...options, backend }, clientHost)
  return { server: s.proto, address: s.address, client: c.proto, clientAddress: c.address }
}

const whoami = (o: RPCProtocolOptions) => new RPCProtocol(o).handle('whoami', (sender) => sender)

for (const serverBackend of BACKENDS)
  for (const clientBackend of BACKENDS) {
    const title = `[${serverBackend} server, ${clientBackend} client]`
    test(`${title} IPv6: '::1' and '::' servers answer an IPv6 client`, async (t) => {
      for (const host of ['::1', '::']) {
        const { proto: srv, address } = await listening(t, whoami, { backend: serverBackend }, host)
        t.is(address[0], host)
        const { proto: client, address: clientAddr } = await listening(t, (o) => new RPCProtocol(o), { backend: clientBackend }, '::1')
        t.is(clientAddr[0], '::1')
        t.deepEqual(await client.callRemote(['::1', address[1]], 'whoami', []), [true, ['::1', clientAddr[1]]])
        // another spelling of the same address is the same peer
        t.deepEqual(await client.callRemote(['0:0:0:0:0:0:0:1', address[1]], 'whoami', []), [true, ['::1', clientAddr[1]]])
        t.is(srv.stats().droppedTotal + client.stats().droppedTotal, 0)
      }
    })

    test(`${title} dual-stack: a '::' server answers an IPv4 client and sees it as plain IPv4`, async (t) => {
      const { proto: srv, address } = await listening(t, whoami, { backend: serverBackend }, '::')
      const { proto: client, address: clientAddr } = await listening(t, (o) => new RPCProtocol(o), { backend: clientBackend }, '127.0.0.1')
      t.deepEqual(await client.callRemote(['127.0.0.1', address[1]], 'whoami', []), [true, ['127.0.0.1', clientAddr[1]]])
      // and a '::' client reaches an IPv4 server, its answer passing the sender check
      const { address: v4Server } = await listening(t, whoami, { backend: serverBackend }, '127.0.0.1')
      const { proto: dual, address: dualAddr } = await listening(t, (o) => new RPCProtocol(o), { backend: clientBackend }, '::')
      t.deepEqual(await dual.callRemote(['127.0.0.1', v4Server[1]], 'whoami', []), [true, ['127.0.0.1', dualAddr[1]]])
      t.deepEqual(await dual.callRemote(['::ffff:127.0.0.1', v4Server[1]], 'whoami', []), [true, ['127.0.0.1', dualAddr[1]]])
      t.is(srv.stats().droppedTotal + client.stats().droppedTotal + dual.stats().droppedTotal, 0)
    })
  }

eachBackend('a datagram longer than any IPv4 datagram (only IPv6 can carry one) is counted as oversize', async (t, backend) => {
  const { proto, address } = await server(t, backend, {}, '::1')
  const peer = await rawPeer(t, '::1')
  const before = proto.stats()
  // 65 508 and 65 520 bytes: one past the limit (exactly fills the native receive buffer) and well past it.
  for (const size of [65508, 65520]) await peer.send(Buffer.concat([dg(REQUEST, valueBody(['echo', []])), Buffer.alloc(size - 21 - valueBody(['echo', []]).length, 0xc0)]), address)
  const fence = await peer.fence(address)
  t.deepEqual(fence.msg.subarray(21), valueBody('ok'))
  t.deepEqual(delta(before, proto.stats()), { 'dropped.oversize': 2, droppedTotal: 2, requestsReceived: 1, responsesSent: 1 })
})

eachBackend('an IPv4 socket refuses an IPv6 peer with RPCArgumentError', async (t, backend) => {
  const { proto } = await listening(t, (o) => new RPCProtocol(o), { backend }, '127.0.0.1')
  await t.throwsAsync(proto.callRemote(['::1', 9], 'x', []), { instanceOf: RPCArgumentError })
  t.is(proto.stats().outstanding, 0)
})

eachBackend('an IPv6 server drops hostile datagrams from IPv4-mapped and IPv6 peers alike', async (t, backend) => {
  const { proto: v6, address: v6Addr } = await listening(t, (o) => new RPCProtocol(o).handle('fence', () => 'ok'), { backend }, '::')
  for (const host of ['::1', '127.0.0.1']) {
    const peer = await rawPeer(t, host)
    const before = v6.stats()
    const to: [string, number] = [host, v6Addr[1]]
    for (const v of VECTORS.malformed) await peer.send(v, to)
    await peer.fence(to)
    t.deepEqual(delta(before, v6.stats()), {
      'dropped.malformed': VECTORS.malformed.length,
      droppedTotal: VECTORS.malformed.length,
      requestsReceived: 1,
      responsesSent: 1,
    })
  }
})

eachBackend("a peer's error code is looked up among known codes only; the raw code is kept as remoteCode", async (t, backend) => {
  // Codes that name Object.prototype members must not hand the caller a function or a prototype.
  const cases: [wire: string, code: string][] = [
    ['constructor', 'remoteError'],
    ['__proto__', 'remoteError'],
    ['toString', 'remoteError'],
    ['hasOwnProperty', 'remoteError'],
    ['no_such_code', 'remoteError'],
    ['', 'remoteError'],
    ['handler_error', 'handlerError'],
    ['overloaded', 'overloaded'],
  ]
  for (const [wire, code] of cases) {
    const { clientAddr, target, id, call } = await callSilentPeer(t, backend)
    await target.send(datagram(ERROR, id, valueBody([wire, `forged ${wire}`])), clientAddr)
    const [ok, value, failure] = await call
    t.deepEqual([ok, value], [false, null], wire)
    t.is(typeof failure?.code, 'string', wire)
    t.deepEqual(failure, { code, message: `forged ${wire}`, remoteCode: wire }, wire)
  }
})
