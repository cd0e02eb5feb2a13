/**
 * A week of churn on simulated time (issue 20): `nodes` KademliaNodes on a
 * SimNetwork driven by a SimClock, with default timeouts and refresh.
 *
 * - Sessions are heavy-tailed (Lomax, shape 1.5, mean `meanSessionHours`);
 *   the first nodes draw the stationary residual life, so the network starts
 *   in its steady state. Each node that leaves, unannounced, is replaced at
 *   once by a new one joining through a random live node: with a 48 h mean,
 *   about half of the network is replaced each day (the rate).
 * - `keys` keys are set once, at the start, and never again by the test: only
 *   the nodes' republish and welcome rules keep them.
 * - Every hour, `lookups` lookups of random targets and `gets` gets of stored
 *   keys start at random instants, from random live nodes. A lookup succeeds
 *   when it returns the live node nearest its target (among those reachable
 *   from the asker, and up since the lookup began); a get, when it returns the
 *   value.
 * - For one hour (`partitionHour`), the network is split in two halves that
 *   cannot reach each other; then it heals.
 * - At the end of each day the heap is measured after a full collection.
 *
 * Seeded: topology, sessions, latencies, loss, the nodes' refreshes and the
 * work repeat per seed, so a run repeats exactly.
 *
 *   node --import=tsx --expose-gc __test__/helpers/week-churn.ts [nodes] [days]   (prints the report as JSON)
 */
import { KademliaNode, type Address } from '../../src/kademlia'
import { SimNetwork } from './kademlia-sim'
import { gc } from './raw'
import { SimClock } from './sim-clock'

export interface WeekOptions {
  nodes: number
  days: number
  seed: number
  keys: number
  lookups: number
  gets: number
  meanSessionHours: number
  /** The hour (from the start of the churn) during which the network is split in two. */
  partitionHour: number
  /** Probability that any one message is lost. */
  loss: number
}

export interface HourFigures {
  hour: number
  live: number
  left: number
  joined: number
  lookups: number
  lookupsFound: number
  gets: number
  getsFound: number
  partitioned: boolean
}

export interface DayFigures {
  day: number
  left: number
  /** Heap after a full collection, MiB. */
  heapMiB: number
  contacts: number
  pendingTimers: number
  /** Wall-clock seconds the day took to simulate. */
  seconds: number
}

export interface WeekReport {
  options: WeekOptions
  hours: HourFigures[]
  days: DayFigures[]
  /** The lowest hourly lookup and get success, in %. */
  worstLookupPct: number
  worstGetPct: number
  calls: number
  setupSeconds: number
}

const HOUR = 3_600_000
const SHAPE = 1.5

export const WEEK_DEFAULTS: WeekOptions = {
  nodes: 1000,
  days: 7,
  seed: 20,
  keys: 100,
  lookups: 40,
  gets: 40,
  meanSessionHours: 48,
  partitionHour: 84,
  loss: 0.01,
}

interface Peer {
  node: KademliaNode
  address: Address
  id: bigint
  /** When it had joined (ms); Infinity while its bootstrap runs. */
  upAt: number
  side: number
}

export async function runWeek(given: Partial<WeekOptions> = {}, log: (line: string) => void = () => {}): Promise<WeekReport> {
  const o = { ...WEEK_DEFAULTS, ...given }
  const clock = new SimClock()
  const net = new SimNetwork(o.seed, clock)
  net.loss = o.loss
  const random = net.random
  const scale = o.meanSessionHours * (SHAPE - 1) * HOUR
  // Lomax: P(session > x) = (1 + x / scale) ^ -shape; the stationary residual life has shape - 1
  const session = (shape: number) => scale * ((1 - random()) ** (-1 / shape) - 1)
  const live = new Map<string, Peer>()
  const sides = new Map<string, number>()
  let partitioned = false
  net.reachable = (a, b) => !partitioned || sides.get(a.join(':')) === sides.get(b.join(':'))
  const hours: HourFigures[] = []
  const days: DayFigures[] = []
  const collect = gc()
  let hour: HourFigures | undefined
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]
  const joined = () => [...live.values()].filter((p) => p.upAt !== Infinity)

  const start = async (sessionMs: number, via: Peer | undefined, side = random() < 0.5 ? 0 : 1): Promise<Peer> => {
    const transport = net.transport()
    const key = transport.address.join(':')
    sides.set(key, side)
    const node = new KademliaNode({ nodeId: net.id(), transport, clock, random })
    const address = await node.listen()
    const peer: Peer = { node, address, id: BigInt('0x' + node.id.toString('hex')), upAt: Infinity, side }
    live.set(key, peer)
    clock.setTimeout(() => void leave(peer), sessionMs)
    if (via !== undefined) await node.bootstrap([via.address])
    peer.upAt = clock.now()
    return peer
  }
  const leave = async (peer: Peer) => {
    const key = peer.address.join(':')
    if (live.get(key) !== peer) return
    live.delete(key)
    sides.delete(key)
    if (hour !== undefined) hour.left++
    await peer.node.close()
    if (hour === undefined) return
    hour.joined++
    // the newcomer takes the leaver's side of a partition, and joins through a node it can reach
    const from = joined().filter((p) => !partitioned || p.side === peer.side)
    await start(session(SHAPE), from.length > 0 ? pick(from) : undefined, peer.side)
  }

  // the network forms: one join every 100 ms, each through a random node already up
  const setupStarted = performance.now()
  let first: Peer | undefined
  for (let i = 0; i < o.nodes; i++) {
    const up = joined()
    const joining = start(session(SHAPE - 1), up.length > 0 ? pick(up) : first)
    if (i === 0) first = await clock.settle(joining)
    await clock.runUntil(clock.now() + 100)
  }
  await clock.runUntil(clock.now() + 60_000)
  const values = new Map<number, number>()
  for (let i = 0; i < o.keys; i++) {
    values.set(i, i * 7)
    await clock.settle(pick(joined()).node.set(`week-${i}`, i * 7))
  }
  const setupSeconds = (performance.now() - setupStarted) / 1000
  log(`setup: ${o.nodes} nodes joined and ${o.keys} keys set in ${setupSeconds.toFixed(1)} s`)

  const lookupOnce = async (h: HourFigures) => {
    const asker = pick(joined())
    const began = clock.now()
    const target = net.id()
    const t = BigInt('0x' + target.toString('hex'))
    const found = await asker.node.findNode(target).catch(() => [])
    if (live.get(asker.address.join(':')) !== asker) return // it left while looking: nothing to judge
    let best: Peer | undefined
    for (const p of live.values())
      if (p !== asker && p.upAt <= began && net.reachable(asker.address, p.address) && (best === undefined || (p.id ^ t) < (best.id ^ t))) best = p
    h.lookups++
    if (best === undefined || found.some((n) => n.ip === best.address[0] && n.port === best.address[1])) h.lookupsFound++
  }
  const getOnce = async (h: HourFigures) => {
    const asker = pick(joined())
    const i = Math.floor(random() * o.keys)
    const value = await asker.node.get(`week-${i}`).catch(() => null)
    if (live.get(asker.address.join(':')) !== asker) return
    h.gets++
    if (value === values.get(i)) h.getsFound++
  }

  const t0 = clock.now()
  let dayStarted = performance.now()
  let dayLeft = 0
  for (let n = 0; n < o.days * 24; n++) {
    partitioned = n === o.partitionHour
    hour = { hour: n, live: live.size, left: 0, joined: 0, lookups: 0, lookupsFound: 0, gets: 0, getsFound: 0, partitioned }
    const h = hour
    const work: Promise<void>[] = []
    for (let i = 0; i < o.lookups; i++) clock.setTimeout(() => work.push(lookupOnce(h)), random() * HOUR * 0.9)
    for (let i = 0; i < o.gets; i++) clock.setTimeout(() => work.push(getOnce(h)), random() * HOUR * 0.9)
    await clock.runUntil(t0 + (n + 1) * HOUR)
    await clock.settle(Promise.all(work))
    hours.push(h)
    dayLeft += h.left
    log(
      `hour ${n}${partitioned ? ' (partitioned)' : ''}: ${h.live} live, ${h.left} left, lookups ${h.lookupsFound}/${h.lookups}, gets ${h.getsFound}/${h.gets}`,
    )
    if ((n + 1) % 24 === 0) {
      collect()
      const contacts = [...live.values()].reduce((a, p) => a + p.node.stats().contacts, 0)
      const day: DayFigures = {
        day: (n + 1) / 24,
        left: dayLeft,
        heapMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
        contacts,
        pendingTimers: clock.pending,
        seconds: Math.round((performance.now() - dayStarted) / 100) / 10,
      }
      days.push(day)
      log(`calls so far: ${JSON.stringify(net.calls)}`)
      log(`day ${day.day}: ${day.left} left (${Math.round((100 * day.left) / o.nodes)} %), heap ${day.heapMiB} MiB, ${contacts} contacts, ${day.pendingTimers} timers, ${day.seconds} s`)
      dayLeft = 0
      dayStarted = performance.now()
    }
  }
  hour = undefined
  await Promise.all([...live.values()].map((p) => p.node.close()))
  const pct = (a: number, b: number) => (b === 0 ? 100 : (100 * a) / b)
  return {
    options: o,
    hours,
    days,
    worstLookupPct: Math.min(...hours.map((h) => pct(h.lookupsFound, h.lookups))),
    worstGetPct: Math.min(...hours.map((h) => pct(h.getsFound, h.gets))),
    calls: net.totalCalls(),
    setupSeconds,
  }
}

if (require.main === module) {
  const [nodes, days] = process.argv.slice(2).map(Number)
  runWeek({ ...(nodes > 0 && { nodes }), ...(days > 0 && { days }) }, (line) => process.stderr.write(line + '\n')).then(
    (report) => process.stdout.write(JSON.stringify(report) + '\n'),
    (err) => {
      process.stderr.write(String(err?.stack ?? err) + '\n')
      process.exit(1)
    },
  )
}
