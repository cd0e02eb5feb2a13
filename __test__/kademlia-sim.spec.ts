/**
 * Kademlia nodes on a simulated network (helpers/kademlia-sim.ts): lookups,
 * replication, lost answers, malicious peers and hostile requests, with no
 * sockets, so each scenario is repeatable.
 */
import test from 'ava'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KademliaArgumentError, KademliaNode, KademliaValueError, digest, type Address, type KademliaNodeOptions } from '../src/kademlia'
import { SimNetwork, type SimTransport, waitFor } from './helpers/kademlia-sim'

interface SimNode {
  node: KademliaNode
  transport: SimTransport
  address: Address
}

async function simNode(net: SimNetwork, options: KademliaNodeOptions = {}): Promise<SimNode> {
  const transport = net.transport()
  const node = new KademliaNode({ nodeId: net.id(), ...options, transport })
  const address = await node.listen()
  return { node, transport, address }
}

/** `n` nodes, each bootstrapped through a random earlier one. */
async function cluster(net: SimNetwork, n: number, options: KademliaNodeOptions = {}): Promise<SimNode[]> {
  const nodes: SimNode[] = []
  for (let i = 0; i < n; i++) {
    const s = await simNode(net, options)
    if (i > 0) await s.node.bootstrap([nodes[Math.floor(net.random() * i)].address])
    nodes.push(s)
  }
  return nodes
}

const closeAll = (nodes: SimNode[]) => Promise.all(nodes.map((s) => s.node.close()))
const pick = <T>(net: SimNetwork, xs: T[]) => xs[Math.floor(net.random() * xs.length)]

/** An id whose first bytes are `prefix` and the rest zero. */
function idOf(...prefix: number[]): Buffer {
  const id = Buffer.alloc(20)
  Buffer.from(prefix).copy(id)
  return id
}

function sumStats(nodes: SimNode[]) {
  const total: Record<string, number> = {}
  for (const s of nodes)
    for (const [k, v] of Object.entries(s.node.stats())) if (typeof v === 'number') total[k] = (total[k] ?? 0) + v
  return total
}

test('100 nodes: every key set from one node is found from others, in a few rounds', async (t) => {
  const net = new SimNetwork(11)
  const nodes = await cluster(net, 100)
  t.teardown(() => closeAll(nodes))
  for (let i = 0; i < 30; i++) t.true(await pick(net, nodes).node.set(`key-${i}`, i % 2 ? `value-${i}` : Buffer.from([i])), `set key-${i}`)
  const before = sumStats(nodes)
  let found = 0
  for (let i = 0; i < 30; i++)
    for (let j = 0; j < 4; j++) {
      const v = await pick(net, nodes).node.get(`key-${i}`)
      if ((i % 2 ? v === `value-${i}` : Buffer.isBuffer(v) && v[0] === i)) found++
    }
  t.is(found, 120)
  const after = sumStats(nodes)
  const lookups = after.lookups - before.lookups
  t.true(lookups > 0)
  t.is(after.lookupsCut, 0)
  t.true((after.lookupRounds - before.lookupRounds) / lookups <= 6, `rounds per lookup ${(after.lookupRounds - before.lookupRounds) / lookups}`)
  // each key lives on about k = 20 nodes
  const held = nodes.reduce((n, s) => n + s.node.stats().keys, 0)
  t.true(held >= 30 * 20 && held <= 30 * 40, `${held} copies of 30 keys`)
  t.is(await nodes[5].node.get('never-set'), null)
})

test('lost answers: with 30% of requests and 30% of answers lost, every key is still found', async (t) => {
  const net = new SimNetwork(12)
  const nodes = await cluster(net, 60)
  t.teardown(() => closeAll(nodes))
  for (let i = 0; i < 20; i++) t.true(await pick(net, nodes).node.set(`k${i}`, i))
  net.loss = 0.3
  let found = 0
  for (let i = 0; i < 20; i++) if ((await pick(net, nodes).node.get(`k${i}`)) === i) found++
  t.is(found, 20)
  // silent peers were dropped from the routing tables of those who called them
  t.true(
    nodes.some((s) => s.node.stats().contacts < 59),
    'some node dropped a silent contact',
  )
})

test('malicious peers: malformed, oversized and spoofed answers are ignored and counted, and lookups still succeed', async (t) => {
  const net = new SimNetwork(13)
  const nodes = await cluster(net, 50)
  t.teardown(() => closeAll(nodes))
  for (let i = 0; i < 20; i++) await nodes[i % 10].node.set(`m${i}`, `v${i}`)
  const ids = nodes.map((s) => s.node.id)
  const hostile: Array<(sender: Address) => unknown> = [
    () => 'garbage',
    () => null,
    () => new Map([['value', 1]]),
    () => ({ value: [1, 2] }),
    () => ({ value: null }),
    () => ({ value: 'x', extra: 1 }),
    () => [[Buffer.alloc(19), '10.0.0.1', 1], [ids[0], 'not-an-ip', 1], [ids[0], '10.0.0.1', 0], [ids[0], '10.0.0.1'], 5, null, 'x'],
    // a neighbour list far over k: well-formed entries at addresses nobody listens on
    () => Array.from({ length: 200 }, (_, i) => [digest(`fake${i}`), '10.9.0.' + (i % 250), 1000 + i]),
    // every node's id at this hostile address, the asker's own id included
    () => ids.map((id) => [id, '10.66.0.1', 1]),
  ]
  const bad = nodes.slice(40, 40 + hostile.length)
  bad.forEach((s, i) => {
    s.transport.handlers.set('find_node', hostile[i])
    s.transport.handlers.set('find_value', hostile[i])
    s.transport.handlers.set('ping', () => ids[0]) // claims node 0's id, the bootstrapper's own id below
  })
  const honest = nodes.slice(0, 40)
  let found = 0
  for (let i = 0; i < 20; i++) if ((await honest[(i * 7) % 40].node.get(`m${i}`)) === `v${i}`) found++
  t.is(found, 20)
  // a new node bootstrapping through each hostile peer and one honest one surely asks the hostile one
  const probes: SimNode[] = []
  for (const s of bad) {
    const probe = await simNode(net)
    probes.push(probe)
    t.true((await probe.node.bootstrap([s.address, honest[0].address])).length >= 10)
    t.is(await probe.node.get('m3'), 'v3')
  }
  t.teardown(() => closeAll(probes))
  // node 0 bootstraps through hostile peers only: every ping answer claims its own id
  const through = await nodes[0].node.bootstrap(bad.map((s) => s.address))
  t.deepEqual(through, [])
  const total = sumStats([...honest, ...probes])
  t.true(total.malformedReplies > 0, 'malformedReplies')
  t.true(total.badNeighbours > 0, 'badNeighbours')
  t.true(total.extraNeighbours > 0, 'extraNeighbours')
  t.true(total.ownIdClaims > 0, 'ownIdClaims')
  t.true(total.lookupCalls / total.lookups <= 8 * 20)
})

for (const diversity of [undefined, false] as const)
  test(`a Sybil that always answers with nearer, fresh ids cannot keep a lookup going (diversity ${diversity === false ? 'off: the limits' : 'bounds'} stop it)`, async (t) => {
    const net = new SimNetwork(14)
    const victim = await simNode(net, { maxLookupRounds: 10, maxLookupCalls: 25, diversity })
    const sybil = await simNode(net)
    t.teardown(() => closeAll([victim, sybil]))
    let n = 0
    const nearer = (key: Buffer) => Array.from({ length: 20 }, () => {
      const id = Buffer.from(key)
      id.writeUInt32BE(n++, 16)
      return [id, sybil.address[0], sybil.address[1]]
    })
    sybil.transport.handlers.set('find_node', (_s: Address, _id: Buffer, key: Buffer) => nearer(key))
    sybil.transport.handlers.set('find_value', (_s: Address, _id: Buffer, key: Buffer) => nearer(key))
    await victim.node.bootstrap([sybil.address])
    const before = victim.node.stats()
    const findsBefore = net.calls.find_value ?? 0
    t.is(await victim.node.get('anything'), null)
    const after = victim.node.stats()
    t.is(after.lookups - before.lookups, 1)
    const calls = after.lookupCalls - before.lookupCalls
    t.is(net.calls.find_value - findsBefore, calls)
    if (diversity === false) {
      t.true(calls <= 25, `${calls} calls`)
      t.true(after.lookupRounds - before.lookupRounds <= 10)
      t.is(after.lookupsCut - before.lookupsCut, 1)
    } else {
      // every fake id is at the Sybil's one host: at most perHost (2) of them become candidates of a lookup
      t.true(calls <= 1 + 2, `${calls} calls`)
      t.true(after.lookupSkipped - before.lookupSkipped >= 18)
      t.is(after.lookupsCut - before.lookupsCut, 0)
    }
  })

test('hostile requests: bad ids, keys and values are refused and counted; a peer claiming our id never enters the table', async (t) => {
  const net = new SimNetwork(15)
  const a = await simNode(net)
  const b = await simNode(net)
  t.teardown(() => closeAll([a, b]))
  const call = (name: string, args: unknown[]) => b.transport.call(a.address, name, args)
  t.like(await call('ping', [Buffer.alloc(19)]), [false, null, { code: 'handlerError' }])
  t.like(await call('store', [b.node.id, Buffer.alloc(21), 1]), [false, null, { code: 'handlerError' }])
  t.like(await call('store', [b.node.id, digest('k'), [1, 2]]), [false, null, { code: 'handlerError' }])
  t.like(await call('store', [b.node.id, digest('k'), null]), [false, null, { code: 'handlerError' }])
  t.like(await call('find_node', [b.node.id, 'not-bytes']), [false, null, { code: 'handlerError' }])
  t.like(await call('find_value', [b.node.id, 7]), [false, null, { code: 'handlerError' }])
  t.is(a.node.stats().malformedRequests, 6)
  t.is(a.node.stats().keys, 0)
  // a request carrying a's own id
  t.deepEqual(await call('ping', [a.node.id]), [true, a.node.id])
  t.is(a.node.stats().contacts, 0)
  t.is(a.node.stats().ownIdClaims, 1)
  // stun answers with the sender's address, like Python
  t.deepEqual(await call('stun', []), [true, b.address])
  // a well-formed store of a falsy value is kept and found (find_value answers {value: 0})
  t.deepEqual(await call('store', [b.node.id, digest('zero'), 0]), [true, true])
  t.deepEqual(await call('find_value', [b.node.id, digest('zero')]), [true, { value: 0 }])
  t.deepEqual(await call('find_value', [b.node.id, digest('other')]), [true, []], 'the asker is not among its own neighbours')
})

test('welcome_if_new: a new node nearer a stored key than anyone known gets the key', async (t) => {
  const net = new SimNetwork(16)
  const key = digest('welcome')
  const flip = (bytes: number[]) => {
    const id = Buffer.from(key)
    for (const [i, b] of bytes.entries()) id[19 - i] ^= b
    return id
  }
  const holder = await simNode(net, { nodeId: flip([1]) }) // nearest the key
  const far = await simNode(net, { nodeId: (() => { const id = Buffer.from(key); id[0] ^= 0x80; return id })() })
  t.teardown(() => closeAll([holder, far]))
  await far.node.bootstrap([holder.address])
  t.true(await holder.node.set('welcome', 'here'))
  t.is(holder.node.stats().keys, 1)
  const newcomer = await simNode(net, { nodeId: flip([2]) })
  t.teardown(() => newcomer.node.close())
  const storesBefore = net.calls.store ?? 0
  await newcomer.node.bootstrap([far.address]) // holder hears of it only when it contacts holder
  await waitFor(() => newcomer.node.stats().keys === 1, 5000, 'the welcome store')
  t.true((net.calls.store ?? 0) > storesBefore)
  t.is(await newcomer.node.get('welcome'), 'here')
})

test('least-recently-seen eviction: a full bucket pings its head; a live head stays, a dead one is replaced by the newcomer', async (t) => {
  const net = new SimNetwork(17)
  const v = await simNode(net, { ksize: 1, nodeId: idOf(0) })
  const a = await simNode(net, { ksize: 1, nodeId: idOf(0xf8) })
  const b = await simNode(net, { ksize: 1, nodeId: idOf(0xfc) })
  const c = await simNode(net, { ksize: 1, nodeId: idOf(0xfa) })
  t.teardown(() => closeAll([v, a, b, c]))
  const vNeighbours = () => v.node.bootstrappableNeighbors().map((x) => x.join(':'))
  await a.transport.call(v.address, 'ping', [a.node.id])
  // a new sender enters the table once it has answered v's ping
  await waitFor(() => vNeighbours().length === 1, 5000, "a's verification")
  t.deepEqual(vNeighbours(), [a.address.join(':')])
  let aPinged = 0
  const aPing = a.transport.handlers.get('ping')!
  a.transport.handlers.set('ping', (sender: Address, ...args: unknown[]) => {
    if (sender.join(':') === v.address.join(':')) aPinged++
    return aPing(sender, ...args)
  })
  // b is verified, then the bucket is full, at depth 160 (a multiple of 5): a is pinged
  await b.transport.call(v.address, 'ping', [b.node.id])
  await waitFor(() => aPinged >= 1, 5000, "v's ping of a")
  await net.quiet() // b's own ping of v (verifying v) makes v ping a again; let every ping settle
  t.deepEqual(vNeighbours(), [a.address.join(':')], 'a answered, so it stays')
  await a.node.close()
  await c.transport.call(v.address, 'ping', [c.node.id])
  await waitFor(() => vNeighbours()[0] === c.address.join(':'), 5000, 'c to replace a')
  t.deepEqual(vNeighbours(), [c.address.join(':')])
})

test('a request sender whose bucket is full is not pinged: it waits unverified, and its repeats cost no ping', async (t) => {
  const net = new SimNetwork(19)
  const v = await simNode(net, { ksize: 1, nodeId: idOf(0) })
  const a = await simNode(net, { ksize: 1, nodeId: idOf(0xf8) })
  const b = await simNode(net, { ksize: 1, nodeId: idOf(0xfc) })
  const low = await simNode(net, { ksize: 1, nodeId: idOf(0x01) })
  t.teardown(() => closeAll([v, a, b, low]))
  await a.transport.call(v.address, 'ping', [a.node.id])
  await waitFor(() => v.node.stats().contacts === 1, 5000, "a's verification")
  // low splits v's table: a is left alone in a full bucket that no longer splits
  await low.transport.call(v.address, 'ping', [low.node.id])
  await waitFor(() => v.node.stats().contacts === 2, 5000, "low's verification")
  await net.quiet()
  const pingsBefore = net.calls.ping ?? 0
  // b's bucket (a's, at depth 160) is full: each of b's requests is answered, and only the head is pinged, once
  for (let i = 0; i < 3; i++) t.true((await b.transport.call(v.address, 'find_node', [b.node.id, idOf(0xfc)]))[0])
  await net.quiet()
  t.is((net.calls.ping ?? 0) - pingsBefore, 1, "v pinged a (the head), not b, and not again for b's repeats")
  t.is(v.node.stats().contacts, 2, 'b waits in the cache: the table still holds a and low')
})

test('refresh runs every refreshInterval: it looks up lonely buckets and republishes keys stored that long ago', async (t) => {
  const net = new SimNetwork(18)
  const nodes = await cluster(net, 10, { refreshInterval: 0.2 })
  t.teardown(() => closeAll(nodes))
  t.true(await nodes[0].node.set('old', 'value'))
  const stores = net.calls.store
  // any node's: one node's refresh lookups keep the others' buckets fresh, so which node looks up next is a race
  const lookups = () => sumStats(nodes).lookups
  const before = lookups()
  // nothing else happens on this network now: lookups and stores come from the refresh timers
  await waitFor(() => lookups() > before + 1 && net.calls.store > stores, 5000, 'a refresh with a republish')
  t.pass()
})

test('set and get check their arguments before anything is sent', async (t) => {
  const net = new SimNetwork(19)
  const nodes = await cluster(net, 3)
  t.teardown(() => closeAll(nodes))
  const calls = net.totalCalls()
  await t.throwsAsync(nodes[0].node.set('k', { a: 1 } as any), { instanceOf: KademliaValueError })
  await t.throwsAsync(nodes[0].node.set('k', null as any), { instanceOf: KademliaValueError })
  await t.throwsAsync(nodes[0].node.set('k', 'x'.repeat(9000)), { instanceOf: KademliaValueError })
  await t.throwsAsync(nodes[0].node.get(42 as any), { instanceOf: KademliaArgumentError })
  await t.throwsAsync(nodes[0].node.bootstrap([['no-such-host', 1]]), { instanceOf: KademliaArgumentError })
  t.throws(() => new KademliaNode({ nodeId: Buffer.alloc(5) }), { instanceOf: KademliaArgumentError })
  t.throws(() => new KademliaNode({ ksize: 0 }), { instanceOf: KademliaArgumentError })
  t.is(net.totalCalls(), calls)
})

test('set is false when no store is acknowledged (Python says True whenever it tried); a lone node finds nothing', async (t) => {
  const net = new SimNetwork(20)
  const [a, b] = await cluster(net, 2)
  t.teardown(() => closeAll([a, b]))
  await b.node.close()
  t.false(await a.node.set('k', 1))
  const lone = await simNode(net)
  t.teardown(() => lone.node.close())
  t.false(await lone.node.set('k', 1))
  t.is(await lone.node.get('k'), null)
})

test('saveState writes JSON; loadState brings the node back with its id and bootstraps from the saved neighbours', async (t) => {
  const net = new SimNetwork(21)
  const nodes = await cluster(net, 5, { ksize: 7, alpha: 2 })
  t.teardown(() => closeAll(nodes))
  const path = join(tmpdir(), `kad-state-${process.pid}.json`)
  await nodes[4].node.saveState(path)
  const saved = JSON.parse(await readFile(path, 'utf8'))
  t.is(saved.id, nodes[4].node.id.toString('hex'))
  t.is(saved.ksize, 7)
  t.is(saved.alpha, 2)
  t.true(saved.neighbors.length >= 1)
  await nodes[4].node.close()
  const again = await KademliaNode.loadState(path, { transport: net.transport() })
  t.teardown(() => again.close())
  t.deepEqual(again.id, nodes[4].node.id)
  t.is(again.ksize, 7)
  t.true(again.stats().contacts >= 1)
  await t.throwsAsync(KademliaNode.loadState(join(tmpdir(), 'no-such-kad-state.json')), { code: 'ERR_KAD_STATE' })
})

test('Sybil: 200 nodes on one IP and 200 on one /24 fill at most their bounds of any bucket, and lookups still find keys held by honest nodes', async (t) => {
  const net = new SimNetwork(30)
  const honest = await cluster(net, 40)
  t.teardown(() => closeAll(honest))
  for (let i = 0; i < 20; i++) t.true(await pick(net, honest).node.set(`honest-${i}`, i))
  const victim = honest[0].node
  const sybils: SimNode[] = []
  t.teardown(() => closeAll(sybils))
  for (let i = 0; i < 400; i++) {
    // the first 200 share one address, the next 200 one /24
    const transport = net.transportAt(i < 200 ? ['10.250.0.1', 1000 + i] : ['10.251.0.' + (i - 199), 2000])
    const node = new KademliaNode({ nodeId: net.id(), transport, diversity: false })
    sybils.push({ node, transport, address: await node.listen() })
    // each joins through the victim, so the victim hears of (and verifies) every one of them
    await node.bootstrap([honest[0].address])
  }
  await net.quiet()
  for (const bucket of (victim as any).protocol.router.buckets) {
    const ips = [...bucket.nodes.values()].map((c: any) => c.ip as string)
    t.true(ips.filter((ip) => ip === '10.250.0.1').length <= 2, 'at most perHost (2) of one IP in a bucket')
    t.true(ips.filter((ip) => ip.startsWith('10.251.0.')).length <= 8, 'at most perSubnet (8) of one /24 in a bucket')
  }
  t.true(victim.stats().diversityRefused > 0)
  let found = 0
  for (let i = 0; i < 20; i++) if ((await victim.get(`honest-${i}`)) === i) found++
  t.is(found, 20)
})
