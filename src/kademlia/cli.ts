/**
 * `rpcudp dht serve|set|get|keygen|put-mutable|get-mutable` (help text and exit codes: HELP.dht in src/cli.ts).
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
import { open, stat, readFile } from 'node:fs/promises'
import type { Address } from '../protocol'
import { generateKeyPair, publicKeyOf, type KeyPair } from './ed25519'
import { KademliaArgumentError, KademliaSeqError, KademliaValueError } from './errors'
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

type Progress = (line: string) => void

/** Joins through --bootstrap from a free port, runs `body` on the joined node, then closes it. */
async function joined(p: Parsed, doing: string, body: (node: KademliaNode, progress: Progress, elapsed: () => number) => Promise<number>): Promise<number> {
  const peers = await bootstrapList(p, true)
  const node = newNode(p)
  const started = performance.now()
  const elapsed = () => Math.round(performance.now() - started)
  // phases only: progress inside a lookup would need a hook in the lookup itself
  const progress = (line: string) => void (p.options.verbose && process.stderr.write(`rpcudp: ${line} (${elapsed()} ms)\n`))
  try {
    await node.listen(0, peers.some((a) => a[0].includes(':')) ? '::' : '0.0.0.0')
    progress(`node ${node.id.toString('hex')} joining through ${peers.map(formatAddress).join(', ')}`)
    if (!(await join(node, peers))) return EXIT.timeout
    progress(`joined: ${node.stats().contacts} nodes in the routing table; ${doing}`)
    return await body(node, progress, elapsed)
  } finally {
    await node.close()
  }
}

async function setOrGet(p: Parsed, verb: 'set' | 'get'): Promise<number> {
  const want = verb === 'set' ? 2 : 1
  if (p.positionals.length !== want) throw new UsageError(verb === 'set' ? 'dht set needs <key> <json-value>' : 'dht get needs <key>')
  const [key, valueText] = p.positionals
  const value = valueText === undefined ? undefined : checked(parseValue(valueText))
  return joined(p, `${verb === 'set' ? 'storing' : 'looking up'} ${JSON.stringify(key)}`, async (node, progress, elapsed) => {
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
  })
}

/** `dht keygen <file>`: a new ed25519 seed, as hex, in a new file only its owner can read; the public key on stdout. */
async function keygen(p: Parsed): Promise<number> {
  if (p.positionals.length !== 1) throw new UsageError('dht keygen needs <file> (the secret key is written there, never printed)')
  const keys = generateKeyPair()
  let file
  try {
    // 'wx': an existing key is never overwritten
    file = await open(p.positionals[0], 'wx', 0o600)
  } catch (err) {
    throw new UsageError(`cannot create ${p.positionals[0]}: ${(err as Error).message}`)
  }
  try {
    await file.writeFile(keys.secretKey.toString('hex') + '\n')
  } finally {
    await file.close()
  }
  out(keys.publicKey.toString('hex'))
  return EXIT.ok
}

/** The key pair in --key-file, refused if anyone but its owner may read it (the secret never comes from argv). */
async function keyFile(p: Parsed): Promise<KeyPair> {
  const path = stringOption(p, 'key-file')
  if (path === undefined) throw new UsageError('--key-file <file> is required (rpcudp dht keygen <file> writes one)')
  let text: string
  try {
    if (process.platform !== 'win32' && ((await stat(path)).mode & 0o077) !== 0)
      throw new UsageError(`${path} can be read by others: chmod 600 ${path}`)
    text = (await readFile(path, 'utf8')).trim()
  } catch (err) {
    if (err instanceof UsageError) throw err
    throw new UsageError(`cannot read the key file ${path}: ${(err as Error).message}`)
  }
  if (!/^[0-9a-f]{64}$/i.test(text)) throw new UsageError(`${path} does not hold a 32-byte ed25519 seed in hex (as dht keygen writes it)`)
  const secretKey = Buffer.from(text, 'hex')
  return { publicKey: publicKeyOf(secretKey), secretKey }
}

function seqOption(p: Parsed, name: string): bigint | undefined {
  const text = stringOption(p, name)
  if (text === undefined) return undefined
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name} must be an integer 0..2^64 - 1, got ${JSON.stringify(text)}`)
  return BigInt(text)
}

/** `dht put-mutable --key-file f [--salt s] [--seq n] [--cas n] <json-value>`: prints {"target", "seq", "stored"}. */
async function putMutable(p: Parsed): Promise<number> {
  if (p.positionals.length !== 1) throw new UsageError('dht put-mutable needs <json-value> (and --key-file <file>)')
  const value = checked(parseValue(p.positionals[0]))
  const keys = await keyFile(p)
  const options = { salt: stringOption(p, 'salt'), seq: seqOption(p, 'seq'), cas: seqOption(p, 'cas') }
  return joined(p, `putting the record of ${keys.publicKey.toString('hex')}`, async (node, progress, elapsed) => {
    let put
    try {
      put = await node.putMutable(keys, value, options)
    } catch (err) {
      if (!(err instanceof KademliaSeqError) && !(err instanceof KademliaValueError) && !(err instanceof KademliaArgumentError)) throw err
      process.stderr.write(`rpcudp: ${err.message}\n`)
      return err instanceof KademliaSeqError ? EXIT.remoteError : EXIT.usage
    }
    progress(`stored on ${put.stored} nodes`)
    out(JSON.stringify({ target: put.target.toString('hex'), seq: Number(put.seq), stored: put.stored, ...(p.options.json && { ms: elapsed() }) }))
    if (put.stored === 0) process.stderr.write('rpcudp: no node acknowledged the store\n')
    return put.stored > 0 ? EXIT.ok : EXIT.timeout
  })
}

/** `dht get-mutable <publicKeyHex> [--salt s]`: prints the value (with --json: value, seq, salt, signature). */
async function getMutable(p: Parsed): Promise<number> {
  const [hex] = p.positionals
  if (p.positionals.length !== 1 || !/^[0-9a-f]{64}$/i.test(hex)) throw new UsageError('dht get-mutable needs <publicKeyHex> (64 hex digits)')
  const salt = stringOption(p, 'salt')
  return joined(p, `looking up the record of ${hex}`, async (node, progress, elapsed) => {
    const found = await node.getMutable(Buffer.from(hex, 'hex'), { salt })
    progress(found === null ? 'not found' : `found seq ${found.seq}`)
    const value = toJson(found?.value ?? null)
    if (!p.options.json) out(JSON.stringify(value))
    else
      out(
        JSON.stringify({
          found: found !== null,
          value,
          ...(found !== null && { seq: Number(found.seq), salt: found.salt.toString('utf8'), signature: found.signature.toString('hex') }),
          ms: elapsed(),
        }),
      )
    return found === null ? EXIT.remoteError : EXIT.ok
  })
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

/** `rpcudp dht <serve|set|get|keygen|put-mutable|get-mutable> ...`: the subcommand is the first positional. */
export async function dht(p: Parsed): Promise<number> {
  const [sub, ...positionals] = p.positionals
  const rest = { ...p, positionals }
  if (sub === 'serve') return serve(rest)
  if (sub === 'set' || sub === 'get') return setOrGet(rest, sub)
  if (sub === 'keygen') return keygen(rest)
  if (sub === 'put-mutable') return putMutable(rest)
  if (sub === 'get-mutable') return getMutable(rest)
  throw new UsageError(sub === undefined ? 'dht needs a subcommand: serve, set, get, keygen, put-mutable or get-mutable' : `unknown dht subcommand ${JSON.stringify(sub)}`)
}
