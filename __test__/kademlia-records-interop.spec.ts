/**
 * Signed records on a live network over real UDP: 8 Python kademlia 2.2.3
 * nodes (which store records as the plain bytes they are) and 4 TypeScript
 * nodes, 2 on each backend. A forger writes bad signatures, replays and
 * records under the wrong target straight into the Python nodes' storage;
 * every get still returns the owner's newest record and heals the copies.
 */
import test from 'ava'
import { createHash } from 'node:crypto'
import { RPCProtocol } from '../src'
import { KademliaNode, generateKeyPair, type Address, type KeyPair } from '../src/kademlia'
import { signMessage } from '../src/kademlia/ed25519'
import { encodeValue, immutableEnvelope, mutableEnvelope, signedMessage } from '../src/kademlia/records'
import { PythonKademlia, fromPyJson } from './helpers/kademlia-python'
import { pythonAvailable } from './helpers/python'

const N = 20

function envelope(keys: KeyPair, seq: bigint, salt: Buffer, value: unknown): Buffer {
  const v = encodeValue(value)
  return mutableEnvelope(keys.publicKey, signMessage(keys.secretKey, signedMessage(salt, seq, v)), seq, salt, v)
}

test.serial('8 Python and 4 TypeScript nodes: 20 mutable and 20 immutable records survive their writer, a new seq, and a forger; gets heal the Python copies', async (t) => {
  if (!pythonAvailable()) return t.fail('no .venv: run bash scripts/python-env.sh')
  t.timeout(90_000)
  const started = Date.now()
  const py = await PythonKademlia.start(t, 80)
  const pyNodes = await py.startNodes(8, 20, 3)
  const pyAddresses: Address[] = pyNodes.map((p) => ['127.0.0.1', p.port])
  for (const p of pyNodes.slice(1)) await py.command('bootstrap', { node: p.node, addrs: [pyAddresses[0]] })
  const tsNode = async (backend: 'native' | 'pure') => {
    // every node is on 127.0.0.1: the bounds on contacts per host are lifted, as they must be on loopback
    const node = new KademliaNode({ backend, waitTimeout: 3, diversity: false })
    t.teardown(() => node.close())
    await node.listen(0, '127.0.0.1')
    await node.bootstrap([pyAddresses[1], pyAddresses[5]])
    return node
  }
  const writer = await tsNode('native')
  const reader = await tsNode('pure')
  const bystander = await tsNode('pure')
  t.deepEqual([writer.backend, reader.backend, bystander.backend], ['native', 'pure', 'pure'])

  const keys = Array.from({ length: N }, () => generateKeyPair())
  const salts = keys.map((_, i) => Buffer.from(i % 2 === 0 ? '' : `salt ${i}`))
  const immutables = Array.from({ length: N }, (_, i) => (i % 2 === 0 ? `immutable ${i} ✓` : Buffer.from([i, 0, 255])))
  // operations one at a time, here and below: 20 lookups at once on a loaded 2-core machine pass over slow Python
  // answers, and a node passed over is neither stored on nor healed
  const inTurn = async <T, R>(xs: T[], f: (x: T, i: number) => Promise<R>): Promise<R[]> => {
    const out: R[] = []
    for (const [i, x] of xs.entries()) out.push(await f(x, i))
    return out
  }
  const puts = await inTurn(keys, (k, i) => writer.putMutable(k, `first ${i}`, { salt: salts[i] }))
  t.true(puts.every((p) => p.seq === 0n && p.stored >= 9), `acknowledged: ${puts.map((p) => p.stored).join(' ')}`)
  const imm = await inTurn(immutables, (v) => writer.putImmutable(v))
  t.true(imm.every((p) => p.stored >= 9))
  await writer.close()

  // every Python node took the records as plain bytes
  const dump = (node: number, target: Buffer) => py.command('dump', { node, key: target.toString('hex') }).then(fromPyJson)
  const firstCopies = await Promise.all(puts.map((p, i) => Promise.all(pyNodes.map((n) => dump(n.node, p.target))).then((copies) => copies.filter((c) => c !== null))))
  t.true(
    firstCopies.every((copies, i) => copies.length > 0 && copies.every((c) => Buffer.isBuffer(c) && c.equals(envelope(keys[i], 0n, salts[i], `first ${i}`)))),
    'Python nodes store the envelope byte for byte',
  )

  const got = await Promise.all(keys.map((k, i) => reader.getMutable(k.publicKey, { salt: salts[i] })))
  t.deepEqual(got.map((g) => [g?.value, g?.seq]), keys.map((_, i) => [`first ${i}`, 0n]))
  t.deepEqual(await Promise.all(imm.map((p) => reader.getImmutable(p.target))), immutables)

  // the owner comes back on a new node with the same keys: seq + 1 by itself
  const owner = await tsNode('native')
  t.is(owner.backend, 'native')
  const again = await inTurn(keys, (k, i) => owner.putMutable(k, `second ${i}`, { salt: salts[i] }))
  t.true(again.every((p) => p.seq === 1n))
  const newest = keys.map((k, i) => envelope(k, 1n, salts[i], `second ${i}`))
  t.deepEqual((await Promise.all(keys.map((k, i) => reader.getMutable(k.publicKey, { salt: salts[i] })))).map((g) => g?.value), keys.map((_, i) => `second ${i}`))

  // the forger: a bare RPCProtocol calling store on every Python node (and on one TypeScript node, which refuses)
  const forger = new RPCProtocol()
  t.teardown(() => forger.close())
  await forger.listen(0, '127.0.0.1')
  const forgerId = createHash('sha1').update('forger').digest()
  const forgeries = keys.map((k, i) => {
    const target = again[i].target
    if (i % 3 === 0) {
      const bad = envelope(k, 2n, salts[i], `forged ${i}`)
      bad[6 + 32] ^= 0x40 // the signature
      return { target, value: bad }
    }
    if (i % 3 === 1) return { target, value: envelope(k, 0n, salts[i], `first ${i}`) } // a replay of the older seq
    return { target, value: newest[(i + 1) % N] } // someone else's valid record under this target
  })
  const tamperedImm = imm.map((p, i) => ({ target: p.target, value: immutableEnvelope(encodeValue(`tampered ${i}`)) }))
  const stores = [...forgeries, ...tamperedImm].flatMap(({ target, value }) =>
    [...pyAddresses, bystander.address()].map((a) => forger.callRemote(a, 'store', [forgerId, target, value])),
  )
  const answers = await Promise.all(stores)
  t.true(answers.every((a) => a[0] && a[1] === true), 'every store was answered true, as Python answers')
  t.is(bystander.stats().recordsRefused, 2 * N, 'the TypeScript node refused every forgery')
  const replaced = await Promise.all(forgeries.map((f, i) => dump(i % 8, f.target)))
  t.true(replaced.every((c, i) => Buffer.isBuffer(c) && c.equals(forgeries[i].value)), 'the Python nodes took the forgeries')

  const healedBefore = reader.stats().recordsHealed
  const after = await inTurn(keys, (k, i) => reader.getMutable(k.publicKey, { salt: salts[i] }))
  t.deepEqual(after.map((g) => [g?.value, g?.seq]), keys.map((_, i) => [`second ${i}`, 1n]), "every get returns the owner's newest record")
  t.deepEqual(await inTurn(imm, (p) => reader.getImmutable(p.target)), immutables)
  t.true(reader.stats().recordsHealed - healedBefore >= 2 * N * 8, `healed ${reader.stats().recordsHealed - healedBefore} copies`)
  // and each Python node holds the newest again
  const healed = await Promise.all(pyNodes.flatMap((p) => again.map((a, i) => dump(p.node, a.target).then((c) => Buffer.isBuffer(c) && c.equals(newest[i])))))
  t.is(healed.filter(Boolean).length, 8 * N, 'every Python copy of every mutable record was healed')
  const healedImm = await Promise.all(pyNodes.flatMap((p) => imm.map((a, i) => dump(p.node, a.target).then((c) => Buffer.isBuffer(c) && c.equals(immutableEnvelope(encodeValue(immutables[i])))))))
  t.is(healedImm.filter(Boolean).length, 8 * N, 'and of every immutable record')
  t.log(`records interop took ${((Date.now() - started) / 1000).toFixed(1)} s`)
})
