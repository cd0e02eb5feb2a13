/**
 * The dual-stack DHT (docs/KADEMLIA.md, "Dual-stack"): which contacts a node
 * can reach by the address it bound, answers that put the asker's own family
 * first, a mixed network of IPv4-only, IPv6-only and dual-stack nodes on
 * loopback, and Python kademlia 2.2.3 nodes on ::1.
 */
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { RPCProtocol } from '../src/index'
import { KademliaNode, digest, type Address, type KademliaValue } from '../src/kademlia'
import { Contact, compareContacts } from '../src/kademlia/contact'
import { NO_DIVERSITY } from '../src/kademlia/diversity'
import { keyHead, toKey, type IdKey } from '../src/kademlia/ids'
import { IPV4, IPV6, familyOf, reachOf } from '../src/kademlia/reach'
import { RoutingTable } from '../src/kademlia/routing'
import { newWireCounters, parseFindReply } from '../src/kademlia/wire'
import { BACKENDS } from './helpers/backends'
import { PythonKademlia, fromPyJson, toPyJson } from './helpers/kademlia-python'
import { pythonAvailable } from './helpers/python'
import { prng } from './helpers/raw'

function same(a: unknown, b: unknown): boolean {
  return Buffer.isBuffer(a) && Buffer.isBuffer(b) ? a.equals(b) : Object.is(a, b)
}

test('a socket on :: reaches both families, on any other IPv6 address IPv6 only, on IPv4 IPv4 only', (t) => {
  t.is(reachOf('::'), IPV4 | IPV6)
  t.is(reachOf('::1'), IPV6)
  t.is(reachOf('fe80::1%eth0'), IPV6)
  t.is(reachOf('0.0.0.0'), IPV4)
  t.is(reachOf('127.0.0.1'), IPV4)
  t.is(familyOf('2001:db8::1'), IPV6)
  t.is(Contact.fromId(Buffer.alloc(20, 1), '::1', 1).family, IPV6)
  t.is(Contact.fromId(Buffer.alloc(20, 1), '10.0.0.1', 1).family, IPV4)
})

test('neighbour entries of a family the socket cannot reach are dropped and counted; IPv6 entries are held in canonical form', (t) => {
  const entries = [
    [Buffer.alloc(20, 1), '10.0.0.1', 1000],
    [Buffer.alloc(20, 2), '2001:DB8:0:0::1', 1000],
    [Buffer.alloc(20, 3), '::ffff:10.0.0.3', 1000], // a Python node on a dual-stack socket names IPv4 peers so
    [Buffer.alloc(20, 4), '::1', 1000],
  ]
  const self = toKey(Buffer.alloc(20))
  const ips = (reach: number, counters = newWireCounters()) => {
    const reply = parseFindReply(entries, 20, self, reach, counters, false)
    return { ips: reply !== undefined && 'nodes' in reply ? reply.nodes.map((c) => c.ip) : undefined, unreachable: counters.unreachableContacts }
  }
  t.deepEqual(ips(IPV4), { ips: ['10.0.0.1', '10.0.0.3'], unreachable: 2 })
  t.deepEqual(ips(IPV6), { ips: ['2001:db8::1', '::1'], unreachable: 2 })
  t.deepEqual(ips(IPV4 | IPV6), { ips: ['10.0.0.1', '2001:db8::1', '10.0.0.3', '::1'], unreachable: 0 })
})

/** A contact with a random id on IPv4 or IPv6 loopback. */
function contactOf(rnd: () => number, v6: boolean): Contact {
  const id = Buffer.from(Array.from({ length: 20 }, () => Math.floor(rnd() * 256)))
  return Contact.fromId(id, v6 ? '::1' : '127.0.0.1', 1 + Math.floor(rnd() * 65535))
}

test('an answer holds the k nearest of the preferred family first, and the nearest of the other only to fill k', (t) => {
  const self = randomBytes(20)
  const table = new RoutingTable(toKey(self), 4, () => {}, NO_DIVERSITY)
  const rnd = prng(6)
  const v4 = Array.from({ length: 3 }, () => contactOf(rnd, false))
  const v6 = Array.from({ length: 12 }, () => contactOf(rnd, true))
  for (const c of [...v4, ...v6]) table.add(c)
  const target = toKey(randomBytes(20))
  const byDistance = (cs: Contact[]) => [...cs].sort((a, b) => compareContacts(a, b, target, keyHead(target)))
  const held = byDistance(table.buckets.flatMap((b) => [...b.nodes.values()]))
  const heldV4 = held.filter((c) => c.family === IPV4)
  const heldV6 = held.filter((c) => c.family === IPV6)
  t.is(heldV4.length, 3, 'every IPv4 contact is in the table')
  t.true(heldV6.length > 4)
  // fewer than k IPv4 contacts: all of them, then the nearest IPv6 ones
  t.deepEqual(table.findNeighbors(target, 4, undefined, IPV4), [...heldV4, heldV6[0]])
  // k IPv6 contacts exist: only those
  t.deepEqual(table.findNeighbors(target, 4, undefined, IPV6), heldV6.slice(0, 4))
  // a dual-stack preference, or none: the k nearest whatever their family
  t.deepEqual(table.findNeighbors(target, 4, undefined, IPV4 | IPV6), held.slice(0, 4))
  t.deepEqual(table.findNeighbors(target, 4), held.slice(0, 4))
})

test('answers with a preferred family agree with a sort of every contact, for random tables and targets', (t) => {
  const rnd = prng(2027)
  for (let round = 0; round < 200; round++) {
    const k = 1 + Math.floor(rnd() * 8)
    const table = new RoutingTable(toKey(randomBytes(20)), k, () => {}, NO_DIVERSITY)
    const share = rnd()
    const n = Math.floor(rnd() * 60)
    for (let i = 0; i < n; i++) table.add(contactOf(rnd, rnd() < share))
    const target: IdKey = toKey(randomBytes(20))
    const held = table.buckets.flatMap((b) => [...b.nodes.values()]).sort((a, b) => compareContacts(a, b, target, keyHead(target)))
    for (const prefer of [IPV4, IPV6]) {
      const expected = [...held.filter((c) => (c.family & prefer) !== 0), ...held.filter((c) => (c.family & prefer) === 0).slice(0, k)].slice(0, k)
      t.deepEqual(table.findNeighbors(target, k, undefined, prefer), expected, `round ${round}, k ${k}, prefer ${prefer}`)
    }
  }
})

test('bootstrap skips and counts addresses of a family the socket cannot reach, and takes an IPv4-mapped one as IPv4', async (t) => {
  const seed = new KademliaNode({ diversity: false, waitTimeout: 2 })
  const v4 = new KademliaNode({ diversity: false, waitTimeout: 2 })
  const v6 = new KademliaNode({ diversity: false, waitTimeout: 2 })
  t.teardown(() => Promise.all([seed.close(), v4.close(), v6.close()]))
  const [, port] = await seed.listen(0, '::')
  await v4.listen(0, '127.0.0.1')
  await v6.listen(0, '::1')
  const started = Date.now()
  t.deepEqual(await v4.bootstrap([['::1', port]]), [], 'nothing to reach: no ping is sent, none waited for')
  t.true(Date.now() - started < 1000)
  t.is(v4.stats().unreachableContacts, 1)
  t.is((await v4.bootstrap([['::ffff:127.0.0.1', port], ['::1', port]])).length, 1)
  t.is(v4.stats().unreachableContacts, 2)
  t.deepEqual(v4.bootstrappableNeighbors(), [['127.0.0.1', port]])
  // the seed may name v4 too (if it has verified it by now): counted, not taken
  t.is((await v6.bootstrap([['127.0.0.1', port], ['0:0::1', port]])).length, 1)
  t.true(v6.stats().unreachableContacts >= 1)
  t.deepEqual(v6.bootstrappableNeighbors(), [['::1', port]])
})

type Kind = 'v4' | 'v6' | 'dual'
const BIND: Record<Kind, string> = { v4: '127.0.0.1', v6: '::1', dual: '::' }
/** Which kinds of node a kind can send to: IPv4-only nodes reach IPv4-only and dual-stack nodes at 127.0.0.1, IPv6-only ones IPv6-only and dual-stack nodes at ::1, dual-stack ones all. */
const REACHES: Record<Kind, readonly Kind[]> = { v4: ['v4', 'dual'], v6: ['v6', 'dual'], dual: ['v4', 'v6', 'dual'] }

test.serial('IPv4-only, IPv6-only and dual-stack nodes (native and pure) in one network: each finds every key a node it can reach holds, and holds no contact it cannot reach', async (t) => {
  t.timeout(60_000)
  const started = Date.now()
  const members: Array<{ kind: Kind; node: KademliaNode; port: number }> = []
  for (const kind of ['dual', 'v4', 'v6'] as const)
    for (let i = 0; i < 4; i++) {
      // every node is on loopback, so the bounds on contacts per host are lifted, as they must be there
      const node = new KademliaNode({ backend: BACKENDS[i % 2], diversity: false, waitTimeout: 2 })
      t.teardown(() => node.close())
      const [, port] = await node.listen(0, BIND[kind])
      members.push({ kind, node, port })
    }
  t.deepEqual(new Set(members.map((m) => m.node.backend)), new Set(BACKENDS))
  const [seed] = members
  const v6Port = members.find((m) => m.kind === 'v6')!.port
  const v4Port = members.find((m) => m.kind === 'v4')!.port
  // each through the first dual-stack node, at the address of its own family, and through one node of the other family it cannot reach
  const seedsOf = (m: (typeof members)[number], i: number): Address[] =>
    m.kind === 'v4' ? [['127.0.0.1', seed.port], ['::1', v6Port]] : m.kind === 'v6' ? [['::1', seed.port], ['127.0.0.1', v4Port]] : [[i % 2 === 0 ? '127.0.0.1' : '::1', seed.port]]
  for (const [i, m] of members.slice(1).entries()) t.true((await m.node.bootstrap(seedsOf(m, i))).length >= 1, `a ${m.kind} node joined`)
  // once more now that all are in, so the first ones hear of the last
  for (const [i, m] of members.slice(1).entries()) await m.node.bootstrap(seedsOf(m, i))

  const keys = members.map((m, i) => [`${m.kind}-key-${i}`, `value ${i} from ${m.kind}`] as const)
  t.true((await Promise.all(keys.map(([k, v], i) => members[i].node.set(k, v)))).every(Boolean), 'every set was acknowledged')
  // who holds each key, read from the nodes' own storage (test-only access)
  const holders = keys.map(([k]) => members.filter((m) => (m.node as unknown as { storage: { get(k: string): KademliaValue | undefined } }).storage.get(toKey(digest(k))) !== undefined))
  for (const [i, h] of holders.entries()) t.true(h.some((m) => m.kind === 'dual'), `key ${i} is held by a dual-stack node, so every node can reach a holder`)

  const gets = await Promise.all(members.map((m) => Promise.all(keys.map(([k]) => m.node.get(k)))))
  for (const [n, m] of members.entries())
    for (const [i, [, v]] of keys.entries()) {
      const reachable = holders[i].some((h) => REACHES[m.kind].includes(h.kind))
      if (reachable) t.true(same(gets[n][i], v), `a ${m.kind} node finds ${keys[i][0]}`)
    }

  for (const m of members) {
    const s = m.node.stats()
    const table = m.node.bootstrappableNeighbors()
    t.is(table.length, s.contacts, 'bootstrappableNeighbors (k >= the network) lists the whole table')
    const wrong = table.filter(([ip]) => (familyOf(ip) & reachOf(BIND[m.kind])) === 0)
    t.deepEqual(wrong, [], `a ${m.kind} node holds no contact it cannot reach`)
    // dual-stack nodes answer single-stack askers with the other family too, as fewer than k of their own exist
    if (m.kind === 'dual') t.is(s.unreachableContacts, 0)
    else t.true(s.unreachableContacts > 1, `a ${m.kind} node was offered, and counted, contacts of the other family`)
    t.is(s.malformedReplies + s.malformedRequests + s.badNeighbours, 0)
  }

  // a dual-stack node's answer, asked over each family: the asker's own family first
  for (const [host, family] of [['127.0.0.1', IPV4], ['::1', IPV6]] as const) {
    const asker = new RPCProtocol()
    t.teardown(() => asker.close())
    await asker.listen(0, host)
    const answer = await asker.callRemote([host, seed.port], 'find_node', [randomBytes(20), randomBytes(20)])
    t.true(answer[0])
    const families = (answer[1] as Array<[Buffer, string, number]>).map(([, ip]) => familyOf(ip))
    const own = families.filter((f) => f === family).length
    t.true(own >= 4 && own < families.length, 'both families in the answer')
    t.deepEqual(families.slice(0, own), new Array(own).fill(family), `over ${host}: its own family first`)
  }
  t.log(members.map((m) => `${m.kind}:${m.node.backend}:${m.node.stats().contacts}c/${m.node.stats().keys}k/${m.node.stats().unreachableContacts}u`).join(" "))
  t.log(`mixed-family network test took ${((Date.now() - started) / 1000).toFixed(1)} s`)
})

test.serial('Python kademlia 2.2.3 nodes on ::1 and TypeScript nodes (native and pure, on ::1 and on ::) join, store and find keys both ways', async (t) => {
  if (!pythonAvailable()) return t.fail('no .venv: run bash scripts/python-env.sh')
  t.timeout(40_000)
  const started = Date.now()
  const KSIZE = 8
  const py = await PythonKademlia.start(t, 60)
  const pyNodes = await py.startNodes(4, KSIZE, 3, '::1')
  const pyAddress = (i: number): Address => ['::1', pyNodes[i].port]
  const ts: KademliaNode[] = []
  for (const [i, host] of ['::1', '::', '::1', '::'].entries()) {
    const node = new KademliaNode({ ksize: KSIZE, backend: BACKENDS[i % 2], diversity: false, waitTimeout: 3 })
    t.teardown(() => node.close())
    await node.listen(0, host)
    ts.push(node)
  }
  t.deepEqual(new Set(ts.map((n) => n.backend)), new Set(BACKENDS))
  const tsAddress = (i: number): Address => ['::1', ts[i].address()[1]]

  // TypeScript through Python alone, Python through TypeScript alone, then the rest alternating
  t.true((await ts[0].bootstrap([pyAddress(0)])).length >= 1, 'TypeScript joined through a Python node on ::1')
  const pyJoined = await py.command<Array<[string, string, number]>>('bootstrap', { node: 1, addrs: [tsAddress(0)] })
  t.true(pyJoined.length >= 2, 'Python joined through a TypeScript node')
  t.true(pyJoined.every(([, ip]) => ip === '::1'), 'Python was told of IPv6 contacts only')
  for (let i = 1; i < 4; i++) {
    t.true((await ts[i].bootstrap([i % 2 === 0 ? pyAddress(i) : tsAddress(i - 1)])).length >= 1)
    if (i + 1 < 4) t.true((await py.command<unknown[]>('bootstrap', { node: i + 1, addrs: [tsAddress(i)] })).length >= 1)
  }

  const tsKeys = Array.from({ length: 20 }, (_, i) => [`ts6-key-${i}`, i % 2 === 0 ? `ts value ${i}` : Buffer.from([i, 6])] as const)
  t.true((await Promise.all(tsKeys.map(([k, v], i) => ts[i % 4].set(k, v)))).every(Boolean))
  const fromPy = await Promise.all(tsKeys.map(([k], i) => py.command('get', { node: i % 4, key: k })))
  t.is(fromPy.filter((v, i) => same(fromPyJson(v), tsKeys[i][1])).length, 20, 'Python nodes found every TypeScript key')

  const pyKeys = Array.from({ length: 20 }, (_, i) => [`py6-key-${i}`, i % 2 === 0 ? i * 7 : Buffer.from([i, 9])] as const)
  const pySet = await Promise.all(pyKeys.map(([k, v], i) => py.command<boolean>('set', { node: i % 4, key: k, value: toPyJson(v) })))
  t.is(pySet.filter(Boolean).length, 20)
  const fromTs = await Promise.all(pyKeys.map(([k], i) => ts[(i + 1) % 4].get(k)))
  t.is(fromTs.filter((v, i) => same(v, pyKeys[i][1])).length, 20, 'TypeScript nodes found every Python key')

  for (const node of ts) {
    const s = node.stats()
    t.is(s.malformedReplies + s.malformedRequests + s.badNeighbours + s.unreachableContacts, 0)
    t.true(node.bootstrappableNeighbors().every(([ip]) => ip === '::1'))
  }
  t.log(`Python on ::1 test took ${((Date.now() - started) / 1000).toFixed(1)} s`)
})
