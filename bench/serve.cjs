#!/usr/bin/env node
'use strict'
// Serving capacity of one node (issue 17): the server CPU one DHT node spends
// per find_node it answers, against a plain echo handler on the same backend,
// both measured in one run. Target: kad ≤ 2x echo. A measurement, not a test:
// it exits non-zero only when the harness breaks, never for a missed target.
// It runs the built dist/.
//
// Per backend, three processes, so that a server's process.cpuUsage() over
// the measured window is its CPU alone:
//
//   kad server   one KademliaNode (diversity off, on 127.0.0.1). Its routing
//                table is filled first the way a member's is: N helper nodes
//                (--contacts) in the load process join with the server first
//                in their join order (bench/lib/network.cjs), then the server
//                looks up random ids until it knows the network.
//   echo server  one RPCProtocol answering `echo` with its argument.
//   load         the helpers (idle after the join, but answering pings) and
//                --sources client RPCProtocols, each on its own loopback
//                address (127.0.0.2, 127.0.0.3, ...; Linux routes all of
//                127/8 to lo): per-source limits and the reflection bound key
//                a source by IPv4 address, so the flood comes from that many
//                sources. Each client has a fixed node id and answers `ping`
//                with it, as a DHT client does, so the server verifies it once
//                (in the warm-up) and then knows it.
//
// Both servers get the same perSource token bucket (--rate per source; the
// flood stays far within it) and otherwise their defaults: the KademliaNode's
// reflection bound is on, as it always is. A client keeps --inflight calls
// going in total (each completion starts the next on the same client): for
// kad, find_node(clientId, random 20-byte target), answered with the k = 20
// nearest contacts; for echo, echo(the same kind of 20-byte buffer). Answers
// are taken by their byte length (CallOptions.decode), so the load process
// spends less per call than decoding them; a check before the runs decodes one
// answer per client fully. Each run: warm-up, then --duration seconds
// measured; the servers' CPU and counters are read in the server processes at
// both ends of the window. Rounds measure every backend, kad and echo
// alternating in order from round to round; the report shows medians over
// rounds, the per-round ratio, and everything the servers dropped, limited or
// sent during the measured windows.
//
//   node bench/serve.cjs                                  native and pure, 3 rounds × 3 s
//   node bench/serve.cjs --backends=native --duration=1 --rounds=1 --contacts=100 --sources=32
//   node bench/serve.cjs --help

const { fork } = require('node:child_process')
const { seeded, pool, listenNodes, bootstrapAll } = require('./lib/network.cjs')
const { median, socketDrops, machineCpu } = require('./lib/stats.cjs')

const HELP = `usage: node bench/serve.cjs [options]

  --backends=a,b  subset of native,pure (default native,pure)
  --rounds=N      rounds; each measures kad and echo on every backend (default 3)
  --duration=S    seconds measured per run (default 3), after a 1 s warm-up
  --inflight=N    calls in flight in total, across the sources (default 256)
  --sources=N     client sockets, each on its own 127.0.x.y address (default 128)
  --contacts=N    helper nodes the kad server's table is filled from (default 300)
  --rate=N        perSource.requestsPerSecond of both servers, burst 2N (default 1000)
  --seed=N        seed of node ids, join order and targets (default 17)
  --help`

const WARMUP_MS = 1000
/** Random-target lookups the kad server makes after the helpers joined, 4 at once: a member's table, not only who happened to ask it. */
const FILL_LOOKUPS = 64
/** Targets the clients cycle through. */
const TARGETS = 4096
const CALL_OPTIONS = { timeout: 1, decode: (buf, start, end) => end - start }
const RATIO_TARGET = 2

function parseArgs(argv) {
  const o = { backends: 'native,pure', rounds: 3, duration: 3, inflight: 256, sources: 128, contacts: 300, rate: 1000, seed: 17 }
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
    if (m[1] === 'backends') o.backends = m[2]
    else if (Number.isInteger(Number(m[2])) && Number(m[2]) > 0) o[m[1]] = Number(m[2])
    else {
      console.error(`--${m[1]} must be a positive integer`)
      process.exit(2)
    }
  }
  o.backends = o.backends.split(',')
  for (const b of o.backends) if (b !== 'native' && b !== 'pure') (console.error(`unknown backend ${b}`), process.exit(2))
  if (o.sources > 250 * 250) (console.error('--sources is at most 62500'), process.exit(2))
  return o
}

const randomId = (rnd) => Buffer.from(Array.from({ length: 20 }, () => Math.floor(rnd() * 256)))
/** Client i's address: 127.0.0.2, ..., 127.0.0.251, 127.0.1.2, ... (never 127.0.0.1, where the servers and helpers are). */
const sourceHost = (i) => `127.0.${Math.floor(i / 250)}.${2 + (i % 250)}`
const cpuUs = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}

// ---------------------------------------------------------------- children

/** Answers the parent's {id, cmd, ...} messages with {id, ...result}; `quit` answers, then exits. */
function serveParent(commands) {
  process.on('message', async (m) => {
    try {
      const result = (await commands[m.cmd](m)) ?? {}
      if (m.cmd === 'quit') process.send({ id: m.id }, () => process.exit(0))
      else process.send({ id: m.id, ...result })
    } catch (err) {
      console.error(err)
      process.exit(1)
    }
  })
}

/** A server child: `kad` (a KademliaNode) or `echo` (a plain RPCProtocol); `snap` reads its CPU and counters at one instant. */
async function server(o) {
  const perSource = { requestsPerSecond: o.rate, burst: 2 * o.rate }
  const rnd = seeded(o.seed)
  let stats
  let close
  const commands = {}
  let address
  if (o.kind === 'kad') {
    const { KademliaNode } = require('../dist/kademlia/index.js')
    const node = new KademliaNode({ backend: o.backend, diversity: false, nodeId: randomId(rnd), rpc: { perSource } })
    address = await node.listen(0, '127.0.0.1')
    stats = () => {
      const s = node.stats()
      return { rpc: s.rpc, contacts: s.contacts, buckets: s.buckets }
    }
    commands.fill = async () => {
      await pool(FILL_LOOKUPS, 4, () => node.findNode(randomId(rnd)))
      return stats()
    }
    close = () => node.close()
  } else {
    const { RPCProtocol } = require('../dist/index.js')
    const proto = new RPCProtocol({ backend: o.backend, perSource })
    proto.handle('echo', (_sender, value) => value)
    address = await proto.listen(0, '127.0.0.1')
    stats = () => ({ rpc: proto.stats() })
    close = () => proto.close()
  }
  commands.snap = () => ({ t: performance.now(), cpuUs: cpuUs(), ...stats() })
  commands.quit = () => close()
  serveParent(commands)
  process.send({ ev: 'ready', address })
}

/** The load child: helper nodes that fill the kad server's table, and the client sockets that flood both servers. */
async function load(o) {
  const { RPCProtocol } = require('../dist/index.js')
  const rnd = seeded(o.seed + 1)
  let helpers = []
  const clients = []
  const targets = Array.from({ length: TARGETS }, () => randomId(rnd))
  let run = null
  let next = 0

  const call = (c, kind) =>
    kind === 'kad'
      ? c.proto.callRemote(o.kad, 'find_node', [c.id, targets[next++ & (TARGETS - 1)]], CALL_OPTIONS)
      : c.proto.callRemote(o.echo, 'echo', [targets[next++ & (TARGETS - 1)]], CALL_OPTIONS)

  const issue = (c) => {
    const r = run
    r.outstanding++
    call(c, r.kind).then((res) => {
      r.outstanding--
      if (res[0]) {
        if (r.counting) r.calls++
      } else if (r.marked) {
        if (res[2].code === 'timeout') r.timeouts++
        else r.errors[res[2].code] = (r.errors[res[2].code] ?? 0) + 1
      }
      if (r.active) issue(c)
      else if (r.outstanding === 0) r.settled()
    })
  }

  serveParent({
    /** The helpers join, the server first in their join order: the first 16 join through it, the rest through it or earlier helpers. */
    join: async () => {
      const built = await listenNodes(o.contacts, rnd, { backend: o.backend, waitTimeout: 5 })
      helpers = built.nodes
      await bootstrapAll([null, ...helpers], [o.kad, ...built.addresses], rnd)
    },
    /** The clients bind their addresses, and each checks one answer of each server, fully decoded. */
    clients: async () => {
      for (let i = 0; i < o.sources; i++) {
        const id = randomId(rnd)
        const proto = new RPCProtocol({ backend: o.backend, waitTimeout: 1 })
        proto.handle('ping', () => id)
        await proto.listen(0, sourceHost(i))
        clients.push({ id, proto })
      }
      const neighbours = []
      let bad = 0
      await pool(clients.length, 16, async (i) => {
        const c = clients[i]
        const key = randomId(rnd)
        const [found, echoed] = await Promise.all([c.proto.callRemote(o.kad, 'find_node', [c.id, key]), c.proto.callRemote(o.echo, 'echo', [key])])
        const entries = found[0] && Array.isArray(found[1]) ? found[1] : null
        if (entries === null || !entries.every((e) => Array.isArray(e) && e.length === 3 && Buffer.isBuffer(e[0]) && e[0].length === 20 && typeof e[1] === 'string' && Number.isInteger(e[2]))) bad++
        else neighbours.push(entries.length)
        if (!(echoed[0] && Buffer.isBuffer(echoed[1]) && echoed[1].equals(key))) bad++
      })
      return { neighbours: neighbours.length ? Math.min(...neighbours) : 0, bad }
    },
    /** Starts `inflight` calls to `kind`'s server, spread over the clients; each completion starts the next. */
    start: ({ kind, inflight }) => {
      run = { kind, active: true, outstanding: 0, calls: 0, timeouts: 0, errors: {}, counting: false, marked: false, settled: null }
      for (let i = 0; i < inflight; i++) issue(clients[i % clients.length])
    },
    /** The window's ends: calls answered between the two marks count; failures count from the first mark until every call settled. */
    mark: () => {
      if (!run.marked) {
        run.marked = run.counting = true
        run.t0 = performance.now()
        run.cpu0 = cpuUs()
      } else {
        run.counting = false
        run.t1 = performance.now()
        run.cpu1 = cpuUs()
      }
    },
    stop: async () => {
      const r = run
      r.active = false
      if (r.outstanding > 0) await new Promise((resolve) => (r.settled = resolve))
      return { calls: r.calls, timeouts: r.timeouts, errors: r.errors, ms: r.t1 - r.t0, cpuUs: r.cpu1 - r.cpu0 }
    },
    quit: async () => {
      await Promise.all([...clients.map((c) => c.proto.close()), ...helpers.map((n) => n.close())])
    },
  })
  process.send({ ev: 'ready' })
}

// ---------------------------------------------------------------- parent

/** Forks a child of this file; `ask` sends a command and resolves to its answer, or rejects if the child exits first. */
function spawn(role, options) {
  const child = fork(__filename, [`--${role}`, JSON.stringify(options)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const waiting = new Map()
  let next = 0
  let exited = null
  let readyResolve
  const ready = new Promise((resolve) => (readyResolve = resolve))
  child.on('message', (m) => {
    if (m.ev === 'ready') return readyResolve(m)
    const w = waiting.get(m.id)
    waiting.delete(m.id)
    w?.resolve(m)
  })
  const died = new Promise((_, reject) =>
    child.once('exit', (code, signal) => {
      exited = new Error(`${role} child (${options.backend}${options.kind ? ' ' + options.kind : ''}) exited ${code ?? signal}`)
      for (const w of waiting.values()) w.reject(exited)
      waiting.clear()
      reject(exited)
    }),
  )
  died.catch(() => {})
  return {
    pid: child.pid,
    ready: Promise.race([ready, died]),
    ask(cmd, args = {}) {
      if (exited) return Promise.reject(exited)
      return new Promise((resolve, reject) => {
        const id = next++
        waiting.set(id, { resolve, reject })
        child.send({ id, cmd, ...args })
      })
    },
    exited: () => exited !== null,
  }
}

/** One backend's three processes, set up: the kad server's table filled, the clients bound and checked. */
async function setUp(o, backend) {
  const kad = spawn('server', { kind: 'kad', backend, rate: o.rate, seed: o.seed })
  const echo = spawn('server', { kind: 'echo', backend, rate: o.rate, seed: o.seed })
  const [{ address: kadAddress }, { address: echoAddress }] = await Promise.all([kad.ready, echo.ready])
  const loader = spawn('load', { backend, contacts: o.contacts, sources: o.sources, seed: o.seed, kad: kadAddress, echo: echoAddress })
  await loader.ready
  const t0 = performance.now()
  await loader.ask('join')
  const joined = await kad.ask('snap')
  const filled = await kad.ask('fill')
  const check = await loader.ask('clients')
  console.error(
    `${backend}: ${o.contacts} helpers joined in ${((performance.now() - t0) / 1000).toFixed(1)} s; kad server table ${joined.contacts} contacts after the join, ` +
      `${filled.contacts} in ${filled.buckets} buckets after ${FILL_LOOKUPS} lookups; ${o.sources} clients, answers of ${check.neighbours} neighbours, ${check.bad} bad`,
  )
  return { backend, servers: { kad, echo }, loader, filled, check }
}

const delta = (a, b, k) => b.rpc[k] - a.rpc[k]

/** One measured run of `kind` on one backend. */
async function measure(o, b, kind) {
  const srv = b.servers[kind]
  const snapAll = () => Promise.all([srv.ask('snap'), b.loader.ask('mark')]).then(([s]) => ({ ...s, kernel: socketDrops([srv.pid]), loadKernel: socketDrops([b.loader.pid]), machine: machineCpu() }))
  await b.loader.ask('start', { kind, inflight: o.inflight })
  await new Promise((r) => setTimeout(r, WARMUP_MS))
  const s0 = await snapAll()
  await new Promise((r) => setTimeout(r, o.duration * 1000))
  const s1 = await snapAll()
  const client = await b.loader.ask('stop')
  const requests = delta(s0, s1, 'responsesSent') + delta(s0, s1, 'errorsSent')
  const serverCpu = s1.cpuUs - s0.cpuUs
  const ms = s1.t - s0.t
  const dropped = {}
  for (const k in s1.rpc.dropped) if (s1.rpc.dropped[k] !== s0.rpc.dropped[k]) dropped[k] = s1.rpc.dropped[k] - s0.rpc.dropped[k]
  const others = s0.machine && s1.machine ? s1.machine.busyUs - s0.machine.busyUs - serverCpu - client.cpuUs : null
  return {
    requestsPerS: (requests / ms) * 1000,
    usPerRequest: serverCpu / requests,
    serverCpu: serverCpu / (ms * 1000),
    loadUsPerCall: client.cpuUs / client.calls,
    othersCpu: others === null ? null : others / (ms * 1000),
    received: delta(s0, s1, 'requestsReceived'),
    errorsSent: delta(s0, s1, 'errorsSent'),
    sent: delta(s0, s1, 'requestsSent'),
    serverTimeouts: delta(s0, s1, 'timeouts'),
    dropped,
    droppedTotal: s1.rpc.droppedTotal - s0.rpc.droppedTotal,
    kernel: s0.kernel === null || s1.kernel === null ? null : s1.kernel - s0.kernel,
    loadKernel: s0.loadKernel === null || s1.loadKernel === null ? null : s1.loadKernel - s0.loadKernel,
    contacts: s1.contacts,
    calls: client.calls,
    timeouts: client.timeouts,
    errors: client.errors,
  }
}

const sum = (rs, f) => rs.reduce((s, r) => s + f(r), 0)
const reasons = (rs, field) => {
  const out = {}
  for (const r of rs) for (const [k, v] of Object.entries(r[field])) out[k] = (out[k] ?? 0) + v
  return Object.entries(out)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')
}

async function main() {
  const o = parseArgs(process.argv.slice(2))
  const backends = []
  try {
    for (const backend of o.backends) backends.push(await setUp(o, backend))
    const runs = new Map(o.backends.flatMap((b) => ['kad', 'echo'].map((k) => [`${b} ${k}`, []])))
    for (let r = 0; r < o.rounds; r++) {
      for (const b of backends) {
        for (const kind of r % 2 === 0 ? ['kad', 'echo'] : ['echo', 'kad']) {
          const res = await measure(o, b, kind)
          runs.get(`${b.backend} ${kind}`).push(res)
          console.error(
            `round ${r + 1} ${b.backend} ${kind}: ${res.requestsPerS.toFixed(0)} requests/s, ${res.usPerRequest.toFixed(1)} µs server CPU/request, ` +
              `${res.timeouts} timeouts, ${res.droppedTotal} dropped, ${res.sent} requests sent by the server`,
          )
        }
      }
    }
    report(o, backends, runs)
  } finally {
    await Promise.all(backends.flatMap((b) => [b.servers.kad, b.servers.echo, b.loader]).filter((c) => !c.exited()).map((c) => c.ask('quit').catch(() => {})))
  }
}

function report(o, backends, runs) {
  const busySources = o.inflight < o.sources ? o.inflight : o.sources
  console.log(
    `${o.sources} client sources (127.0.x.y, one socket each; ${busySources} busy), ${o.inflight} calls in flight in total, ${WARMUP_MS / 1000} s warm-up + ${o.duration} s measured per run; ` +
      `perSource ${o.rate} requests/s (burst ${2 * o.rate}) on both servers; medians of ${o.rounds} round(s), kad and echo alternating\n`,
  )
  console.log('| backend | server | requests/s | server CPU µs / request | server CPU | load CPU µs / call | others\' CPU | client timeouts | client errors | server dropped | server requests sent | kernel drops server / load |')
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const [key, rs] of runs) {
    const [backend, kind] = key.split(' ')
    const m = (f) => median(rs.map(f))
    const pct = (x) => (x === null || Number.isNaN(x) ? '?' : `${(x * 100).toFixed(0)}%`)
    const kernel = (f) => (rs.some((r) => r[f] === null) ? '?' : sum(rs, (r) => r[f]))
    console.log(
      `| ${backend} | ${kind === 'kad' ? 'kad find_node' : 'echo'} | ${m((r) => r.requestsPerS).toFixed(0)} | ${m((r) => r.usPerRequest).toFixed(1)} | ${pct(m((r) => r.serverCpu))} | ` +
        `${m((r) => r.loadUsPerCall).toFixed(1)} | ${pct(m((r) => r.othersCpu ?? NaN))} | ${sum(rs, (r) => r.timeouts)} | ${sum(rs, (r) => sum(Object.values(r.errors), (v) => v))} | ` +
        `${sum(rs, (r) => r.droppedTotal)} | ${sum(rs, (r) => r.sent)} | ${kernel('kernel')} / ${kernel('loadKernel')} |`,
    )
  }
  console.log('\nCounts (timeouts, errors, dropped, sent, kernel drops) are summed over the measured windows of all rounds.')
  for (const b of backends) {
    const kad = runs.get(`${b.backend} kad`)
    const echo = runs.get(`${b.backend} echo`)
    const ratios = kad.map((k, i) => k.usPerRequest / echo[i].usPerRequest)
    const ratio = median(ratios)
    console.log(
      `\n${b.backend}: server CPU per request, kad find_node / echo: median ${ratio.toFixed(2)}x (rounds: ${ratios.map((x) => x.toFixed(2)).join(', ')}); ` +
        `target ≤ ${RATIO_TARGET}x: ${ratio <= RATIO_TARGET ? 'met' : 'MISSED'}`,
    )
    console.log(
      `  kad server table: ${median(kad.map((r) => r.contacts))} contacts while measured (${b.filled.contacts} after the fill from ${o.contacts} helpers, before the clients asked); ` +
        `each answer ${b.check.neighbours} neighbours; per source ≈ ${(median(kad.map((r) => r.requestsPerS)) / busySources).toFixed(0)} requests/s (kad), ${(median(echo.map((r) => r.requestsPerS)) / busySources).toFixed(0)} (echo)`,
    )
    if (b.check.bad > 0) console.log(`  CHECK: ${b.check.bad} answers of the check before the runs were not what the server should answer`)
    for (const [kind, rs] of [['kad', kad], ['echo', echo]]) {
      const notes = []
      if (sum(rs, (r) => r.droppedTotal) > 0) notes.push(`the server dropped requests or replies (${reasons(rs, 'dropped')})`)
      if (sum(rs, (r) => r.errorsSent) > 0) notes.push(`the server sent ${sum(rs, (r) => r.errorsSent)} error replies`)
      if (sum(rs, (r) => r.sent) > 0) notes.push(`the server sent ${sum(rs, (r) => r.sent)} requests of its own while measured (${sum(rs, (r) => r.serverTimeouts)} timed out)`)
      if (sum(rs, (r) => r.timeouts) > 0) notes.push(`clients saw ${sum(rs, (r) => r.timeouts)} timeouts`)
      if (sum(rs, (r) => sum(Object.values(r.errors), (v) => v)) > 0) notes.push(`clients saw errors (${reasons(rs, 'errors')})`)
      const perSource = median(rs.map((r) => r.requestsPerS)) / busySources
      if (perSource > o.rate) notes.push(`each source sent about ${perSource.toFixed(0)} requests/s, above perSource's ${o.rate} (its burst of ${2 * o.rate} may hide it in a short run)`)
      if (rs.some((r) => r.kernel > 0)) notes.push(`the kernel dropped ${sum(rs, (r) => r.kernel ?? 0)} datagrams on the server's socket`)
      console.log(`  ${kind}: ${notes.length ? notes.join('; ') : 'nothing dropped, limited or sent by the server; no client timeouts or errors'}`)
    }
  }
}

if (process.argv[2] === '--server') server(JSON.parse(process.argv[3])).catch((e) => (console.error(e), process.exit(1)))
else if (process.argv[2] === '--load') load(JSON.parse(process.argv[3])).catch((e) => (console.error(e), process.exit(1)))
else main().catch((e) => (console.error(e), process.exit(1)))
