/**
 * Workers that end without close() — returning, terminate()d, dying from an
 * uncaught exception, calling process.exit() — while they have listening
 * sockets and outstanding calls, and the main thread has sockets of its own.
 * The process must survive every case and the main thread's calls keep
 * working. Each scenario runs in a child process (helpers/worker-scenario.ts)
 * so that a crash is a failed test here, with the child's signal in the message.
 */
import test from 'ava'
import { join } from 'node:path'
import type { BackendName } from '../src/index'
import { lastJsonLine, runTsChild } from './helpers/child'
import type { WorkerEnd } from './helpers/worker-body'

const scenario = join(__dirname, 'helpers', 'worker-scenario.ts')

/** How each kind of ending shows in the Worker's exit code. */
const EXIT_CODE: Record<WorkerEnd, number> = { return: 0, terminate: 1, uncaught: 1, exit: 3 }

const MODES: ReadonlyArray<{ backend: BackendName; nativeIo: 'loop' | 'thread'; label: string }> = [
  { backend: 'native', nativeIo: 'loop', label: "native, nativeIo 'loop'" },
  { backend: 'native', nativeIo: 'thread', label: "native, nativeIo 'thread'" },
  { backend: 'pure', nativeIo: 'loop', label: 'pure' },
]

const CASES: ReadonlyArray<{ name: string; title: string; ends: WorkerEnd[] }> = [
  { name: 'return', title: 'a Worker that returns without close()', ends: ['return'] },
  { name: 'terminate', title: 'a Worker terminate()d', ends: ['terminate'] },
  { name: 'uncaught', title: 'a Worker dying from an uncaught exception', ends: ['uncaught'] },
  { name: 'exit', title: 'a Worker calling process.exit()', ends: ['exit'] },
  { name: 'row20', title: '20 Workers in a row (each way of ending in turn)', ends: Array.from({ length: 20 }, (_, i) => (['return', 'terminate', 'uncaught', 'exit'] as const)[i % 4]) },
  { name: 'parallel4', title: '4 Workers at once (one per way of ending)', ends: ['return', 'terminate', 'uncaught', 'exit'] },
]

for (const mode of MODES) {
  for (const c of CASES) {
    test.serial(`[${mode.label}] ${c.title}, with open sockets and outstanding calls: the process survives and its calls keep working`, async (t) => {
      const r = await runTsChild(['--expose-gc', scenario, c.name, mode.backend, mode.nativeIo], { timeoutMs: 150_000 })
      const where = `exit ${r.status} signal ${r.signal}\n${r.stderr.slice(-2000)}`
      t.is(r.signal, null, `the process was killed: ${where}`)
      t.is(r.status, 0, where)
      const report = lastJsonLine(r.stdout)
      if (report === undefined) return t.fail(`no report: ${r.stdout.slice(-500)} ${where}`)
      t.deepEqual(
        // The two calls nobody answers are outstanding for sure; the third usually (its answer comes after 1 s).
        report.workers.map((w: any) => ({ end: w.end, ready: w.ready, outstanding: w.outstanding >= 2, backend: w.backend, exitCode: w.exitCode, error: w.error })),
        c.ends.map((end) => ({
          end,
          ready: true,
          outstanding: true,
          backend: mode.backend,
          exitCode: EXIT_CODE[end],
          error: end === 'uncaught' ? 'uncaught in worker' : undefined,
        })),
      )
      t.true(report.mainCalls.length > 0 && report.mainCalls.every(Boolean), JSON.stringify(report.mainCalls))
      t.is(report.mainTimeouts, 0)
    })
  }
}
