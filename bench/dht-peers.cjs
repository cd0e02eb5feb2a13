#!/usr/bin/env node
'use strict'
// rpcudp/kademlia against the DHTs a builder would weigh it against (issue
// 17), on the same seeded work: for each system, one process runs N nodes on
// 127.0.0.1, joins them (each through a random node at least 16 places
// earlier, 16 joining at once), then does W unmeasured and L measured full
// lookups of random targets from random nodes, C in flight: a `get` of a
// never-stored key on rpcudp and Python kademlia 2.2.3, dht-rpc's `findNode`,
// bittorrent-dht's `lookup`. Systems alternate within each round; the table
// shows medians over rounds and each system's per-round ratio to rpcudp
// native. A measurement, not a test: it exits non-zero only when the harness
// breaks. It runs the built dist/ (`npm run build` first) and Python from
// .venv (scripts/python-env.sh).
//
//   node bench/dht-peers.cjs                                  200 nodes, all five systems, 3 rounds
//   node bench/dht-peers.cjs --nodes=1000 --systems=native,pure,dht-rpc,bittorrent-dht
//   node bench/dht-peers.cjs --help

const { execFileSync, fork } = require('node:child_process')
const path = require('node:path')
const { seeded, pool } = require('./lib/network.cjs')
const { percentiles, median } = require('./lib/stats.cjs')

const ALL = ['native', 'pure', 'dht-rpc', 'bittorrent-dht', 'python']
const PYTHON = path.join(__dirname, '..', '.venv', 'bin', 'python')

const HELP = `usage: node bench/dht-peers.cjs [options]

  --nodes=N        nodes per system, each system in its own process (default 200: what Python holds)
  --lookups=N      measured lookups of random targets (default 2000)
  --warmup=N       unmeasured lookups first (default 200)
  --concurrency=N  lookups in flight (default 32)
  --rounds=N       runs per system, alternating systems (default 3)
  --seed=N         seed of ids, join order, lookup origins and targets (default 17)
  --systems=a,b    subset of ${ALL.join(',')} (default all)
  --help`

function parseArgs(argv) {
  const o = { nodes: 200, lookups: 2000, warmup: 200, concurrency: 32, rounds: 3, seed: 17, systems: ALL.join(',') }
  for (const a of argv) {
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(a)
    if (m?.[1] === 'help') {
      console.log(HELP)
      process.exit(0)
    }
    if (!m || !(m[1] in o) || m[2] === undefined) {
      console.error(`bad argument ${a}\n\n${HELP}`)
      process.exit(2)
    }
    if (m[1] === 'systems') o.systems = m[2]
    else if (Number.isInteger(Number(m[2])) && Number(m[2]) > 0) o[m[1]] = Number(m[2])
    else {
      console.error(`--${m[1]} must be a positive integer`)
      process.exit(2)
    }
  }
  o.systems = o.systems.split(',')
  const unknown = o.systems.filter((s) => !ALL.includes(s))
  if (unknown.length > 0 || !o.systems.includes('native')) {
    console.error(`--systems takes ${ALL.join(',')} and must include native (the ratios are to it)`)
    process.exit(2)
  }
  return o
}

/** One JavaScript system's run, in a child process (so its CPU and RSS are its own). */
async function child(o) {
  const { SYSTEMS } = require('./lib/dht-systems.cjs')
  const rnd = seeded(o.seed)
  global.gc()
  const rss0 = process.memoryUsage.rss()
  const net = await SYSTEMS[o.system](o.nodes, rnd)
  const latencies = []
  let ended = 0
  const lookup = async () => {
    const from = Math.floor(rnd() * o.nodes)
    const target = Buffer.from(Array.from({ length: 20 }, () => Math.floor(rnd() * 256)))
    const t0 = performance.now()
    if (await net.lookup(from, target)) ended++
    latencies.push(performance.now() - t0)
  }
  await pool(o.warmup, o.concurrency, lookup)
  latencies.length = 0
  ended = 0
  const requests0 = net.requests()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await pool(o.lookups, o.concurrency, lookup)
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const requests = (net.requests() - requests0) / o.lookups
  global.gc()
  const rssPerNode = (process.memoryUsage.rss() - rss0) / o.nodes
  process.send({ lookupsPerS: (o.lookups / ms) * 1000, cpuMs: (cpu.user + cpu.system) / 1000 / o.lookups, requests, latencies, ended, rssPerNode })
  await net.close()
  process.exit(0)
}

function runJs(o, system) {
  return new Promise((resolve, reject) => {
    const c = fork(__filename, ['--child'], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    c.send({ ...o, system })
    c.once('message', resolve)
    c.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`${system} exited ${code}`))))
  })
}

function runPython(o) {
  const out = execFileSync(PYTHON, [path.join(__dirname, 'python_dht.py'), o.nodes, o.lookups, o.concurrency, o.warmup, o.seed].map(String), {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  })
  return JSON.parse(out.trim().split('\n').pop())
}

const LABEL = {
  native: 'rpcudp/kademlia, native',
  pure: 'rpcudp/kademlia, pure',
  'dht-rpc': 'dht-rpc (findNode)',
  'bittorrent-dht': 'bittorrent-dht (lookup)',
  python: 'Python kademlia 2.2.3 (get)',
}

/** A dependency's version from its package.json (bittorrent-dht exports no path to it). */
const version = (pkg) => JSON.parse(require('node:fs').readFileSync(path.join(__dirname, '..', 'node_modules', pkg, 'package.json'), 'utf8')).version

async function main() {
  const o = parseArgs(process.argv.slice(2))
  const runs = new Map(o.systems.map((s) => [s, []]))
  for (let r = 0; r < o.rounds; r++) {
    for (const system of o.systems) {
      const res = system === 'python' ? runPython(o) : await runJs(o, system)
      const [p50, p99] = percentiles(res.latencies, [50, 99])
      Object.assign(res, { p50, p99, usPerRequest: (res.cpuMs * 1000) / res.requests, perCpuS: 1000 / res.cpuMs })
      delete res.latencies
      runs.get(system).push(res)
      console.error(`round ${r + 1} ${system}: ${res.lookupsPerS.toFixed(0)} lookups/s, ${res.cpuMs.toFixed(2)} ms CPU/lookup, ${res.requests.toFixed(1)} requests/lookup`)
    }
  }
  const versions = ['dht-rpc', 'bittorrent-dht'].map((p) => `${p} ${version(p)}`).join(', ')
  console.log(
    `${o.nodes} nodes per system in one process each, ${o.lookups} random-target lookups after ${o.warmup} unmeasured, ${o.concurrency} in flight; ` +
      `medians of ${o.rounds} round(s); Node ${process.version}, ${versions}\n`,
  )
  console.log('| system | lookups/s | CPU ms / lookup | requests / lookup | CPU µs / request | p50 ms | p99 ms | RSS / node | native ÷ this, lookups/s | native ÷ this, lookups per CPU-s | lookups ended |')
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  const native = runs.get('native')
  for (const [system, rs] of runs) {
    const m = (k) => median(rs.map((x) => x[k]))
    const ratio = (k) => median(rs.map((x, i) => native[i][k] / x[k]))
    console.log(
      `| ${LABEL[system]} | ${m('lookupsPerS').toFixed(0)} | ${m('cpuMs').toFixed(2)} | ${m('requests').toFixed(1)} | ${m('usPerRequest').toFixed(0)} | ` +
        `${m('p50').toFixed(1)} | ${m('p99').toFixed(1)} | ${(m('rssPerNode') / 1024).toFixed(0)} KB | ` +
        `${system === 'native' ? '1' : `${ratio('lookupsPerS').toFixed(2)}x`} | ${system === 'native' ? '1' : `${ratio('perCpuS').toFixed(2)}x`} | ${m('ended')}/${o.lookups} |`,
    )
  }
  console.log("\n'native ÷ this': the median over rounds of native's figure in a round divided by this system's in the same round.")
}

if (process.argv[2] === '--child') process.once('message', (o) => child(o).catch((e) => (console.error(e), process.exit(1))))
else main().catch((e) => (console.error(e), process.exit(1)))
