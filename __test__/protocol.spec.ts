/**
 * The conformance suite: every behaviour of the public API, run once per
 * backend (and, via RPCUDP_NATIVE_IO=thread in the test script, once more for
 * the native runtime-thread receive path).
 */
import test from 'ava'
import { join } from 'node:path'
import {
  RPCArgumentError,
  RPCEncodeError,
  RPCProtocol,
  RPCSizeError,
  RPCStateError,
  type Address,
} from '../src/index'
import { eachBackend, eachBackendSerial, listening, pair } from './helpers/backends'
import { runTsChild } from './helpers/child'
import { ROUND_TRIP_VALUES } from './helpers/values'

class Node extends RPCProtocol {
  rpc_sum(_sender: Address, a: number, b: number) {
    return a + b
  }
  async rpc_ping(_sender: Address) {
    await new Promise((r) => setTimeout(r, 5))
    return 'pong'
  }
  rpc_whoami(sender: Address) {
    return sender
  }
  rpc_boom(): never {
    throw new Error('boom')
  }
  async rpc_reject() {
    throw new Error('rejected')
  }
}

const node = (o: object) => new Node(o)

eachBackend('sync and async handlers answer, by call proxy and callRemote', async (t, backend) => {
  const { address, client } = await pair(t, backend, node)
  t.deepEqual(await client.call.sum(address, 1, 2), [true, 3])
  t.deepEqual(await client.callRemote(address, 'sum', [40, 2]), [true, 42])
  t.deepEqual(await client.call.ping(address), [true, 'pong'])
})

eachBackend('handlers see the sender address and handle() registers without subclassing', async (t, backend) => {
  const { server, address, client, clientAddress } = await pair(t, backend)
  server.handle('whoami', (sender) => sender)
  server.handle('echo', (_sender, x) => x)
  t.deepEqual(await client.call.whoami(address), [true, clientAddress])
  t.deepEqual(await client.call.echo(address, 'x'), [true, 'x'])
})

eachBackend('every value type round-trips unchanged', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  server.handle('echo', (_s, x) => x)
  for (const [name, value] of ROUND_TRIP_VALUES) {
    const [ok, back] = await client.call.echo(address, value)
    t.true(ok, name)
    if (typeof value === 'number' && Number.isNaN(value)) t.true(Number.isNaN(back), name)
    else if (Object.is(value, -0)) t.true(Object.is(back, -0), name)
    else t.deepEqual(back, value, name)
  }
  // A plain Uint8Array goes out as bin and comes back as a Buffer with the same bytes.
  const [, bytes] = await client.call.echo(address, new Uint8Array([9, 8, 7]))
  t.true(Buffer.isBuffer(bytes))
  t.deepEqual([...(bytes as Buffer)], [9, 8, 7])
  // undefined has no msgpack form of its own: it travels as nil.
  t.deepEqual(await client.call.echo(address, undefined), [true, null])
})

eachBackend('arguments that cannot be encoded reject at once with a typed error', async (t, backend) => {
  const { address, client } = await pair(t, backend, node)
  for (const bad of [() => 1, Symbol('s'), new Date(), new Set([1]), new Float32Array(2), 2n ** 64n, '\ud800']) {
    const err = await t.throwsAsync(client.call.sum(address, bad), { instanceOf: RPCEncodeError })
    t.is(err?.code, 'ERR_RPC_ENCODE')
  }
  const deep: unknown[] = []
  let cur = deep
  for (let i = 0; i < 40; i++) cur.push((cur = []))
  await t.throwsAsync(client.call.sum(address, deep), { instanceOf: RPCEncodeError })
  t.is(client.stats().requestsSent, 0)
})

eachBackend('the 8192-byte body limit is checked before sending, at its exact edge', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  server.handle('n', (_s, b: Buffer) => b.length)
  // [ "n", [ bin32? no: bin16 ] ] = 0x92 + a1 6e + 0x91 + c5 LL LL + payload = 7 bytes of framing
  const largest = Buffer.alloc(8192 - 7)
  t.deepEqual(await client.call.n(address, largest), [true, largest.length])
  const err = await t.throwsAsync(client.call.n(address, Buffer.alloc(8192 - 6)), { instanceOf: RPCSizeError })
  t.is(err?.code, 'ERR_RPC_TOO_LARGE')
  t.is(err?.limit, 8192)
})

eachBackend('maxBodySize is configurable', async (t, backend) => {
  const { server, address, client } = await pair(t, backend, undefined, { maxBodySize: 100 })
  server.handle('n', (_s, s: string) => s.length)
  t.deepEqual(await client.call.n(address, 'x'.repeat(90)), [true, 90])
  await t.throwsAsync(client.call.n(address, 'x'.repeat(100)), { instanceOf: RPCSizeError })
})

eachBackendSerial('no answer resolves [false, null] at waitTimeout: not early, not >100 ms late', async (t, backend) => {
  const { server, address, client } = await pair(t, backend, undefined, { waitTimeout: 0.3, errorReplies: false })
  server.handle('never', () => new Promise(() => {}))
  const started = performance.now()
  const result = await client.call.never(address)
  const elapsed = performance.now() - started
  t.deepEqual(result.slice(0, 2), [false, null])
  t.is(result[2]?.code, 'timeout')
  t.true(elapsed >= 300, `fired after ${elapsed} ms`)
  t.true(elapsed <= 400, `fired after ${elapsed} ms`)
  t.is(client.stats().timeouts, 1)
  // A per-call timeout overrides waitTimeout.
  const t0 = performance.now()
  const [ok] = await client.callRemote(address, 'never', [], { timeout: 0.1 })
  const e2 = performance.now() - t0
  t.false(ok)
  t.true(e2 >= 100 && e2 <= 200, `fired after ${e2} ms`)
})

// Serial: it times calls, which the 10 000-call tests of this file would otherwise share the process with.
eachBackendSerial('Python semantics without error replies: unknown method and throwing handler time out, server keeps serving', async (t, backend) => {
  const { server, address, client } = await pair(t, backend, node, { waitTimeout: 0.2, errorReplies: false })
  for (const method of ['nosuch', 'boom', 'reject']) {
    const r = await client.callRemote(address, method)
    t.deepEqual(r, [false, null, { code: 'timeout', message: 'no answer within the timeout' }], method)
  }
  t.deepEqual(await client.call.sum(address, 2, 2), [true, 4])
  const s = server.stats()
  t.is(s.unknownMethods, 1)
  t.is(s.handlerErrors, 2)
  t.is(s.errorsSent, 0)
})

// Serial: it times calls, which the 10 000-call tests of this file would otherwise share the process with.
eachBackendSerial('with error replies (the default) callers learn at once why a call failed', async (t, backend) => {
  const { address, client } = await pair(t, backend, node, { waitTimeout: 5 })
  const started = performance.now()
  const unknown = await client.callRemote(address, 'nosuch')
  t.deepEqual(unknown.slice(0, 2), [false, null])
  t.is(unknown[2]?.code, 'unknownMethod')
  t.is((await client.call.boom(address))[2]?.code, 'handlerError')
  t.is((await client.call.reject(address))[2]?.code, 'handlerError')
  t.true(performance.now() - started < 2500, 'answered well before the 5 s waitTimeout')
  t.is(client.stats().errorsReceived, 3)
})

eachBackend('10 000 concurrent calls are all answered, each with its own answer', async (t, backend) => {
  const { server, address, client } = await pair(t, backend, undefined, { waitTimeout: 10 })
  server.handle('twice', (_s, i: number, tag: string) => [i * 2, tag])
  const calls = Array.from({ length: 10_000 }, (_, i) => client.call.twice(address, i, `c${i}`))
  const results = await Promise.all(calls)
  let matched = 0
  results.forEach(([ok, v], i) => {
    if (ok && (v as [number, string])[0] === i * 2 && (v as [number, string])[1] === `c${i}`) matched++
  })
  t.is(matched, 10_000)
  t.is(client.stats().outstanding, 0)
})

eachBackend('calling before listen() or after close() rejects with a typed error', async (t, backend) => {
  const p = new RPCProtocol({ backend })
  const before = await t.throwsAsync(p.call.x(['127.0.0.1', 9]), { instanceOf: RPCStateError })
  t.is(before?.code, 'ERR_RPC_NOT_LISTENING')
  await p.listen(0, '127.0.0.1')
  await p.close()
  const after = await t.throwsAsync(p.call.x(['127.0.0.1', 9]), { instanceOf: RPCStateError })
  t.is(after?.code, 'ERR_RPC_CLOSED')
  await t.throwsAsync(p.listen(0), { instanceOf: RPCStateError })
})

eachBackend('bad addresses and options are typed errors at the boundary', async (t, backend) => {
  const { client } = await pair(t, backend)
  for (const addr of [['127.0.0.1'], ['127.0.0.1', 0], ['127.0.0.1', 70000], ['no.such.host', 1], 'x']) {
    await t.throwsAsync(client.callRemote(addr as any, 'x'), { instanceOf: RPCArgumentError })
  }
  t.throws(() => new RPCProtocol({ backend, waitTimeout: -1 }), { instanceOf: RPCArgumentError })
  t.throws(() => new RPCProtocol({ backend: 'fast' as any }), { instanceOf: RPCArgumentError })
  t.throws(() => new RPCProtocol({ backend, maxBodySize: 70000 }), { instanceOf: RPCArgumentError })
})

eachBackend('close() settles every outstanding call as [false, null] and frees the port', async (t, backend) => {
  const { server, address, client } = await pair(t, backend, undefined, { waitTimeout: 30 })
  server.handle('never', () => new Promise(() => {}))
  const pending = Array.from({ length: 100 }, () => client.call.never(address))
  await new Promise((r) => setTimeout(r, 50))
  t.is(client.stats().outstanding, 100)
  await client.close()
  for (const r of await Promise.all(pending)) t.deepEqual(r, [false, null, { code: 'closed', message: 'the protocol was closed' }])
  await server.close()
  const again = new RPCProtocol({ backend })
  t.teardown(() => again.close())
  t.deepEqual(await again.listen(address[1], '127.0.0.1'), address)
})

eachBackend('stats() has the same keys on both backends', async (t, backend) => {
  const { client } = await pair(t, backend)
  const s = client.stats()
  t.snapshot(Object.keys(s).sort(), 'stats keys')
  t.snapshot(Object.keys(s.dropped).sort(), 'drop reasons')
  t.true(s.recvBufferSize > 0)
})

eachBackend('a native node and a pure node call each other both ways with every value', async (t, backend) => {
  const other = backend === 'native' ? 'pure' : 'native'
  const { server, address, client } = await pair(t, backend, undefined, {}, other)
  server.handle('echo', (_s, x) => x)
  t.is(server.backend, backend)
  t.is(client.backend, other)
  for (const [name, value] of ROUND_TRIP_VALUES) {
    const [ok, back] = await client.call.echo(address, value)
    t.true(ok, name)
    if (typeof value === 'number' && Number.isNaN(value)) t.true(Number.isNaN(back), name)
    else t.true(Object.is(value, -0) ? Object.is(back, -0) : true, name)
    if (!(typeof value === 'number' && (Number.isNaN(value) || Object.is(value, -0)))) t.deepEqual(back, value, name)
  }
})

eachBackend('listens on IPv6 loopback and reports the bound address', async (t, backend) => {
  const server = await listening(t, (o) => new RPCProtocol(o), { backend }, '::1')
  server.proto.handle('whoami', (s) => s)
  t.is(server.address[0], '::1')
  const client = await listening(t, (o) => new RPCProtocol(o), { backend }, '::1')
  t.deepEqual(await client.proto.call.whoami(server.address), [true, client.address])
})

eachBackend('the typed call proxy is a function for any name and untyped use works', async (t, backend) => {
  const { address, client } = await pair(t, backend, node)
  const typed = client as unknown as RPCProtocol<{ sum(a: number, b: number): number }>
  const r = await typed.call.sum(address, 5, 6)
  t.deepEqual(r, [true, 11])
  t.is(typeof client.call.anything, 'function')
  t.is(client.call.anything, client.call.anything)
})

// --- process lifetime: run in child processes so the event loop itself is observed ---

const lifetime = join(__dirname, 'helpers', 'lifetime.ts')

/** Runs a lifetime scenario in a child process; kills it (SIGTERM) if it is still running after `timeoutMs`. */
function runLifetime(scenario: string, backend: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 8000) {
  return runTsChild([lifetime, scenario, backend], { env, timeoutMs, signal: 'SIGTERM' })
}

eachBackend('a script that closes its protocols exits by itself', async (t, backend) => {
  const r = await runLifetime('close', backend)
  t.is(r.status, 0, r.stderr)
  t.regex(r.stdout, /closed/)
})

eachBackend('an idle listening protocol keeps the process alive; unref() lets it exit', async (t, backend) => {
  // 8 s, not 4: under CI's parallel load a tsx child once took over 4 s to reach listen() at all.
  const kept = await runLifetime('idle', backend, {}, 8000)
  t.regex(kept.stdout, /listening/)
  t.is(kept.signal, 'SIGTERM', 'still running when the 8 s timeout killed it: the socket kept the loop alive')
  const unrefd = await runLifetime('unref', backend)
  t.is(unrefd.status, 0, unrefd.stderr)
  t.regex(unrefd.stdout, /listening/)
})

test('importing never throws without a native binary; auto falls back to pure, native throws a typed error', async (t) => {
  const r = await runLifetime('nobinary', 'auto', { RPCUDP_NATIVE_PATH: '/nonexistent/rpcudp.node', RPCUDP_BACKEND: '' })
  t.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.is(out.auto, 'pure')
  t.is(out.nativeError.code, 'ERR_RPC_BACKEND_UNAVAILABLE')
  t.regex(out.nativeError.message, /Cannot find module '\/nonexistent\/rpcudp.node'/)
  t.false(out.status.available)
  t.deepEqual(out.call, [true, 3])
})

test('RPCUDP_BACKEND overrides auto, and an explicit backend overrides RPCUDP_BACKEND', async (t) => {
  const r = await runLifetime('env', 'auto', { RPCUDP_BACKEND: 'pure' })
  t.is(r.status, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), { auto: 'pure', native: 'native', pure: 'pure' })
})

eachBackend('a handler whose result has a throwing `then` getter fails like a throwing handler', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  server.handle('evil', () => ({
    get then() {
      throw new Error('evil getter')
    },
  }))
  server.handle('rejecting', () => ({ then: (_ok: unknown, fail: (e: Error) => void) => fail(new Error('no')) }))
  t.is((await client.call.evil(address))[2]?.code, 'handlerError')
  t.is((await client.call.rejecting(address))[2]?.code, 'handlerError')
  server.handle('ok', () => 1)
  t.deepEqual(await client.call.ok(address), [true, 1])
  t.is(server.stats().handlerErrors, 2)
})

eachBackend('dropped datagrams are counted, and logged at debug level with a rate limit', async (t, backend) => {
  const r = await runLifetime('droplog', backend, { NODE_DEBUG: 'rpcudp' })
  t.is(r.status, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), { tooShort: 500, call: [true, 1] })
  const lines = r.stderr.split('\n').filter((l) => /RPCUDP \d+: dropped datagram \(tooShort\).* from 127\.0\.0\.1:\d+/.test(l))
  t.true(lines.length >= 1, r.stderr)
  t.true(lines.length <= 12, `${lines.length} lines for 500 drops`)
})
