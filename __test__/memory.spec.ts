/**
 * Opening, calling once and closing 2 000 protocols in one process leaves
 * heap, external memory and RSS each less than 20 MB above a warmed-up,
 * garbage-collected baseline: a closed protocol and everything it held can be
 * collected. Measured in a child process with --expose-gc
 * (helpers/memory-cycles.ts), one per backend and native I/O mode.
 */
import test from 'ava'
import { join } from 'node:path'
import { lastJsonLine, runTsChild } from './helpers/child'

const script = join(__dirname, 'helpers', 'memory-cycles.ts')
const CYCLES = 2000
const LIMIT = 20 << 20
const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`

for (const [backend, nativeIo] of [['native', 'loop'], ['native', 'thread'], ['pure', 'loop']] as const) {
  const label = backend === 'native' ? `native, nativeIo '${nativeIo}'` : 'pure'
  test.serial(`[${label}] 2000 open/call/close cycles: heap, external and RSS each grow < 20 MB`, async (t) => {
    const r = await runTsChild(['--expose-gc', script, backend, nativeIo, String(CYCLES)], { timeoutMs: 150_000 })
    t.is(r.status, 0, `exit ${r.status} signal ${r.signal}\n${r.stderr.slice(-2000)}`)
    const report = lastJsonLine(r.stdout)
    if (report === undefined) return t.fail(`no report: ${r.stdout.slice(-500)}`)
    const g = report.growth
    t.log(`${report.cycles} cycles: heap +${MiB(g.heapUsed)}, external +${MiB(g.external)}, RSS +${MiB(g.rss)}`)
    t.is(report.stoppedAt, undefined, `stopped after ${report.stoppedAt} cycles: growth passed 256 MiB`)
    t.is(report.cycles, CYCLES)
    t.is(report.failedCalls, 0)
    t.true(g.heapUsed < LIMIT, `heap grew ${MiB(g.heapUsed)}`)
    t.true(g.external < LIMIT, `external grew ${MiB(g.external)}`)
    t.true(g.rss < LIMIT, `RSS grew ${MiB(g.rss)}`)
  })
}
