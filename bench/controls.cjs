#!/usr/bin/env node
'use strict'
// The per-call cost of issue 12's controls on the native hot path: native↔native
// against the same with an AbortSignal on every call and perSource limits on
// both ends (bench/lib/systems.cjs, CONTROLS), at 256 calls in flight, measured
// by bench/run.cjs in interleaved rounds of the same run. Target: within 10 %.
//
//   node bench/controls.cjs [--rounds=N] [--duration=MS] [--levels=256]
//
// Extra arguments go to bench/run.cjs; the full report lands in bench/out/latest.*.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const extra = process.argv.slice(2)
const has = (flag) => extra.some((a) => a.startsWith(`--${flag}`))
const args = [
  path.join(__dirname, 'run.cjs'),
  '--systems=native,native-controls',
  ...(has('levels') ? [] : ['--levels=256']),
  ...(has('rounds') ? [] : ['--rounds=5']),
  '--no-memory',
  '--no-timers',
  '--no-write',
  ...extra,
]
const run = spawnSync(process.execPath, args, { stdio: 'inherit' })
if (run.status !== 0) process.exit(run.status ?? 1)

const { results } = JSON.parse(fs.readFileSync(path.join(__dirname, 'out', 'latest.json'), 'utf8'))
const rows = (key) => results.find((r) => r.key === key)?.rows ?? []
console.log('\ncontrols (issue 12): native with signal + perSource / native without, same run, medians')
for (const base of rows('native')) {
  const with_ = rows('native-controls').find((r) => r.inflight === base.inflight)
  if (!with_) continue
  const ratio = with_.callsPerSec / base.callsPerSec
  const cpu = with_.clientCpu / base.clientCpu
  console.log(
    `  ${String(base.inflight).padStart(5)} in flight: ${Math.round(with_.callsPerSec)} vs ${Math.round(base.callsPerSec)} calls/s = ${ratio.toFixed(3)} ` +
      `(client CPU/call ${cpu.toFixed(3)}x, server ${(with_.serverCpu / base.serverCpu).toFixed(3)}x) ${ratio >= 0.9 ? 'within' : 'NOT within'} 10 %`,
  )
}
