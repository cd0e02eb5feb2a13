/**
 * The addon's own boundary, below RPCProtocol's validation: whatever arrives,
 * it answers with an error carrying a `code` from `errorCodes()`, never a
 * crash; the lists TypeScript uses are the ones the addon exports; large
 * batches arrive whole through the shared batch buffer; and in thread mode
 * timers fire while a flood keeps the socket readable.
 */
import test from 'ava'
import { createSocket } from 'node:dgram'
import { RPCProtocol } from '../src/index'
import { DROP_REASONS, NATIVE_ERROR_CODES } from '../src/wire-names'
import { REQUEST, datagram, newId, requestBody, sleep } from './helpers/raw'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const binding = require('../binding.js')

const OPTIONS = { maxBody: 8192, maxOutstanding: 1000, checkSender: true, recvBuffer: 1 << 16, sendBuffer: 1 << 16 }

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err: any) {
    return err.code
  }
  return undefined
}

test('src/wire-names.ts is what the addon exports (regenerate with npm run build:native)', (t) => {
  t.deepEqual([...DROP_REASONS], binding.dropReasons())
  t.deepEqual([...NATIVE_ERROR_CODES], binding.errorCodes())
})

for (const io of ['loop', 'thread']) {
  test(`[${io}] absurd arguments straight to the addon are typed errors, and the socket keeps working`, async (t) => {
    const s = new binding.NativeSocket()
    t.is(codeOf(() => s.call('127.0.0.1', 9, Buffer.alloc(4), 4, 1000, 1)), 'ERR_CLOSED', 'before bind')
    t.is(codeOf(() => s.bind('127.0.0.1', 0, { ...OPTIONS, io: 'sideways' }, () => {})), 'ERR_INVALID_ARGUMENT')
    t.is(codeOf(() => s.bind('not an ip', 0, { ...OPTIONS, io }, () => {})), 'ERR_INVALID_ADDRESS')
    const bound = s.bind('127.0.0.1', 0, { ...OPTIONS, io }, () => {})
    t.teardown(() => s.close())
    t.true(bound.port > 0)
    const body = requestBody('x', [])
    const cases: [string, () => unknown][] = [
      ['timeout NaN', () => s.call('127.0.0.1', 9, body, body.length, NaN, 1)],
      ['timeout 1e300', () => s.call('127.0.0.1', 9, body, body.length, 1e300, 1)],
      ['timeout Infinity', () => s.call('127.0.0.1', 9, body, body.length, Infinity, 1)],
      ['port 2^40', () => s.call('127.0.0.1', 2 ** 40, body, body.length, 10, 1)],
      ['len past the body', () => s.call('127.0.0.1', 9, body, body.length + 1, 10, 1)],
      ['host', () => s.call('example.com', 9, body, body.length, 10, 1)],
      ['id length', () => s.reply(Buffer.alloc(3), '127.0.0.1', 9, body, body.length)],
      ['oversized body', () => s.call('127.0.0.1', 9, Buffer.alloc(9000, 0xc0), 9000, 10, 1)],
    ]
    for (const [what, fn] of cases) {
      const code = codeOf(fn)
      t.true(typeof code === 'string' && (NATIVE_ERROR_CODES as readonly string[]).includes(code), `${what}: ${code}`)
    }
    // A negative timeout waits nothing: it is not an error.
    t.is(codeOf(() => s.call('127.0.0.1', 9, body, body.length, -5, 2)), undefined)
    s.close()
    t.is(codeOf(() => s.call('127.0.0.1', 9, body, body.length, 10, 3)), 'ERR_CLOSED', 'after close')
    s.close() // twice is fine
  })
}

for (const io of ['loop', 'thread'] as const) {
  test(`[${io}] a burst larger than the shared batch buffer (256 KiB) reaches JavaScript whole`, async (t) => {
    const server = new RPCProtocol({ backend: 'native', nativeIo: io })
    t.teardown(() => server.close())
    let seen = 0
    server.handle('big', () => {
      seen++
      return null
    })
    const address = await server.listen(0, '127.0.0.1')
    const sender = createSocket('udp4')
    t.teardown(() => sender.close())
    await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', resolve))
    // 64 requests of ~8 KiB sent back to back: about 512 KiB of events if read in one go.
    const N = 64
    const payload = Buffer.alloc(8000, 0x61).toString()
    for (let i = 0; i < N; i++) sender.send(datagram(REQUEST, newId(), requestBody('big', [payload])), address[1], address[0])
    const until = Date.now() + 10_000
    while (seen < N && Date.now() < until) await sleep(20)
    t.is(seen, N)
    t.is(server.stats().requestsReceived, N)
  })
}

test.serial('[thread] a call times out on time while a flood keeps the socket readable', async (t) => {
  const victim = new RPCProtocol({ backend: 'native', nativeIo: 'thread' })
  t.teardown(() => victim.close())
  const address = await victim.listen(0, '127.0.0.1')
  const silent = createSocket('udp4')
  t.teardown(() => silent.close())
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve))
  const flooder = createSocket('udp4')
  t.teardown(() => flooder.close())
  // Garbage (dropped as tooShort) keeps the socket readable without any work in JavaScript.
  let flooding = true
  const junk = Buffer.alloc(4)
  const flood = (async () => {
    while (flooding) {
      for (let i = 0; i < 200; i++) flooder.send(junk, address[1], address[0])
      await new Promise((r) => setImmediate(r))
    }
  })()
  await sleep(100)
  const started = Date.now()
  const r = await victim.callRemote(['127.0.0.1', silent.address().port], 'x', [], { timeout: 0.2 })
  const took = Date.now() - started
  flooding = false
  await flood
  t.is(r[0], false)
  t.is(r[2]?.code, 'timeout')
  t.true(victim.stats().dropped.tooShort > 0, 'the flood reached the socket')
  // Generous for a loaded machine; a starved timer waits for the flood to stop (never, here).
  t.true(took < 2000, `timed out after ${took} ms`)
})

test('[thread] close() returns promptly', async (t) => {
  const p = new RPCProtocol({ backend: 'native', nativeIo: 'thread' })
  await p.listen(0, '127.0.0.1')
  const started = performance.now()
  await p.close()
  t.true(performance.now() - started < 250)
})
