'use strict'
// The JavaScript DHTs that bench/dht-peers.cjs runs side by side, each behind
// one shape: build(n, rnd) starts n nodes on 127.0.0.1 in this process and
// joins them in the seeded order network.cjs uses (each through a random node
// at least 16 places earlier, 16 joining at once), and resolves to
//   { lookup(target) -> Promise<boolean: the lookup ended without a value>,
//     requests() -> requests sent network-wide so far, close() }.
// Python kademlia runs in its own interpreter (bench/python_dht.py).
const { pool, listenNodes, bootstrapAll } = require('./network.cjs')

const HOST = '127.0.0.1'

/**
 * The join order, for peers whose nodes only get an address when they start:
 * `start(bootstrapAddress | null)` resolves to a node that has joined through
 * it; node i starts once its chosen earlier node has joined.
 */
async function joinInOrder(n, rnd, start) {
  const joined = [start(null)]
  for (let i = 1; i < n; i++) joined.push(null)
  await pool(n - 1, 16, async (j) => {
    const via = await joined[Math.floor(rnd() * Math.max(1, j + 1 - 16))]
    joined[j + 1] = start(`${HOST}:${via.address().port}`)
    await joined[j + 1]
  })
  return Promise.all(joined)
}

/** rpcudp/kademlia on one backend: `get` of a never-stored key is a full value lookup. */
const rpcudp = (backend) => async (n, rnd) => {
  const { nodes, addresses } = await listenNodes(n, rnd, { backend })
  await bootstrapAll(nodes, addresses, rnd)
  return {
    lookup: async (from, target) => (await nodes[from].get(target)) === null,
    requests: () => nodes.reduce((s, node) => s + node.stats().rpc.requestsSent, 0),
    close: () => Promise.all(nodes.map((node) => node.close())),
  }
}

/**
 * dht-rpc (Holepunch, on udx-native): persistent, unfirewalled
 * nodes (the loopback is not behind a NAT), a findNode query run to its end.
 * Its ids are derived from each node's address, so they cannot be seeded.
 */
async function dhtRpc(n, rnd) {
  const DHT = require('dht-rpc')
  const nodes = await joinInOrder(n, rnd, async (via) => {
    const node = new DHT({ bootstrap: via ? [via] : [], ephemeral: false, firewalled: false, host: HOST })
    await node.ready()
    return node
  })
  return {
    lookup: async (from, target) => {
      await nodes[from].findNode(target).finished()
      return true
    },
    requests: () => nodes.reduce((s, node) => s + node.stats.requests.total, 0),
    close: () => Promise.all(nodes.map((node) => node.destroy())),
  }
}

/**
 * bittorrent-dht (WebTorrent, on k-rpc over node:dgram): `lookup` is a
 * get_peers walk to the k closest. Requests are counted where k-rpc-socket
 * sends a query, which every node in the process shares.
 */
async function bittorrentDht(n, rnd) {
  const { default: DHT } = await import('bittorrent-dht')
  const Socket = require('k-rpc-socket')
  let queries = 0
  const query = Socket.prototype.query
  Socket.prototype.query = function (...args) {
    queries++
    return query.apply(this, args)
  }
  const nodes = await joinInOrder(n, rnd, (via) =>
    new Promise((resolve, reject) => {
      const nodeId = Buffer.from(Array.from({ length: 20 }, () => Math.floor(rnd() * 256)))
      const node = new DHT({ nodeId, bootstrap: via ? [via] : false, host: HOST })
      node.once('error', reject)
      node.listen(0, HOST)
      node.once('ready', () => resolve(node))
    }),
  )
  return {
    lookup: (from, target) => new Promise((resolve, reject) => nodes[from].lookup(target, (err) => (err ? reject(err) : resolve(true)))),
    requests: () => queries,
    close: () => Promise.all(nodes.map((node) => new Promise((resolve) => node.destroy(resolve)))),
  }
}

const SYSTEMS = { native: rpcudp('native'), pure: rpcudp('pure'), 'dht-rpc': dhtRpc, 'bittorrent-dht': bittorrentDht }

module.exports = { SYSTEMS }
