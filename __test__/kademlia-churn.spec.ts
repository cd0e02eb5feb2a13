/**
 * Churn on real sockets (issue 20): 200 nodes on loopback with the default
 * waitTimeout (5 s) and a short refreshInterval, 200 keys, then 4 waves that
 * each close 15 % of the live nodes without notice, start as many new ones and
 * wait one refresh. Lookups must not wait on the dead: gets stay near their
 * pre-churn latency, and the keys stay found. Its figures are latencies, so
 * scripts/test-all.sh runs it on its own, after the other specs.
 */
import test from 'ava'
import { KademliaNode, type Address } from '../src/kademlia'
import { prng } from './helpers/raw'

const NODES = 200
const KEYS = 200
const WAVES = 4
/** Full lookups per measurement: with 100, "p99" would be the single slowest. */
const LOOKUPS = 200
const REFRESH = 12 // seconds

interface Live {
  node: KademliaNode
  address: Address
}

/** Nearest rank: p % of the samples lie at or below it (of 200, p99 is the 198th; two lie above it). */
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]
}

for (const backend of ['native', 'pure'] as const)
  test.serial(`[${backend}] 200 nodes, 4 waves of 15 % churn: keys stay found, gets stay fast, nobody waits out a timeout`, async (t) => {
    t.timeout(240_000)
    const rnd = prng(backend === 'native' ? 20 : 21)
    const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]
    const live: Live[] = []
    const start = async (): Promise<Live> => {
      // loopback: every node shares 127.0.0.1, so the diversity bounds are lifted explicitly
      const node = new KademliaNode({ backend, refreshInterval: REFRESH, diversity: false })
      const address = await node.listen(0, '127.0.0.1')
      if (live.length > 0) await node.bootstrap([pick(live).address])
      return { node, address }
    }
    t.teardown(() => Promise.all(live.map((l) => l.node.close())))
    for (let i = 0; i < NODES; i++) live.push(await start())

    for (let i = 0; i < KEYS; i++) t.true(await pick(live).node.set(`churn-${i}`, i), `set churn-${i}`)

    /** Gets of every key from random live nodes and full lookups of never-stored keys, 8 at a time; latencies in ms. */
    const measure = async (label: string) => {
      const gets: number[] = []
      const lookups: number[] = []
      let found = 0
      const jobs = [
        ...Array.from({ length: KEYS }, (_, i) => async () => {
          const t0 = performance.now()
          const v = await pick(live).node.get(`churn-${i}`)
          gets.push(performance.now() - t0)
          if (v === i) found++
        }),
        ...Array.from({ length: LOOKUPS }, (_, i) => async () => {
          const t0 = performance.now()
          await pick(live).node.get(`never-${label}-${i}`)
          lookups.push(performance.now() - t0)
        }),
      ]
      let next = 0
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (next < jobs.length) await jobs[next++]()
      }))
      const f = {
        found: found / KEYS,
        getP50: percentile(gets, 50),
        getP99: percentile(gets, 99),
        lookupP50: percentile(lookups, 50),
        lookupP99: percentile(lookups, 99),
      }
      const sum = (f: (s: ReturnType<KademliaNode['stats']>) => number) => live.reduce((n, l) => n + f(l.node.stats()), 0)
      t.log(`  lookups ${sum((s) => s.lookups)} calls ${sum((s) => s.lookupCalls)} passed over ${sum((s) => s.lookupPassedOver)} skipped ${sum((s) => s.lookupSkipped)} contacts ${sum((s) => s.contacts)} timeouts ${sum((s) => s.rpc!.timeouts)}`)
      t.log(
        `${label}: keys found ${(100 * f.found).toFixed(1)} %, get p50 ${f.getP50.toFixed(1)} ms p99 ${f.getP99.toFixed(1)} ms, ` +
          `lookup p50 ${f.lookupP50.toFixed(1)} ms p99 ${f.lookupP99.toFixed(1)} ms`,
      )
      return f
    }

    const before = await measure('before churn')
    let after = before
    const original = new Set(live.map((l) => l.node))
    for (let wave = 1; wave <= WAVES; wave++) {
      const gone = Math.round(live.length * 0.15)
      for (let i = 0; i < gone; i++) {
        const [victim] = live.splice(Math.floor(rnd() * live.length), 1)
        await victim.node.close() // unannounced: the others still hold it in their tables
      }
      for (let i = 0; i < gone; i++) live.push(await start())
      await new Promise((r) => setTimeout(r, REFRESH * 1500)) // refreshes come at 0.5-1.5 intervals
      after = await measure(`after wave ${wave} (${live.filter((l) => original.has(l.node)).length} of ${NODES} original nodes left)`)
    }
    const stats = live.reduce((n, l) => n + l.node.stats().lookupPassedOver, 0)
    t.log(`lookup calls passed over as slow, by the live nodes: ${stats}`)

    t.true(after.found >= 0.99, `${(100 * after.found).toFixed(1)} % of keys found`)
    t.true(after.getP50 <= 2 * before.getP50 + 20, `get p50 ${after.getP50.toFixed(1)} ms against ${before.getP50.toFixed(1)} ms before`)
    t.true(after.getP99 <= 1000, `get p99 ${after.getP99.toFixed(1)} ms`)
    t.true(after.lookupP99 <= 1000, `lookup p99 ${after.lookupP99.toFixed(1)} ms`)
  })
