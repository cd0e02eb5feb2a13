/**
 * The lookup state machine and PeerHealth on simulated time (no sockets, no
 * timers: `now` is passed in), and the KademliaNode lifecycle, abort and
 * tracing around them on the simulated network.
 */
import test from 'ava'
import { tracingChannel } from 'node:diagnostics_channel'
import { KademliaAbortError, KademliaNode, KademliaStateError, KademliaTimeoutError, type Address } from '../src/kademlia'
import { Contact } from '../src/kademlia/contact'
import { DEFAULT_DIVERSITY, NO_DIVERSITY } from '../src/kademlia/diversity'
import { FAILURE_MEMORY_MS, INITIAL_TIMEOUT_MS, MIN_TIMEOUT_MS, PEER_MEMORY_MS, PeerHealth } from '../src/kademlia/health'
import { toKey } from '../src/kademlia/ids'
import { LookupState, type Query } from '../src/kademlia/lookup'
import { SimNetwork, waitFor } from './helpers/kademlia-sim'

const TARGET = toKey(Buffer.alloc(20))
/** A contact at distance `d` from TARGET (its last byte), each on its own /24. */
const at = (d: number, ip = `10.${d}.0.1`) => {
  const id = Buffer.alloc(20)
  id[19] = d
  return new Contact(toKey(id), ip, 4000 + d)
}
const config = { k: 4, alpha: 2, findValue: false, diversity: NO_DIVERSITY, maxRounds: 32, maxCalls: 100 }
const fixed = () => 100
const peers = (qs: Query[]) => qs.map((q) => q.peer.port - 4000)

test('alpha calls stay in flight: each answer lets the next candidate in at once, nearest first', (t) => {
  const s = new LookupState(TARGET, config, () => false)
  s.push([at(9), at(3), at(7), at(5)], 1)
  t.deepEqual(peers(s.next(0, fixed)), [3, 5])
  t.deepEqual(peers(s.next(1, fixed)), [], 'two in flight already')
  const [q3] = [...(s as any).queries.values()] as Query[]
  s.answered(q3, { nodes: [at(1)] })
  // the answer brought a nearer one: it goes next, and alpha (2) are in flight again
  t.deepEqual(peers(s.next(2, fixed)), [1])
  t.false(s.done)
})

test('a call past its timeout is passed over: its slot goes to the next candidate, and its late answer still counts', (t) => {
  const s = new LookupState(TARGET, config, () => false)
  s.push([at(1), at(2), at(3), at(4), at(5)], 1)
  const first = s.next(0, fixed)
  t.deepEqual(peers(first), [1, 2])
  const passed: number[] = []
  t.is(s.expire(50, (q) => passed.push(q.peer.port - 4000)), 100, 'nothing is due before 100 ms')
  t.deepEqual(passed, [])
  t.is(s.expire(100, (q) => passed.push(q.peer.port - 4000)), undefined)
  t.deepEqual(passed, [1, 2])
  // both left the k nearest, so 3, 4 and 5 are in them now
  t.deepEqual(peers(s.next(100, fixed)), [3, 4])
  s.answered(first[0], { nodes: [at(0)] }) // 1 answers late, naming a nearer node
  t.deepEqual(peers(s.next(101, fixed)), [0])
  const [, , q3, q4, q0] = [...(s as any).queries.values()] as Query[]
  s.answered(q3, { nodes: [] })
  s.answered(q4, { nodes: [] })
  t.deepEqual(s.next(102, fixed), [])
  t.false(s.done, '0 is in flight')
  s.answered(q0, { nodes: [] })
  // nothing else to ask: 2, passed over once and nearer than 4, is asked once more (a lost datagram is not death)
  const again = s.next(103, fixed)
  t.deepEqual(again.map((q) => [q.peer.port - 4000, q.attempt, q.passAt]), [[2, 2, 303]], 'twice the timeout')
  t.false(s.done)
  t.is(s.expire(302, () => {}), 303)
  t.is(s.expire(303, () => {}), undefined)
  t.deepEqual(s.next(303, fixed), [], 'no third chance; 5 is not among the 4 nearest live ones: 0, 1 (late), 3, 4')
  t.true(s.done, 'done without waiting for 2')
  const r = s.result()
  t.deepEqual(r.nodes.map((c) => c.port - 4000), [0, 1, 3, 4])
  t.is(r.passedOver, 3)
  t.is(r.calls, 6)
})

test('a second chance that answers puts its peer back among the nearest; the first late answer and the second count once', (t) => {
  const s = new LookupState(TARGET, { ...config, k: 2 }, () => false)
  s.push([at(1), at(2)], 1)
  const [q1, q2] = s.next(0, fixed)
  s.answered(q2, { nodes: [] })
  s.expire(100, () => {})
  const [retry] = s.next(100, fixed)
  t.is(retry.peer, q1.peer)
  t.is(retry.attempt, 2)
  s.answered(q1, { nodes: [at(0)] }) // the first attempt's late answer
  s.answered(retry, { nodes: [at(0)] }) // and the second's: already answered, ignored
  const [q0] = s.next(101, fixed)
  t.is(q0.peer.port, 4000)
  s.answered(q0, { nodes: [] })
  t.deepEqual(s.next(102, fixed), [])
  t.true(s.done)
  t.deepEqual(s.result().nodes.map((c) => c.port - 4000), [0, 1])
})

test('the lookup is done once the k nearest live candidates answered: calls to farther ones are not waited for', (t) => {
  const s = new LookupState(TARGET, { ...config, k: 2 }, () => false)
  s.push([at(8), at(9)], 1)
  const [q8, q9] = s.next(0, fixed)
  s.answered(q8, { nodes: [at(1), at(2)] })
  // 9 has fallen out of the 2 nearest, so both slots go to 1 and 2
  const [q1, q2] = s.next(1, fixed)
  t.deepEqual(peers([q1, q2]), [1, 2])
  s.answered(q1, { nodes: [] })
  s.answered(q2, { nodes: [] })
  t.deepEqual(s.next(3, fixed), [])
  t.true(s.done, '9 is still in flight, but 1 and 2 are nearer and answered')
  void q9
})

test('recently failed candidates and those past a diversity bound are left out and counted', (t) => {
  const failed = new Set([3])
  const s = new LookupState(TARGET, { ...config, diversity: DEFAULT_DIVERSITY }, (c) => failed.has(c.port - 4000))
  // 4 contacts on one host (perHost 2), 10 on one /24 (perSubnet 8), and a failed one
  s.push([at(10, '10.9.9.9'), at(11, '10.9.9.9'), at(12, '10.9.9.9'), at(13, '10.9.9.9')], 1)
  s.push(Array.from({ length: 10 }, (_, i) => at(20 + i, `10.8.8.${i + 1}`)), 1)
  s.push([at(3)], 1)
  const r = s.result()
  t.is(r.skipped, 2 + 2 + 1)
})

test('a value lookup ends at the first value', (t) => {
  const s = new LookupState(TARGET, { ...config, findValue: true }, () => false)
  s.push([at(1), at(2), at(3)], 1)
  const [q1, q2] = s.next(0, fixed)
  s.answered(q2, { nodes: [] })
  s.answered(q1, { value: 'v' })
  t.deepEqual(s.next(1, fixed), [])
  t.true(s.done)
  const r = s.result()
  t.is(r.value, 'v')
  t.is(r.nearestWithoutValue?.port, 4002)
})

test('PeerHealth: 1 s before any sample, then srtt + 4 rttvar per peer (the network estimate for others), floored and capped', (t) => {
  const h = new PeerHealth(5000, () => 0)
  const a = at(1)
  const b = at(2)
  t.is(h.timeoutFor(a), INITIAL_TIMEOUT_MS)
  h.answered(a, 20) // srtt 20, rttvar 10: 60
  t.is(h.timeoutFor(a), 60)
  t.is(h.timeoutFor(b), 100, 'an untimed peer: srtt + 8 rttvar of the network')
  for (let i = 0; i < 50; i++) h.answered(a, 1)
  t.is(h.timeoutFor(a), MIN_TIMEOUT_MS)
  h.answered(b, 60_000)
  t.is(h.timeoutFor(b), 5000, 'never past the ceiling')
})

test('PeerHealth: a peer that missed two calls in a row counts as recently failed until it answers or the memory runs out', (t) => {
  const h = new PeerHealth(5000, () => 0)
  const a = at(1)
  t.false(h.recentlyFailed(a, 0))
  h.failed(a, 1000, 0)
  t.false(h.recentlyFailed(a, 1000), 'one miss (a lost datagram) is not enough')
  h.failed(a, 2000, 1500)
  t.true(h.recentlyFailed(a, 2000 + FAILURE_MEMORY_MS - 1))
  t.false(h.recentlyFailed(a, 2000 + FAILURE_MEMORY_MS))
  h.answered(a, 5)
  h.slow(a, 3000)
  t.false(h.recentlyFailed(a, 3001))
  // the same call passed over at 3000 and timing out at 7000 is one miss
  h.failed(a, 7000, 2900)
  t.false(h.recentlyFailed(a, 7001))
  h.slow(a, 8000)
  t.true(h.recentlyFailed(a, 8001), 'a second call passed over')
  h.answered(a, 5)
  t.false(h.recentlyFailed(a, 8002))
  h.failed(a, 9000, 8500)
  h.failed(a, 9500, 9000)
  t.true(h.recentlyFailed(a, 9501))
  h.heardFrom(a)
  t.false(h.recentlyFailed(a, 9502))
})

test('PeerHealth forgets a peer not called for PEER_MEMORY_MS, so it holds what a node calls now, not every address it ever called', (t) => {
  let now = 0
  const h = new PeerHealth(5000, () => now)
  for (let i = 0; i < 100; i++) h.answered(at(i), 20)
  t.is(h.size, 100)
  now = PEER_MEMORY_MS / 2
  h.answered(at(0), 20) // 0 is called again
  now = PEER_MEMORY_MS + 1
  h.answered(at(200), 20)
  t.is(h.size, 2, 'the 99 idle for an hour are gone; 0 and 200 stay')
  t.is(h.timeoutFor(at(0)), 50, 'the one called again keeps its estimate (two samples of 20: srtt 20, rttvar 7.5)')
})

async function simPair(net: SimNetwork) {
  const nodes = [] as { node: KademliaNode; address: Address }[]
  for (let i = 0; i < 2; i++) {
    const node = new KademliaNode({ nodeId: net.id(), transport: net.transport() })
    nodes.push({ node, address: await node.listen() })
  }
  await nodes[1].node.bootstrap([nodes[0].address])
  return nodes
}

test('lifecycle: every operation throws KademliaStateError before listen() and after close(); listen() once; close() twice is fine', async (t) => {
  const net = new SimNetwork(40)
  const node = new KademliaNode({ nodeId: net.id(), transport: net.transport() })
  const ops = [
    () => node.get('k'),
    () => node.set('k', 1),
    () => node.setDigest(Buffer.alloc(20), 1),
    () => node.bootstrap([]),
    () => node.refresh(),
    () => node.saveState('/nonexistent/x.json'),
  ]
  for (const op of ops) await t.throwsAsync(op, { instanceOf: KademliaStateError, message: /listen\(\) first/ })
  t.throws(() => node.address(), { instanceOf: KademliaStateError })
  t.throws(() => node.bootstrappableNeighbors(), { instanceOf: KademliaStateError })
  const bound = await node.listen()
  t.deepEqual(node.address(), bound)
  await t.throwsAsync(node.listen(), { instanceOf: KademliaStateError, message: /already/ })
  await node.close()
  await node.close()
  for (const op of ops) await t.throwsAsync(op, { instanceOf: KademliaStateError, message: /closed/ })
  await t.throwsAsync(node.listen(), { instanceOf: KademliaStateError })
})

test('await using closes the node at the end of the scope', async (t) => {
  const net = new SimNetwork(41)
  let escaped: KademliaNode
  {
    await using node = new KademliaNode({ nodeId: net.id(), transport: net.transport() })
    await node.listen()
    escaped = node
    t.truthy(node.address())
  }
  t.throws(() => escaped.address(), { instanceOf: KademliaStateError, message: /closed/ })
})

test('an aborted lookup stops sending at once and rejects with KademliaAbortError; a timeout rejects with KademliaTimeoutError', async (t) => {
  const net = new SimNetwork(42)
  const [a, b] = await simPair(net)
  t.teardown(() => Promise.all([a.node.close(), b.node.close()]))
  // a never answers lookups from now on
  const hang = () => new Promise(() => {})
  const sim = (a.node as any).transport
  sim.handlers.set('find_value', hang)
  sim.handlers.set('find_node', hang)
  const controller = new AbortController()
  const pending = b.node.get('anything', { signal: controller.signal })
  await waitFor(() => (net.calls.find_value ?? 0) >= 1, 5000, 'the first call')
  const before = net.totalCalls()
  controller.abort(new Error('user gave up'))
  const err = await t.throwsAsync(pending, { instanceOf: KademliaAbortError, code: 'ERR_KAD_ABORTED' })
  t.regex(err!.message, /user gave up/)
  await net.quiet()
  t.is(net.totalCalls(), before, 'nothing sent after the abort')
  await t.throwsAsync(b.node.get('anything', { signal: AbortSignal.abort() }), { instanceOf: KademliaAbortError })
  await t.throwsAsync(b.node.set('anything', 1, { timeout: 0.05 }), { instanceOf: KademliaTimeoutError, code: 'ERR_KAD_TIMEOUT' })
  await t.throwsAsync(b.node.get('anything', { timeout: -1 }), { code: 'ERR_KAD_INVALID_ARGUMENT' })
})

test('rpcudp:kademlia:lookup traces every lookup with { target, kind, rounds, calls }', async (t) => {
  const net = new SimNetwork(43)
  const [a, b] = await simPair(net)
  t.teardown(() => Promise.all([a.node.close(), b.node.close()]))
  const seen: any[] = []
  const channel = tracingChannel('rpcudp:kademlia:lookup')
  // only this test's two nodes: the channel is process-wide, and other tests in this file look up concurrently
  const handlers = { start() {}, end() {}, asyncStart() {}, error() {}, asyncEnd: (ctx: any) => (ctx.node === a.node || ctx.node === b.node) && seen.push(ctx) }
  channel.subscribe(handlers)
  t.teardown(() => channel.unsubscribe(handlers))
  await a.node.set('traced', 1)
  await b.node.get('not-there')
  t.is(seen.length, 2)
  t.like(seen[0], { kind: 'node', rounds: 1, calls: 1 })
  t.true(Buffer.isBuffer(seen[0].target) && seen[0].target.length === 20)
  t.like(seen[1], { kind: 'value', rounds: 1, calls: 1 })
})

test('an unknown KademliaNode option is refused with the nearest valid name', (t) => {
  t.throws(() => new KademliaNode({ waitTimeot: 5 } as any), { code: 'ERR_RPC_INVALID_ARGUMENT', message: /"waitTimeot".*"waitTimeout"/ })
  t.throws(() => new KademliaNode({ divrsity: false } as any), { message: /"diversity"/ })
})

test('a clock must be a Clock, random a function, and findNode takes a 20-byte id', async (t) => {
  t.throws(() => new KademliaNode({ clock: { now: () => 0 } } as any), { code: 'ERR_KAD_INVALID_ARGUMENT', message: /clock/ })
  t.throws(() => new KademliaNode({ random: 0.5 } as any), { code: 'ERR_KAD_INVALID_ARGUMENT', message: /random must be a function/ })
  const net = new SimNetwork(7)
  const [a, b] = await simPair(net)
  await t.throwsAsync(a.node.findNode(Buffer.alloc(19)), { code: 'ERR_KAD_INVALID_ARGUMENT', message: /20-byte/ })
  // b joined through a, so it knows a
  const found = await b.node.findNode(net.id())
  t.deepEqual(found.map((n) => [n.ip, n.port]), [a.address], 'the one other node')
  await Promise.all([a.node.close(), b.node.close()])
})
