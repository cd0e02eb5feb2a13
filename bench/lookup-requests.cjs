#!/usr/bin/env node
'use strict'
// Where a random-target lookup's requests go (issue 17): one process runs N
// rpcudp/kademlia nodes on 127.0.0.1, then L gets of never-stored keys (each a
// full lookup) from random nodes, and reports CPU per lookup, requests per
// lookup network-wide (the lookup's own find calls and everything else, such
// as the pings that verify new senders) and CPU per request. With --dirs, the
// same seeded run repeats for each build of rpcudp named, alternating builds
// per round: a paired A/B of a change on the lookup path. A measurement, not
// a test; it runs the built dist/ of each directory.
//
//   node bench/lookup-requests.cjs                                  1000 nodes, 3000 lookups, this checkout, native
//   node bench/lookup-requests.cjs --dirs=/path/to/old,. --rounds=3 paired A/B against another build
//   node bench/lookup-requests.cjs --help

const { fork } = require('node:child_process')
const path = require('node:path')
const { seeded, pool, listenNodes, bootstrapAll } = require('./lib/network.cjs')
const { median } = require('./lib/stats.cjs')

const HELP = `usage: node bench/lookup-requests.cjs [options]

  --nodes=N        nodes in the process (default 1000)
  --lookups=N      measured lookups of random targets (default 3000)
  --warmup=N       unmeasured lookups first (default 500; tables keep growing for ~30 000 at 1 000 nodes)
  --concurrency=N  lookups in flight (default 32)
  --backend=NAME   native or pure (default native)
  --dirs=a,b       rpcudp checkouts to compare, each with a built dist/ (default: this one)
  --rounds=N       runs per directory, alternating (default 1)
  --seed=N         seed of ids, join order and targets (default 7)
  --help`

function parseArgs(argv) {
  const o = { nodes: 1000, lookups: 3000, warmup: 500, concurrency: 32, backend: 'native', dirs: path.join(__dirname, '..'), rounds: 1, seed: 7 }
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
    if (m[1] === 'backend' || m[1] === 'dirs') o[m[1]] = m[2]
    else if (Number.isInteger(Number(m[2])) && Number(m[2]) > 0) o[m[1]] = Number(m[2])
    else {
      console.error(`--${m[1]} must be a positive integer`)
      process.exit(2)
    }
  }
  o.dirs = o.dirs.split(',').map((d) => path.resolve(d))
  return o
}

/** One run, in a child process: build the network from `dir`'s dist/, warm up, measure. */
async function child(o) {
  const { KademliaNode } = require(path.join(o.dir, 'dist/kademlia/index.js'))
  const rnd = seeded(o.seed)
  const { nodes, addresses } = await listenNodes(o.nodes, rnd, { backend: o.backend, waitTimeout: 5 }, KademliaNode)
  await bootstrapAll(nodes, addresses, rnd)
  const target = () => Buffer.from(Array.from({ length: 20 }, () => Math.floor(rnd() * 256)))
  const total = (f) => nodes.reduce((s, n) => s + f(n.stats()), 0)
  const lookup = async () => {
    if ((await nodes[Math.floor(rnd() * nodes.length)].get(target())) === null) ok++
  }
  let ok = 0
  await pool(o.warmup, o.concurrency, lookup)
  ok = 0
  const requests0 = total((s) => s.rpc.requestsSent)
  const finds0 = total((s) => s.lookupCalls)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await pool(o.lookups, o.concurrency, lookup)
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const cpuMs = (cpu.user + cpu.system) / 1000 / o.lookups
  const requests = (total((s) => s.rpc.requestsSent) - requests0) / o.lookups
  const finds = (total((s) => s.lookupCalls) - finds0) / o.lookups
  const result = { lookupsPerS: (o.lookups / ms) * 1000, cpuMs, requests, finds, usPerRequest: (cpuMs * 1000) / requests, contacts: total((s) => s.contacts) / nodes.length, ok }
  await Promise.all(nodes.map((n) => n.close()))
  process.send(result)
}

function run(o, dir) {
  return new Promise((resolve, reject) => {
    const c = fork(__filename, ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    c.send({ ...o, dir })
    c.once('message', resolve)
    c.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`run for ${dir} exited ${code}`))))
  })
}


async function main() {
  const o = parseArgs(process.argv.slice(2))
  const runs = new Map(o.dirs.map((d) => [d, []]))
  for (let r = 0; r < o.rounds; r++) {
    for (const dir of o.dirs) {
      const res = await run(o, dir)
      runs.get(dir).push(res)
      console.error(`round ${r + 1} ${dir}: ${res.cpuMs.toFixed(2)} ms CPU/lookup, ${res.requests.toFixed(1)} requests/lookup, ${res.lookupsPerS.toFixed(0)} lookups/s`)
    }
  }
  console.log(`${o.nodes} nodes, ${o.backend}, ${o.lookups} random-target lookups, ${o.concurrency} in flight; medians of ${o.rounds} round(s)\n`)
  console.log('| build | lookups/s | CPU ms / lookup | requests / lookup | find calls / lookup | CPU µs / request | contacts / node | lookups ended |')
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|')
  for (const [dir, rs] of runs) {
    const m = (k) => median(rs.map((x) => x[k]))
    console.log(`| ${path.relative(process.cwd(), dir) || '.'} | ${m('lookupsPerS').toFixed(0)} | ${m('cpuMs').toFixed(2)} | ${m('requests').toFixed(1)} | ${m('finds').toFixed(1)} | ${m('usPerRequest').toFixed(0)} | ${m('contacts').toFixed(0)} | ${m('ok')}/${o.lookups} |`)
  }
  if (o.dirs.length === 2) {
    const [a, b] = o.dirs.map((d) => runs.get(d))
    const ratios = a.map((x, i) => b[i].cpuMs / x.cpuMs)
    console.log(`\nCPU per lookup, ${path.basename(o.dirs[1])} / ${path.basename(o.dirs[0])}: median of per-round ratios ${median(ratios).toFixed(2)} (${ratios.map((x) => x.toFixed(2)).join(', ')})`)
  }
}

if (process.argv[2] === '--child') process.once('message', (o) => child(o).catch((e) => (console.error(e), process.exit(1))))
else main().catch((e) => (console.error(e), process.exit(1)))
