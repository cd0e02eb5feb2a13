#!/usr/bin/env node
'use strict'
// The cost of diagnostics_channel publication (bench/RESULTS.md "diagnostics_channel
// cost"). A measurement, not a test. One process, a native server and client on
// loopback, `inflight` calls kept outstanding for `ms`; prints calls/s.
//
//   node bench/channels.cjs <package dir> [inflight=256] [ms=2000] [subscribe]
//
// <package dir> holds a built rpcudp (dist/ and the addon), so a build of another
// commit can be measured side by side; `subscribe` adds one no-op subscriber to
// rpcudp:call and rpcudp:handle.
const path = require('node:path')
const dc = require('node:diagnostics_channel')

const [dir, inflightArg = '256', msArg = '2000', mode = ''] = process.argv.slice(2)
const { RPCProtocol } = require(path.resolve(dir))
const inflight = Number(inflightArg)
const ms = Number(msArg)

if (mode === 'subscribe') {
  const noop = { start() {}, end() {}, asyncStart() {}, asyncEnd() {}, error() {} }
  dc.tracingChannel('rpcudp:call').subscribe(noop)
  dc.tracingChannel('rpcudp:handle').subscribe(noop)
}

async function main() {
  const server = new RPCProtocol({ backend: 'native' })
  server.handle('echo', (_s, x) => x)
  const address = await server.listen(0, '127.0.0.1')
  const client = new RPCProtocol({ backend: 'native' })
  await client.listen(0, '127.0.0.1')
  let done = 0
  let measuring = false
  let stop = false
  const loop = async () => {
    while (!stop) {
      await client.call.echo(address, 1)
      if (measuring) done++
    }
  }
  const loops = Array.from({ length: inflight }, loop)
  await new Promise((r) => setTimeout(r, 300)) // warm-up
  measuring = true
  const t0 = performance.now()
  await new Promise((r) => setTimeout(r, ms))
  const elapsed = performance.now() - t0
  const n = done
  stop = true
  await Promise.all(loops)
  await client.close()
  await server.close()
  console.log(JSON.stringify({ dir, inflight, mode: mode || 'none', callsPerSecond: Math.round((n * 1000) / elapsed) }))
}
main()
