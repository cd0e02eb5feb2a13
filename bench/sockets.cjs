#!/usr/bin/env node
'use strict'
// The 1 000-socket scenario: what many protocols in one process cost (a DHT
// simulation, a test network). For each backend, in its own fresh process
// (one after the other; rounds alternate the backends, so a burst of foreign
// load lands on one round rather than on one backend; the report takes the
// median over rounds):
//
//   1. open and close one protocol (loads the addon, starts its runtime), gc,
//      then sample RSS / heap / external: the baseline;
//   2. open N protocols one after another (new RPCProtocol + await listen),
//      timed: "open";
//   3. gc, sample again: the growth is what N listening sockets cost;
//   4. ring: protocol i calls `echo` (a 32-byte buffer) on protocol i+1 (mod N),
//      keeping K calls in flight per protocol (each completion starts the next),
//      warm-up then a measured window: "ring calls/s";
//   5. close them all, timed.
//
// Targets (issue 11), checked on the same-run numbers:
//   native RSS growth <= 150 MB for 1 000 sockets; native open time <= 3 × pure;
//   ring calls/s native >= 1.5 × pure.
// A measurement, not a test: a MISS does not make it exit non-zero (a broken
// run does). The JSON of the run goes to bench/out/sockets.json.
//
//   node bench/sockets.cjs [--sockets=1000] [--inflight=4] [--seconds=3] [--rounds=3] [--backends=native,pure]
//   (children: node --expose-gc --import tsx bench/sockets.cjs child BACKEND OPTIONS_JSON)

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const os = require('node:os')

const ROOT = path.join(__dirname, '..')
const MB = 1e6

function parseArgs(argv) {
  const o = { sockets: 1000, inflight: 4, seconds: 3, warmupSeconds: 1, rounds: 3, backends: ['native', 'pure'] }
  for (const a of argv) {
    const m = /^--(\w+)=(.*)$/.exec(a)
    if (!m) throw new Error(`unknown argument ${a}; see the comment at the top of bench/sockets.cjs`)
    if (m[1] === 'backends') o.backends = m[2].split(',')
    else if (m[1] in o) o[m[1]] = Number(m[2])
    else throw new Error(`unknown option --${m[1]}`)
  }
  return o
}

// ------------------------------------------------------------------ child

async function child(backend, o) {
  const { rpcudp, HOST, PAYLOAD } = require('./lib/systems.cjs')
  const { RPCProtocol } = rpcudp()
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
  async function quiesce() {
    for (let i = 0; i < 4; i++) {
      global.gc()
      await sleep(50)
    }
  }
  const sample = () => {
    const m = process.memoryUsage()
    return { rss: m.rss, heapUsed: m.heapUsed, external: m.external }
  }
  const make = () => {
    const p = new RPCProtocol({ backend, waitTimeout: 5 })
    p.handle('echo', (_sender, value) => value)
    return p
  }

  const warm = make()
  await warm.listen(0, HOST)
  await warm.close()
  await quiesce()
  const before = sample()

  const protos = []
  const addresses = []
  let t0 = performance.now()
  for (let i = 0; i < o.sockets; i++) {
    const p = make()
    addresses.push(await p.listen(0, HOST))
    protos.push(p)
  }
  const openMs = performance.now() - t0
  await quiesce()
  const opened = sample()

  // The ring: each protocol keeps `inflight` calls going to the next one.
  let measuring = false
  let running = true
  let calls = 0
  let failures = 0
  const args = [PAYLOAD]
  const next = (i) => {
    protos[i].callRemote(addresses[(i + 1) % protos.length], 'echo', args).then((r) => {
      if (measuring) r[0] ? calls++ : failures++
      if (running) next(i)
    })
  }
  for (let i = 0; i < protos.length; i++) for (let k = 0; k < o.inflight; k++) next(i)
  await sleep(o.warmupSeconds * 1000)
  measuring = true
  t0 = performance.now()
  await sleep(o.seconds * 1000)
  measuring = false
  const ringMs = performance.now() - t0
  running = false
  const ringRss = process.memoryUsage().rss

  t0 = performance.now()
  for (const p of protos) await p.close()
  const closeMs = performance.now() - t0

  return {
    backend,
    nativeIo: protos[0].nativeIo,
    sockets: protos.length,
    openMs,
    growth: { rss: opened.rss - before.rss, heapUsed: opened.heapUsed - before.heapUsed, external: opened.external - before.external },
    ringRssGrowth: ringRss - before.rss,
    ring: { inflight: protos.length * o.inflight, calls, failures, ms: ringMs, callsPerSecond: (calls / ringMs) * 1000 },
    closeMs,
  }
}

// ------------------------------------------------------------------ parent

function runChild(backend, o) {
  return new Promise((resolve, reject) => {
    const args = ['--expose-gc', '--import', 'tsx', __filename, 'child', backend, JSON.stringify(o)]
    const c = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    c.stdout.on('data', (d) => (out += d))
    c.on('close', (code, signal) => {
      const line = out.trim().split('\n').pop()
      if (code !== 0 || !line) return reject(new Error(`${backend} child exited ${signal ?? code}: ${out.slice(-1000)}`))
      resolve(JSON.parse(line))
    })
  })
}

const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** One backend's rounds as one row: the median of each measurement, and the ring's spread. */
function summarise(rounds) {
  const m = (f) => median(rounds.map(f))
  return {
    backend: rounds[0].backend,
    nativeIo: rounds[0].nativeIo,
    sockets: rounds[0].sockets,
    openMs: m((r) => r.openMs),
    growth: { rss: m((r) => r.growth.rss), heapUsed: m((r) => r.growth.heapUsed), external: m((r) => r.growth.external) },
    ring: { callsPerSecond: m((r) => r.ring.callsPerSecond), failures: rounds.reduce((n, r) => n + r.ring.failures, 0) },
    ringSpread: [Math.min(...rounds.map((r) => r.ring.callsPerSecond)), Math.max(...rounds.map((r) => r.ring.callsPerSecond))],
    closeMs: m((r) => r.closeMs),
  }
}

async function parent(o) {
  const started = new Date()
  const load = os.loadavg()
  const rounds = Object.fromEntries(o.backends.map((b) => [b, []]))
  for (let i = 0; i < o.rounds; i++) for (const b of o.backends) rounds[b].push(await runChild(b, o))
  const results = Object.fromEntries(o.backends.map((b) => [b, summarise(rounds[b])]))

  console.log(`${o.sockets}-socket scenario, ${started.toISOString()}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, load at start ${load.map((l) => l.toFixed(2)).join(' ')}`)
  console.log(`node bench/sockets.cjs ${process.argv.slice(2).join(' ')}`.trim())
  console.log(
    `${o.sockets} protocols per process, ring with ${o.inflight} calls in flight per protocol, ${o.seconds} s measured after ${o.warmupSeconds} s warm-up; medians of ${o.rounds} rounds (ring: min–max)\n`,
  )
  console.log('| backend | RSS growth | heap growth | external growth | open | ring calls/s | ring failures | close |')
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|')
  for (const r of Object.values(results)) {
    const label = r.nativeIo ? `${r.backend} (nativeIo '${r.nativeIo}')` : r.backend
    console.log(
      `| ${label} | ${fmt(r.growth.rss / MB, 1)} MB | ${fmt(r.growth.heapUsed / MB, 1)} MB | ${fmt(r.growth.external / MB, 1)} MB | ${fmt(r.openMs)} ms | ${fmt(r.ring.callsPerSecond)} (${fmt(r.ringSpread[0])}–${fmt(r.ringSpread[1])}) | ${r.ring.failures} | ${fmt(r.closeMs)} ms |`,
    )
  }
  const n = results.native
  const p = results.pure
  if (n && p) {
    const perThousand = 1000 / n.sockets
    const verdict = (ok) => (ok ? 'PASS' : 'MISS')
    const rows = [
      [`native RSS growth per 1 000 sockets`, `${fmt((n.growth.rss / MB) * perThousand, 1)} MB`, '≤ 150 MB', verdict((n.growth.rss / MB) * perThousand <= 150)],
      ['native / pure time to open', fmt(n.openMs / p.openMs, 2), '≤ 3', verdict(n.openMs / p.openMs <= 3)],
      ['native / pure ring calls/s', fmt(n.ring.callsPerSecond / p.ring.callsPerSecond, 2), '≥ 1.5', verdict(n.ring.callsPerSecond / p.ring.callsPerSecond >= 1.5)],
    ]
    console.log('\n| target | measured | goal | verdict |\n|---|---:|---|---|')
    for (const r of rows) console.log(`| ${r.join(' | ')} |`)
  }
  fs.mkdirSync(path.join(__dirname, 'out'), { recursive: true })
  fs.writeFileSync(path.join(__dirname, 'out', 'sockets.json'), JSON.stringify({ started, load, options: o, results, rounds }, null, 2))
}

if (process.argv[2] === 'child') {
  child(process.argv[3], JSON.parse(process.argv[4])).then(
    (r) => console.log(JSON.stringify(r)),
    (err) => {
      console.error(err)
      process.exit(1)
    },
  )
} else {
  parent(parseArgs(process.argv.slice(2))).catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
