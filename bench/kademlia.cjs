#!/usr/bin/env node
'use strict'
// The Kademlia benchmark (issue 13): for each backend, one process runs N
// rpcudp/kademlia nodes on 127.0.0.1 (one UDP socket each), bootstraps them,
// stores K keys and then does L lookups of stored keys from random nodes. It
// prints lookups/s, p50/p99 lookup latency, hops and calls per lookup, RSS per
// node, and the verdicts against the targets. A measurement, not a
// test: it exits non-zero only when the harness breaks. It runs the built
// dist/, so `npm run build` first.
//
//   node bench/kademlia.cjs                       1000 nodes, 1000 keys, 10 000 lookups, native and pure
//   node bench/kademlia.cjs --nodes=200 --lookups=2000
//   node bench/kademlia.cjs --help

const { fork } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { median } = require('./lib/stats.cjs')

const HELP = `usage: node bench/kademlia.cjs [options]

  --nodes=N         nodes per process (default 1000)
  --keys=N          keys stored before the lookups (default 1000)
  --lookups=N       lookups of stored keys, from random nodes (default 10000)
  --concurrency=N   lookups (and sets) in flight at once (default 64)
  --ksize=N         k (default 20)       --alpha=N   alpha (default 3)
  --backends=a,b    subset of native,pure (default both, native first)
  --rounds=N        runs per backend, alternating backends; the table shows each column's median over them (default 1)
  --seed=N          seed of ids, bootstrap order and lookup plan, the same for both backends (default 13)
  --json            print the results as one JSON line too
  --help

The native backend runs with the library's default nativeIo ('loop' on Node);
RPCUDP_NATIVE_IO=thread in the environment runs it in thread mode instead.`

const TARGETS = { ratio: 1.5, found: 1, rssPerNode: 200 * 1024 }

function parseArgs(argv) {
  const o = { nodes: 1000, keys: 1000, lookups: 10000, concurrency: 64, ksize: 20, alpha: 3, backends: 'native,pure', rounds: 1, seed: 13, json: false }
  for (const a of argv) {
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(a)
    if (!m || !(m[1] in o || m[1] === 'help')) {
      console.error(`unknown argument ${a}\n\n${HELP}`)
      process.exit(2)
    }
    if (m[1] === 'help') {
      console.log(HELP)
      process.exit(0)
    }
    if (m[1] === 'json') o.json = true
    else if (m[1] === 'backends') o.backends = m[2]
    else {
      const n = Number(m[2])
      if (!Number.isInteger(n) || n < 1) {
        console.error(`--${m[1]} must be a positive integer`)
        process.exit(2)
      }
      o[m[1]] = n
    }
  }
  o.backends = o.backends.split(',')
  for (const b of o.backends) if (b !== 'native' && b !== 'pure') (console.error(`unknown backend ${b}`), process.exit(2))
  return o
}

/** The children run dist/ (see lib/kademlia-child.cjs): it must exist and be newer than every source file. */
function checkBuild() {
  const ROOT = path.join(__dirname, '..')
  const built = path.join(ROOT, 'dist', 'kademlia', 'index.js')
  const newest = (dir) =>
    fs.readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
      const p = path.join(dir, e.name)
      return Math.max(m, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs)
    }, 0)
  if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < newest(path.join(ROOT, 'src'))) {
    console.error('bench/kademlia.cjs runs the built dist/: run `npm run build` (or `npm run build:ts`) first')
    process.exit(2)
  }
}

function runChild(backend, o) {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'lib', 'kademlia-child.cjs'), [], {
      execArgv: ['--expose-gc'],
      env: { ...process.env, BENCH_CHILD_OPTS: JSON.stringify({ ...o, backend }) },
    })
    let result
    child.on('message', (m) => m.ev === 'result' && (result = m))
    child.on('exit', (code) => (result ? resolve(result) : reject(new Error(`${backend} child exited ${code} without a result`))))
  })
}

const kb = (b) => `${(b / 1024).toFixed(0)} KB`

async function main() {
  const o = parseArgs(process.argv.slice(2))
  checkBuild()
  console.log(
    `Kademlia benchmark: ${o.nodes} nodes per process, ${o.keys} keys, ${o.lookups} lookups, ${o.concurrency} in flight, k=${o.ksize}, alpha=${o.alpha}, ${o.rounds} round(s), ` +
      `nativeIo ${process.env.RPCUDP_NATIVE_IO || 'default'}, node ${process.version}, ${new Date().toISOString().slice(0, 16)}Z`,
  )
  const runs = Object.fromEntries(o.backends.map((b) => [b, []]))
  for (let r = 0; r < o.rounds; r++)
    for (const b of o.backends) {
      const res = await runChild(b, o)
      runs[b].push(res)
      console.log(
        `  round ${r + 1} ${b}: ${res.lookupsPerS.toFixed(0)} lookups/s, p50 ${res.p50Ms.toFixed(1)} ms, p99 ${res.p99Ms.toFixed(1)} ms, ` +
          `found ${res.found}/${res.lookups}, bootstrap ${res.bootstrapS.toFixed(1)} s, store ${res.storeS.toFixed(1)} s`,
      )
    }
  const report = {}
  for (const b of o.backends) {
    const rs = runs[b]
    const pick = (f) => median(rs.map((x) => x[f]))
    report[b] = Object.fromEntries(Object.keys(rs[0]).map((k) => [k, typeof rs[0][k] === 'number' ? pick(k) : rs[0][k]]))
  }
  const cols = [
    ['lookups/s', (r) => r.lookupsPerS.toFixed(0)],
    ['p50 ms', (r) => r.p50Ms.toFixed(2)],
    ['p99 ms', (r) => r.p99Ms.toFixed(2)],
    ['hops/lookup', (r) => r.hopsPerLookup.toFixed(2)],
    ['calls/lookup', (r) => r.callsPerLookup.toFixed(1)],
    ['JS thread busy', (r) => `${(100 * r.loopBusy).toFixed(0)} %`],
    ['CPU ms/lookup (all threads)', (r) => r.cpuMsPerLookup.toFixed(2)],
    ['found', (r) => `${r.found}/${r.lookups}`],
    ['network lookups', (r) => String(r.networkLookups)],
    ['RSS/node listening', (r) => kb(r.rssPerNodeListening)],
    ['RSS/node with tables+keys', (r) => kb(r.rssPerNodeLoaded)],
    ['JS heap+external/node listening', (r) => kb(r.jsPerNodeListening)],
    ['JS heap+external/node with tables+keys', (r) => kb(r.jsPerNodeLoaded)],
    ['bootstrap s', (r) => r.bootstrapS.toFixed(1)],
    ['sets acked', (r) => `${r.acknowledged}/${r.keys}`],
    ['timeouts', (r) => String(r.timeouts)],
    ['drops', (r) => String(r.drops)],
  ]
  console.log(`\n| backend | ${cols.map((c) => c[0]).join(' | ')} |`)
  console.log(`|---|${cols.map(() => '---:').join('|')}|`)
  for (const b of o.backends) console.log(`| ${b} | ${cols.map((c) => c[1](report[b])).join(' | ')} |`)

  console.log('\nTargets (issue 13):')
  const verdict = (ok) => (ok ? 'MET' : 'MISSED')
  if (report.native && report.pure) {
    // Like bench/run.cjs: each native round against the pure round run right after it (the machine's load drifts over a run), the median of those.
    const paired = runs.native.map((n, i) => n.lookupsPerS / runs.pure[i].lookupsPerS)
    const m = median(paired)
    console.log(`  native lookups/s >= ${TARGETS.ratio}x pure (same run, median of the per-round ratios ${paired.map((x) => x.toFixed(2)).join(', ')}): ${m.toFixed(2)}x  ${verdict(m >= TARGETS.ratio)}`)
    console.log(`  (median lookups/s against median lookups/s: ${(report.native.lookupsPerS / report.pure.lookupsPerS).toFixed(2)}x)`)
  } else console.log('  native/pure ratio: needs both backends')
  for (const b of o.backends) {
    const r = report[b]
    console.log(`  ${b}: 100 % of keys found: ${((100 * r.found) / r.lookups).toFixed(2)} %  ${verdict(r.found === r.lookups)}`)
    console.log(
      `  ${b}: RSS per node <= ${kb(TARGETS.rssPerNode)}: ${kb(r.rssPerNodeLoaded)} with tables and keys (${kb(r.rssPerNodeListening)} listening only)  ${verdict(r.rssPerNodeLoaded <= TARGETS.rssPerNode)}`,
    )
  }
  if (o.json) console.log(JSON.stringify({ options: o, report }))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
