#!/usr/bin/env node
'use strict'
// Paired A/B of the one-socket echo path (issue 17: "the echo path is back to
// 0.1.0's cost"): runs `bench/run.cjs --systems=native --levels=256` in this
// checkout and in each --dirs checkout (another commit, with its addon built),
// alternating which goes first from pair to pair, and reports per pair the
// ratio of client CPU per call and of calls/s, this checkout over the other,
// with their medians. Each run is its own server and client processes, so a
// build is measured by the code it ships. A measurement, not a test: it exits
// non-zero only when a run fails.
//
//   git worktree add /work/ab-012 b12feac && (cd /work/ab-012 && npm ci && npm run build)
//   node bench/ab-echo.cjs --dirs=/work/ab-012 --pairs=7
//   node bench/ab-echo.cjs --help

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { median } = require('./lib/stats.cjs')

const HELP = `usage: node bench/ab-echo.cjs --dirs=DIR[,DIR] [options]

  --dirs=a,b      other rpcudp checkouts, each built (npm run build)
  --pairs=N       alternating pairs of runs (default 7)
  --level=N       calls in flight (default 256)
  --duration=MS   measured window per run (default 2000)
  --system=S      bench/run.cjs system (default native)
  --help`

function parseArgs(argv) {
  const o = { dirs: [], pairs: 7, level: 256, duration: 2000, system: 'native' }
  for (const a of argv) {
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(a)
    if (m?.[1] === 'help') (console.log(HELP), process.exit(0))
    if (!m || !(m[1] in o) || m[2] === undefined) (console.error(`unknown argument ${a}\n\n${HELP}`), process.exit(2))
    if (m[1] === 'dirs') o.dirs = m[2].split(',').map((d) => path.resolve(d))
    else if (m[1] === 'system') o.system = m[2]
    else {
      const n = Number(m[2])
      if (!Number.isInteger(n) || n < 1) (console.error(`--${m[1]} must be a positive integer`), process.exit(2))
      o[m[1]] = n
    }
  }
  if (o.dirs.length === 0) (console.error(`--dirs is required\n\n${HELP}`), process.exit(2))
  return o
}

function commitOf(dir) {
  try {
    const commit = execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== ''
    return dirty ? `${commit}+changes` : commit
  } catch {
    return '?'
  }
}

/** One run of bench/run.cjs in `dir`: its row for the level, from the JSON it writes. */
function runOnce(dir, o) {
  const args = ['bench/run.cjs', `--systems=${o.system}`, `--levels=${o.level}`, '--rounds=1', `--duration=${o.duration}`, '--no-memory', '--no-timers', '--no-write']
  execFileSync(process.execPath, args, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'bench', 'out', 'latest.json'), 'utf8'))
  const row = json.results.find((r) => r.key === o.system)?.rows.find((r) => r.inflight === o.level)
  if (row === undefined) throw new Error(`${dir}: no ${o.system} row at ${o.level} in flight`)
  return row
}

function main() {
  const o = parseArgs(process.argv.slice(2))
  const here = path.join(__dirname, '..')
  const builds = [here, ...o.dirs].map((dir) => ({ dir, commit: commitOf(dir), rows: [] }))
  console.log(`# node bench/ab-echo.cjs ${process.argv.slice(2).join(' ')} — ${new Date().toISOString()}, node ${process.version}`)
  console.log(`# ${o.system}, ${o.level} in flight, ${o.duration} ms per run; builds: ${builds.map((b) => `${b.commit} (${b.dir})`).join(', ')}`)
  for (let pair = 0; pair < o.pairs; pair++) {
    const order = pair % 2 === 0 ? builds : [...builds].reverse()
    for (const b of order) {
      const row = runOnce(b.dir, o)
      b.rows[pair] = row
      console.log(`pair ${pair + 1} ${b.commit}: ${Math.round(row.callsPerSec)} calls/s, client ${row.clientCpu.toFixed(2)} µs/call, server ${row.serverCpu.toFixed(2)} µs/call, timeouts ${row.timeouts}, other ${row.otherCpu.toFixed(0)}%`)
    }
  }
  const [a, ...others] = builds
  console.log('\n| build | calls/s | client CPU µs / call | server CPU µs / call |\n|---|---:|---:|---:|')
  for (const b of builds) {
    const m = (f) => median(b.rows.map((r) => r[f]))
    console.log(`| ${b.commit}${b === a ? ' (this checkout)' : ''} | ${Math.round(m('callsPerSec'))} | ${m('clientCpu').toFixed(2)} | ${m('serverCpu').toFixed(2)} |`)
  }
  for (const b of others) {
    const ratio = (f) => a.rows.map((r, i) => r[f] / b.rows[i][f])
    const show = (xs) => `median ${median(xs).toFixed(3)}x (pairs: ${xs.map((x) => x.toFixed(3)).join(', ')})`
    console.log(`\n${a.commit} / ${b.commit}, client CPU per call: ${show(ratio('clientCpu'))}`)
    console.log(`${a.commit} / ${b.commit}, server CPU per call: ${show(ratio('serverCpu'))}`)
    console.log(`${a.commit} / ${b.commit}, calls/s: ${show(ratio('callsPerSec'))}`)
  }
}

main()
