/**
 * Soak: 1 000 000 calls through one client/server pair, ~256 in flight, per
 * backend, in a child process (so it can run with --expose-gc and so we can
 * see it exit). RSS after a full collection may grow by less than 10 MB after
 * the first 100 000 calls, and once both protocols are closed the process must
 * exit by itself.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { eachBackendSerial } from './helpers/backends'

const CALLS = Number(process.env.RPCUDP_SOAK_CALLS ?? 1_000_000)
const CHILD = join(__dirname, 'helpers', 'soak-child.ts')

interface Run {
  lines: any[]
  code: number | null
  signal: NodeJS.Signals | null
  /** ms from the child reporting both protocols closed to its exit */
  exitAfterCloseMs: number
}

function runChild(args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    // V8's young generation starts at 1 MB and grows to 16 MB under load; pinning it keeps that
    // one-off growth (not a leak) out of the RSS comparison.
    const child = spawn(process.execPath, ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16', '--import=tsx', CHILD, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    let closedAt = 0
    child.stdout.on('data', (d) => {
      out += d
      if (!closedAt && out.includes('"closed":true')) closedAt = performance.now()
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      const lines = out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
      resolve({ lines, code, signal, exitAfterCloseMs: closedAt ? performance.now() - closedAt : Infinity })
    })
  })
}

eachBackendSerial(`soak: ${CALLS} calls, ~256 in flight, memory flat, exits by itself after close()`, async (t, backend) => {
  t.timeout(170_000)
  const run = await runChild([backend, String(CALLS), '256'], 160_000)
  const [r] = run.lines
  t.log(JSON.stringify({ ...r, exitAfterCloseMs: Math.round(run.exitAfterCloseMs) }))
  t.is(run.signal, null, 'the soak did not finish in time (killed)')
  t.is(run.code, 0)
  t.deepEqual(run.lines[1]?.closed, true)
  t.true(run.exitAfterCloseMs < 3000, `the process took ${run.exitAfterCloseMs} ms to exit after close()`)
  t.is(r.ok, CALLS)
  t.is(r.bad, 0)
  t.like(r.client, { requestsSent: CALLS, responsesReceived: CALLS, timeouts: 0, outstanding: 0, droppedTotal: 0 })
  t.like(r.server, { requestsReceived: CALLS, responsesSent: CALLS, droppedTotal: 0 })
  const rss: number[] = r.samples.map((s: { rssMB: number }) => s.rssMB)
  t.true(rss.length >= 2)
  const growth = Math.max(...rss.slice(1)) - rss[0]
  t.true(growth < 10, `RSS grew ${growth.toFixed(1)} MB after the first ${r.samples[0].calls} calls`)
})

eachBackendSerial('close() with calls outstanding and handlers hanging: calls settle, process exits by itself', async (t, backend) => {
  const run = await runChild([backend, 'busy'], 20_000)
  t.is(run.signal, null)
  t.is(run.code, 0)
  t.deepEqual(run.lines[0], { closedCalls: 100, handlersRunning: 100 })
  t.true(run.exitAfterCloseMs < 3000, `the process took ${run.exitAfterCloseMs} ms to exit after close()`)
})
