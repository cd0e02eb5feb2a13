// The conformance checks that need no test runner: plain CommonJS against the
// built package (dist/), so that Node, Bun and Deno all run the same file.
//
//   <runtime> __test__/runtime/conformance.cjs <backend> [nativeIo] [expect-json]
//
// backend: auto | native | pure; nativeIo: loop | thread | default (the
// runtime's default); expect-json: what `auto` must pick here, e.g.
// '{"backend":"native","nativeIo":"thread"}' (run-all.cjs passes it from its
// runtime matrix). Prints "ok N - name" / "not ok N - name" per check, then
// "# pass N" and "# fail N". It never calls process.exit on success: the
// process ending on its own also shows that close() released everything.
'use strict'
const assert = require('node:assert/strict')
const rpcudp = require('../..')
const { RPCProtocol, RPCBackendError, RPCSizeError, RPCStateError, nativeBackend } = rpcudp

const [backend = 'auto', ioArg = 'default', expectJson = '{}'] = process.argv.slice(2)
const nativeIo = ioArg === 'default' ? undefined : ioArg
const expectAuto = JSON.parse(expectJson)
const HOST = '127.0.0.1'
const open = new Set()

function make(options = {}) {
  const p = new RPCProtocol({ backend, nativeIo, waitTimeout: 2, ...options })
  open.add(p)
  return p
}

async function listening(options) {
  const p = make(options)
  const address = await p.listen(0, HOST)
  return { p, address }
}

const never = () => new Promise(() => {})
const checks = []
const check = (name, fn) => checks.push({ name, fn })

check('runtime: auto picks what the matrix says, and native reports why', async () => {
  const info = nativeBackend()
  assert.equal(info.available, true, info.reason)
  const auto = new RPCProtocol()
  assert.equal(auto.backend, expectAuto.backend)
  assert.equal(auto.nativeIo, expectAuto.nativeIo)
  assert.equal(info.defaultIo, expectAuto.nativeIo)
  if (info.loopUnavailable) {
    assert.throws(() => new RPCProtocol({ backend: 'native', nativeIo: 'loop' }), (e) => e instanceof RPCBackendError && e.code === 'ERR_RPC_BACKEND_UNAVAILABLE' && e.message.includes(info.runtime))
  } else assert.equal(new RPCProtocol({ backend: 'native', nativeIo: 'loop' }).nativeIo, 'loop')
})

check('listen: binds an ephemeral port once; a second listen() is refused', async () => {
  const { p, address } = await listening()
  assert.equal(address[0], HOST)
  assert.ok(Number.isInteger(address[1]) && address[1] > 0 && address[1] < 65536)
  await assert.rejects(p.listen(0, HOST), RPCStateError)
  if (backend !== 'auto') assert.equal(p.backend, backend)
  if (nativeIo && p.backend === 'native') assert.equal(p.nativeIo, nativeIo)
})

check('calls both ways, values round-trip (incl. 64+ char strings, bytes, maps)', async () => {
  const a = await listening()
  const b = await listening()
  a.p.handle('echo', (_sender, v) => v)
  b.p.handle('who', (sender) => sender)
  const value = { s: 'é'.repeat(100), n: [1, -2, 2 ** 40, 1.5, null, true, false], bytes: Buffer.from([0, 1, 255]), nested: { x: ['y'] } }
  const [ok, echoed] = await b.p.call.echo(a.address, value)
  assert.equal(ok, true)
  assert.deepEqual({ ...echoed, bytes: Buffer.from(echoed.bytes) }, value)
  const [ok2, sender] = await a.p.call.who(b.address)
  assert.equal(ok2, true)
  assert.deepEqual(sender, a.address)
})

check('timeouts: an unanswered call resolves [false, null, timeout] after waitTimeout (and per-call timeout)', async () => {
  const server = await listening()
  server.p.handle('hang', never)
  const client = await listening({ waitTimeout: 0.3 })
  let t0 = performance.now()
  const r = await client.p.call.hang(server.address)
  const elapsed = performance.now() - t0
  assert.equal(r[0], false)
  assert.equal(r[2].code, 'timeout')
  assert.ok(elapsed >= 250 && elapsed < 3000, `waited ${elapsed} ms`)
  t0 = performance.now()
  const r2 = await client.p.callRemote(server.address, 'hang', [], { timeout: 0.1 })
  assert.equal(r2[2].code, 'timeout')
  assert.ok(performance.now() - t0 < 250, 'the per-call timeout wins over waitTimeout')
  assert.equal(client.p.stats().timeouts, 2)
})

check('error replies: unknown method, handler error (hidden and exposed)', async () => {
  const server = await listening()
  server.p.handle('boom', () => {
    throw new Error('secret detail')
  })
  const exposed = await listening({ exposeErrors: true })
  exposed.p.handle('boom', async () => {
    throw new Error('visible detail')
  })
  const client = await listening()
  const unknown = await client.p.call.nope(server.address)
  assert.deepEqual([unknown[0], unknown[2].code], [false, 'unknownMethod'])
  const hidden = await client.p.call.boom(server.address)
  assert.deepEqual([hidden[0], hidden[2].code], [false, 'handlerError'])
  assert.ok(!hidden[2].message.includes('secret'))
  const shown = await client.p.call.boom(exposed.address)
  assert.equal(shown[2].code, 'handlerError')
  assert.ok(shown[2].message.includes('visible detail'))
  assert.equal(server.p.stats().handlerErrors, 1)
})

check('bodies near 8 KiB: 8100 bytes round-trips; over 8192 is RPCSizeError / replyTooLarge', async () => {
  const server = await listening()
  server.p.handle('echo', (_s, v) => v)
  server.p.handle('big', () => 'x'.repeat(9000))
  const client = await listening()
  const body = 'b'.repeat(8100)
  const r = await client.p.call.echo(server.address, body)
  assert.deepEqual(r, [true, body])
  await assert.rejects(client.p.call.echo(server.address, 'b'.repeat(8200)), (e) => e instanceof RPCSizeError && e.code === 'ERR_RPC_TOO_LARGE')
  const tooBig = await client.p.call.big(server.address)
  assert.deepEqual([tooBig[0], tooBig[2].code], [false, 'replyTooLarge'])
})

check('2000 concurrent calls all answered, counted by stats() on both ends', async () => {
  const server = await listening()
  server.p.handle('double', (_s, n) => n * 2)
  const client = await listening({ waitTimeout: 20 })
  const N = 2000
  const results = await Promise.all(Array.from({ length: N }, (_, i) => client.p.call.double(server.address, i)))
  results.forEach((r, i) => assert.deepEqual(r, [true, i * 2]))
  const c = client.p.stats()
  const s = server.p.stats()
  assert.equal(c.requestsSent, N)
  assert.equal(c.responsesReceived, N)
  assert.equal(c.outstanding, 0)
  assert.equal(s.requestsReceived, N)
  assert.equal(s.responsesSent, N)
  assert.equal(s.droppedTotal, 0)
})

check('close() settles every outstanding call as closed; later calls throw RPCStateError', async () => {
  const server = await listening()
  server.p.handle('hang', never)
  const client = await listening({ waitTimeout: 30 })
  const pending = Array.from({ length: 50 }, () => client.p.call.hang(server.address))
  await new Promise((r) => setTimeout(r, 50))
  assert.equal(client.p.stats().outstanding, 50)
  const t0 = performance.now()
  await client.p.close()
  const results = await Promise.all(pending)
  assert.ok(performance.now() - t0 < 1000)
  for (const r of results) assert.deepEqual([r[0], r[2].code], [false, 'closed'])
  await assert.rejects(client.p.call.hang(server.address), (e) => e instanceof RPCStateError && e.code === 'ERR_RPC_CLOSED')
})

check('kademlia records: ed25519 through node:crypto signs and verifies; a mutable and an immutable record put by one node are got, verified, by another', async () => {
  const { KademliaNode, generateKeyPair } = require('../../dist/kademlia')
  const { verifySignature } = require('../../dist/kademlia/ed25519')
  const { signedMessage, encodeValue } = require('../../dist/kademlia/records')
  const keys = generateKeyPair()
  assert.equal(keys.publicKey.length, 32)
  const nodes = [0, 1].map(() => new KademliaNode({ backend, rpc: { nativeIo }, diversity: false, waitTimeout: 2 }))
  try {
    const [a] = await Promise.all(nodes.map((n) => n.listen(0, HOST)))
    await nodes[1].bootstrap([a])
    const put = await nodes[0].putMutable(keys, 'signed ✓', { salt: 'conformance' })
    assert.equal(put.stored, 1)
    const got = await nodes[1].getMutable(keys.publicKey, { salt: 'conformance' })
    assert.equal(got.value, 'signed ✓')
    assert.equal(got.seq, 0n)
    const message = signedMessage(Buffer.from('conformance'), 0n, encodeValue('signed ✓'))
    assert.equal(verifySignature(keys.publicKey, message, got.signature), true)
    got.signature[0] ^= 1
    assert.equal(verifySignature(keys.publicKey, message, got.signature), false)
    const imm = await nodes[1].putImmutable(Buffer.from([1, 2, 3]))
    assert.deepEqual(await nodes[0].getImmutable(imm.target), Buffer.from([1, 2, 3]))
  } finally {
    await Promise.all(nodes.map((n) => n.close()))
  }
})

// Not a pass/fail check by itself: run-all.cjs compares the "# calls/s" line
// with the same run's Node pure figure, to catch a runtime-specific cliff
// (Deno's node:dgram with a large SO_RCVBUF was ~25x slower).
check('throughput: 4 000 echo calls, 32 in flight (prints "# calls/s N")', async () => {
  const server = await listening()
  server.p.handle('echo', (_s, x) => x)
  const client = await listening()
  const total = 4000
  let sent = 0
  const t0 = performance.now()
  const lane = async () => {
    while (sent < total) {
      sent++
      const r = await client.p.call.echo(server.address, sent)
      assert.equal(r[0], true)
    }
  }
  await Promise.all(Array.from({ length: 32 }, lane))
  console.log(`# calls/s ${Math.round(total / ((performance.now() - t0) / 1000))}`)
})

// RPCUDP_CONFORMANCE_NO_ADDON=<copy of binding.js with no addon beside it>: run-all's
// "missing addon" run, for the install message under every runtime.
if (process.env.RPCUDP_CONFORMANCE_NO_ADDON) {
  checks.length = 0
  check('a missing addon: nativeBackend().reason names the platform package; auto runs on pure', async () => {
    const info = nativeBackend()
    assert.equal(info.available, false)
    assert.match(info.reason, /^rpcudp-[\w-]+, the package holding this platform's addon, is not installed/)
    assert.doesNotMatch(info.reason, /4828|wasi/)
    assert.equal(new RPCProtocol().backend, 'pure')
    assert.throws(() => new RPCProtocol({ backend: 'native' }), (e) => e instanceof RPCBackendError && e.message.includes(info.reason))
  })
}

async function main() {
  let pass = 0
  let fail = 0
  for (const [i, { name, fn }] of checks.entries()) {
    try {
      await fn()
      pass++
      console.log(`ok ${i + 1} - ${name}`)
    } catch (err) {
      fail++
      console.log(`not ok ${i + 1} - ${name}\n  # ${String(err && err.stack ? err.stack : err).replace(/\n/g, '\n  # ')}`)
    }
    for (const p of open) await p.close()
    open.clear()
  }
  console.log(`# pass ${pass}\n# fail ${fail}`)
  if (fail) process.exitCode = 1
}

main().catch((err) => {
  console.log(`not ok - the runner itself failed: ${err && err.stack}`)
  process.exitCode = 1
})
