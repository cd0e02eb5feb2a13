/**
 * Signed and content-addressed records (BEP 44's rules on the Python wire) on
 * the simulated network (helpers/kademlia-sim.ts): put/get, seq and cas,
 * salts, the size limit, signer callbacks, forged stores and heals. The cas
 * race, salts, the size limit and signer callbacks also run over real sockets
 * on each backend ("[native]", "[pure]"). The live network of Python and
 * TypeScript nodes is kademlia-records-interop.spec.ts.
 */
import test, { type ExecutionContext } from 'ava'
import { createHash, createPrivateKey, sign } from 'node:crypto'
import {
  KademliaArgumentError,
  KademliaCasError,
  KademliaNode,
  KademliaSeqError,
  KademliaSignatureError,
  KademliaValueError,
  generateKeyPair,
  type KademliaNodeOptions,
  type KeyPair,
} from '../src/kademlia'
import { signMessage, verifySignature } from '../src/kademlia/ed25519'
import { toKey } from '../src/kademlia/ids'
import { immutableEnvelope, mutableEnvelope, parseRecord, signedMessage } from '../src/kademlia/records'
import type { BackendName } from '../src/index'
import { callChannel, type CallTraceContext } from '../src/diagnostics'
import { protocolOf } from '../src/kademlia/node'
import { BACKENDS } from './helpers/backends'
import { SimNetwork } from './helpers/kademlia-sim'

const KSIZE = 8 // fewer than the 30 nodes, so a record lives on some nodes and not others

async function cluster(net: SimNetwork, n: number, options: KademliaNodeOptions = {}): Promise<KademliaNode[]> {
  const nodes: KademliaNode[] = []
  for (let i = 0; i < n; i++) {
    const node = new KademliaNode({ nodeId: net.id(), ksize: KSIZE, ...options, transport: net.transport() })
    await node.listen()
    if (i > 0) await node.bootstrap([nodes[Math.floor(net.random() * i)].address()])
    nodes.push(node)
  }
  return nodes
}

/** Where a scenario runs: the simulated network, or real UDP sockets on loopback on one backend. */
type Where = 'sim' | BackendName
const WHERE: readonly Where[] = ['sim', ...BACKENDS]

interface World {
  nodes: KademliaNode[]
  /** Calls the world's nodes have sent so far, of one method or of all. */
  sent(method?: string): number
}

async function simNetwork(t: ExecutionContext, seed: number, n = 30) {
  const net = new SimNetwork(seed)
  const nodes = await cluster(net, n)
  t.teardown(() => Promise.all(nodes.map((x) => x.close())))
  return { net, nodes }
}

async function network(t: ExecutionContext, seed: number, where: Where, n = 30): Promise<World> {
  if (where === 'sim') {
    const { net, nodes } = await simNetwork(t, seed, n)
    return { nodes, sent: (method) => (method === undefined ? net.totalCalls() : (net.calls[method] ?? 0)) }
  }
  // every node shares 127.0.0.1, so the diversity bounds are lifted, as on any one-host network
  const nodes: KademliaNode[] = []
  t.teardown(() => Promise.all(nodes.map((x) => x.close())))
  for (let i = 0; i < n; i++) {
    const node = new KademliaNode({ ksize: KSIZE, backend: where, diversity: false })
    await node.listen(0, '127.0.0.1')
    nodes.push(node)
    if (i > 0) await node.bootstrap([nodes[Math.floor(Math.random() * i)].address()])
  }
  // the calls this world's own protocols start (the channel is process-wide; other tests run beside this one)
  const mine = new Set(nodes.map(protocolOf))
  const counts: Record<string, number> = {}
  const count = (message: unknown) => {
    const ctx = message as CallTraceContext
    if (mine.has(ctx.protocol)) counts[ctx.method] = (counts[ctx.method] ?? 0) + 1
  }
  callChannel.start.subscribe(count)
  t.teardown(() => callChannel.start.unsubscribe(count))
  return { nodes, sent: (method) => (method === undefined ? Object.values(counts).reduce((a, b) => a + b, 0) : (counts[method] ?? 0)) }
}

/** One test per place it runs: "[sim] ...", "[native] ...", "[pure] ...". */
function everywhere(title: string, fn: (t: ExecutionContext, where: Where) => Promise<void>) {
  for (const where of WHERE) test(`[${where}] ${title}`, (t) => fn(t, where))
}

/** The node's own storage, read as a test may: what it holds under a 20-byte target. */
function held(node: KademliaNode, target: Buffer): unknown {
  return node['storage'].get(toKey(target))
}

/** Nodes holding exactly `bytes` under `target`. */
function holders(nodes: KademliaNode[], target: Buffer, bytes: Buffer): KademliaNode[] {
  return nodes.filter((n) => {
    const v = held(n, target)
    return Buffer.isBuffer(v) && v.equals(bytes)
  })
}

function envelopeOf(keys: KeyPair, seq: bigint, salt: Buffer, value: Buffer): Buffer {
  const sig = signMessage(keys.secretKey, signedMessage(salt, seq, value))
  return mutableEnvelope(keys.publicKey, sig, seq, salt, value)
}

const msgpackStr = (s: string) => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s)])

test('mutable and immutable records: put from one node, verified get from another, seq counts up by itself', async (t) => {
  const { nodes } = await simNetwork(t, 21)
  const keys = generateKeyPair()
  t.is(keys.publicKey.length, 32)
  t.is(keys.secretKey.length, 32)

  const first = await nodes[3].putMutable(keys, 'hello')
  t.is(first.seq, 0n)
  t.true(first.target.equals(createHash('sha1').update(keys.publicKey).digest()), 'target = sha1(publicKey ‖ empty salt)')
  t.true(first.stored >= KSIZE - 1, `${first.stored} acknowledged`)
  const got = await nodes[17].getMutable(keys.publicKey)
  t.like(got, { value: 'hello', seq: 0n })
  t.true(got!.publicKey.equals(keys.publicKey))
  t.true(verifySignature(keys.publicKey, signedMessage(Buffer.alloc(0), 0n, msgpackStr('hello')), got!.signature))

  const second = await nodes[9].putMutable(keys, Buffer.from([1, 2, 3]))
  t.is(second.seq, 1n, 'one more than the newest found')
  const again = await nodes[25].getMutable(keys.publicKey)
  t.is(again!.seq, 1n)
  t.deepEqual(again!.value, Buffer.from([1, 2, 3]))
  t.is(await nodes[2].getMutable(generateKeyPair().publicKey), null)

  const values = ['text ✓', 42, -1.5, true, 2n ** 63n, Buffer.from('bytes')] as const
  for (const v of values) {
    const put = await nodes[5].putImmutable(v)
    t.true(put.stored >= KSIZE - 1)
    t.deepEqual(await nodes[20].getImmutable(put.target), v)
  }
  const { target } = await nodes[5].putImmutable('content')
  t.true(target.equals(createHash('sha1').update(msgpackStr('content')).digest()), 'target = sha1 of the msgpack encoding')
  t.is(await nodes[1].getImmutable(createHash('sha1').update('nothing').digest()), null)
})

everywhere('cas: two writers with the same cas race; exactly one wins, the other gets ERR_KAD_CAS_MISMATCH with the seq that won', async (t, where) => {
  const { nodes } = await network(t, 22, where)
  const keys = generateKeyPair()
  await nodes[0].putMutable(keys, 'base')
  const stale = await t.throwsAsync(nodes[1].putMutable(keys, 'x', { cas: 7 }), { instanceOf: KademliaCasError })
  t.is(stale!.code, 'ERR_KAD_CAS_MISMATCH')
  t.is(stale!.currentSeq, 0n)

  const race = await Promise.allSettled([nodes[4].putMutable(keys, 'writer A', { cas: 0 }), nodes[11].putMutable(keys, 'writer B', { cas: 0 })])
  const won = race.filter((r) => r.status === 'fulfilled')
  const lost = race.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
  t.is(won.length, 1, 'exactly one writer wins')
  t.is(lost.length, 1)
  t.true(lost[0].reason instanceof KademliaCasError, String(lost[0].reason))
  t.is(lost[0].reason.code, 'ERR_KAD_CAS_MISMATCH')
  t.is(lost[0].reason.currentSeq, 1n)
  const winner = race[0].status === 'fulfilled' ? 'writer A' : 'writer B'
  for (const reader of [nodes[20], nodes[27]]) t.like(await reader.getMutable(keys.publicKey), { value: winner, seq: 1n })
  // cas on a key nobody wrote: there is no current seq
  const none = await t.throwsAsync(nodes[2].putMutable(generateKeyPair(), 'y', { cas: 0 }), { instanceOf: KademliaCasError })
  t.is(none!.currentSeq, null)
})

everywhere('salts: one key, two salts, two independent records', async (t, where) => {
  const { nodes } = await network(t, 23, where)
  const keys = generateKeyPair()
  const a = await nodes[1].putMutable(keys, 'for a', { salt: 'a' })
  const b = await nodes[2].putMutable(keys, 'for b', { salt: Buffer.from('b') })
  t.false(a.target.equals(b.target))
  t.true(a.target.equals(createHash('sha1').update(keys.publicKey).update('a').digest()))
  await nodes[3].putMutable(keys, 'for a, again', { salt: 'a' })
  t.like(await nodes[10].getMutable(keys.publicKey, { salt: 'a' }), { value: 'for a, again', seq: 1n })
  const gotB = await nodes[11].getMutable(keys.publicKey, { salt: 'b' })
  t.like(gotB, { value: 'for b', seq: 0n })
  t.true(gotB!.salt.equals(Buffer.from('b')))
  t.is(await nodes[12].getMutable(keys.publicKey), null, 'no record without a salt')
})

everywhere('refused before anything is sent: a record over maxBodySize, a salt over 64 bytes, a seq below the newest, a bad signer', async (t, where) => {
  const { sent, nodes } = await network(t, 24, where)
  const keys = generateKeyPair()
  const before = sent()
  await t.throwsAsync(nodes[0].putMutable(keys, Buffer.alloc(8100)), { instanceOf: KademliaValueError })
  await t.throwsAsync(nodes[0].putImmutable(Buffer.alloc(8170)), { instanceOf: KademliaValueError })
  await t.throwsAsync(nodes[0].putMutable(keys, 'v', { salt: Buffer.alloc(65) }), { instanceOf: KademliaArgumentError })
  await t.throwsAsync(nodes[0].putMutable(keys, 'v', { seq: -1 }), { instanceOf: KademliaArgumentError })
  await t.throwsAsync(nodes[0].putMutable(keys, 'v', { seq: 2n ** 64n }), { instanceOf: KademliaArgumentError })
  await t.throwsAsync(nodes[0].putMutable(keys, { an: 'object' } as never), { instanceOf: KademliaValueError })
  await t.throwsAsync(nodes[0].putMutable(keys, 'v', { sallt: 'x' } as never), { message: /did you mean "salt"/ })
  t.is(sent(), before, 'nothing was sent')
  // just under the limit goes through
  t.true((await nodes[0].putMutable(keys, Buffer.alloc(8000))).stored > 0)

  await nodes[1].putMutable(keys, 'five', { seq: 5 })
  const stores = sent('store')
  const low = await t.throwsAsync(nodes[2].putMutable(keys, 'three', { seq: 3 }), { instanceOf: KademliaSeqError })
  t.is(low!.code, 'ERR_KAD_SEQ_TOO_LOW')
  t.is(low!.currentSeq, 5n)
  await t.throwsAsync(nodes[2].putMutable(keys, 'another five', { seq: 5n }), { instanceOf: KademliaSeqError })
  const other = generateKeyPair()
  await t.throwsAsync(nodes[2].putMutable({ publicKey: keys.publicKey, secretKey: other.secretKey }, 'wrong secret'), { instanceOf: KademliaSignatureError })
  await t.throwsAsync(nodes[2].putMutable({ publicKey: keys.publicKey, sign: () => Buffer.alloc(64, 7) }, 'forged'), { instanceOf: KademliaSignatureError })
  t.is(sent('store'), stores, 'no store was sent for a refused put')
  t.like(await nodes[3].getMutable(keys.publicKey), { value: 'five', seq: 5n })
})

everywhere('a sign callback (the secret stays outside): put, then a verified get', async (t, where) => {
  const { nodes } = await network(t, 25, where)
  const keys = generateKeyPair()
  const secret = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), keys.secretKey]), format: 'der', type: 'pkcs8' })
  const signed: Buffer[] = []
  const signer = {
    publicKey: keys.publicKey,
    async sign(message: Buffer) {
      signed.push(message)
      return sign(null, message, secret)
    },
  }
  const put = await nodes[4].putMutable(signer, 'signed elsewhere', { salt: 'hsm' })
  t.is(signed.length, 1)
  t.true(signed[0].equals(signedMessage(Buffer.from('hsm'), 0n, msgpackStr('signed elsewhere'))))
  t.true(put.stored > 0)
  t.like(await nodes[19].getMutable(keys.publicKey, { salt: 'hsm' }), { value: 'signed elsewhere', seq: 0n })
})

test('forged stores on a TypeScript node are refused and counted: bad signature, older seq, wrong target', async (t) => {
  const { net, nodes } = await simNetwork(t, 26)
  const keys = generateKeyPair()
  const salt = Buffer.alloc(0)
  await nodes[0].putMutable(keys, 'v0')
  const old = holders(nodes, createHash('sha1').update(keys.publicKey).digest(), envelopeOf(keys, 0n, salt, msgpackStr('v0')))
  t.true(old.length > 0)
  const newest = await nodes[0].putMutable(keys, 'v1')
  const target = newest.target
  const good = envelopeOf(keys, 1n, salt, msgpackStr('v1'))
  const victim = holders(nodes, target, good)[0]
  t.truthy(victim, 'some node holds the newest record')
  const refusedBefore = victim.stats().recordsRefused

  const forger = net.transport()
  await forger.listen()
  const store = (key: Buffer, value: unknown) => forger.call(victim.address(), 'store', [net.id(), key, value])
  const badSignature = Buffer.from(envelopeOf(keys, 2n, salt, msgpackStr('forged')))
  badSignature[6 + 32] ^= 1
  const otherTarget = createHash('sha1').update('someone else').digest()
  const answers = [
    await store(target, badSignature),
    await store(target, envelopeOf(keys, 0n, salt, msgpackStr('v0'))), // a replay of the older seq
    await store(target, envelopeOf(keys, 1n, salt, msgpackStr('v1 rewritten'))), // the same seq, another value
    await store(otherTarget, good), // a valid record under someone else's target
    await store(otherTarget, immutableEnvelope(msgpackStr('not this'))),
    await store(target, Buffer.concat([Buffer.from('rpcr'), Buffer.from([1, 1, 0])])), // the magic, then garbage
  ]
  // Python's answer whatever happened
  t.deepEqual(answers.map((a) => a[0] && a[1]), [true, true, true, true, true, true])
  t.is(victim.stats().recordsRefused - refusedBefore, 6)
  t.true((held(victim, target) as Buffer).equals(good), 'the newest record is still held')
  t.is(held(victim, otherTarget), undefined)
  // a plain value under a plain key is still stored as Python would
  t.deepEqual(await store(otherTarget, 'plain'), [true, true])
  t.is(held(victim, otherTarget), 'plain')
  const parsed = parseRecord(held(victim, target) as Buffer)
  t.is(parsed?.kind === 1 ? parsed.seq : undefined, 1n)
})

test('heal: nodes holding an older, forged or no copy get the newest record after a getMutable; immutable likewise', async (t) => {
  const { nodes } = await simNetwork(t, 27)
  const keys = generateKeyPair()
  const salt = Buffer.alloc(0)
  await nodes[0].putMutable(keys, 'v0')
  const put = await nodes[0].putMutable(keys, 'v1')
  const good = envelopeOf(keys, 1n, salt, msgpackStr('v1'))
  const older = envelopeOf(keys, 0n, salt, msgpackStr('v0'))
  const holding = holders(nodes, put.target, good)
  t.true(holding.length >= 4, `${holding.length} holders`)
  // as a Python node would, with no checks: one gets the replayed older record, one a forgery, one loses its copy
  const key = toKey(put.target)
  holding[0]['storage'].set(key, older)
  holding[1]['storage'].set(key, Buffer.concat([good.subarray(0, -1), Buffer.from('x')]))
  holding[2]['storage'].delete(key)
  const reader = nodes.find((n) => !holding.includes(n))!
  const healedBefore = reader.stats().recordsHealed
  t.like(await reader.getMutable(keys.publicKey), { value: 'v1', seq: 1n })
  t.true(reader.stats().recordsHealed - healedBefore >= 3)
  for (const n of holding.slice(0, 3)) t.true((held(n, put.target) as Buffer).equals(good), 'healed')

  const imm = await nodes[3].putImmutable('content')
  const immHolders = holders(nodes, imm.target, immutableEnvelope(msgpackStr('content')))
  immHolders[0]['storage'].set(toKey(imm.target), immutableEnvelope(msgpackStr('tampered')))
  t.is(await nodes.find((n) => !immHolders.includes(n))!.getImmutable(imm.target), 'content')
  t.true((held(immHolders[0], imm.target) as Buffer).equals(immutableEnvelope(msgpackStr('content'))))
})
