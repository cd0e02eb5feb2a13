/**
 * The `rpcudp` command, through real processes (src/cli.ts run by tsx, so this
 * file does not depend on a build; __test__/install.spec.ts runs the built
 * dist/cli.js from an installed tarball).
 */
import test, { type ExecutionContext } from 'ava'
import { spawn, execFile } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import * as path from 'node:path'
import { createInterface } from 'node:readline'
import { EXIT, parseValue, splitAddress, toJson } from '../src/cli'
import { RPCProtocol } from '../src/index'
import { BACKENDS } from './helpers/backends'
import { parsePrometheus, pythonAvailable, sample } from './helpers/python'

const ROOT = path.join(__dirname, '..')
const CLI = path.join(ROOT, 'src', 'cli.ts')
const NODE_ARGS = ['--import', 'tsx', CLI]
/** An env in which the native addon cannot load (the loader's override points at nothing). */
const NO_NATIVE = { RPCUDP_NATIVE_PATH: path.join(ROOT, 'no-such-binding.node') }

/**
 * Windows has no SIGINT/SIGTERM delivery to another process: kill() ends it
 * outright, so the clean-shutdown exit code is only checked on POSIX.
 */
const SIGNALS = process.platform !== 'win32'
const cleanExit = SIGNALS ? 0 : null

/** For calls that must be answered: the default 5 s is tight on a loaded 2-CPU CI machine. */
const SLOW_OK = ['--timeout', '30']

interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Node + tsx start-up costs a few hundred ms of CPU; dozens of them at once on a
 * small CI machine starve each other into timeouts. At most this many run at once.
 */
const MAX_STARTING = 3
let starting = 0
const startQueue: (() => void)[] = []
async function startSlot<T>(body: () => Promise<T>): Promise<T> {
  if (starting >= MAX_STARTING) await new Promise<void>((resolve) => startQueue.push(resolve))
  starting++
  try {
    return await body()
  } finally {
    starting--
    startQueue.shift()?.()
  }
}

function run(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<Ran> {
  return startSlot(() => runNow(args, env, timeoutMs))
}

function runNow(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...NODE_ARGS, ...args],
      { cwd: ROOT, env: { ...process.env, RPCUDP_BACKEND: '', ...env }, timeout: timeoutMs },
      (error, stdout, stderr) => {
        if (error && typeof (error as any).code !== 'number') stderr += `\n[test harness: ${error.message}]`
        resolve({ code: error ? ((error as any).code ?? null) : 0, stdout, stderr })
      },
    )
  })
}

/** `rpcudp serve` in the background: resolves once it has printed its address. */
function serve(t: ExecutionContext, args: string[], env: NodeJS.ProcessEnv = {}) {
  return startSlot(() => serveNow(t, args, env))
}

async function serveNow(t: ExecutionContext, args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [...NODE_ARGS, 'serve', '--port', '0', ...args], {
    cwd: ROOT,
    env: { ...process.env, RPCUDP_BACKEND: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  const lines = createInterface({ input: child.stdout })
  const queue: string[] = []
  const waiters: ((line: string | undefined) => void)[] = []
  lines.on('line', (line) => (waiters.length > 0 ? waiters.shift()!(line) : queue.push(line)))
  lines.on('close', () => waiters.splice(0).forEach((w) => w(undefined)))
  const nextLine = (): Promise<string | undefined> =>
    queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiters.push(resolve))
  const address = await Promise.race([
    nextLine(),
    new Promise<undefined>((_, reject) => setTimeout(() => reject(new Error(`serve printed no address; stderr: ${stderr}`)), 30_000)),
  ])
  if (address === undefined) throw new Error(`serve exited before printing its address: ${stderr}`)
  return {
    address,
    child,
    nextLine,
    stderr: () => stderr,
    /** Resolves to stderr once it matches (stdout and stderr arrive in no particular order). */
    async stderrMatching(re: RegExp): Promise<string> {
      for (let i = 0; i < 300 && !re.test(stderr); i++) await new Promise((r) => setTimeout(r, 50))
      return stderr
    },
    /** Sends `signal` and resolves to the exit code. */
    async stop(signal: NodeJS.Signals = 'SIGINT') {
      child.kill(signal)
      const [code] = await exited
      return code
    },
  }
}

/** Some containers have no IPv6 loopback; the IPv6 tests pass vacuously there (with a log line). */
let ipv6Probe: Promise<boolean> | undefined
function hasIpv6Loopback(): Promise<boolean> {
  ipv6Probe ??= new Promise((resolve) => {
    const socket = createSocket('udp6')
    socket.once('error', () => {
      socket.close()
      resolve(false)
    })
    socket.bind(0, '::1', () => {
      socket.close()
      resolve(true)
    })
  })
  return ipv6Probe
}
/** A UDP socket that receives and never answers. */
async function silentPeer(t: ExecutionContext): Promise<string> {
  const socket = createSocket('udp4')
  t.teardown(() => socket.close())
  socket.bind(0, '127.0.0.1')
  await once(socket, 'listening')
  return `127.0.0.1:${socket.address().port}`
}

// ------------------------------------------------------------------ serve, call, ping on each backend

for (const backend of BACKENDS) {
  test(`[${backend}] serve answers ping and echo; call prints [ok, result]; SIGINT closes it cleanly`, async (t) => {
    const server = await serve(t, ['--backend', backend])
    t.regex(server.address, /^127\.0\.0\.1:\d+$/)

    const ping = await run(['call', server.address, 'ping', '--backend', backend, ...SLOW_OK])
    t.is(ping.code, EXIT.ok, ping.stderr)
    t.is(ping.stdout, '[true,"pong"]\n')
    t.is(ping.stderr, '')

    const value = '{"s":"héllo","n":[1,-2,2.5,null,true],"b":{"$base64":"AAEC/w=="},"big":{"$bigint":"18446744073709551615"},"m":{"$map":[[1,"one"]]}}'
    const echo = await run(['call', server.address, 'echo', value, '--backend', backend, ...SLOW_OK])
    t.is(echo.code, EXIT.ok, echo.stderr)
    t.deepEqual(JSON.parse(echo.stdout), [true, JSON.parse(value)])

    t.regex(await server.stderrMatching(/backend\)/), new RegExp(`\\(${backend} backend\\)`))
    t.is(await server.stop('SIGINT'), cleanExit)
  })

  test(`[${backend}] ping prints round-trip times; SIGTERM closes serve cleanly`, async (t) => {
    const server = await serve(t, ['--backend', backend])
    const r = await run(['ping', server.address, '--count', '2', '--interval', '0.05', '--backend', backend, ...SLOW_OK])
    t.is(r.code, EXIT.ok, r.stderr)
    const lines = r.stdout.trim().split('\n')
    t.is(lines.length, 2)
    for (const line of lines) t.regex(line, new RegExp(`^pong from ${server.address.replace(/\./g, '\\.')}: time=\\d+\\.\\d{3} ms$`))
    t.is(await server.stop('SIGTERM'), cleanExit)
  })

  test(`[${backend}] an error reply prints [false, null, failure] and exits 1`, async (t) => {
    const server = await serve(t, ['--backend', backend])
    const r = await run(['call', server.address, 'nosuchmethod', '1', '--backend', backend, ...SLOW_OK])
    t.is(r.code, EXIT.remoteError)
    t.deepEqual(JSON.parse(r.stdout), [false, null, { code: 'unknownMethod', message: 'no method "nosuchmethod"', remoteCode: 'unknown_method' }])
    t.regex(r.stderr, /^rpcudp: nosuchmethod on 127\.0\.0\.1:\d+ failed: unknownMethod: .*\n$/)
  })

  test(`[${backend}] no answer: call and ping exit 3 after --timeout`, async (t) => {
    const peer = await silentPeer(t)
    const call = await run(['call', peer, 'ping', '--timeout', '0.3', '--backend', backend])
    t.is(call.code, EXIT.timeout)
    t.deepEqual(JSON.parse(call.stdout), [false, null, { code: 'timeout', message: 'no answer within the timeout' }])
    t.is(call.stderr, `rpcudp: ping on ${peer} failed: no answer within 0.3 s\n`)
    const ping = await run(['ping', peer, '--timeout', '0.3', '--backend', backend])
    t.is(ping.code, EXIT.timeout)
    t.is(ping.stdout, '')
    t.is(ping.stderr, `rpcudp: no answer from ${peer} within 0.3 s\n`)
  })

  test(`[${backend}] IPv6: serve --host ::1 prints [::1]:port and call reaches it`, async (t) => {
    if (!(await hasIpv6Loopback())) {
      t.log('no IPv6 loopback here: not tested')
      t.pass()
      return
    }
    const server = await serve(t, ['--host', '::1', '--backend', backend])
    t.regex(server.address, /^\[::1\]:\d+$/)
    const r = await run(['call', server.address, 'echo', '[1,"a"]', '--backend', backend, ...SLOW_OK])
    t.is(r.code, EXIT.ok, r.stderr)
    t.is(r.stdout, '[true,[1,"a"]]\n')
    t.is(await server.stop(), cleanExit)
  })
}

test('the CLI on one backend talks to the other; localhost:port works', async (t) => {
  const server = await serve(t, ['--backend', 'native'])
  const port = server.address.split(':')[1]
  const r = await run(['call', `localhost:${port}`, 'echo', '-7', '--backend', 'pure', ...SLOW_OK])
  t.is(r.code, EXIT.ok, r.stderr)
  t.is(r.stdout, '[true,-7]\n')
})

test('serve --stats-interval prints stats as JSON lines, and once more on shutdown', async (t) => {
  const server = await serve(t, ['--stats-interval', '0.1'])
  const call = await run(['call', server.address, 'ping', ...SLOW_OK])
  t.is(call.code, EXIT.ok)
  let stats: any
  for (;;) {
    const line = await server.nextLine()
    t.truthy(line)
    stats = JSON.parse(line!)
    if (stats.requestsReceived >= 1) break
  }
  t.is(stats.responsesSent, 1)
  t.is(typeof stats.dropped, 'object')
  t.is(await server.stop(), cleanExit)
})

test('serve --handler-timeout answers a handler that runs too long with handler_timeout', async (t) => {
  const server = await serve(t, ['--handler-timeout', '0.2'])
  const r = await run(['call', server.address, 'sleep', '10', ...SLOW_OK])
  t.is(r.code, EXIT.remoteError, r.stderr)
  t.regex(r.stderr, /handlerTimeout/)
  const quick = await run(['call', server.address, 'sleep', '0', ...SLOW_OK])
  t.is(quick.code, EXIT.ok, quick.stderr)
  t.is(await server.stop(), cleanExit)
})

test('serve --rate-limit N/s drops a source\'s requests beyond its rate and counts them', async (t) => {
  // One token every 10 s, a burst of one: of 10 pings within ~5 s, the first is answered.
  const server = await serve(t, ['--rate-limit', '0.1/s', '--stats-interval', '0.1'])
  const r = await run(['ping', server.address, '--count', '10', '--interval', '0.001', '--timeout', '0.5'])
  t.is(r.code, EXIT.timeout, r.stderr)
  const answered = r.stdout.split('\n').filter((l) => l.startsWith('pong')).length
  t.true(answered >= 1 && answered <= 2, `${answered} answered`)
  let stats: any
  for (;;) {
    const line = await server.nextLine()
    t.truthy(line)
    stats = JSON.parse(line!)
    if (stats.dropped.rateLimited + stats.requestsReceived >= 10) break
  }
  t.is(stats.dropped.rateLimited, 10 - stats.requestsReceived)
  t.is(stats.requestsReceived, answered)
  t.is(stats.sourcesTracked, 1)
  t.is(await server.stop(), cleanExit)
})

test('serve rejects a malformed --rate-limit or --handler-timeout with exit 2', async (t) => {
  for (const args of [['--rate-limit', 'fast'], ['--rate-limit', '0/s'], ['--rate-limit', '-5'], ['--handler-timeout', '0']]) {
    const r = await run(['serve', '--port', '0', ...args])
    t.is(r.code, EXIT.usage, `${args.join(' ')}: ${r.stderr}`)
  }
})

test('--backend auto runs on pure when the addon cannot load; --backend native then fails with exit 4', async (t) => {
  const server = await serve(t, [], NO_NATIVE)
  t.regex(await server.stderrMatching(/backend\)/), /\(pure backend\)/)
  const auto = await run(['call', server.address, 'ping', ...SLOW_OK], NO_NATIVE)
  t.is(auto.code, EXIT.ok, auto.stderr)
  const native = await run(['call', server.address, 'ping', '--backend', 'native'], NO_NATIVE)
  t.is(native.code, EXIT.failure)
  t.is(native.stdout, '')
  t.regex(native.stderr, /^rpcudp: the native backend cannot load here: .*\n$/)
  t.is(native.stderr.split('\n').length, 2, 'one line')
  const serveNative = await run(['serve', '--port', '0', '--backend', 'native'], NO_NATIVE)
  t.is(serveNative.code, EXIT.failure)
})

for (const backend of BACKENDS) {
  test(`[${backend}] serve --metrics serves Prometheus text over HTTP that prometheus_client parses, with the calls made`, async (t) => {
    // the pure run listens on IPv6 loopback where there is one, the bracketed form
    const at = backend === 'pure' && (await hasIpv6Loopback()) ? '[::1]:0' : '127.0.0.1:0'
    const server = await serve(t, ['--backend', backend, '--metrics', at])
    const url = /rpcudp: metrics on (http:\/\/\S+\/metrics)\n/.exec(await server.stderrMatching(/metrics on http/))?.[1]
    t.truthy(url, server.stderr())
    t.true(url!.startsWith(`http://${at.replace(/:0$/, ':')}`), url)
    const { host, port } = splitAddress(server.address)
    const client = new RPCProtocol({ backend })
    t.teardown(() => client.close())
    await client.listen(0, '127.0.0.1')
    const CALLS = 4
    for (let i = 0; i < CALLS; i++) t.deepEqual(await client.callRemote([host, port], 'echo', [i], { timeout: 30 }), [true, i])
    t.like(await client.callRemote([host, port], 'nosuch', [], { timeout: 30 }), [false, null, { code: 'unknownMethod' }])

    const res = await fetch(url!)
    t.is(res.status, 200)
    t.regex(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/)
    const text = await res.text()
    t.is((await fetch(url!.replace(/\/metrics$/, '/other'))).status, 404)
    if (!pythonAvailable()) return t.fail('no .venv: run bash scripts/python-env.sh')
    const families = await parsePrometheus(text)
    t.is(families.get('rpcudp_requests_received')?.type, 'counter')
    t.is(sample(families, 'rpcudp_requests_received_total'), CALLS + 1)
    t.is(sample(families, 'rpcudp_responses_sent_total'), CALLS)
    t.is(sample(families, 'rpcudp_unknown_methods_total'), 1)
    t.is(sample(families, 'rpcudp_dropped_total', { reason: 'tooShort' }), 0)
    t.is(families.get('rpcudp_handler_duration_seconds')?.type, 'histogram')
    t.is(sample(families, 'rpcudp_handler_duration_seconds_count', { method: 'echo', outcome: 'ok' }), CALLS)
    t.is(families.get('rpcudp_recv_buffer_bytes')?.type, 'gauge')
    t.true(sample(families, 'rpcudp_recv_buffer_bytes')! > 0)
    t.is(await server.stop(), cleanExit)
    await t.throwsAsync(fetch(url!), undefined, 'the HTTP server closed with the node')
  })
}

test('serve on a port in use fails with one line and exit 4', async (t) => {
  const server = await serve(t, [])
  const port = server.address.split(':')[1]
  const r = await run(['serve', '--port', port])
  t.is(r.code, EXIT.failure)
  t.regex(r.stderr, /^rpcudp: cannot bind 127\.0\.0\.1:\d+: .*\n$/)
})

test('serve --metrics on a TCP port in use fails with one line and exit 4', async (t) => {
  const { createServer } = await import('node:http')
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => taken.close())
  const at = `127.0.0.1:${(taken.address() as { port: number }).port}`
  const r = await run(['serve', '--port', '0', '--metrics', at])
  t.is(r.code, EXIT.failure)
  t.regex(r.stderr, new RegExp(`^rpcudp: cannot serve metrics on ${at.replace(/\./g, '\\.')}: EADDRINUSE$`, 'm'))
})

// ------------------------------------------------------------------ usage errors: one line on stderr, exit 2, nothing sent

const usageErrors: [string[], RegExp][] = [
  [['call', '127.0.0.1', 'ping'], /bad address "127\.0\.0\.1": expected host:port/],
  [['call', '127.0.0.1:0', 'ping'], /the port must be 1\.\.65535/],
  [['call', '127.0.0.1:65536', 'ping'], /the port must be 1\.\.65535/],
  [['call', '127.0.0.1:12ab', 'ping'], /the port must be 1\.\.65535/],
  [['call', '::1:1234', 'ping'], /write an IPv6 address in brackets, \[::1\]:1234/],
  [['call', '[1.2.3.4]:1234', 'ping'], /is not an IPv6 address/],
  [['call', ':1234', 'ping'], /the host is missing/],
  [['call', 'no-such-host.invalid:1234', 'ping'], /cannot resolve "no-such-host\.invalid"/],
  [['call', '127.0.0.1:1234'], /call needs <host:port> <method>/],
  [['call', '127.0.0.1:1234', 'echo', 'hello'], /bad JSON argument "hello": .*strings must be JSON-quoted/],
  [['call', '127.0.0.1:1234', 'echo', '{"a":'], /bad JSON argument/],
  [['call', '127.0.0.1:1234', 'echo', '{"$base64":"***"}'], /\$base64 needs a base64 string/],
  [['call', '127.0.0.1:1234', 'echo', '18446744073709551616'], /outside the 64-bit integer range/],
  [['call', '127.0.0.1:1234', 'echo', JSON.stringify('x'.repeat(9000))], /msgpack body is \d+ bytes; the limit is 8192/],
  [['call', '127.0.0.1:1234', 'ping', '--timeout', '0'], /--timeout must be a positive number of seconds/],
  [['call', '127.0.0.1:1234', 'ping', '--timeout'], /--timeout needs a value/],
  [['call', '127.0.0.1:1234', 'ping', '--backend', 'rust'], /--backend must be auto, native or pure/],
  [['call', '127.0.0.1:1234', 'ping', '--port', '1'], /unknown option --port/],
  [['ping', '127.0.0.1:1234', '--count', '1.5'], /--count must be a positive integer/],
  [['serve', '--port', '70000'], /--port must be a port number/],
  [['serve', '--host', 'example.com'], /--host must be an IP address or localhost/],
  [['serve', 'extra'], /serve takes no arguments/],
  [['serve', '--metrics', 'example.com:9100'], /--metrics needs an IP address or localhost to listen on/],
  [['serve', '--metrics', '127.0.0.1'], /bad address "127\.0\.0\.1": expected host:port/],
  [['serve', '--metrics', '::1:9100'], /write an IPv6 address in brackets, \[::1\]:9100/],
  [['serve', '--metrics', '127.0.0.1:70000'], /the port must be 0\.\.65535/],
  [['dht', 'serve', '--metrics', '127.0.0.1:x'], /the port must be 0\.\.65535/],
  [['frobnicate'], /unknown command "frobnicate"/],
]
for (const [args, message] of usageErrors) {
  test(`usage error: rpcudp ${args.map((a) => (a.length > 40 ? a.slice(0, 20) + '…' : a)).join(' ')}`, async (t) => {
    const r = await run(args)
    t.is(r.code, EXIT.usage, r.stderr)
    t.is(r.stdout, '')
    t.regex(r.stderr, /^rpcudp: [^\n]*\n$/, 'exactly one line')
    t.regex(r.stderr, message)
  })
}

// ------------------------------------------------------------------ help

test('--help for each command, help <command>, --version; no command is a usage error', async (t) => {
  const main = await run(['--help'])
  t.is(main.code, 0)
  t.regex(main.stdout, /^rpcudp \d+\.\d+\.\d+: RPC over UDP/)
  for (const command of ['serve', 'call', 'ping']) {
    const r = await run([command, '--help'])
    t.is(r.code, 0, command)
    t.true(r.stdout.startsWith(`Usage: rpcudp ${command} `), command)
    t.regex(r.stdout, /--backend/)
    t.deepEqual((await run([command, '-h'])).stdout, r.stdout)
    t.deepEqual((await run(['help', command])).stdout, r.stdout)
  }
  // --help wins over other arguments, even bad ones
  t.is((await run(['call', 'not-an-address', '--help'])).code, 0)
  t.regex((await run(['call', '--help'])).stdout, /\$base64/)
  t.regex((await run(['serve', '--help'])).stdout, /--metrics <host:port> +serve the node's counters and latency histograms in the Prometheus/)
  t.regex(main.stdout, /\[--metrics host:port\]/)
  const version = await run(['--version'])
  t.is(version.stdout, `${require('../package.json').version}\n`)
  const none = await run([])
  t.is(none.code, EXIT.usage)
  t.is(none.stdout, '')
  t.regex(none.stderr, /^rpcudp \d/)
})

// ------------------------------------------------------------------ the JSON value mapping (in-process)

test('addresses: host:port, [v6]:port', (t) => {
  t.deepEqual(splitAddress('127.0.0.1:1234'), { host: '127.0.0.1', port: 1234 })
  t.deepEqual(splitAddress('[::1]:1234'), { host: '::1', port: 1234 })
  t.deepEqual(splitAddress('[fe80::1%eth0]:9'), { host: 'fe80::1%eth0', port: 9 })
  t.deepEqual(splitAddress('example.com:65535'), { host: 'example.com', port: 65535 })
})

test('values: JSON in, tagged forms for bytes, big integers, maps and special floats', (t) => {
  t.deepEqual(parseValue('[1, "a", null, true, 2.5]'), [1, 'a', null, true, 2.5])
  t.deepEqual(parseValue('{"$base64": "AAEC"}'), Buffer.from([0, 1, 2]))
  t.is(parseValue('{"$bigint": "-9223372036854775808"}'), -(2n ** 63n))
  // bare integer literals past 2^53 are read exactly, even nested
  t.is(parseValue('18446744073709551615'), 2n ** 64n - 1n)
  t.deepEqual(parseValue('[9007199254740993, "9007199254740993", 9007199254740991, 1e300]'), [
    9007199254740993n,
    '9007199254740993',
    9007199254740991,
    1e300,
  ])
  t.deepEqual(parseValue('{"$map": [[1, "a"], [[2], {"$base64": ""}]]}'), new Map<unknown, unknown>([[1, 'a'], [[2], Buffer.alloc(0)]]))
  t.true(Number.isNaN(parseValue('{"$float": "NaN"}')))
  t.true(Object.is(parseValue('{"$float": "-0"}'), -0))
  t.is(parseValue('{"$float": "-Infinity"}'), -Infinity)
  // an object with other keys besides a tag is a plain object
  t.deepEqual({ ...(parseValue('{"$base64": "AA", "x": 1}') as object) }, { $base64: 'AA', x: 1 })
  // __proto__ is an ordinary key
  const proto = parseValue('{"__proto__": {"polluted": 1}}') as Record<string, unknown>
  t.deepEqual(Object.keys(proto), ['__proto__'])
  t.is(({} as any).polluted, undefined)
})

test('values: results print as JSON with the same tags, and round-trip', (t) => {
  t.deepEqual(toJson(Buffer.from([255, 0])), { $base64: '/wA=' })
  t.deepEqual(toJson(2n ** 63n), { $bigint: '9223372036854775808' })
  t.deepEqual(toJson(new Map([[1, Buffer.from('a')]])), { $map: [[1, { $base64: 'YQ==' }]] })
  t.deepEqual(toJson([NaN, Infinity, -0, 0]), [{ $float: 'NaN' }, { $float: 'Infinity' }, { $float: '-0' }, 0])
  t.deepEqual(toJson(undefined), null)
  // a plain object that looks like a tag is printed as a $map, so output is never ambiguous
  t.deepEqual(toJson({ $bigint: '1' }), { $map: [['$bigint', '1']] })
  t.deepEqual(parseValue(JSON.stringify(toJson({ $bigint: '1' }))), new Map([['$bigint', '1']]))
  const value = { a: [1, 2.5, 'x', null], b: Buffer.from('hi'), c: 2n ** 64n - 1n, d: new Map<unknown, unknown>([[1, 'one']]), e: -0 }
  const back = parseValue(JSON.stringify(toJson(value))) as any
  t.deepEqual({ ...back }, value)
  t.true(Object.is(back.e, -0))
})
