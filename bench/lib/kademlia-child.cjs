'use strict'
// One backend's run of the Kademlia benchmark (bench/kademlia.cjs forks it as
//   node --expose-gc kademlia-child.cjs
// with its options in BENCH_CHILD_OPTS): N rpcudp/kademlia nodes in this one
// process, each on its own UDP socket on 127.0.0.1; the result goes back over IPC.
// It runs the built dist/ (what users run): under tsx every call across
// modules goes through an export getter, which the routing table's inner loop
// would pay for on every distance comparison.

const { percentiles } = require('./stats.cjs')
const { bootstrapAll, listenNodes, pool, seeded } = require('./network.cjs')

const opts = JSON.parse(process.env.BENCH_CHILD_OPTS)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** RSS and what the JavaScript side holds (V8 heap + external memory), after collecting garbage. */
async function memoryAfterGc() {
  for (let i = 0; i < 4; i++) {
    global.gc()
    await sleep(50)
  }
  const m = process.memoryUsage()
  return { rss: m.rss, js: m.heapUsed + m.external }
}

function sum(nodes, field) {
  return nodes.reduce((s, n) => s + n.stats()[field], 0)
}

async function main() {
  const { backend, nodes: N, keys: K, lookups: L, concurrency, ksize, alpha, seed } = opts
  const rnd = seeded(seed)
  const baseline = await memoryAfterGc()

  // 1. N nodes, each listening
  const { nodes, addresses } = await listenNodes(N, rnd, { backend, ksize, alpha, waitTimeout: 5 })
  const listening = await memoryAfterGc()

  // 2. bootstrap in a seeded order
  const bootstrapMs = await bootstrapAll(nodes, addresses, rnd)

  // 3. K keys, each set from a random node
  const keys = Array.from({ length: K }, (_, i) => [`key-${i}`, `value-${i}-${'x'.repeat(32)}`])
  const t1 = performance.now()
  let acknowledged = 0
  await pool(K, concurrency, async (i) => {
    if (await nodes[Math.floor(rnd() * N)].set(keys[i][0], keys[i][1])) acknowledged++
  })
  const storeMs = performance.now() - t1
  const loaded = await memoryAfterGc()

  // 4. L lookups of stored keys from random nodes, `concurrency` in flight
  const before = { lookups: sum(nodes, 'lookups'), rounds: sum(nodes, 'lookupRounds'), calls: sum(nodes, 'lookupCalls') }
  const latencies = new Float64Array(L)
  let found = 0
  const plan = Array.from({ length: L }, () => [Math.floor(rnd() * N), Math.floor(rnd() * K)])
  const t2 = performance.now()
  const elu0 = performance.eventLoopUtilization()
  const cpu0 = process.cpuUsage()
  await pool(L, concurrency, async (i) => {
    const [n, k] = plan[i]
    const start = performance.now()
    const v = await nodes[n].get(keys[k][0])
    latencies[i] = performance.now() - start
    if (v === keys[k][1]) found++
  })
  const lookupMs = performance.now() - t2
  const elu = performance.eventLoopUtilization(elu0).utilization
  const cpu = process.cpuUsage(cpu0)
  const networkLookups = sum(nodes, 'lookups') - before.lookups
  const [p50, p99] = percentiles(latencies, [50, 99])
  const timeouts = nodes.reduce((s, n) => s + n.stats().rpc.timeouts, 0)
  const drops = nodes.reduce((s, n) => s + n.stats().rpc.droppedTotal, 0)
  await Promise.all(nodes.map((n) => n.close()))
  process.send({
    ev: 'result',
    backend: nodes[0].backend,
    nodes: N,
    keys: K,
    lookups: L,
    bootstrapS: bootstrapMs / 1000,
    storeS: storeMs / 1000,
    acknowledged,
    lookupsPerS: L / (lookupMs / 1000),
    // the share of the lookup phase the JavaScript thread was busy, and the CPU time of every thread of the process
    loopBusy: elu,
    cpuMsPerLookup: (cpu.user + cpu.system) / 1000 / L,
    p50Ms: p50,
    p99Ms: p99,
    found,
    networkLookups,
    hopsPerLookup: (sum(nodes, 'lookupRounds') - before.rounds) / Math.max(1, networkLookups),
    callsPerLookup: (sum(nodes, 'lookupCalls') - before.calls) / Math.max(1, networkLookups),
    rssPerNodeListening: (listening.rss - baseline.rss) / N,
    rssPerNodeLoaded: (loaded.rss - baseline.rss) / N,
    jsPerNodeListening: (listening.js - baseline.js) / N,
    jsPerNodeLoaded: (loaded.js - baseline.js) / N,
    timeouts,
    drops,
  })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
