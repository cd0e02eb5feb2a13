'use strict'
// What the Kademlia benchmarks share: a seeded PRNG, a bounded-concurrency
// loop, and the network they build (N nodes on 127.0.0.1, joined in a seeded order).
const { KademliaNode } = require('../../dist/kademlia/index.js')

/** A seeded PRNG (mulberry32), so both backends build the same-shaped run. */
function seeded(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Runs `fn(i)` for i in [0, n) with at most `width` at once. */
async function pool(n, width, fn) {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) await fn(next++)
    }),
  )
}

/**
 * `n` KademliaNodes listening on 127.0.0.1 (one UDP socket each) with seeded
 * ids; loopback shares one address, so no diversity bounds. `Node` may be
 * another build's KademliaNode, for a paired A/B.
 */
async function listenNodes(n, rnd, options, Node = KademliaNode) {
  const nodes = []
  const addresses = []
  for (let i = 0; i < n; i++) {
    const node = new Node({ ...options, diversity: false, nodeId: Buffer.from(Array.from({ length: 20 }, () => Math.floor(rnd() * 256))) })
    addresses.push(await node.listen(0, '127.0.0.1'))
    nodes.push(node)
  }
  return { nodes, addresses }
}

/** Node i joins through a random node at least 16 places earlier (which has finished joining), 16 joining at once; resolves to the ms it took. */
async function bootstrapAll(nodes, addresses, rnd) {
  const t0 = performance.now()
  await pool(nodes.length - 1, 16, (j) => nodes[j + 1].bootstrap([addresses[Math.floor(rnd() * Math.max(1, j + 1 - 16))]]))
  return performance.now() - t0
}

module.exports = { seeded, pool, listenNodes, bootstrapAll }
