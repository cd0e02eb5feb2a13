/**
 * The API surface, differentially: every constructor option and every
 * listen / handle / callRemote / call.NAME argument, fed odd values (NaN,
 * ±Infinity, huge, negative, fractions, wrong types, odd strings, arrays,
 * objects, symbols, bigints). The same input runs on the native and the pure
 * backend; the outcome must be a typed error (an RPCError subclass with a
 * code) or working behaviour, and the same on both. A Rust panic crossing the
 * boundary would abort this worker, so "nothing crashes" is checked too.
 *
 * Network traffic stays on loopback and on this spec's own sockets: every
 * generated host that is an IP literal outside loopback is filtered out, and
 * the only valid ports used are this spec's own.
 */
import test, { type ExecutionContext } from 'ava'
import fc from 'fast-check'
import { execFileSync } from 'node:child_process'
import dns from 'node:dns'
import { join } from 'node:path'
import { isIP } from 'node:net'
import { isDeepStrictEqual } from 'node:util'
import { RPCArgumentError, RPCError, RPCProtocol, type BackendName, type RPCProtocolOptions } from '../src/index'
import { BACKENDS, eachBackend, listening } from './helpers/backends'
import { RawPeer } from './helpers/raw'
import { describe } from '../src/validate'

/** A run's seed is printed on failure by fast-check; FC_SEED replays one. */
const SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : undefined
const RUNS = 60

/** What an API call came to, in a form both backends can be compared by. */
type Outcome = { ok: unknown } | { error: string; code: string } | { untyped: string } | 'pending'

function failed(err: unknown): Outcome {
  if (err instanceof RPCError && typeof err.code === 'string' && err.code.startsWith('ERR_RPC_')) return { error: err.name, code: err.code }
  return { untyped: String(err instanceof Error ? `${err.name}: ${err.message}` : typeof err) }
}

function attempt(fn: () => unknown): Outcome {
  try {
    return { ok: fn() }
  } catch (err) {
    return failed(err)
  }
}

/** Settles within `ms` or counts as pending (a valid call to a silent port with a long timeout). */
async function settle(p: Promise<unknown>, ms: number): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined
  const pending = new Promise<'pending'>((r) => (timer = setTimeout(() => r('pending'), ms)))
  try {
    return await Promise.race([p.then((ok) => ({ ok }), failed), pending])
  } finally {
    clearTimeout(timer)
  }
}

/** A call outcome's kind, for the tally of what a fuzz run reached. */
function kind(o: Outcome): string {
  if (o === 'pending') return o
  if ('code' in o) return o.code
  if ('ok' in o && Array.isArray(o.ok)) return o.ok[0] ? 'answered' : o.ok[2]?.code === 'timeout' ? 'timeout' : 'remote'
  return 'other'
}

function typed(t: ExecutionContext, o: Outcome, what: string) {
  t.false(typeof o === 'object' && 'untyped' in o, `${what}: an untyped error ${JSON.stringify(o)}`)
}

/** `out[native]` and `out[pure]` agree (and are typed). */
function same(t: ExecutionContext, out: Record<BackendName, Outcome>, what: string): boolean {
  for (const b of BACKENDS) typed(t, out[b], `${b} ${what}`)
  const equal = isDeepStrictEqual(out.native, out.pure)
  if (!equal) t.log(what, out)
  return equal
}

// ---- odd values ----------------------------------------------------------

const oddNumber = fc.oneof(
  fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, -1, 1.5, 1e20, 1e300, Number.MAX_VALUE, Number.MIN_VALUE, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53),
  fc.constantFrom(2147483.647, 2147483.648, 65486, 65487, 2 ** 24, 2 ** 24 + 1, 2 ** 31 - 1),
  fc.integer(),
  fc.double(),
)
const oddValue = fc.oneof(
  oddNumber,
  fc.string(),
  fc.constantFrom('', ' ', '1', 'true', 'loop', 'thread', 'native', 'pure', 'auto', '__proto__', 'constructor', '\u0000', '\ud800'),
  fc.boolean(),
  fc.constantFrom(null, undefined, Symbol('odd'), 10n, -1n, 2n ** 70n, () => 1, new Date(0), /x/),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 3 }),
)

const OPTIONS: (keyof RPCProtocolOptions)[] = [
  'waitTimeout',
  'maxBodySize',
  'maxOutstanding',
  'maxHandlers',
  'errorReplies',
  'exposeErrors',
  'checkSender',
  'recvBufferSize',
  'sendBufferSize',
  'nativeIo',
  'reflection',
]

/** Hosts: the interesting literals, and anything fast-check makes that is not an IP literal off loopback. */
const LOOPBACK_ONLY = (h: unknown) => typeof h !== 'string' || isIP(h) === 0 || /^(127\.|::1$|::ffff:127\.|0\.0\.0\.0$|::$)/.test(h)
const oddHost = fc
  .oneof(
    fc.constantFrom('', 'localhost', '127.0.0.1', '::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:ffff:127.0.0.1', '::'),
    fc.constantFrom('example.com', 'localhost.', 'LOCALHOST', ' 127.0.0.1', '127.0.0.1 ', '127.1', '127.0.0.256', '::1%', 'fe80::1%lo', '1.2.3.4.5'),
    fc.string(),
    fc.ipV4().map((ip) => '127.' + ip.split('.').slice(1).join('.')),
    oddValue,
  )
  .filter(LOOPBACK_ONLY)

// ---- constructor options ------------------------------------------------

test('every constructor option: odd values are typed errors or work, the same on both backends', async (t) => {
  const seen = { accepted: 0, rejected: 0 }
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...OPTIONS), oddValue, async (key, value) => {
      const out = {} as Record<BackendName, Outcome>
      for (const backend of BACKENDS) {
        const made = attempt(() => new RPCProtocol({ backend, [key]: value } as RPCProtocolOptions))
        if (backend === 'native') seen['ok' in (made as object) ? 'accepted' : 'rejected']++
        if (!('ok' in (made as object))) {
          out[backend] = made
          continue
        }
        // Accepted: the protocol must work (maxBodySize may make the call itself too large, a typed error).
        const proto = (made as { ok: RPCProtocol }).ok
        try {
          proto.handle('echo', (_s, x) => x)
          const address = await proto.listen(0, '127.0.0.1')
          out[backend] = await settle(proto.callRemote(address, 'echo', [1], { timeout: 5 }), 10_000)
        } finally {
          await proto.close()
        }
      }
      return same(t, out, `option ${key}=${describe(value)}`)
    }),
    { numRuns: RUNS * 2, seed: SEED },
  )
  t.log(seen)
  t.true(seen.accepted > 0 && seen.rejected > 0)
})

test('the constructor takes only an object (or nothing) as options', (t) => {
  for (const backend of BACKENDS) {
    for (const v of [null, 5, 'x', Symbol('s'), 1n, true]) t.throws(() => new RPCProtocol(v as any), { instanceOf: RPCArgumentError })
    t.throws(() => new RPCProtocol({ backend: Symbol('b') as any }), { instanceOf: RPCArgumentError })
    t.throws(() => new RPCProtocol({ backend: 1n as any }), { instanceOf: RPCArgumentError })
    t.notThrows(() => new RPCProtocol({ backend }).close())
  }
})

// Issue 11: `waitTimeout: 1e20` aborted the process on the native backend (a panic across FFI).
eachBackend('timeouts beyond setTimeout (2^31 - 1 ms) are RPCArgumentError; the largest allowed one works', async (t, backend) => {
  for (const waitTimeout of [1e20, Number.MAX_VALUE, 2147483.648, Infinity, NaN, 0, -1])
    t.throws(() => new RPCProtocol({ backend, waitTimeout }), { instanceOf: RPCArgumentError, message: /waitTimeout/ }, String(waitTimeout))
  const { proto, address } = await listening(t, (o) => new RPCProtocol(o), { backend, waitTimeout: 2147483.647 })
  proto.handle('echo', (_s, x) => x)
  t.deepEqual(await proto.call.echo(address, 'far'), [true, 'far'])
  for (const timeout of [1e20, Number.MAX_VALUE, 2147483.648, Infinity, NaN, 0, -1, '1' as any])
    await t.throwsAsync(proto.callRemote(address, 'echo', [1], { timeout }), { instanceOf: RPCArgumentError, message: /timeout/ }, String(timeout))
  t.deepEqual(await proto.callRemote(address, 'echo', [2], { timeout: 2147483.647 }), [true, 2])
})

eachBackend('integer options have documented ranges: 1e300, 2^40 and fractions are RPCArgumentError', (t, backend) => {
  const bad: RPCProtocolOptions[] = [
    { maxOutstanding: 1e300 },
    { maxOutstanding: 2 ** 24 + 1 },
    { maxHandlers: 2 ** 32 },
    { recvBufferSize: 2 ** 40 },
    { sendBufferSize: 2 ** 31 },
    { maxBodySize: 65487 },
    { maxBodySize: 100.5 },
    { errorReplies: 1 as any },
    { exposeErrors: 'yes' as any },
    { checkSender: null as any },
    { nativeIo: 'Thread' as any },
  ]
  for (const o of bad) t.throws(() => new RPCProtocol({ backend, ...o }), { instanceOf: RPCArgumentError }, JSON.stringify(o))
  for (const o of [{ maxOutstanding: 2 ** 24 }, { recvBufferSize: 2 ** 31 - 1 }, { maxBodySize: 65486 }, { checkSender: false }])
    t.notThrows(() => new RPCProtocol({ backend, ...o }).close(), JSON.stringify(o))
})

// ---- listen / handle ----------------------------------------------------

test('listen(port, host): odd values are typed errors or bind, the same on both backends', async (t) => {
  const oddPort = fc.oneof(fc.constant(0), oddValue.filter((p) => !(typeof p === 'number' && Number.isInteger(p) && p > 0 && p < 65536)))
  await fc.assert(
    fc.asyncProperty(oddPort, oddHost, async (port, host) => {
      const out = {} as Record<BackendName, Outcome>
      for (const backend of BACKENDS) {
        const proto = new RPCProtocol({ backend })
        try {
          // The bound port differs between runs; the host and the outcome must not.
          out[backend] = await settle(
            proto.listen(port as number, host as string).then(([h, p]) => [h, Number.isInteger(p) && p > 0]),
            10_000,
          )
        } finally {
          await proto.close()
        }
      }
      return same(t, out, `listen(${describe(port)}, ${describe(host)})`)
    }),
    { numRuns: RUNS, seed: SEED },
  )
  t.pass()
})

test('handle(name, handler): odd values are typed errors or register, the same on both backends', (t) => {
  fc.assert(
    fc.property(oddValue, fc.oneof(oddValue, fc.constant((_s: unknown) => 1)), (name, handler) => {
      const out = {} as Record<BackendName, Outcome>
      for (const backend of BACKENDS) {
        const proto = new RPCProtocol({ backend })
        out[backend] = attempt(() => proto.handle(name as string, handler as any) === proto)
        void proto.close()
      }
      return same(t, out, `handle(${describe(name)})`)
    }),
    { numRuns: RUNS * 2, seed: SEED },
  )
  t.pass()
})

// ---- callRemote / call.NAME -------------------------------------------------

interface Side {
  proto: RPCProtocol
  address: [string, number]
}

/** Per backend: a protocol that answers `echo` to itself, and a silent port of this spec's own. */
async function callTargets(t: ExecutionContext, host: string) {
  const silent = await RawPeer.open(host, 0, false)
  t.teardown(() => silent.close())
  const sides = {} as Record<BackendName, Side>
  for (const backend of BACKENDS) {
    const side = await listening(t, (o) => new RPCProtocol(o), { backend, waitTimeout: 0.2 }, host)
    side.proto.handle('echo', (_s, ...args) => args)
    sides[backend] = side
  }
  return { sides, silentPort: silent.address[1] }
}

for (const socketHost of ['127.0.0.1', '::']) {
  test(`callRemote and call.NAME on a socket bound to ${socketHost}: odd arguments give the same outcome on both backends`, async (t) => {
    const { sides, silentPort } = await callTargets(t, socketHost)
    // 'self' is each backend's own port (the answering protocol), 'silent' the port that never answers.
    // Weighted towards valid addresses and names, so most runs get past validation to the wire.
    const port = fc.oneof(fc.constantFrom<unknown>('self', 'silent', 0, 65536, -1, 1.5, NaN, '1'), oddValue)
    const reachable = fc.constantFrom<unknown>('', 'localhost', '127.0.0.1', '::ffff:127.0.0.1', '::1')
    const address = fc.oneof(
      { arbitrary: fc.tuple(reachable, fc.constantFrom('self', 'silent')), weight: 8 },
      { arbitrary: fc.tuple(oddHost, port), weight: 2 },
      fc.tuple(oddHost, port, oddValue),
      fc.constantFrom<unknown>([], ['127.0.0.1'], 'x', null, undefined, { 0: '127.0.0.1', 1: 1, length: 2 }),
      oddValue,
    )
    const name = fc.oneof({ arbitrary: fc.constant('echo'), weight: 6 }, fc.constantFrom<unknown>('nosuch', '', '__proto__', 'constructor'), oddValue)
    const args = fc.oneof({ arbitrary: fc.array(fc.anything(), { maxLength: 4 }), weight: 4 }, fc.array(oddValue, { maxLength: 3 }), oddValue)
    // Valid timeouts are short (answered or timed out at once) or long (pending past the check): never near the limit.
    const timeout = oddValue.filter((v) => !(typeof v === 'number' && v > 0.3 && v < 60))
    const options = fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, fc.record({ timeout }, { requiredKeys: [] }), oddValue)
    // How the runs ended, so the check shows it got past validation: answers, failures, typed errors.
    const seen: Record<string, number> = {}
    await fc.assert(
      fc.asyncProperty(address, name, args, options, fc.boolean(), async (addr, n, a, o, viaProxy) => {
        const out = {} as Record<BackendName, Outcome>
        for (const backend of BACKENDS) {
          const { proto, address: own } = sides[backend]
          const target = Array.isArray(addr)
            ? addr.map((x, i) => (i === 1 && x === 'self' ? own[1] : i === 1 && x === 'silent' ? silentPort : x))
            : addr
          // the proxy leaves Object.prototype's names (constructor, __proto__) as on a plain object: those go by callRemote
          const call = attempt(() =>
            viaProxy && typeof n === 'string' && !(n in {}) && Array.isArray(a)
              ? (proto.call as any)[n](target, ...a)
              : proto.callRemote(target as any, n as string, a as unknown[], o as any),
          )
          out[backend] = 'ok' in (call as object) ? await settle((call as { ok: Promise<unknown> }).ok, 3000) : call
          // A call the check gave up on must not be left to settle into the next run.
          if (out[backend] === 'pending') t.true(proto.stats().outstanding > 0)
        }
        seen[kind(out.native)] = (seen[kind(out.native)] ?? 0) + 1
        return same(t, out, `call ${viaProxy ? 'proxy' : 'callRemote'}`)
      }),
      { numRuns: RUNS * 2, seed: SEED },
    )
    t.log(seen)
    t.true((seen.answered ?? 0) > 0 && (seen.timeout ?? 0) + (seen.remote ?? 0) > 0 && (seen.ERR_RPC_INVALID_ARGUMENT ?? 0) > 0)
  })
}

// ---- the address surface, differentially ---------------------------------

/** Runs `fn` on each backend and checks the outcomes agree and match `want`. */
async function differential(t: ExecutionContext, what: string, want: Outcome, fn: (backend: BackendName) => Promise<unknown>) {
  const out = {} as Record<BackendName, Outcome>
  for (const backend of BACKENDS) out[backend] = await settle(fn(backend), 5000)
  for (const backend of BACKENDS) t.deepEqual(out[backend], want, `${backend}: ${what}`)
}

async function whoamiPair(t: ExecutionContext, backend: BackendName, serverHost: string, clientHost: string, waitTimeout = 2) {
  const server = await listening(t, (o) => new RPCProtocol(o), { backend, waitTimeout }, serverHost)
  server.proto.handle('whoami', (sender) => sender)
  const client = await listening(t, (o) => new RPCProtocol(o), { backend, waitTimeout }, clientHost)
  return { server: server.address, client: client.address, call: client.proto }
}

const argumentError = { error: 'RPCArgumentError', code: 'ERR_RPC_INVALID_ARGUMENT' }

test("'' as the call host reaches this host, as in Python, with the sender check on", async (t) => {
  for (const [serverHost, clientHost] of [
    ['127.0.0.1', '127.0.0.1'],
    ['0.0.0.0', '127.0.0.1'],
    ['::1', '::1'],
  ]) {
    await differential(t, `'' from ${clientHost} to ${serverHost}`, { ok: true }, async (backend) => {
      const p = await whoamiPair(t, backend, serverHost, clientHost)
      const r = await p.call.call.whoami(['', p.server[1]])
      return isDeepStrictEqual(r, [true, p.client]) || r
    })
  }
})

test("'localhost' is accepted as a call host (this host's loopback of the socket's family) and as a listen host", async (t) => {
  await differential(t, 'call localhost', { ok: true }, async (backend) => {
    const p = await whoamiPair(t, backend, '127.0.0.1', '127.0.0.1')
    return isDeepStrictEqual(await p.call.call.whoami(['localhost', p.server[1]]), [true, p.client])
  })
  await differential(t, 'listen localhost', { ok: '127.0.0.1' }, async (backend) => {
    const p = new RPCProtocol({ backend })
    t.teardown(() => p.close())
    return (await p.listen(0, 'localhost'))[0]
  })
  await differential(t, "listen ''", { ok: '0.0.0.0' }, async (backend) => {
    const p = new RPCProtocol({ backend })
    t.teardown(() => p.close())
    return (await p.listen(0, ''))[0]
  })
})

test('an IPv4-mapped target on an IPv4 socket is its IPv4 address, answered on both backends', async (t) => {
  for (const mapped of ['::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:FFFF:127.0.0.1']) {
    await differential(t, mapped, { ok: true }, async (backend) => {
      const p = await whoamiPair(t, backend, '127.0.0.1', '127.0.0.1')
      return isDeepStrictEqual(await p.call.call.whoami([mapped, p.server[1]]), [true, p.client])
    })
  }
})

test('IPv6 targets on an IPv4 socket are RPCArgumentError; IPv4 targets on a dual-stack socket are answered', async (t) => {
  for (const host of ['::1', 'fe80::1%lo', '2001:db8::1']) {
    await differential(t, `${host} from IPv4`, argumentError, async (backend) => {
      const p = await whoamiPair(t, backend, '127.0.0.1', '127.0.0.1')
      return p.call.call.whoami([host, p.server[1]])
    })
  }
  await differential(t, 'IPv4 from ::', { ok: true }, async (backend) => {
    const p = await whoamiPair(t, backend, '127.0.0.1', '::')
    // The dual-stack client is seen as its IPv4 loopback address.
    return isDeepStrictEqual(await p.call.call.whoami(['127.0.0.1', p.server[1]]), [true, ['127.0.0.1', p.client[1]]])
  })
  await differential(t, 'IPv4 from ::1 (no IPv4 route): a failed send, then a timeout', { ok: [false, 'timeout', 1] }, async (backend) => {
    const p = await whoamiPair(t, backend, '127.0.0.1', '::1', 0.3)
    const [ok, , failure] = await p.call.call.whoami(['127.0.0.1', p.server[1]])
    return [ok, failure?.code, p.call.stats().dropped.sendFailed]
  })
})

test('ports 0, 65536, -1, 1.5, NaN and hostnames are RPCArgumentError on both backends, without a DNS lookup', async (t) => {
  let lookups = 0
  const realLookup = dns.lookup
  ;(dns as { lookup: unknown }).lookup = (...args: Parameters<typeof dns.lookup>) => {
    lookups++
    return (realLookup as (...a: unknown[]) => void)(...args)
  }
  t.teardown(() => void ((dns as { lookup: unknown }).lookup = realLookup))
  for (const address of [
    ['127.0.0.1', 0],
    ['127.0.0.1', 65536],
    ['127.0.0.1', -1],
    ['127.0.0.1', 1.5],
    ['127.0.0.1', NaN],
    ['127.0.0.1', '80'],
    ['example.com', 80],
    ['localhost.', 80],
    ['127.1', 80],
  ]) {
    await differential(t, JSON.stringify(address), argumentError, async (backend) => {
      const p = await whoamiPair(t, backend, '127.0.0.1', '127.0.0.1')
      return p.call.callRemote(address as any, 'whoami')
    })
  }
  for (const [port, host] of [
    [65536, '127.0.0.1'],
    [-1, '127.0.0.1'],
    [1.5, '127.0.0.1'],
    [NaN, '127.0.0.1'],
    [0, 'example.com'],
    [0, 5],
  ]) {
    await differential(t, `listen(${port}, ${host})`, argumentError, async (backend) => {
      const p = new RPCProtocol({ backend })
      t.teardown(() => p.close())
      return p.listen(port as number, host as string)
    })
  }
  t.is(lookups, 0)
})

// ---- link-local IPv6 with a zone ------------------------------------------

/**
 * This host's loopback has no link-local address, and traffic stays on
 * loopback: the check runs in a network namespace of its own whose `lo` gets
 * fe80::1 (CI runs as root). Created here, removed after.
 */
const NETNS = `rpcudp-surface-${process.pid}`

function makeNetns(): string | null {
  const steps = [
    ['netns', 'add', NETNS],
    ['-n', NETNS, 'link', 'set', 'lo', 'up'],
    ['-n', NETNS, 'addr', 'add', 'fe80::1/64', 'dev', 'lo', 'nodad'],
  ]
  try {
    for (const step of steps) execFileSync('ip', step, { stdio: 'pipe' })
    return null
  } catch (err) {
    removeNetns()
    return `cannot create a network namespace with a link-local address (needs root and iproute2): ${(err as Error).message.split('\n')[0]}`
  }
}

function removeNetns() {
  try {
    execFileSync('ip', ['netns', 'del', NETNS], { stdio: 'pipe' })
  } catch {}
}

const cannot = makeNetns()
if (cannot !== null) test.skip(`link-local with a zone (skipped: ${cannot})`, () => {})
else {
  test.after.always(removeNetns)
  test('link-local IPv6 with a zone: both backends bind, call by zone name or index, and report the zone in sender', (t) => {
    const child = join(__dirname, 'helpers', 'linklocal-child.ts')
    const out = execFileSync('ip', ['netns', 'exec', NETNS, process.execPath, '--import', 'tsx', child], {
      cwd: join(__dirname, '..'),
      encoding: 'utf8',
      timeout: 60_000,
    })
    const runs = out.trim().split('\n').map((line) => JSON.parse(line))
    t.is(runs.length, 2)
    for (const r of runs) {
      const client = ['fe80::1%lo', r.clientPort]
      t.like(r, {
        bound: 'fe80::1%lo',
        byName: { ok: [true, client] },
        byIndex: { ok: [true, client] },
        fromDualStack: { ok: [true, ['fe80::1%lo', r.dualPort]] },
        toDualStack: { ok: [true, client] },
        noSuchZone: { error: 'RPCSocketError', code: 'ERR_RPC_SOCKET' },
      }, r.backend)
    }
    // Ports differ between the runs; everything else must not.
    const strip = ({ backend, clientPort, dualPort, ...rest }: any) =>
      JSON.stringify(rest).replaceAll(String(clientPort), 'CLIENT').replaceAll(String(dualPort), 'DUAL')
    t.is(strip(runs[0]), strip(runs[1]))
  })
}
