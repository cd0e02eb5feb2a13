/**
 * Call and serve controls (issue 12): cancel by AbortSignal, handlerTimeout,
 * per-source limits (rate and handlers), close({ drain }), address(). Every
 * behaviour runs on both backends, which must agree on the counters.
 */
import test from 'ava'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { RPCArgumentError, RPCProtocol, RPCStateError, type CallResult } from '../src/index'
import { SourceLimiter } from '../src/pure/limits'
import { sourceKey } from '../src/source-key'
import { eachBackend, eachBackendSerial, listening, pair } from './helpers/backends'
import { REQUEST, RawPeer, datagram, newId, prng, requestBody, settledRss, sleep, until } from './helpers/raw'

const failure = (r: CallResult) => (r[0] ? null : r[2].code)
const later = <T>(ms: number, value: T) => new Promise<T>((r) => setTimeout(() => r(value), ms))

eachBackend('an already-aborted signal settles the call at once and sends nothing', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  server.handle('echo', (_s, x) => x)
  const ac = new AbortController()
  ac.abort()
  const r = await client.callRemote(address, 'echo', [1], { signal: ac.signal })
  t.is(failure(r), 'aborted')
  t.is(client.stats().requestsSent, 0)
  t.is(client.stats().outstanding, 0)
  t.deepEqual(await client.callRemote(address, 'echo', [2]), [true, 2])
  t.is(server.stats().requestsReceived, 1)
})

eachBackendSerial('aborting during the wait settles at once; the late answer is counted as unmatchedResponse', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  server.handle('slow', () => later(1000, 'late'))
  const ac = new AbortController()
  const started = performance.now()
  const call = client.callRemote(address, 'slow', [], { timeout: 5, signal: ac.signal })
  setTimeout(() => ac.abort(), 50)
  const r = await call
  t.is(failure(r), 'aborted')
  t.true(performance.now() - started < 800, 'settled before the answer came')
  t.is(client.stats().outstanding, 0)
  await until(() => client.stats().dropped.unmatchedResponse === 1, 3000, 'the late answer')
  t.is(client.stats().responsesReceived, 0)
  t.is(client.stats().timeouts, 0)
})

eachBackend('aborting after the answer has no effect', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  server.handle('echo', (_s, x) => x)
  const ac = new AbortController()
  const r = await client.callRemote(address, 'echo', ['x'], { signal: ac.signal })
  ac.abort()
  t.deepEqual(r, [true, 'x'])
  await sleep(20)
  t.is(client.stats().dropped.unmatchedResponse, 0)
  t.is(client.stats().responsesReceived, 1)
})

eachBackend('10 000 calls aborted at random points each settle exactly once; outstanding returns to 0', async (t, backend) => {
  const { server, address, client } = await pair(t, backend, undefined, { waitTimeout: 10 })
  const rand = prng(12)
  server.handle('echo', (_s, i: number) => (i % 2 ? later(Math.floor(rand() * 40), i) : i))
  const settled = new Uint8Array(10_000)
  const outcomes = { ok: 0, aborted: 0, other: 0, neverAbortedOk: 0 }
  let neverAborted = 0
  const calls = Array.from({ length: 10_000 }, (_, i) => {
    const ac = new AbortController()
    const when = rand()
    if (when < 0.1) ac.abort() // before send
    else if (when < 0.9) setTimeout(() => ac.abort(), Math.floor(rand() * 60)) // during the wait, or after the answer
    else neverAborted++
    return client.callRemote(address, 'echo', [i], { signal: ac.signal }).then((r) => {
      settled[i]++
      if (r[0] && r[1] === i) {
        outcomes.ok++
        if (when >= 0.9) outcomes.neverAbortedOk++
      } else if (failure(r) === 'aborted') outcomes.aborted++
      else outcomes.other++
    })
  })
  await Promise.all(calls)
  t.true(settled.every((n) => n === 1), 'every call settled exactly once')
  t.is(outcomes.other, 0)
  t.true(outcomes.aborted >= 1000, `${outcomes.aborted} aborted`)
  t.is(outcomes.neverAbortedOk, neverAborted, 'every call never aborted was answered')
  t.is(client.stats().outstanding, 0)
  // Late answers to aborted calls are counted, never delivered.
  await sleep(150)
  const s = client.stats()
  t.is(s.outstanding, 0)
  t.is(s.responsesReceived, outcomes.ok)
  t.true(s.responsesReceived + s.dropped.unmatchedResponse <= server.stats().responsesSent)
  t.is(s.requestsSent, server.stats().requestsReceived)
})

eachBackend('handlerTimeout frees a never-settling handler, answers handler_timeout and fires its signal', async (t, backend) => {
  let signal: AbortSignal | null = null
  const { server, address, client } = await pair(t, backend, (o) => new RPCProtocol({ ...o, handlerTimeout: 0.2, maxHandlers: 3 }))
  server.handle('hang', () => {
    signal = server.handlerSignal
    return new Promise(() => {})
  })
  server.handle('echo', (_s, x) => x)
  const started = performance.now()
  const hung = [client.callRemote(address, 'hang', [], { timeout: 3 }), client.callRemote(address, 'hang', [], { timeout: 3 })]
  await until(() => server.stats().handlersRunning === 2, 2000, 'two handlers running')
  t.deepEqual(await client.callRemote(address, 'echo', ['still serving']), [true, 'still serving'])
  for (const r of await Promise.all(hung)) t.is(failure(r), 'handlerTimeout')
  const elapsed = performance.now() - started
  t.true(elapsed >= 200 && elapsed < 2000, `${elapsed} ms`)
  t.true(signal!.aborted)
  t.is((signal!.reason as Error).message.includes('handlerTimeout'), true)
  const s = server.stats()
  t.is(s.handlerTimeouts, 2)
  t.is(s.handlersRunning, 0)
  // All three slots are free again.
  server.handle('hang', () => later(10, 'done'))
  for (const r of await Promise.all([1, 2, 3].map(() => client.callRemote(address, 'hang')))) t.deepEqual(r, [true, 'done'])
})

eachBackend('a handler that settles after handlerTimeout has its late result discarded', async (t, backend) => {
  const { server, address, client } = await pair(t, backend, (o) => new RPCProtocol({ ...o, handlerTimeout: 0.05 }))
  server.handle('tardy', () => later(200, 'too late'))
  t.is(failure(await client.callRemote(address, 'tardy')), 'handlerTimeout')
  await sleep(300)
  const s = server.stats()
  t.is(s.responsesSent, 0)
  t.is(s.errorsSent, 1)
  t.is(client.stats().dropped.unmatchedResponse, 0)
})

eachBackend('perSource.maxHandlers: one source cannot hold more slots; others are still served', async (t, backend) => {
  const release: (() => void)[] = []
  const server = await listening(t, (o) => new RPCProtocol(o), { backend, perSource: { maxHandlers: 2 } })
  server.proto.handle('hold', () => new Promise<string>((r) => release.push(() => r('held'))))
  const a = await listening(t, (o) => new RPCProtocol(o), { backend }, '127.0.0.1')
  const b = await listening(t, (o) => new RPCProtocol(o), { backend }, '127.0.0.2')
  const held = [a.proto.call.hold(server.address), a.proto.call.hold(server.address)]
  await until(() => server.proto.stats().handlersRunning === 2, 2000, 'two handlers')
  t.is(failure(await a.proto.call.hold(server.address)), 'overloaded')
  const other = b.proto.call.hold(server.address)
  await until(() => server.proto.stats().handlersRunning === 3, 2000, 'the other source served')
  release.forEach((r) => r())
  for (const r of await Promise.all([...held, other])) t.deepEqual(r, [true, 'held'])
  t.is(server.proto.stats().dropped.handlersBusy, 1)
})

eachBackendSerial('one source flooding at 50x its rate: 20 well-behaved sources keep >= 99 % answered, the flood is rateLimited', async (t, backend) => {
  const RATE = 100
  const BURST = 100
  const SECONDS = 2
  const server = await listening(t, (o) => new RPCProtocol(o), {
    backend,
    perSource: { requestsPerSecond: RATE, burst: BURST },
    recvBufferSize: 8 << 20,
  })
  server.proto.handle('echo', (_s, x) => x)
  const clients = await Promise.all(
    Array.from({ length: 20 }, (_, i) => listening(t, (o) => new RPCProtocol(o), { backend, waitTimeout: 5 }, `127.0.0.${i + 2}`)),
  )
  const flooder = await RawPeer.open('127.0.0.99', 0, false)
  t.teardown(() => flooder.close())
  const flood = datagram(REQUEST, newId(), requestBody('echo', [0]))
  let floodSent = 0
  const started = performance.now()
  // 50 x RATE per second, in 10 ms slices.
  const floodTimer = setInterval(() => {
    const due = Math.floor(((performance.now() - started) / 1000) * RATE * 50) - floodSent
    for (let i = 0; i < due && floodSent < RATE * 50 * SECONDS; i++, floodSent++) flooder.socket.send(flood, server.address[1], '127.0.0.1')
  }, 10)
  // Each well-behaved source: 20 calls a second (a fifth of its rate) for the same time.
  const results = await Promise.all(
    clients.map(async (c) => {
      const out: CallResult[] = []
      for (let i = 0; i < 20 * SECONDS; i++) {
        out.push(await c.proto.callRemote(server.address, 'echo', [i]))
        await sleep(50)
      }
      return out
    }),
  )
  while (floodSent < RATE * 50 * SECONDS && performance.now() - started < 10_000) await sleep(20)
  clearInterval(floodTimer)
  const elapsed = (performance.now() - started) / 1000
  await sleep(200)
  const answered = results.flat().filter((r) => r[0]).length
  const total = results.flat().length
  const s = server.proto.stats()
  const floodAdmitted = s.requestsReceived - total
  t.log(`${backend}: ${answered}/${total} well-behaved answered; flood ${floodSent} sent, ${s.dropped.rateLimited} rateLimited, ${floodAdmitted} admitted in ${elapsed.toFixed(1)} s`)
  t.true(answered / total >= 0.99, `${answered}/${total}`)
  t.true(s.dropped.rateLimited >= floodSent * 0.8, `${s.dropped.rateLimited} of ${floodSent} rateLimited`)
  t.true(floodAdmitted <= BURST + RATE * elapsed * 1.1 + 10, `${floodAdmitted} flood requests admitted`)
  t.is(s.sourcesTracked, 21)
})

eachBackendSerial('a flood from 1 000 000 spoofed sources keeps the source table at maxSources and memory bounded', async (t, backend) => {
  const MAX_SOURCES = 1000
  const server = await listening(t, (o) => new RPCProtocol(o), {
    backend,
    perSource: { requestsPerSecond: 1, burst: 1, maxSources: MAX_SOURCES },
    errorReplies: false,
  })
  let served = 0
  server.proto.handle('echo', () => void served++)
  const before = await settledRss()
  const payload = datagram(REQUEST, newId(), requestBody('echo', [])).toString('hex')
  // A child process, so the receiving event loop (in this one) keeps running.
  const child = spawn('python3', [join(__dirname, 'helpers/spoof_flood.py'), String(server.address[1]), '1000000', payload], {
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 120_000,
  })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  const code = await new Promise<number | null>((r) => child.on('exit', r))
  t.is(code, 0)
  const report = JSON.parse(out) as { sent: number; seconds: number }
  await sleep(500)
  const s = server.proto.stats()
  const after = await settledRss()
  t.log(
    `${backend}: ${report.sent} spoofed datagrams in ${report.seconds} s; ${s.requestsReceived} reached handlers, ` +
      `${s.dropped.rateLimited} rateLimited; ${s.sourcesTracked} sources tracked; RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MB`,
  )
  t.true(report.sent >= 900_000, `${report.sent} sent`)
  t.true(s.requestsReceived > MAX_SOURCES, 'more distinct sources arrived than the table holds')
  t.is(s.sourcesTracked, MAX_SOURCES)
  t.true(after - before < 64, `RSS grew ${(after - before).toFixed(1)} MB`)
  t.is(served, s.requestsReceived)
})

eachBackend('close({ drain }) lets running handlers answer, refuses new requests as closing, then settles the rest', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  server.handle('slow', () => later(150, 'finished'))
  const black = await RawPeer.open('127.0.0.1', 0, false) // never answers
  t.teardown(() => black.close())
  const running = [client.call.slow(address), client.call.slow(address)]
  await until(() => server.stats().handlersRunning === 2, 2000, 'handlers running')
  const outgoing = server.callRemote(black.address, 'x', [], { timeout: 30 })
  const started = performance.now()
  const closed = server.close({ drain: 0.5 })
  t.deepEqual(server.address(), address, 'still bound while draining')
  await t.throwsAsync(server.callRemote(address, 'x'), { instanceOf: RPCStateError })
  const refused = await client.callRemote(address, 'slow', [], { timeout: 0.2 })
  t.is(failure(refused), 'timeout')
  for (const r of await Promise.all(running)) t.deepEqual(r, [true, 'finished'])
  t.is(failure(await outgoing), 'closed')
  await closed
  const elapsed = performance.now() - started
  t.true(elapsed >= 450 && elapsed < 2000, `drained for ${elapsed} ms`)
  t.is(server.address(), null)
  t.is(server.stats().dropped.closing, 1)
})

eachBackend('close({ drain }) returns as soon as nothing is left, and fires running handlers\' signals at the end', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  server.handle('quick', () => later(50, 'ok'))
  const q = client.call.quick(address)
  await until(() => server.stats().handlersRunning === 1, 2000, 'handler running')
  const started = performance.now()
  await server.close({ drain: 5 })
  t.true(performance.now() - started < 1000, 'did not wait for the whole drain')
  t.deepEqual(await q, [true, 'ok'])

  const second = await pair(t, backend)
  let signal: AbortSignal | null = null
  second.server.handle('never', () => {
    signal = second.server.handlerSignal
    return new Promise(() => {})
  })
  void second.client.callRemote(second.address, 'never', [], { timeout: 1 })
  await until(() => signal !== null, 2000, 'handler started')
  await second.server.close({ drain: 0.1 })
  t.true(signal!.aborted)
})

eachBackend('address() is null before listen and after close', async (t, backend) => {
  const p = new RPCProtocol({ backend })
  t.is(p.address(), null)
  const bound = await p.listen(0, '127.0.0.1')
  t.deepEqual(p.address(), bound)
  await p.close()
  t.is(p.address(), null)
})

eachBackend('bad control options are typed errors', async (t, backend) => {
  const { client, address } = await pair(t, backend)
  for (const signal of [{}, { aborted: false }, 'x', 1])
    await t.throwsAsync(client.callRemote(address, 'x', [], { signal: signal as any }), { instanceOf: RPCArgumentError })
  for (const perSource of [
    { requestsPerSecond: -1 },
    { requestsPerSecond: Number.NaN },
    { requestsPerSecond: Number.POSITIVE_INFINITY },
    { requestsPerSecond: 10, burst: 0.5 },
    { burst: 10 },
    { maxSources: 0 },
    { maxSources: 1.5 },
    { maxHandlers: 0 },
    'fast',
    null,
  ])
    t.throws(() => new RPCProtocol({ backend, perSource: perSource as any }), { instanceOf: RPCArgumentError }, JSON.stringify(perSource))
  for (const reflection of [
    { allowance: 0 },
    { allowance: 1.5 },
    { allowance: 2 ** 53 },
    { factor: 0 },
    { factor: Number.POSITIVE_INFINITY },
    { factor: Number.NaN },
    { maxSources: 0 },
    { maxSources: 2 ** 32 },
    { allowence: 1 },
    true,
    'on',
    null,
  ])
    t.throws(() => new RPCProtocol({ backend, reflection: reflection as any }), { instanceOf: RPCArgumentError }, JSON.stringify(reflection))
  for (const reflection of [false, {}, { allowance: 1, factor: 0.5, maxSources: 1 }] as const)
    t.notThrows(() => new RPCProtocol({ backend, reflection }), JSON.stringify(reflection))
  for (const handlerTimeout of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 3e6])
    t.throws(() => new RPCProtocol({ backend, handlerTimeout }), { instanceOf: RPCArgumentError })
  const p = new RPCProtocol({ backend })
  await p.listen(0, '127.0.0.1')
  await t.throwsAsync(p.close({ drain: -1 }), { instanceOf: RPCArgumentError })
  await p.close()
  t.throws(() => client.handlerSignal, { instanceOf: RPCStateError })
})

test('the pure source limiter: burst, rate, LRU bound, keys by IPv4 address and IPv6 /64', (t) => {
  const l = new SourceLimiter({ requestsPerSecond: 10, burst: 5, maxSources: 3 })
  t.is([...Array(20)].filter(() => l.admit(0, '10.0.0.1')).length, 5)
  t.false(l.admit(99, '10.0.0.1'))
  t.true(l.admit(200, '10.0.0.1'))
  t.true(l.admit(0, '2001:db8:1:2::1'))
  t.true(l.admit(0, '10.0.0.2'))
  t.true(l.admit(0, '10.0.0.3'), 'evicts the least recent (10.0.0.1)')
  t.is(l.size, 3)
  t.is(sourceKey('2001:db8:1:2::1'), sourceKey('2001:0db8:0001:0002:ffff::9'))
  t.not(sourceKey('2001:db8:1:2::1'), sourceKey('2001:db8:1:3::1'))
  t.is(sourceKey('::1'), '0:0:0:0::/64')
  t.is(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64')
  t.is(sourceKey('::ffff:10.0.0.1'), '0:0:0:0::/64')
  const big = new SourceLimiter({ requestsPerSecond: 1, burst: 1, maxSources: 1000 })
  for (let i = 0; i < 1_000_000; i++) big.admit(0, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)
  t.is(big.size, 1000)
})
