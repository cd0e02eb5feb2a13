#!/usr/bin/env node
'use strict'
// Signed records (issue 18) against plain values: one process runs N
// rpcudp/kademlia nodes on 127.0.0.1 (one UDP socket each, as bench/kademlia.cjs
// does), bootstraps them, then times `ops` set/get, putMutable/getMutable and
// putImmutable/getImmutable pairs from random nodes (the get from another node
// than the put), and the CPU cost of one ed25519 sign and one verify through
// node:crypto. A measurement, not a test. It runs the built dist/, so
// `npm run build:ts` first.
//
//   node bench/records.cjs                      1000 nodes, 200 of each operation, native backend
//   node bench/records.cjs --nodes=200 --ops=100 --backend=pure

const { percentiles } = require('./lib/stats.cjs')
const { generateKeyPair } = require('../dist/kademlia/index.js')
const { bootstrapAll, listenNodes, pool, seeded } = require('./lib/network.cjs')
const { signMessage, toSigner, verifySignature } = require('../dist/kademlia/ed25519.js')
const { encodeValue, signedMessage } = require('../dist/kademlia/records.js')

const o = { nodes: 1000, ops: 200, concurrency: 16, backend: 'native', seed: 18 }
for (const a of process.argv.slice(2)) {
  const m = /^--([a-z]+)=(.+)$/.exec(a)
  if (!m || !(m[1] in o)) {
    console.error(`usage: node bench/records.cjs [--nodes=N] [--ops=N] [--concurrency=N] [--backend=native|pure] [--seed=N]`)
    process.exit(2)
  }
  o[m[1]] = m[1] === 'backend' ? m[2] : Number(m[2])
}

const rnd = seeded(o.seed)

/** `fn(i)` for each op, `concurrency` at once: ops/s, p50/p99 ms, CPU ms per op (every thread), and how many returned true. */
async function timed(fn) {
  const lat = new Float64Array(o.ops)
  let ok = 0
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await pool(o.ops, o.concurrency, async (i) => {
    const s = performance.now()
    if (await fn(i)) ok++
    lat[i] = performance.now() - s
  })
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const [p50, p99] = percentiles(lat, [50, 99])
  return { perS: o.ops / (ms / 1000), p50, p99, cpuMs: (cpu.user + cpu.system) / 1000 / o.ops, ok }
}

/** CPU µs per call of `fn`, over `n` calls. */
function cpuMicros(n, fn) {
  for (let i = 0; i < 200; i++) fn(i)
  const c0 = process.cpuUsage()
  for (let i = 0; i < n; i++) fn(i)
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / n
}

async function main() {
  console.log(`records benchmark: ${o.nodes} nodes, ${o.ops} of each operation, ${o.concurrency} in flight, ${o.backend} backend, node ${process.version}, ${new Date().toISOString().slice(0, 16)}Z`)
  const { nodes, addresses } = await listenNodes(o.nodes, rnd, { backend: o.backend })
  const bootstrapMs = await bootstrapAll(nodes, addresses, rnd)
  console.log(`  bootstrap ${(bootstrapMs / 1000).toFixed(1)} s`)

  const pick = () => nodes[Math.floor(rnd() * o.nodes)]
  const value = (i) => `value-${i}-${'x'.repeat(32)}`
  const keys = Array.from({ length: o.ops }, () => generateKeyPair())
  const targets = []
  // warm-up: the first operations of a fresh network pay for the JIT and for filling routing tables
  await pool(o.ops, o.concurrency, (i) => pick().set(`warm-${i}`, value(i)))
  const rows = [
    ['set', await timed((i) => pick().set(`key-${i}`, value(i)))],
    ['get', await timed(async (i) => (await pick().get(`key-${i}`)) === value(i))],
    ['putMutable', await timed(async (i) => (await pick().putMutable(keys[i], value(i))).stored > 0)],
    ['getMutable', await timed(async (i) => (await pick().getMutable(keys[i].publicKey))?.value === value(i))],
    ['putImmutable', await timed(async (i) => (targets[i] = (await pick().putImmutable(value(i))).target) !== undefined)],
    ['getImmutable', await timed(async (i) => (await pick().getImmutable(targets[i])) === value(i))],
  ]
  const k = generateKeyPair()
  const message = signedMessage(Buffer.alloc(0), 1n, encodeValue(value(0)))
  const sig = signMessage(k.secretKey, message)
  // as putMutable signs: through the signer it makes once, which keeps the KeyObject
  const signer = toSigner(k)
  const signUs = cpuMicros(2000, () => signer.sign(message))
  const verifyUs = cpuMicros(2000, () => verifySignature(k.publicKey, message, sig))

  console.log(`\n| operation | ops/s | p50 ms | p99 ms | CPU ms/op (all threads) | succeeded |`)
  console.log(`|---|---:|---:|---:|---:|---:|`)
  for (const [name, r] of rows) console.log(`| ${name} | ${r.perS.toFixed(0)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.cpuMs.toFixed(2)} | ${r.ok}/${o.ops} |`)
  console.log(`\ned25519 through node:crypto, CPU µs: sign ${signUs.toFixed(1)}, verify ${verifyUs.toFixed(1)} (the key's KeyObject made once, as a signer and the verify cache keep it)`)
  const healed = nodes.reduce((s, n) => s + n.stats().recordsHealed, 0)
  const refused = nodes.reduce((s, n) => s + n.stats().recordsRefused, 0)
  console.log(`records healed ${healed}, stores refused ${refused}`)
  await Promise.all(nodes.map((n) => n.close()))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
