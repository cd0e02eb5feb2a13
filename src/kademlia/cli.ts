/**
 * `rpcudp dht serve|set|get` (help text and exit codes: HELP.dht in src/cli.ts).
 * Loaded by src/cli.ts only when the dht command runs.
 */
import {
  EXIT,
  UsageError,
  backendOption,
  formatAddress,
  metricsOption,
  numberOption,
  out,
  parseValue,
  positiveSeconds,
  resolveAddress,
  startMetrics,
  stringOption,
  toJson,
  untilStopped,
  type Parsed,
} from '../cli'
import type { Address } from '../protocol'
import { KademliaValueError } from './errors'
import { registerKademliaMetrics } from './metrics'
import { KademliaNode } from './node'
import { checkDhtValue } from './values'

const positiveInteger = (p: Parsed, name: string, dflt: number) =>
  numberOption(p, name, dflt, (n) => Number.isInteger(n) && n >= 1, 'a positive integer')

async function bootstrapList(p: Parsed, required: boolean): Promise<Address[]> {
  const text = stringOption(p, 'bootstrap')
  if (text === undefined) {
    if (required) throw new UsageError('--bootstrap host:port is required: the node must join through someone')
    return []
  }
  return Promise.all(text.split(',').map((a) => resolveAddress(a.trim())))
}

function newNode(p: Parsed): KademliaNode {
  return new KademliaNode({
    ksize: positiveInteger(p, 'ksize', 20),
    alpha: positiveInteger(p, 'alpha', 3),
    waitTimeout: positiveSeconds(p, 'timeout', 5),
    backend: backendOption(p),
    diversity: p.options['no-diversity'] === true ? false : undefined,
  })
}

/** Joins through the bootstrap nodes; false (with a message) when none answered. */
async function join(node: KademliaNode, peers: Address[]): Promise<boolean> {
  await node.bootstrap(peers)
  if (node.stats().contacts > 0) return true
  process.stderr.write(`rpcudp: no bootstrap node answered (${peers.map(formatAddress).join(', ')})\n`)
  return false
}

async function serve(p: Parsed): Promise<number> {
  if (p.positionals.length > 0) throw new UsageError(`dht serve takes no arguments, got ${JSON.stringify(p.positionals[0])}`)
  const port = numberOption(p, 'port', 8468, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'a port number 0..65535')
  const host = (stringOption(p, 'host') ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1')
  const metricsAt = metricsOption(p)
  const peers = await bootstrapList(p, false)
  const node = newNode(p)
  try {
    const bound = await node.listen(port, host === 'localhost' ? '127.0.0.1' : host)
    out(formatAddress(bound))
    process.stderr.write(`rpcudp: Kademlia node ${node.id.toString('hex')} on ${formatAddress(bound)} (${node.backend} backend); stop with Ctrl-C\n`)
    const stopMetrics = await startMetrics(metricsAt, () => registerKademliaMetrics(node))
    if (peers.length > 0 && (await join(node, peers)))
      process.stderr.write(`rpcudp: joined; ${node.stats().contacts} nodes in the routing table\n`)
    await untilStopped()
    await stopMetrics()
    return EXIT.ok
  } finally {
    await node.close()
  }
}

async function setOrGet(p: Parsed, verb: 'set' | 'get'): Promise<number> {
  const want = verb === 'set' ? 2 : 1
  if (p.positionals.length !== want) throw new UsageError(verb === 'set' ? 'dht set needs <key> <json-value>' : 'dht get needs <key>')
  const [key, valueText] = p.positionals
  const value = valueText === undefined ? undefined : checked(parseValue(valueText))
  const peers = await bootstrapList(p, true)
  const node = newNode(p)
  const started = performance.now()
  const elapsed = () => Math.round(performance.now() - started)
  // phases only: progress inside a lookup would need a hook in the lookup itself
  const progress = (line: string) => p.options.verbose && process.stderr.write(`rpcudp: ${line} (${elapsed()} ms)\n`)
  try {
    await node.listen(0, peers.some((a) => a[0].includes(':')) ? '::' : '0.0.0.0')
    progress(`node ${node.id.toString('hex')} joining through ${peers.map(formatAddress).join(', ')}`)
    if (!(await join(node, peers))) return EXIT.timeout
    progress(`joined: ${node.stats().contacts} nodes in the routing table; ${verb === 'set' ? 'storing' : 'looking up'} ${JSON.stringify(key)}`)
    if (verb === 'set') {
      const stored = await node.set(key, value!)
      progress(stored ? 'stored' : 'not stored')
      out(p.options.json ? JSON.stringify({ key, stored, contacts: node.stats().contacts, ms: elapsed() }) : JSON.stringify(stored))
      if (!stored) process.stderr.write('rpcudp: no node acknowledged the store\n')
      return stored ? EXIT.ok : EXIT.timeout
    }
    const found = await node.get(key)
    progress(found === null ? 'not found' : 'found')
    const json = toJson(found)
    out(p.options.json ? JSON.stringify({ key, found: found !== null, value: json, contacts: node.stats().contacts, ms: elapsed() }) : JSON.stringify(json))
    return found === null ? EXIT.remoteError : EXIT.ok
  } finally {
    await node.close()
  }
}

/** The value, checked before anything is sent. */
function checked(value: unknown) {
  try {
    return checkDhtValue(value, 8192)
  } catch (err) {
    if (err instanceof KademliaValueError) throw new UsageError(err.message)
    throw err
  }
}

/** `rpcudp dht <serve|set|get> ...`: the subcommand is the first positional. */
export async function dht(p: Parsed): Promise<number> {
  const [sub, ...positionals] = p.positionals
  const rest = { ...p, positionals }
  if (sub === 'serve') return serve(rest)
  if (sub === 'set' || sub === 'get') return setOrGet(rest, sub)
  throw new UsageError(sub === undefined ? 'dht needs a subcommand: serve, set or get' : `unknown dht subcommand ${JSON.stringify(sub)}`)
}
