'use strict'
// A Node child of bench/run.cjs, talking over the IPC channel with the same
// messages the Python and Rust children print as JSON lines:
//
//   node --import tsx node-child.cjs server SYSTEM   -> {ev:'ready', port}; answers {cmd:'cpu'} with {ev:'cpu', user, system}
//   node --import tsx node-child.cjs client SYSTEM PORT
//        {cmd:'run', inflight, warmupMs, durationMs, timeoutMs}
//        -> {ev:'start'} when the warm-up ends, {ev:'end'} when the window closes,
//           {ev:'result', calls, elapsedMs, cpuUs, p50, p99, max, timeouts, errors} once every call settled
//
// The client keeps `inflight` calls going: each completion starts the next call.

const { SYSTEMS, OK, TIMEOUT } = require('./systems.cjs')
const { percentiles } = require('./stats.cjs')

const [role, system, portArg] = process.argv.slice(2)
const opts = JSON.parse(process.env.BENCH_CHILD_OPTS || '{}')

function send(msg) {
  if (process.connected) process.send(msg)
}

function cpuUs() {
  const u = process.cpuUsage()
  return u.user + u.system
}

function fail(err) {
  send({ ev: 'error', message: err && err.stack ? err.stack : String(err) })
  setTimeout(() => process.exit(1), 50)
}

async function server() {
  const s = await SYSTEMS[system][0](opts)
  send({ ev: 'ready', port: s.port })
  process.on('message', async (m) => {
    if (m.cmd === 'cpu') {
      const u = process.cpuUsage()
      send({ ev: 'cpu', user: u.user, system: u.system })
    } else if (m.cmd === 'stats') send({ ev: 'stats', stats: s.stats ? s.stats() : null })
    else if (m.cmd === 'quit') {
      await s.close()
      process.exit(0)
    }
  })
}

async function client() {
  const c = await SYSTEMS[system][1](Number(portArg), opts)
  send({ ev: 'ready' })
  process.on('message', async (m) => {
    try {
      if (m.cmd === 'run') send(await run(c, m))
      else if (m.cmd === 'stats') send({ ev: 'stats', stats: c.stats ? c.stats() : null })
      else if (m.cmd === 'quit') {
        await c.close()
        process.exit(0)
      }
    } catch (err) {
      fail(err)
    }
  })
}

function run(c, { inflight, warmupMs, durationMs }) {
  return new Promise((resolve) => {
    let running = true
    let measuring = false
    let outstanding = 0
    let calls = 0
    let timeouts = 0
    let errors = 0
    let lat = new Float64Array(1 << 16)
    let n = 0
    let tStart = 0
    let tEnd = 0
    let cpu0 = 0
    let cpu1 = 0

    function issue() {
      outstanding++
      const t0 = performance.now()
      c.call((status) => {
        outstanding--
        if (measuring) {
          if (status === OK) {
            calls++
            if (n === lat.length) {
              const bigger = new Float64Array(lat.length * 2)
              bigger.set(lat)
              lat = bigger
            }
            lat[n++] = (performance.now() - t0) * 1000
          } else if (status === TIMEOUT) timeouts++
          else errors++
        }
        if (running) issue()
        else if (outstanding === 0) finish()
      })
    }

    function finish() {
      const p = percentiles(lat.subarray(0, n), [50, 99, 100])
      resolve({
        ev: 'result',
        calls,
        elapsedMs: tEnd - tStart,
        cpuUs: cpu1 - cpu0,
        p50: p[0],
        p99: p[1],
        max: p[2],
        timeouts,
        errors,
      })
    }

    for (let i = 0; i < inflight; i++) issue()
    setTimeout(() => {
      measuring = true
      tStart = performance.now()
      cpu0 = cpuUs()
      send({ ev: 'start' })
      setTimeout(() => {
        cpu1 = cpuUs()
        tEnd = performance.now()
        measuring = false
        running = false
        send({ ev: 'end' })
        if (outstanding === 0) finish()
      }, durationMs)
    }, warmupMs)
  })
}

process.on('uncaughtException', fail)
process.on('unhandledRejection', fail)
;(role === 'server' ? server() : client()).catch(fail)
