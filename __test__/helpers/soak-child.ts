/**
 * The soak, run in a child process (spawned by soak.spec.ts with --expose-gc):
 * CALLS calls through one client/server pair with IN_FLIGHT in flight, RSS
 * sampled after a full collection, then close() on both and nothing else: the
 * parent checks that the process then exits by itself.
 *
 * Prints one JSON line of results, then `{"closed":true}` once both are closed.
 */
import { RPCProtocol, type BackendName } from '../../src/index'

const backend = process.argv[2] as BackendName
const CALLS = Number(process.argv[3] === 'busy' ? 0 : process.argv[3] ?? 1_000_000)
const IN_FLIGHT = Number(process.argv[4] ?? 256)
const WARMUP = Math.min(100_000, CALLS / 10)
const collect = (globalThis as any).gc as () => void

async function settledRss(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    collect()
    await new Promise((r) => setTimeout(r, 20))
  }
  return process.memoryUsage().rss / 2 ** 20
}

async function main() {
  const server = new RPCProtocol({ backend }).handle('echo', (_sender, n: number, s: string) => [n, s])
  const client = new RPCProtocol({ backend, waitTimeout: 10 })
  const address = await server.listen(0, '127.0.0.1')
  await client.listen(0, '127.0.0.1')

  let next = 0
  let ok = 0
  let bad = 0
  const samples: { calls: number; rssMB: number; heapMB?: number; extMB?: number }[] = []
  let sampling: Promise<void> | null = null
  const started = performance.now()
  let warmEnd = 0
  const worker = async () => {
    while (next < CALLS) {
      const n = next++
      const r = await client.callRemote(address, 'echo', [n, 'payload'])
      if (r[0] && r[1][0] === n && r[1][1] === 'payload') ok++
      else bad++
      // at every 100 000 calls, every worker waits while one takes a settled RSS sample
      if ((n + 1) % WARMUP === 0 && n + 1 < CALLS) {
        if (n + 1 === WARMUP) warmEnd = performance.now()
        sampling = (async () => {
          while (ok + bad < n + 1) await new Promise((r) => setImmediate(r))
          samples.push({ calls: n + 1, rssMB: await settledRss(), heapMB: process.memoryUsage().heapTotal / 2 ** 20, extMB: process.memoryUsage().external / 2 ** 20 })
        })()
      }
      if (sampling) {
        const s = sampling
        await s
        if (sampling === s) sampling = null
      }
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
  const elapsed = performance.now() - started
  samples.push({ calls: CALLS, rssMB: await settledRss(), heapMB: process.memoryUsage().heapTotal / 2 ** 20, extMB: process.memoryUsage().external / 2 ** 20 })
  const c = client.stats()
  const s = server.stats()
  const result = {
    backend,
    calls: CALLS,
    ok,
    bad,
    elapsedMs: Math.round(elapsed),
    callsPerSec: Math.round(((CALLS - WARMUP) / (elapsed - (warmEnd - started))) * 1000),
    samples: samples.map((x) => ({ calls: x.calls, rssMB: +x.rssMB.toFixed(1), heapTotalMB: +(x.heapMB ?? 0).toFixed(1), extMB: +(x.extMB ?? 0).toFixed(1) })),
    growthAfterWarmupMB: +(samples[samples.length - 1].rssMB - samples[0].rssMB).toFixed(1),
    client: { requestsSent: c.requestsSent, responsesReceived: c.responsesReceived, timeouts: c.timeouts, outstanding: c.outstanding, droppedTotal: c.droppedTotal },
    server: { requestsReceived: s.requestsReceived, responsesSent: s.responsesSent, droppedTotal: s.droppedTotal },
  }
  process.stdout.write(JSON.stringify(result) + '\n')
  await client.close()
  await server.close()
  process.stdout.write(JSON.stringify({ closed: true, at: Date.now() }) + '\n')
  // nothing else: no process.exit(), no timers; the process must end by itself
}

/** close() with calls outstanding and a handler that never settles: the calls settle 'closed' and the process still exits. */
async function closeWhileBusy() {
  const server = new RPCProtocol({ backend }).handle('hang', () => new Promise(() => {}))
  const client = new RPCProtocol({ backend, waitTimeout: 60 })
  const address = await server.listen(0, '127.0.0.1')
  await client.listen(0, '127.0.0.1')
  const calls = Array.from({ length: 100 }, () => client.callRemote(address, 'hang', []))
  while (server.stats().handlersRunning < 100) await new Promise((r) => setTimeout(r, 5))
  await client.close()
  await server.close()
  const results = await Promise.all(calls)
  const closed = results.filter((r) => !r[0] && r[2].code === 'closed').length
  process.stdout.write(JSON.stringify({ closedCalls: closed, handlersRunning: server.stats().handlersRunning }) + '\n')
  process.stdout.write(JSON.stringify({ closed: true, at: Date.now() }) + '\n')
}

;(process.argv[3] === 'busy' ? closeWhileBusy() : main()).catch((err) => {
  console.error(err)
  process.exitCode = 1
})
