#!/usr/bin/env node
/**
 * The `rpcudp` command (package.json `bin`): an echo/ping node and a one-shot
 * caller, for trying rpcudp out and for poking at peers, Python ones included.
 *
 * Values on the command line and in the output are JSON, with tagged objects for
 * what JSON cannot say (see VALUES_HELP). Exit codes are in EXIT.
 */
import { randomBytes } from 'node:crypto'
import { lookup } from 'node:dns/promises'
import { isIP, isIPv6 } from 'node:net'
import { RPCArgumentError, RPCEncodeError, RPCProtocol, RPCSizeError, registerMetrics, type Address, type BackendChoice, type CallResult, type MetricsRegistration } from './index'
import { serveMetrics } from './metrics-http'

/** Exit codes; documented in the help text and the README. */
export const EXIT = {
  ok: 0,
  /** The peer answered with an error reply (no such method, its handler failed, ...). */
  remoteError: 1,
  /** Bad command line: unknown command or option, bad address, bad JSON, a value with no msgpack form. Nothing was sent. */
  usage: 2,
  /** No answer within the timeout. */
  timeout: 3,
  /** A local failure: the backend cannot load, the socket cannot bind, ... */
  failure: 4,
} as const

const { version } = require('../package.json') as { version: string }

export class UsageError extends Error {}

const BACKEND_HELP = `  --backend <b>   auto (default: native when the addon loads, else pure), native or pure`

const METRICS_HELP = `  --metrics <host:port> serve the node's counters and latency histograms in the Prometheus
                        text format at http://host:port/metrics (host an IP literal or
                        localhost, [::1]:9100 for IPv6; port 0 for any free one). The URL
                        is printed on stderr. Default: off`

const VALUES_HELP = `Values (arguments and results) are JSON. What JSON cannot say is a tagged object:
  {"$base64": "AAEC"}           bytes (msgpack bin)
  {"$bigint": "18446744073709551615"}
                                an integer beyond 2^53 (exact, 64-bit); a bare integer
                                literal that large is read exactly too
  {"$map": [[1, "a"], [2, "b"]]}  a map whose keys are not all strings
  {"$float": "NaN"}             NaN, Infinity, -Infinity or -0
A JSON object with exactly one key that is one of these tags is read as the tag;
a result of that shape is printed as {"$map": [...]}. Strings must be quoted:
rpcudp call 127.0.0.1:1234 echo '"hello"'.`

const EXIT_HELP = `Exit status: 0 answered; 1 the peer sent an error reply (no such method, handler
failed, ...); 2 bad command line (nothing sent); 3 no answer within the timeout;
4 local failure (backend unavailable, cannot bind, ...).`

const HELP: Record<string, string> = {
  main: `rpcudp ${version}: RPC over UDP, wire-compatible with Python rpcudp

Usage:
  rpcudp serve [--port 1234] [--host 127.0.0.1] [--backend auto|native|pure] [--stats-interval s]
               [--rate-limit N/s] [--handler-timeout s] [--metrics host:port]
  rpcudp call <host:port> <method> [json-arg...] [--timeout s] [--backend ...]
  rpcudp ping <host:port> [--count n] [--interval s] [--timeout s] [--backend ...]
  rpcudp dht serve|set|get|keygen|put-mutable|get-mutable ...
                                 a Kademlia node (rpcudp/kademlia), see rpcudp dht --help
  rpcudp <command> --help
  rpcudp --version

Addresses are host:port, [v6-address]:port, localhost:port or a DNS name:port.

${EXIT_HELP}`,

  serve: `Usage: rpcudp serve [--port 1234] [--host 127.0.0.1] [--backend b] [--stats-interval s]
                    [--rate-limit N/s] [--handler-timeout s] [--metrics host:port]

Runs an echo node: rpc_ping() answers "pong", rpc_echo(x) answers x,
rpc_sleep(s) answers "slept" after s seconds (at most 60).
Prints the bound address (host:port, [v6]:port for IPv6) as the first line of
stdout, then serves until SIGINT or SIGTERM and closes cleanly (exit 0).

  --port <n>            UDP port, 0 for any free one (default 1234)
  --host <ip>           address to bind, an IP literal or localhost (default 127.0.0.1;
                        0.0.0.0 or :: for every interface)
${BACKEND_HELP}
  --stats-interval <s>  every s seconds, print RPCProtocol.stats() as one JSON line on
                        stdout (and once more on shutdown). There is no remote stats
                        call: stats are local to the process that keeps them.
  --rate-limit <N/s>    at most N requests a second from each source address (IPv6: each
                        /64), bursts of up to 2N; the excess is dropped and counted as
                        dropped.rateLimited (perSource.requestsPerSecond). Default: none
  --handler-timeout <s> answer a handler still running after s seconds with the error
                        reply handler_timeout and free its slot (handlerTimeout). Default: none
${METRICS_HELP}`,

  call: `Usage: rpcudp call <host:port> <method> [json-arg...] [--timeout s] [--backend b]

Calls <method> on the peer (its rpc_<method>) with the JSON arguments and prints
the outcome as one JSON line: [true, result], or [false, null, {"code", "message"}]
when the peer sent an error reply or did not answer.

  --timeout <s>   seconds to wait for the answer (default 5)
${BACKEND_HELP}

Examples:
  rpcudp call 127.0.0.1:1234 ping
  rpcudp call [::1]:1234 echo '{"a": [1, 2.5, null]}'
  rpcudp call localhost:1234 sum 1 2 -- -3

Arguments that start with - and a digit are numbers, not options; -- ends options.

${VALUES_HELP}

${EXIT_HELP}`,

  ping: `Usage: rpcudp ping <host:port> [--dht] [--count n] [--interval s] [--timeout s] [--backend b]

Calls the peer's rpc_ping and prints the round trip of each answer:
  pong from 127.0.0.1:1234: time=0.215 ms
Any successful answer counts. A Kademlia node (rpcudp dht serve, Python
kademlia) needs --dht: its rpc_ping takes the caller's node id, and without one
it answers with an error reply (exit 1).

  --dht            send a random node id, as a Kademlia peer's ping does, and
                   print the node id the peer answers with (the node may add
                   the caller to its routing table, as for any new peer)
  --count <n>      pings to send (default 1)
  --interval <s>   seconds between pings (default 1)
  --timeout <s>    seconds to wait for each answer (default 5)
${BACKEND_HELP}

${EXIT_HELP}`,
}

HELP.dht = `Usage:
  rpcudp dht serve [--port 8468] [--host 127.0.0.1] [--bootstrap host:port[,host:port...]] [options]
  rpcudp dht set <key> <json-value> --bootstrap host:port[,...] [options]
  rpcudp dht get <key> --bootstrap host:port[,...] [options]
  rpcudp dht keygen <file>
  rpcudp dht put-mutable --key-file <file> [--salt s] [--seq n] [--cas n] <json-value> --bootstrap ... [options]
  rpcudp dht get-mutable <publicKeyHex> [--salt s] --bootstrap ... [options]

A Kademlia DHT node (rpcudp/kademlia) that joins Python kademlia 2.2.3 networks.
serve prints the bound address as the first line of stdout and serves until
SIGINT or SIGTERM. set and get join through the bootstrap nodes on a free port,
then store or look up the key (a string, hashed with sha1 like Python's digest).
set prints true or false, get prints the value as JSON.

Signed records (BEP 44's mutable items; docs/KADEMLIA.md): keygen writes a new
ed25519 secret key (the 32-byte seed, hex) to <file>, readable by its owner only,
and prints the public key in hex. put-mutable signs the value with the key in
--key-file (refused if the group or others can read it; a secret key is never
taken from the command line) and prints {"target", "seq", "stored"}; without
--seq the seq is one more than the newest found. get-mutable prints the newest
verified value stored under the public key (and --salt).

  --bootstrap <list>  comma-separated host:port of nodes to join through
  --port <n>          serve: UDP port, 0 for any free one (default 8468)
  --host <ip>         serve: address to bind (default 127.0.0.1)
  --timeout <s>       most seconds to wait for each answer (default 5; lookups
                      pass over a slow peer sooner, by its measured round trip)
  --ksize <n>         k (default 20)
  --alpha <n>         calls in flight per lookup (default 3)
  --key-file <file>   put-mutable: the secret key, as dht keygen wrote it
  --salt <s>          put-mutable, get-mutable: up to 64 bytes (UTF-8); one key
                      holds one record per salt
  --seq <n>, --cas <n>
                      put-mutable: the record's seq; put only if the newest seq
                      found is n
  --no-diversity      lift the bounds on contacts per host and per /24 (for
                      networks on loopback or one subnet, where they share one)
  --metrics <host:port>
                      serve: the node's and its protocol's counters and latency
                      histograms, Prometheus text, at http://host:port/metrics
                      (port 0: any free one; the URL is printed on stderr)
  --verbose           set, get: each phase (join, lookup, result) on stderr, with the
                      milliseconds since start
  --json              set, get: one JSON object instead of the bare result:
                      {"key", "stored"} or {"key", "found", "value"}, plus
                      "contacts" (routing table size) and "ms" (time taken)
${BACKEND_HELP}

Values are JSON and must be what Python kademlia stores: a string, a number, a
boolean or bytes ({"$base64": "..."}; big integers as {"$bigint": "..."}).

Exit status: 0 done (get: found); 1 get: the network has no value for the key,
put-mutable: --seq not above the newest, or --cas did not match;
2 bad command line or value (nothing sent); 3 no bootstrap node answered, or
set: no node acknowledged the store; 4 local failure (backend, bind).`

// ---------------------------------------------------------------- arguments

type OptionKind = 'string' | 'boolean'
export interface Parsed {
  positionals: string[]
  options: Record<string, string | true>
}

const COMMON: Record<string, OptionKind> = { help: 'boolean', backend: 'string' }
const OPTIONS: Record<string, Record<string, OptionKind>> = {
  serve: {
    ...COMMON,
    port: 'string',
    host: 'string',
    'stats-interval': 'string',
    'rate-limit': 'string',
    'handler-timeout': 'string',
    metrics: 'string',
  },
  call: { ...COMMON, timeout: 'string' },
  ping: { ...COMMON, timeout: 'string', count: 'string', interval: 'string', dht: 'boolean' },
  dht: {
    ...COMMON,
    timeout: 'string',
    port: 'string',
    host: 'string',
    bootstrap: 'string',
    metrics: 'string',
    ksize: 'string',
    alpha: 'string',
    'no-diversity': 'boolean',
    'key-file': 'string',
    salt: 'string',
    seq: 'string',
    cas: 'string',
    verbose: 'boolean',
    json: 'boolean',
  },
}

/**
 * A small parser instead of util.parseArgs, which reads `-5` (a JSON argument)
 * as an option. `-h` is `--help`; `--x=v` and `--x v` both work; `--` ends options.
 */
function parseArgs(command: string, argv: string[]): Parsed {
  const spec = OPTIONS[command]
  const positionals: string[] = []
  const options: Record<string, string | true> = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (a === '-h') {
      options.help = true
      continue
    }
    if (!a.startsWith('-') || a === '-' || /^-[\d.]/.test(a)) {
      positionals.push(a)
      continue
    }
    if (!a.startsWith('--')) throw new UsageError(`unknown option ${a}`)
    const eq = a.indexOf('=')
    const name = eq === -1 ? a.slice(2) : a.slice(2, eq)
    const kind = spec[name]
    if (kind === undefined) throw new UsageError(`unknown option --${name}`)
    if (kind === 'boolean') {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`)
      options[name] = true
    } else if (eq !== -1) options[name] = a.slice(eq + 1)
    else {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`)
      options[name] = argv[++i]
    }
  }
  return { positionals, options }
}

export function stringOption(p: Parsed, name: string): string | undefined {
  const v = p.options[name]
  return v === undefined || v === true ? undefined : v
}

export function numberOption(p: Parsed, name: string, dflt: number, check: (n: number) => boolean, what: string): number {
  const s = stringOption(p, name)
  if (s === undefined) return dflt
  const n = s.trim() === '' ? NaN : Number(s)
  if (!check(n)) throw new UsageError(`--${name} must be ${what}, got ${JSON.stringify(s)}`)
  return n
}

export const positiveSeconds = (p: Parsed, name: string, dflt: number) =>
  numberOption(p, name, dflt, (n) => Number.isFinite(n) && n > 0, 'a positive number of seconds')

/** `--rate-limit 200/s` (or a bare 200): requests per second per source. */
function rateOption(p: Parsed): number | undefined {
  const s = stringOption(p, 'rate-limit')
  if (s === undefined) return undefined
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(?:\/s)?\s*$/i.exec(s)
  const n = m ? Number(m[1]) : NaN
  if (!(Number.isFinite(n) && n > 0)) throw new UsageError(`--rate-limit must be a positive rate like 200/s, got ${JSON.stringify(s)}`)
  return n
}

export function backendOption(p: Parsed): BackendChoice {
  const b = stringOption(p, 'backend') ?? 'auto'
  if (b !== 'auto' && b !== 'native' && b !== 'pure') throw new UsageError(`--backend must be auto, native or pure, got ${JSON.stringify(b)}`)
  return b
}

// ---------------------------------------------------------------- addresses

/** `host:port`, `[v6]:port`; the host may be an IP literal, localhost or a DNS name. Port 0 only where `anyPort` (a port to bind). */
export function splitAddress(text: string, anyPort = false): { host: string; port: number } {
  let host: string
  let portText: string
  const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(text)
  if (bracketed) {
    host = bracketed[1]
    portText = bracketed[2]
    if (!isIPv6(host)) throw new UsageError(`bad address ${JSON.stringify(text)}: ${JSON.stringify(host)} is not an IPv6 address`)
  } else {
    const colon = text.lastIndexOf(':')
    if (colon === -1) throw new UsageError(`bad address ${JSON.stringify(text)}: expected host:port`)
    host = text.slice(0, colon)
    portText = text.slice(colon + 1)
    if (host.includes(':')) throw new UsageError(`bad address ${JSON.stringify(text)}: write an IPv6 address in brackets, [${host}]:${portText}`)
    if (host === '') throw new UsageError(`bad address ${JSON.stringify(text)}: the host is missing`)
  }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN
  if (!(port >= (anyPort ? 0 : 1) && port <= 65535))
    throw new UsageError(`bad address ${JSON.stringify(text)}: the port must be ${anyPort ? 0 : 1}..65535`)
  return { host, port }
}

export async function resolveAddress(text: string): Promise<Address> {
  const { host, port } = splitAddress(text)
  if (isIP(host) !== 0) return [host, port]
  if (host === 'localhost') return ['127.0.0.1', port] // what RPCProtocol.listen() means by it too
  try {
    const { address } = await lookup(host)
    return [address, port]
  } catch (err) {
    throw new UsageError(`cannot resolve ${JSON.stringify(host)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  }
}

/** `--metrics host:port`: where to serve /metrics; the host an IP literal or localhost (it is bound, not resolved). */
export function metricsOption(p: Parsed): Address | undefined {
  const text = stringOption(p, 'metrics')
  if (text === undefined) return undefined
  const { host, port } = splitAddress(text, true)
  if (host !== 'localhost' && isIP(host) === 0) throw new UsageError(`--metrics needs an IP address or localhost to listen on, got ${JSON.stringify(host)}`)
  return [host === 'localhost' ? '127.0.0.1' : host, port]
}

/**
 * Registers the node's metrics and serves them at `at`, printing the URL on
 * stderr (stdout's first line stays the bound UDP address); resolves to what
 * stops it. Nothing without --metrics.
 */
export async function startMetrics(at: Address | undefined, register: () => MetricsRegistration): Promise<() => Promise<void>> {
  if (at === undefined) return async () => {}
  const registration = register()
  const endpoint = await serveMetrics(registration.registry, at[0], at[1]).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot serve metrics on ${formatAddress(at)}: ${err.code ?? err.message}`, { cause: err })
  })
  process.stderr.write(`rpcudp: metrics on http://${formatAddress(endpoint.address)}/metrics\n`)
  return async () => {
    await endpoint.close()
    registration.unregister()
  }
}

export function formatAddress([host, port]: Address): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}

// ---------------------------------------------------------------- values

const TAGS = new Set(['$base64', '$bigint', '$map', '$float'])
const FLOATS: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity, '-0': -0 }

/**
 * Parses one JSON argument. Integer literals beyond Number.MAX_SAFE_INTEGER are
 * read exactly (as BigInt) rather than rounded, by tagging them before JSON.parse.
 */
export function parseValue(text: string): unknown {
  let parsed: unknown
  try {
    parsed = JSON.parse(tagBigIntegers(text))
  } catch (err) {
    const hint = /^[A-Za-z_]/.test(text.trim()) ? ` (strings must be JSON-quoted: '"${text}"')` : ''
    throw new UsageError(`bad JSON argument ${JSON.stringify(text)}: ${(err as Error).message}${hint}`)
  }
  return fromJson(parsed, text)
}

function tagBigIntegers(text: string): string {
  let out = ''
  let last = 0
  const number = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '"') {
      // skip the string, escapes included
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      number.lastIndex = i
      const m = number.exec(text)
      if (m === null) continue
      const token = m[0]
      if (/^-?\d+$/.test(token) && !Number.isSafeInteger(Number(token))) {
        out += text.slice(last, i) + `{"$bigint":"${token}"}`
        last = i + token.length
      }
      i += token.length - 1
    }
  }
  return out + text.slice(last)
}

function fromJson(v: unknown, source: string): unknown {
  if (Array.isArray(v)) return v.map((x) => fromJson(x, source))
  if (v === null || typeof v !== 'object') return v
  const keys = Object.keys(v)
  const bad = (what: string) => new UsageError(`bad JSON argument ${JSON.stringify(source)}: ${what}`)
  if (keys.length === 1 && TAGS.has(keys[0])) {
    const tag = keys[0]
    const x = (v as Record<string, unknown>)[tag]
    switch (tag) {
      case '$base64':
        if (typeof x !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/.test(x))
          throw bad('$base64 needs a base64 string')
        return Buffer.from(x, 'base64')
      case '$bigint':
        if (typeof x !== 'string' || !/^-?\d+$/.test(x)) throw bad('$bigint needs a string of decimal digits')
        return BigInt(x)
      case '$float':
        if (typeof x !== 'string' || !(x in FLOATS)) throw bad('$float needs "NaN", "Infinity", "-Infinity" or "-0"')
        return FLOATS[x]
      case '$map':
        if (!Array.isArray(x) || !x.every((e) => Array.isArray(e) && e.length === 2)) throw bad('$map needs an array of [key, value] pairs')
        return new Map(x.map(([k, e]) => [fromJson(k, source), fromJson(e, source)]))
    }
  }
  const out: Record<string, unknown> = Object.create(null)
  for (const k of keys) out[k] = fromJson((v as Record<string, unknown>)[k], source)
  return out
}

/** The JSON form of a decoded value; the inverse of parseValue. */
export function toJson(v: unknown): unknown {
  switch (typeof v) {
    case 'undefined':
      return null
    case 'number':
      return Number.isFinite(v) && !Object.is(v, -0) ? v : { $float: Object.is(v, -0) ? '-0' : String(v) }
    case 'bigint':
      return { $bigint: v.toString() }
    case 'object': {
      if (v === null) return null
      if (v instanceof Uint8Array) return { $base64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') }
      if (Array.isArray(v)) return v.map(toJson)
      if (v instanceof Map) return { $map: [...v].map(([k, x]) => [toJson(k), toJson(x)]) }
      const keys = Object.keys(v)
      if (keys.length === 1 && TAGS.has(keys[0])) return { $map: [[keys[0], toJson((v as Record<string, unknown>)[keys[0]])]] }
      const out: Record<string, unknown> = Object.create(null)
      for (const k of keys) out[k] = toJson((v as Record<string, unknown>)[k])
      return out
    }
    default:
      return v
  }
}

// ---------------------------------------------------------------- commands

export function out(line: string) {
  process.stdout.write(line + '\n')
}

function localHostFor(target: Address): string {
  return isIPv6(target[0]) ? '::' : '0.0.0.0'
}

function failureExit(result: CallResult<unknown>): number {
  if (result[0]) return EXIT.ok
  return result[2].code === 'timeout' ? EXIT.timeout : EXIT.remoteError
}

async function serve(p: Parsed): Promise<number> {
  if (p.positionals.length > 0) throw new UsageError(`serve takes no arguments, got ${JSON.stringify(p.positionals[0])}`)
  const port = numberOption(p, 'port', 1234, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'a port number 0..65535')
  let host = stringOption(p, 'host') ?? '127.0.0.1'
  if (/^\[.*\]$/.test(host)) host = host.slice(1, -1)
  if (host !== 'localhost' && isIP(host) === 0) throw new UsageError(`--host must be an IP address or localhost, got ${JSON.stringify(host)}`)
  const statsInterval = p.options['stats-interval'] === undefined ? undefined : positiveSeconds(p, 'stats-interval', 1)

  const rate = rateOption(p)
  const handlerTimeout = p.options['handler-timeout'] === undefined ? undefined : positiveSeconds(p, 'handler-timeout', 1)
  const metricsAt = metricsOption(p)

  const proto = new RPCProtocol({
    backend: backendOption(p),
    handlerTimeout,
    perSource: rate === undefined ? undefined : { requestsPerSecond: rate },
  })
  proto.handle('ping', () => 'pong')
  proto.handle('echo', (_sender, x) => x)
  proto.handle('sleep', (_sender, seconds) => {
    const ms = Math.min(60, Math.max(0, Number(seconds) || 0)) * 1000
    const signal = proto.handlerSignal
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve('slept'), ms)
      signal.addEventListener('abort', () => clearTimeout(timer))
    })
  })
  const bound = await proto.listen(port, host)
  try {
    out(formatAddress(bound))
    process.stderr.write(`rpcudp: serving ping and echo on ${formatAddress(bound)} (${proto.backend} backend); stop with Ctrl-C\n`)
    const stopMetrics = await startMetrics(metricsAt, () => registerMetrics(proto))
    const printStats = () => out(JSON.stringify(proto.stats()))
    const timer = statsInterval === undefined ? undefined : setInterval(printStats, statsInterval * 1000)
    await untilStopped()
    if (timer !== undefined) {
      clearInterval(timer)
      printStats()
    }
    await stopMetrics()
  } finally {
    await proto.close()
  }
  return EXIT.ok
}

/** Resolves on the first SIGINT or SIGTERM; a second signal while closing falls through to Node's default: exit now. */
export function untilStopped(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve()
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
}

async function call(p: Parsed): Promise<number> {
  if (p.positionals.length < 2) throw new UsageError('call needs <host:port> <method> [json-arg...]')
  const [addressText, method, ...argTexts] = p.positionals
  const args = argTexts.map(parseValue)
  const timeout = positiveSeconds(p, 'timeout', 5)
  const backend = backendOption(p)
  const target = await resolveAddress(addressText)
  return withClient(backend, target, async (proto) => {
    const result = await proto.callRemote(target, method, args, { timeout })
    out(JSON.stringify([result[0], toJson(result[1]), ...result.slice(2)]))
    if (!result[0]) {
      const why = result[2].code === 'timeout' ? `no answer within ${timeout} s` : `${result[2].code}: ${result[2].message}`
      process.stderr.write(`rpcudp: ${method} on ${formatAddress(target)} failed: ${why}\n`)
    }
    return failureExit(result)
  })
}

async function ping(p: Parsed): Promise<number> {
  if (p.positionals.length !== 1) throw new UsageError('ping needs exactly one <host:port>')
  const count = numberOption(p, 'count', 1, (n) => Number.isInteger(n) && n >= 1, 'a positive integer')
  const interval = positiveSeconds(p, 'interval', 1)
  const timeout = positiveSeconds(p, 'timeout', 5)
  const backend = backendOption(p)
  const target = await resolveAddress(p.positionals[0])
  // Kademlia's rpc_ping(sender, nodeid); 20 bytes as in rpcudp/kademlia's ids, without loading the DHT
  const args = p.options.dht ? [randomBytes(20)] : []
  return withClient(backend, target, async (proto) => {
    let code: number = EXIT.ok
    for (let i = 0; i < count; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, interval * 1000))
      const start = process.hrtime.bigint()
      const result = await proto.callRemote(target, 'ping', args, { timeout })
      const ms = Number(process.hrtime.bigint() - start) / 1e6
      if (result[0]) out(`pong from ${formatAddress(target)}: time=${ms.toFixed(3)} ms${Buffer.isBuffer(result[1]) ? `, node id ${result[1].toString('hex')}` : ''}`)
      else {
        const failure = result[2]
        process.stderr.write(
          failure.code === 'timeout'
            ? `rpcudp: no answer from ${formatAddress(target)} within ${timeout} s\n`
            : `rpcudp: ${formatAddress(target)} answered with an error after ${ms.toFixed(3)} ms: ${failure.code}: ${failure.message}\n`,
        )
        code = Math.max(code, failureExit(result))
      }
    }
    return code
  })
}

async function withClient(backend: BackendChoice, target: Address, body: (proto: RPCProtocol) => Promise<number>): Promise<number> {
  const proto = new RPCProtocol({ backend })
  try {
    await proto.listen(0, localHostFor(target))
    return await body(proto)
  } finally {
    await proto.close()
  }
}

// ---------------------------------------------------------------- main

// loaded on first use: plain RPC commands never load the DHT
const dht = async (p: Parsed) => (await import('./kademlia/cli')).dht(p)

const COMMANDS: Record<string, (p: Parsed) => Promise<number>> = { serve, call, ping, dht }

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      const topic = command === 'help' ? rest[0] : undefined
      if (topic !== undefined && !(topic in COMMANDS)) throw new UsageError(`unknown command ${JSON.stringify(topic)}`)
      // no command at all is a usage error: the help goes to stderr
      ;(command === undefined ? process.stderr : process.stdout).write(HELP[topic ?? 'main'] + '\n')
      return command === undefined ? EXIT.usage : EXIT.ok
    }
    if (command === '--version' || command === '-V') {
      out(version)
      return EXIT.ok
    }
    const run = COMMANDS[command]
    if (run === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)}`)
    const parsed = parseArgs(command, rest)
    if (parsed.options.help) {
      process.stdout.write(HELP[command] + '\n')
      return EXIT.ok
    }
    return await run(parsed)
  } catch (err) {
    const usage = err instanceof UsageError || err instanceof RPCArgumentError || err instanceof RPCEncodeError || err instanceof RPCSizeError
    const message = err instanceof Error ? err.message : String(err)
    const see = usage ? ` (see rpcudp ${command in COMMANDS ? command + ' ' : ''}--help)` : ''
    process.stderr.write(`rpcudp: ${message.replace(/\s*\n\s*/g, ' ')}${see}\n`)
    return usage ? EXIT.usage : EXIT.failure
  }
}

if (require.main === module) {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0)
    throw err
  })
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code
  })
}
