/**
 * Prometheus metrics for a KademliaNode (README "Metrics"): its stats() and a
 * lookup-duration histogram, plus its RPCProtocol's metrics as
 * registerMetrics gives them. Here rather than in src/metrics.ts so that the
 * root package never loads the DHT.
 */
import { MetricsSet, PROTOCOL_METRIC_NAMES, Stopwatch, addProtocolMetrics, counter, gauge, type MetricsOptions, type MetricsRegistration, type StatMetric } from '../metrics'
import { describe } from '../validate'
import { KademliaArgumentError } from './errors'
import { KademliaNode, lookupChannel, protocolOf, type KademliaStats, type LookupTrace } from './node'

/** KademliaNode.stats() as metrics, named `kademlia_...` after the prefix; `rpc` is the protocol's own set. */
const NODE_METRICS: StatMetric<KademliaStats>[] = [
  counter('kademlia_lookups_total', 'Lookups run.', (s) => s.lookups),
  counter('kademlia_lookup_rounds_total', 'Hops of every lookup, added up.', (s) => s.lookupRounds),
  counter('kademlia_lookup_calls_total', 'Calls lookups made.', (s) => s.lookupCalls),
  counter('kademlia_lookups_cut_total', 'Lookups a limit ended before they converged.', (s) => s.lookupsCut),
  counter('kademlia_lookup_passed_over_total', 'Lookup calls passed over for a peer slower than its timeout.', (s) => s.lookupPassedOver),
  counter('kademlia_lookup_skipped_total', 'Lookup candidates left out (failed recently, or over a diversity bound).', (s) => s.lookupSkipped),
  counter('kademlia_diversity_refused_total', 'Contacts the routing table refused for a diversity bound.', (s) => s.diversityRefused),
  counter('kademlia_malformed_requests_total', 'Requests with a bad node id, key or value.', (s) => s.malformedRequests),
  counter('kademlia_malformed_replies_total', 'Answers of the wrong shape.', (s) => s.malformedReplies),
  counter('kademlia_bad_neighbours_total', 'Neighbour entries that are not [id, ip, port].', (s) => s.badNeighbours),
  counter('kademlia_extra_neighbours_total', 'Neighbour entries past ksize in one answer.', (s) => s.extraNeighbours),
  counter('kademlia_own_id_claims_total', "Peers or neighbour entries that claimed this node's id.", (s) => s.ownIdClaims),
  counter('kademlia_unreachable_contacts_total', 'Neighbour entries and bootstrap addresses of an address family the socket cannot reach.', (s) => s.unreachableContacts),
  counter('kademlia_records_refused_total', 'Stores of signed records refused: bad signature, wrong target or older seq.', (s) => s.recordsRefused),
  counter('kademlia_records_healed_total', 'Record copies gets stored again where a node held an older, invalid or no copy.', (s) => s.recordsHealed),
  gauge('kademlia_contacts', 'Contacts in the routing table.', (s) => s.contacts),
  gauge('kademlia_buckets', 'Buckets in the routing table.', (s) => s.buckets),
  gauge('kademlia_keys', 'Keys stored on this node.', (s) => s.keys),
]

const LOOKUP_HISTOGRAM = 'kademlia_lookup_duration_seconds'

/**
 * Registers `node`'s counters (from `stats()`, read at each scrape), a lookup
 * duration histogram by kind (`node` or `value`) and, when the node runs on an
 * RPCProtocol, that protocol's metrics as registerMetrics (from `rpcudp`)
 * registers them; until `unregister()` or until the node closes (on an
 * injected transport, which has no protocol: until `unregister()`). Options and
 * refusals are registerMetrics', thrown as KademliaArgumentError.
 */
export function registerKademliaMetrics(node: KademliaNode, options?: MetricsOptions): MetricsRegistration {
  const fail = (message: string) => new KademliaArgumentError(message)
  if (!(node instanceof KademliaNode)) throw fail(`registerKademliaMetrics takes a KademliaNode, got ${describe(node)}`)
  const proto = protocolOf(node)
  const set = new MetricsSet(options, fail)
  set.claim([...NODE_METRICS.map((m) => m.name), LOOKUP_HISTOGRAM, ...(proto === undefined ? [] : PROTOCOL_METRIC_NAMES)])
  set.addStats(NODE_METRICS, () => node.stats())
  const observe = set.addHistogram(LOOKUP_HISTOGRAM, 'Lookups, start to result, by kind (node or value).', ['kind'])
  const lookups = new Stopwatch<LookupTrace>((c) => c.node === node)
  set.subscribe(lookupChannel, {
    start: lookups.start,
    asyncEnd: (c) => {
      const seconds = lookups.stop(c)
      if (seconds !== undefined) observe({ kind: c.kind }, seconds)
    },
  })
  // closing the node closes its protocol, which ends the whole registration
  if (proto !== undefined) addProtocolMetrics(set, proto)
  return set
}
