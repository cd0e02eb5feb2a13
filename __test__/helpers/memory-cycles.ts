/**
 * Child process of memory.spec.ts (run with --expose-gc): opens, calls once
 * and closes `cycles` protocols one after another, against one long-lived
 * server, and reports how much heap, external memory and RSS grew between a
 * warmed-up, collected baseline and the collected end state.
 *
 *   node --import=tsx --expose-gc memory-cycles.ts <backend> <nativeIo> <cycles>
 *
 * Stops early (reporting `stoppedAt`) once external or RSS growth passes
 * BAIL_BYTES: the assertion has failed by then, and a leak of ~1 MiB per
 * socket would otherwise take gigabytes of a shared machine.
 */
import { RPCProtocol, type BackendName } from '../../src/index'

const [backend, nativeIo, cyclesArg] = process.argv.slice(2) as [BackendName, 'loop' | 'thread', string]
const cycles = Number(cyclesArg)
const WARM_UP = 200
const BAIL_BYTES = 256 << 20

const gc = globalThis.gc
if (!gc) throw new Error('run with --expose-gc')

async function collect() {
  // Several rounds with turns of the event loop between them, so finalizers
  // (and what they release) run before the next measurement.
  for (let i = 0; i < 4; i++) {
    gc!()
    await new Promise((r) => setTimeout(r, 20))
  }
}

function sample() {
  const m = process.memoryUsage()
  return { heapUsed: m.heapUsed, external: m.external, rss: m.rss }
}

async function main() {
  const options = { backend, nativeIo, waitTimeout: 5 }
  const server = new RPCProtocol(options)
  server.handle('ping', () => 'pong')
  const address = await server.listen(0, '127.0.0.1')
  let failedCalls = 0

  async function cycle() {
    const p = new RPCProtocol(options)
    await p.listen(0, '127.0.0.1')
    const r = await p.call.ping(address)
    if (!r[0]) failedCalls++
    await p.close()
  }

  for (let i = 0; i < WARM_UP; i++) await cycle()
  await collect()
  const before = sample()
  let done = 0
  for (; done < cycles; done++) {
    await cycle()
    if (done % 100 === 99) {
      const now = sample()
      if (now.external - before.external > BAIL_BYTES || now.rss - before.rss > BAIL_BYTES) break
    }
  }
  await collect()
  const after = sample()
  await server.close()
  const growth = { heapUsed: after.heapUsed - before.heapUsed, external: after.external - before.external, rss: after.rss - before.rss }
  console.log(JSON.stringify({ backend, nativeIo, cycles: done, stoppedAt: done < cycles ? done : undefined, failedCalls, before, after, growth }))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
