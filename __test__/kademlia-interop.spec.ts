/**
 * The live mixed network: 10 Python kademlia 2.2.3 nodes (from PyPI, in the
 * venv scripts/python-env.sh builds) and 10 rpcudp/kademlia nodes (5 native,
 * 5 pure) on loopback store and find each other's keys.
 */
import test from 'ava'
import { KademliaNode, type Address, type KademliaValue } from '../src/kademlia'
import { PythonKademlia, fromPyJson, toPyJson } from './helpers/kademlia-python'
import { pythonAvailable } from './helpers/python'
import { prng } from './helpers/raw'

const KSIZE = 8 // more than the 6 nodes stopped, so every key keeps a copy; less than 20, so lookups and replication matter

type Member = { lang: 'py'; node: number; address: Address } | { lang: 'ts'; node: KademliaNode; address: Address; backend: string }

/** 100 values of every type both sides share: str, int, float, bool, bytes. */
function valueFor(i: number): KademliaValue {
  switch (i % 5) {
    case 0:
      return `value ${i} ✓`
    case 1:
      return i * 1000 - 7
    case 2:
      return i + 0.25
    case 3:
      return i % 2 === 0
    default:
      return Buffer.from([i, 0, 255, i])
  }
}

function same(a: unknown, b: unknown): boolean {
  return Buffer.isBuffer(a) && Buffer.isBuffer(b) ? a.equals(b) : Object.is(a, b)
}

test.serial('10 Python and 10 TypeScript nodes (native and pure) bootstrap in a mixed order, store and find each other’s keys, and survive 3 + 3 nodes stopping', async (t) => {
  if (!pythonAvailable()) return t.fail('no .venv: run bash scripts/python-env.sh')
  t.timeout(120_000)
  const started = Date.now()
  const py = await PythonKademlia.start(t, 150)
  const pyNodes = await py.startNodes(10, KSIZE, 3)
  const members: Member[] = pyNodes.map((p) => ({ lang: 'py', node: p.node, address: ['127.0.0.1', p.port] }))
  for (let i = 0; i < 10; i++) {
    // every node is on 127.0.0.1, so the bounds on contacts per host are lifted, as they must be on loopback
    const node = new KademliaNode({ ksize: KSIZE, alpha: 3, backend: i < 5 ? 'native' : 'pure', waitTimeout: 4, diversity: false })
    t.teardown(() => node.close())
    const address = await node.listen(0, '127.0.0.1')
    members.push({ lang: 'ts', node, address, backend: node.backend! })
  }
  const pys = members.filter((m) => m.lang === 'py')
  const tss = members.filter((m): m is Extract<Member, { lang: 'ts' }> => m.lang === 'ts')
  t.deepEqual(tss.map((m) => m.backend), ['native', 'native', 'native', 'native', 'native', 'pure', 'pure', 'pure', 'pure', 'pure'])

  const bootstrap = async (m: Member, through: Address[]): Promise<number> =>
    m.lang === 'py' ? (await py.command<unknown[]>('bootstrap', { node: m.node, addrs: through })).length : (await m.node.bootstrap(through)).length

  // py0 starts the network; a TypeScript node joins through it alone, and a Python node through that TypeScript node alone
  t.true((await bootstrap(tss[0], [pys[0].address])) >= 1, 'TypeScript bootstrapped through only a Python node')
  t.true((await bootstrap(pys[1], [tss[0].address])) >= 2, 'Python bootstrapped through only a TypeScript node')
  // the rest in a shuffled, mixed order, each through one random node already in
  const rnd = prng(2026)
  const joined: Member[] = [pys[0], tss[0], pys[1]]
  const rest = [...pys.slice(2), ...tss.slice(1)].sort(() => rnd() - 0.5)
  t.true(new Set(rest.slice(0, 6).map((m) => m.lang)).size === 2, 'the order mixes the languages')
  for (const m of rest) {
    const via = joined[Math.floor(rnd() * joined.length)]
    t.true((await bootstrap(m, [via.address])) >= 1, `${m.lang} node joined through a ${via.lang} node`)
    joined.push(m)
  }

  // 100 keys set from TypeScript nodes, read from Python nodes
  const tsKeys = Array.from({ length: 100 }, (_, i) => [`ts-key-${i}`, valueFor(i)] as const)
  const tsSet = await Promise.all(tsKeys.map(([k, v], i) => tss[i % 10].node.set(k, v)))
  t.is(tsSet.filter(Boolean).length, 100, 'every TypeScript set was acknowledged')
  const fromPy = await Promise.all(tsKeys.map(([k], i) => py.command('get', { node: pys[i % 10].node, key: k })))
  t.is(fromPy.filter((v, i) => same(fromPyJson(v), tsKeys[i][1])).length, 100, 'Python nodes found every TypeScript key')

  // 100 keys set from Python nodes, read from TypeScript nodes
  const pyKeys = Array.from({ length: 100 }, (_, i) => [`py-key-${i}`, valueFor(i + 3)] as const)
  const pySet = await Promise.all(pyKeys.map(([k, v], i) => py.command<boolean>('set', { node: pys[i % 10].node, key: k, value: toPyJson(v) })))
  t.is(pySet.filter(Boolean).length, 100)
  const fromTs = await Promise.all(pyKeys.map(([k], i) => tss[(i + 3) % 10].node.get(k)))
  t.is(fromTs.filter((v, i) => same(v, pyKeys[i][1])).length, 100, 'TypeScript nodes found every Python key')

  // stop 3 nodes of each language (native and pure among them); every key is still found from both sides
  const stopped = [pys[2], pys[5], pys[8], tss[2], tss[4], tss[7]]
  for (const m of stopped) {
    if (m.lang === 'py') await py.command('stop', { node: m.node })
    else await m.node.close()
  }
  const livePy = pys.filter((m) => !stopped.includes(m))
  const liveTs = tss.filter((m) => !stopped.includes(m))
  const all = [...tsKeys, ...pyKeys]
  const [afterPy, afterTs] = await Promise.all([
    Promise.all(all.map(([k], i) => py.command('get', { node: (livePy[i % livePy.length] as { node: number }).node, key: k }))),
    Promise.all(all.map(([k], i) => liveTs[i % liveTs.length].node.get(k))),
  ])
  // Python's own lookup (kademlia 2.2.3, synchronous rounds) missed 1 key of 200 in one CI run of many, right after
  // the stops; a miss is asked once more from the same node, and more than 2 misses fail the test
  const missed = all.map((_, i) => i).filter((i) => !same(fromPyJson(afterPy[i]), all[i][1]))
  t.log(`Python gets that missed on the first try: ${missed.length} of 200`)
  t.true(missed.length <= 2, `Python nodes missed ${missed.length} keys on the first try`)
  for (const i of missed) afterPy[i] = await py.command('get', { node: (livePy[i % livePy.length] as { node: number }).node, key: all[i][0] })
  t.is(afterPy.filter((v, i) => same(fromPyJson(v), all[i][1])).length, 200, 'Python nodes still find all 200 keys')
  t.is(afterTs.filter((v, i) => same(v, all[i][1])).length, 200, 'TypeScript nodes still find all 200 keys')

  for (const m of liveTs) {
    const s = m.node.stats()
    t.is(s.malformedReplies + s.malformedRequests + s.badNeighbours, 0, 'Python peers never sent a malformed shape')
  }
  t.log(`mixed network test took ${((Date.now() - started) / 1000).toFixed(1)} s`)
})
