#!/usr/bin/env node
'use strict'
// The per-call cost of issue 12's controls on the native hot path: native↔native
// against the same with perSource limits on both ends and an AbortSignal on
// every call (bench/lib/systems.cjs, CONTROLS), at 256 calls in flight. Each
// variant is one bench/run.cjs run whose rounds interleave the two systems, so
// every ratio is from the same run. Target (issue 12): within 10 %.
//
//   node bench/controls.cjs [--calls-per-signal=N] [--rounds=N] [--duration=MS] [--levels=256]
//
// Variants, by how many calls share one AbortController (BENCH_CALLS_PER_SIGNAL):
//   long-lived  one signal for the whole run (a node's lifetime signal): the cost
//               of rpcudp's per-call signal handling and of perSource alone
//   16          a fresh controller per 16 calls (a lookup's worth)
//   1           a fresh controller per call (the worst case)
// Creating an AbortController and attaching its first listener is Node's cost
// (microseconds in Node 20), paid once per signal; the variants show how it
// amortises. Other arguments go to bench/run.cjs; each variant's full report
// lands in bench/out/latest.* (overwritten by the next).

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const LONG_LIVED = 1e9
const argv = process.argv.slice(2)
const only = argv.find((a) => a.startsWith('--calls-per-signal='))
const extra = argv.filter((a) => a !== only)
const has = (flag) => extra.some((a) => a.startsWith(`--${flag}`))
const variants = only ? [Number(only.split('=')[1])] : [LONG_LIVED, 16, 1]
const name = (n) => (n >= LONG_LIVED ? 'long-lived signal' : `a signal per ${n} call${n === 1 ? '' : 's'}`)

const summary = []
for (const perSignal of variants) {
  console.log(`\n## ${name(perSignal)}`)
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
  const run = spawnSync(process.execPath, args, { stdio: 'inherit', env: { ...process.env, BENCH_CALLS_PER_SIGNAL: String(perSignal) } })
  if (run.status !== 0) process.exit(run.status ?? 1)
  const { results } = JSON.parse(fs.readFileSync(path.join(__dirname, 'out', 'latest.json'), 'utf8'))
  const rows = (key) => results.find((r) => r.key === key)?.rows ?? []
  for (const base of rows('native')) {
    const controls = rows('native-controls').find((r) => r.inflight === base.inflight)
    if (controls) summary.push({ perSignal, base, controls })
  }
}

console.log('\ncontrols (issue 12): native with signal + perSource / native without, medians of the same run')
for (const { perSignal, base, controls } of summary) {
  const ratio = controls.callsPerSec / base.callsPerSec
  console.log(
    `  ${name(perSignal).padEnd(22)} ${String(base.inflight).padStart(4)} in flight: ${Math.round(controls.callsPerSec)} vs ${Math.round(base.callsPerSec)} calls/s = ${ratio.toFixed(3)}` +
      ` (CPU µs/call client ${controls.clientCpu.toFixed(1)} vs ${base.clientCpu.toFixed(1)}, server ${controls.serverCpu.toFixed(1)} vs ${base.serverCpu.toFixed(1)})` +
      ` ${ratio >= 0.9 ? 'within' : 'NOT within'} 10 %`,
  )
}
