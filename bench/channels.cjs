#!/usr/bin/env node
'use strict'
// The cost of diagnostics_channel publication (bench/RESULTS.md "diagnostics_channel
// cost"). A measurement, not a test. A native server and client on loopback per
// package dir, `inflight` calls kept outstanding.
//
//   node bench/channels.cjs <dir>[,<dir>...] [inflight=256] [ms=2000] [subscribe] [slices=1]
//
// Each <dir> holds a built rpcudp (dist/ and the addon), so builds of two commits
// can be measured side by side. With several dirs the run is cut into `slices`
// time slices per dir, taken in turn (reversed every other round), all in one
// process: the machine's noise, which swings single runs by ±25 % here, then
// falls on every build alike. Prints calls/s and CPU µs per call (both ends) per
// dir. `subscribe` (anything else, e.g. `-`, for none) adds one no-op subscriber to rpcudp:call and rpcudp:handle.
const path = require('node:path')
const dc = require('node:diagnostics_channel')

const [dirsArg, inflightArg = '256', msArg = '2000', mode = '', slicesArg = '1'] = process.argv.slice(2)
const dirs = dirsArg.split(',')
const inflight = Number(inflightArg)
const ms = Number(msArg)
const slices = Number(slicesArg)

if (mode === 'subscribe') {
  const noop = { start() {}, end() {}, asyncStart() {}, asyncEnd() {}, error() {} }
  dc.tracingChannel('rpcudp:call').subscribe(noop)
  dc.tracingChannel('rpcudp:handle').subscribe(noop)
}

async function pair(dir) {
  const { RPCProtocol } = require(path.resolve(dir))
  const server = new RPCProtocol({ backend: 'native' })
  server.handle('echo', (_s, x) => x)
  const address = await server.listen(0, '127.0.0.1')
  const client = new RPCProtocol({ backend: 'native' })
  await client.listen(0, '127.0.0.1')
  return { dir, server, client, address, calls: 0, cpu: 0, ms: 0 }
}

// Keeps `inflight` calls outstanding for `ms`, then lets them drain, so the next
// slice starts with nothing of this one still in flight.
async function slice(p, ms) {
  let stop = false
  let done = 0
  const loop = async () => {
    while (!stop) {
      await p.client.call.echo(p.address, 1)
      done++
    }
  }
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const loops = Array.from({ length: inflight }, loop)
  await new Promise((r) => setTimeout(r, ms))
  stop = true
  await Promise.all(loops)
  const cpu = process.cpuUsage(cpu0)
  p.ms += performance.now() - t0
  p.cpu += cpu.user + cpu.system
  p.calls += done
}

async function main() {
  const pairs = []
  for (const dir of dirs) pairs.push(await pair(dir))
  for (const p of pairs) await slice(p, 300) // warm-up
  for (const p of pairs) Object.assign(p, { calls: 0, cpu: 0, ms: 0 })
  for (let s = 0; s < slices; s++) {
    const order = s % 2 ? [...pairs].reverse() : pairs
    for (const p of order) await slice(p, ms / slices)
  }
  for (const p of pairs) {
    await p.client.close()
    await p.server.close()
    console.log(JSON.stringify({
      dir: p.dir,
      inflight,
      mode: mode === 'subscribe' ? mode : 'none',
      callsPerSecond: Math.round((p.calls * 1000) / p.ms),
      cpuUsPerCall: +(p.cpu / p.calls).toFixed(3),
    }))
  }
}
main()
