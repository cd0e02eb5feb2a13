/**
 * Child process of workers.spec.ts: runs Workers that end without close()
 * while the main thread has sockets of its own, then checks the main thread's
 * calls still work. Run in its own process so that a crash (a segfault on
 * Worker teardown) fails the test instead of killing ava's worker.
 *
 *   node --import=tsx worker-scenario.ts <case> <backend> <nativeIo>
 *   case: return | terminate | uncaught | exit | row20 | parallel4
 *
 * Prints one JSON line: { workers: [{ end, ready, exitCode, error }], mainCalls, ... }.
 */
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { RPCProtocol, type BackendName } from '../../src/index'
import type { WorkerEnd, WorkerInput } from './worker-body'

const [scenario, backend, nativeIo] = process.argv.slice(2) as [string, BackendName, 'loop' | 'thread']
const ENDS: readonly WorkerEnd[] = ['return', 'terminate', 'uncaught', 'exit']
const WORKER_LIMIT_MS = 20_000

interface WorkerOutcome {
  end: WorkerEnd
  ready: boolean
  outstanding?: number
  backend?: string
  exitCode: number | null
  error?: string
}

function runWorker(end: WorkerEnd, mainServer: [string, number]): Promise<WorkerOutcome> {
  const input: WorkerInput = { backend, nativeIo, end, mainServer }
  // tsx's --import hook does not reach Workers on every Node version; its require hook does.
  const source = `require('tsx/cjs'); require(${JSON.stringify(join(__dirname, 'worker-body.ts'))})`
  const worker = new Worker(source, { eval: true, workerData: input })
  const outcome: WorkerOutcome = { end, ready: false, exitCode: null }
  return new Promise((resolve) => {
    const limit = setTimeout(() => {
      outcome.error = `still running after ${WORKER_LIMIT_MS} ms`
      void worker.terminate()
    }, WORKER_LIMIT_MS)
    worker.on('message', (m) => {
      if (m.error) outcome.error = m.error
      if (!m.ready) return
      Object.assign(outcome, { ready: true, outstanding: m.outstanding, backend: m.backend })
      if (end === 'terminate') void worker.terminate()
    })
    worker.on('error', (err) => (outcome.error = err.message))
    worker.on('exit', (code) => {
      clearTimeout(limit)
      outcome.exitCode = code
      resolve(outcome)
    })
  })
}

async function mainCallsWork(client: RPCProtocol, server: [string, number]): Promise<boolean> {
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => client.call.echo(server, i)))
  return results.every((r, i) => r[0] && r[1] === i)
}

async function main() {
  const options = { backend, nativeIo, waitTimeout: 5 }
  const server = new RPCProtocol(options)
  server.handle('echo', (_s, v: unknown) => v)
  // Answers a Worker's call after the Worker has usually ended: a reply to a socket that is gone.
  server.handle('slow', () => new Promise((r) => setTimeout(() => r('late'), 1000)))
  const serverAddress = await server.listen(0, '127.0.0.1')
  const client = new RPCProtocol(options)
  await client.listen(0, '127.0.0.1')

  const workers: WorkerOutcome[] = []
  const mainCalls: boolean[] = []
  if (scenario === 'row20') {
    for (let i = 0; i < 20; i++) {
      workers.push(await runWorker(ENDS[i % ENDS.length], serverAddress))
      mainCalls.push(await mainCallsWork(client, serverAddress))
    }
  } else if (scenario === 'parallel4') {
    const running = ENDS.map((end) => runWorker(end, serverAddress))
    mainCalls.push(await mainCallsWork(client, serverAddress)) // while they run
    workers.push(...(await Promise.all(running)))
  } else workers.push(await runWorker(scenario as WorkerEnd, serverAddress))
  // Let any teardown the Workers left behind run (finalizers, cleanup hooks) before the last check.
  await new Promise((r) => setTimeout(r, 200))
  globalThis.gc?.()
  mainCalls.push(await mainCallsWork(client, serverAddress))
  const stats = client.stats()
  await client.close()
  await server.close()
  console.log(JSON.stringify({ workers, mainCalls, mainTimeouts: stats.timeouts }))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
