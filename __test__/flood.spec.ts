/**
 * Flood: another process fires valid requests far faster than the server's
 * async handlers finish. The server must stay within maxHandlers, count the
 * excess (handlersBusy, answered 'overloaded'), keep its memory bounded, and
 * answer normally once the flood stops.
 */
import { spawn } from 'node:child_process'
import { RPCProtocol, type RPCProtocolOptions } from '../src/index'
import { eachBackendSerial, listening } from './helpers/backends'
import { gc, rcvbufErrors, received, settledRss, sleep, until } from './helpers/raw'

const MAX_HANDLERS = 256
const HANDLER_MS = 100
const FLOOD = 300_000

/** A child process that sends `count` valid requests to `port` as fast as it can, reading (and counting) what comes back. */
const FLOODER = `
const dgram = require('node:dgram')
const [port, count] = process.argv.slice(1).map(Number)
const s = dgram.createSocket('udp4')
let answers = 0
s.on('message', () => answers++)
s.bind(0, '127.0.0.1', () => {
  s.setRecvBufferSize(8 << 20)
  // a valid request ["slow", [i]]: msgpack 0x92 0xa4 "slow" 0x91 uint32
  const body = Buffer.from([0x92, 0xa4, 0x73, 0x6c, 0x6f, 0x77, 0x91, 0xce, 0, 0, 0, 0])
  let sent = 0
  const burst = () => {
    for (let k = 0; k < 256 && sent < count; k++, sent++) {
      const d = Buffer.allocUnsafe(21 + body.length)
      d[0] = 0
      d.writeUInt32BE(sent, 1); d.fill(7, 5, 21)
      body.copy(d, 21)
      d.writeUInt32BE(sent, 21 + 8)
      s.send(d, port, '127.0.0.1')
    }
    if (sent < count) setImmediate(burst)
    else setTimeout(() => { process.stdout.write(JSON.stringify({ sent, answers })); s.close() }, 300)
  }
  burst()
})
`

function flood(port: number, count: number): Promise<{ sent: number; answers: number; ms: number }> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', FLOODER, String(port), String(count)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      if (code !== 0) return reject(new Error(`flooder exited with ${code}`))
      resolve({ ...JSON.parse(out), ms: performance.now() - started })
    })
  })
}

eachBackendSerial('a request flood far faster than the handlers: bounded, counted, then normal service', async (t, backend) => {
  t.timeout(90_000)
  const collect = gc()
  let finished = 0
  const make = (o: RPCProtocolOptions) =>
    new RPCProtocol(o).handle('slow', async (_sender, n: number) => {
      await sleep(HANDLER_MS)
      finished++
      return n
    })
  const { proto: server, address } = await listening(t, make, { backend, maxHandlers: MAX_HANDLERS })
  const rssBefore = await settledRss(collect)
  const kernelBefore = rcvbufErrors()

  let peakRunning = 0
  let peakRss = 0
  let peakHeap = 0
  const sampler = setInterval(() => {
    const m = process.memoryUsage()
    peakRss = Math.max(peakRss, m.rss / 2 ** 20)
    peakHeap = Math.max(peakHeap, m.heapUsed / 2 ** 20)
    peakRunning = Math.max(peakRunning, server.stats().handlersRunning)
  }, 20)
  const f = await flood(address[1], FLOOD)
  clearInterval(sampler)
  await until(() => server.stats().handlersRunning === 0, 10_000, 'the running handlers to finish')
  await sleep(50)
  const s = server.stats()
  const kernelDrops = rcvbufErrors() - kernelBefore
  const rssAfter = await settledRss(collect)
  const figures = {
    backend,
    sent: f.sent,
    floodMs: Math.round(f.ms),
    requestsReceived: s.requestsReceived,
    handled: finished,
    handlersBusy: s.dropped.handlersBusy,
    responsesSent: s.responsesSent,
    errorsSent: s.errorsSent,
    answersAtFlooder: f.answers,
    kernelDrops,
    peakRunning,
    rssBeforeMB: Math.round(rssBefore),
    peakRssGrowthMB: Math.round(peakRss - rssBefore),
    rssAfterGrowthMB: Math.round(rssAfter - rssBefore),
    peakHeapMB: Math.round(peakHeap),
  }
  t.log(JSON.stringify(figures))

  t.true(peakRunning <= MAX_HANDLERS, `handlersRunning peaked at ${peakRunning}`)
  t.true(s.dropped.handlersBusy > f.sent / 10, 'most of the flood was refused as busy')
  // every request the server took in was either handled or refused, once
  t.is(s.requestsReceived, finished + s.dropped.handlersBusy)
  t.is(s.responsesSent, finished)
  t.is(s.errorsSent, s.dropped.handlersBusy) // each refusal answered 'overloaded'
  // and every datagram sent was taken in or dropped by the kernel for want of buffer space
  t.true(received(s) <= f.sent)
  t.true(f.sent - received(s) <= kernelDrops, `${f.sent - received(s)} requests unaccounted for, kernel dropped ${kernelDrops}`)
  // memory bounded while flooded and after
  t.true(peakRss - rssBefore < 150, `RSS peaked ${peakRss - rssBefore} MB above the start`)
  t.true(rssAfter - rssBefore < 60, `RSS ${rssAfter - rssBefore} MB above the start after the flood`)

  // the flood is over: normal answers, promptly
  const { proto: client } = await listening(t, (o) => new RPCProtocol(o), { backend, waitTimeout: 2 })
  const t0 = performance.now()
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => client.callRemote(address, 'slow', [i])))
  t.deepEqual(results, Array.from({ length: 200 }, (_, i) => [true, i]))
  t.true(performance.now() - t0 < 1500, `200 calls took ${performance.now() - t0} ms`)
})
