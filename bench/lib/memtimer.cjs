'use strict'
// Memory and timer measurements for one rpcudp backend, run by bench/run.cjs as
//
//   node --expose-gc --import tsx memtimer.cjs memory BACKEND BLACKHOLE_PORT
//   node --expose-gc --import tsx memtimer.cjs timers BACKEND BLACKHOLE_PORT ECHO_PORT
//
// The black hole is a bound UDP socket that never reads: calls to it are never answered.
// Options come in BENCH_CHILD_OPTS; the result goes back over IPC as {ev:'result', ...}.

const { rpcudp, HOST, PAYLOAD } = require('./systems.cjs')
const { percentiles } = require('./stats.cjs')

const [mode, backend, blackholeArg, echoArg] = process.argv.slice(2)
const opts = JSON.parse(process.env.BENCH_CHILD_OPTS || '{}')
const blackhole = [HOST, Number(blackholeArg)]
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function quiesce() {
  for (let i = 0; i < 4; i++) {
    global.gc()
    await sleep(50)
  }
}

/**
 * The least a promise-returning caller can hold per call: a Map entry from an
 * integer token to the promise's resolve function, and the promise with one
 * reaction. Nothing is sent. A reference for the two backends, not a backend.
 */
class PromiseFloor {
  constructor() {
    this.pending = new Map()
    this.token = 0
  }
  async listen() {}
  callRemote() {
    const token = ++this.token
    return new Promise((resolve) => this.pending.set(token, resolve))
  }
  stats() {
    return { outstanding: this.pending.size }
  }
  async close() {
    for (const resolve of this.pending.values()) resolve([false, null, { code: 'closed' }])
    this.pending.clear()
  }
}

async function memory() {
  const N = opts.outstanding
  const { RPCProtocol } = rpcudp()
  const proto = backend === 'floor' ? new PromiseFloor() : new RPCProtocol({ backend, waitTimeout: 3600, maxOutstanding: N + 10000 })
  await proto.listen(0, HOST)
  // Warm-up: calls that expire quickly, so code, pools and the timer are in place before the baseline.
  if (backend !== 'floor') await Promise.all(Array.from({ length: 5000 }, () => proto.callRemote(blackhole, 'echo', [PAYLOAD], { timeout: 0.05 })))
  await quiesce()
  // The native backend's table lives in Rust, outside every JS counter: the core reports its heap bytes.
  const tableBytes = () => (backend === 'native' ? proto.transport.socket.stats().tableBytes : 0)
  const tableBefore = tableBytes()
  const before = process.memoryUsage()
  let settled = 0
  const onSettle = () => settled++
  for (let i = 0; i < N; i++) {
    // what an application does: a fresh argument array, and something waiting on the promise
    proto.callRemote(blackhole, 'echo', [PAYLOAD]).then(onSettle)
    if (i % 10000 === 9999) await new Promise((r) => setImmediate(r)) // let the sends drain, as a real producer would
  }
  await sleep(500)
  await quiesce()
  const after = process.memoryUsage()
  const tableAfter = tableBytes()
  const stats = proto.stats()
  await proto.close()
  await sleep(50)
  const per = (k) => (after[k] - before[k]) / N
  return {
    ev: 'result',
    outstanding: N,
    reportedOutstanding: stats.outstanding,
    settledAfterClose: settled,
    before,
    after,
    perCall: {
      rss: per('rss'),
      heapUsed: per('heapUsed'),
      heapTotal: per('heapTotal'),
      external: per('external'),
      arrayBuffers: per('arrayBuffers'),
      native: (tableAfter - tableBefore) / N,
    },
  }
}

async function timers() {
  const T = opts.timerCalls
  const waitMs = opts.timerWaitMs
  const { RPCProtocol } = rpcudp()
  const proto = new RPCProtocol({ backend, waitTimeout: waitMs / 1000, maxOutstanding: T + 10000 })
  await proto.listen(0, HOST)
  // Load: 64 echo calls kept in flight against a server of the same backend.
  const echo = [HOST, Number(echoArg)]
  const args = [PAYLOAD]
  let loading = true
  let loadCalls = 0
  let loadFailures = 0
  let loadOutstanding = 0
  let loadDone
  const loadFinished = new Promise((r) => (loadDone = r))
  const loadOne = () => {
    loadOutstanding++
    proto.callRemote(echo, 'echo', args, { timeout: 10 }).then((r) => {
      loadOutstanding--
      if (r[0]) loadCalls++
      else loadFailures++
      if (loading) loadOne()
      else if (loadOutstanding === 0) loadDone()
    })
  }
  for (let i = 0; i < 64; i++) loadOne()
  await sleep(300)

  // T calls to the black hole, spread over ~1 s in 100 batches so deadlines land on many ticks.
  const lateness = new Float64Array(T)
  let n = 0
  let other = 0
  const waits = []
  const t0 = performance.now()
  const loadCalls0 = loadCalls
  for (let b = 0; b < 100; b++) {
    const count = Math.floor(((b + 1) * T) / 100) - Math.floor((b * T) / 100)
    for (let i = 0; i < count; i++) {
      const start = performance.now()
      waits.push(
        proto.callRemote(blackhole, 'echo', args).then((r) => {
          if (!r[0] && r[2].code === 'timeout') lateness[n++] = performance.now() - start - waitMs
          else other++
        }),
      )
    }
    await sleep(10)
  }
  await Promise.all(waits)
  const loadRate = (loadCalls - loadCalls0) / ((performance.now() - t0) / 1000)
  loading = false
  if (loadOutstanding > 0) await loadFinished
  await proto.close()
  const [p50, p99, max] = percentiles(lateness.subarray(0, n), [50, 99, 100])
  let min = n ? Infinity : 0
  for (let i = 0; i < n; i++) if (lateness[i] < min) min = lateness[i]
  return { ev: 'result', calls: T, waitMs, timedOut: n, other, p50, p99, max, min, loadCallsPerSec: loadRate, loadFailures }
}

function fail(err) {
  if (process.connected) process.send({ ev: 'error', message: err && err.stack ? err.stack : String(err) })
  setTimeout(() => process.exit(1), 50)
}
process.on('uncaughtException', fail)
process.on('unhandledRejection', fail)
;(mode === 'memory' ? memory() : timers())
  .then((r) => {
    process.send(r)
    setTimeout(() => process.exit(0), 50)
  })
  .catch(fail)
