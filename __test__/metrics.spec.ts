/**
 * registerMetrics and registerKademliaMetrics (README "Metrics"): what a
 * registry reports against stats() and the calls made, on both backends;
 * unregister and close; refusals. The CLI's /metrics over HTTP, parsed by
 * Python's prometheus_client, is in cli.spec.ts and kademlia-cli.spec.ts.
 */
import test, { type ExecutionContext } from 'ava'
import { createSocket } from 'node:dgram'
import { Registry } from 'prom-client'
import { RPCArgumentError, RPCProtocol, registerMetrics, type Stats } from '../src/index'
import { KademliaArgumentError, KademliaNode, registerKademliaMetrics } from '../src/kademlia/index'
import { WIRE_DROP_REASONS } from '../src/transport'
import { BACKENDS, eachBackend, pair } from './helpers/backends'

type Sample = { value: number; labels: Record<string, string | number> }

/** The registry's samples by metric name (histograms: `<name>_count` etc.), read the way a scrape reads them. */
async function scrape(registry: Registry): Promise<Map<string, Sample[]>> {
  const out = new Map<string, Sample[]>()
  for (const m of await registry.getMetricsAsJSON())
    for (const v of m.values as { value: number; labels: Sample['labels']; metricName?: string }[]) {
      const name = v.metricName ?? m.name
      out.set(name, [...(out.get(name) ?? []), { value: v.value, labels: v.labels }])
    }
  return out
}

/** The one sample of `name` whose labels include `labels`. */
function value(samples: Map<string, Sample[]>, name: string, labels: Record<string, string> = {}): number | undefined {
  const match = (samples.get(name) ?? []).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  return match.length === 1 ? match[0].value : undefined
}

/** Every counter and gauge registerMetrics reads from stats(), with its stats() key. */
const FROM_STATS: [string, keyof Stats][] = [
  ['requests_sent_total', 'requestsSent'],
  ['requests_received_total', 'requestsReceived'],
  ['responses_sent_total', 'responsesSent'],
  ['responses_received_total', 'responsesReceived'],
  ['errors_sent_total', 'errorsSent'],
  ['errors_received_total', 'errorsReceived'],
  ['timeouts_total', 'timeouts'],
  ['socket_errors_total', 'socketErrors'],
  ['handler_errors_total', 'handlerErrors'],
  ['handler_timeouts_total', 'handlerTimeouts'],
  ['unknown_methods_total', 'unknownMethods'],
  ['reply_too_large_total', 'replyTooLarge'],
  ['reply_unencodable_total', 'replyUnencodable'],
  ['outstanding_calls', 'outstanding'],
  ['handlers_running', 'handlersRunning'],
  ['recv_buffer_bytes', 'recvBufferSize'],
  ['send_buffer_bytes', 'sendBufferSize'],
  ['sources_tracked', 'sourcesTracked'],
  ['reflection_sources', 'reflectionSources'],
]

function matchesStats(t: ExecutionContext, samples: Map<string, Sample[]>, prefix: string, stats: Stats, labels: Record<string, string> = {}) {
  for (const [name, key] of FROM_STATS) t.is(value(samples, prefix + name, labels), stats[key] as number, name)
  for (const reason of [...WIRE_DROP_REASONS, 'handlersBusy', 'closing'] as const)
    t.is(value(samples, `${prefix}dropped_total`, { ...labels, reason }), stats.dropped[reason], `dropped_total{reason=${reason}}`)
}

eachBackend('counters and gauges are stats() at scrape time; the histograms count each call and handler by method and outcome', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  server.handle('echo', (_s, x) => x)
  server.handle('later', async (_s, x) => x)
  server.handle('fail', () => {
    throw new Error('no')
  })
  const registry = new Registry()
  const s = registerMetrics(server, { registry, prefix: 'srv_' })
  registerMetrics(client, { registry, prefix: 'cli_', labels: { node: 'client' } })
  t.true(s.names.includes('srv_requests_received_total') && s.names.includes('srv_call_duration_seconds'))
  for (let i = 0; i < 5; i++) t.deepEqual(await client.call.echo(address, i), [true, i])
  for (let i = 0; i < 3; i++) t.deepEqual(await client.call.later(address, i), [true, i])
  t.like(await client.call.fail(address), [false, null, { code: 'handlerError' }])
  t.like(await client.call.nosuch(address), [false, null, { code: 'unknownMethod' }])
  // a datagram too short to be a message: dropped.tooShort
  const raw = createSocket('udp4')
  t.teardown(() => raw.close())
  raw.send(Buffer.from([0]), address[1], address[0])
  for (let i = 0; i < 200 && server.stats().dropped.tooShort === 0; i++) await new Promise((r) => setTimeout(r, 10))

  const samples = await scrape(registry)
  const [serverStats, clientStats] = [server.stats(), client.stats()]
  t.is(serverStats.dropped.tooShort, 1)
  t.is(serverStats.requestsReceived, 10)
  matchesStats(t, samples, 'srv_', serverStats)
  matchesStats(t, samples, 'cli_', clientStats, { node: 'client' })

  const node = { node: 'client' }
  t.is(value(samples, 'cli_call_duration_seconds_count', { ...node, method: 'echo', outcome: 'ok' }), 5)
  t.is(value(samples, 'cli_call_duration_seconds_count', { ...node, method: 'later', outcome: 'ok' }), 3)
  t.is(value(samples, 'cli_call_duration_seconds_count', { ...node, method: 'fail', outcome: 'handlerError' }), 1)
  t.is(value(samples, 'cli_call_duration_seconds_count', { ...node, method: 'nosuch', outcome: 'unknownMethod' }), 1)
  t.is(value(samples, 'srv_handler_duration_seconds_count', { method: 'echo', outcome: 'ok' }), 5)
  t.is(value(samples, 'srv_handler_duration_seconds_count', { method: 'later', outcome: 'ok' }), 3)
  t.is(value(samples, 'srv_handler_duration_seconds_count', { method: 'fail', outcome: 'error' }), 1)
  // each protocol's histograms see only its own traffic: the server made no calls, the client ran no handler
  t.deepEqual(samples.get('srv_call_duration_seconds_count') ?? [], [])
  t.deepEqual(samples.get('cli_handler_duration_seconds_count') ?? [], [])
  const sum = value(samples, 'cli_call_duration_seconds_sum', { ...node, method: 'echo', outcome: 'ok' })!
  t.true(sum > 0 && sum < 5 * 30, `${sum} s for 5 loopback calls`)
  // the text format carries them too
  t.regex(await registry.metrics(), /^srv_requests_received_total 10$/m)
})

eachBackend('a handler past handlerTimeout is observed once, as outcome timeout', async (t, backend) => {
  const { server, address, client } = await pair(t, backend, undefined, { handlerTimeout: 0.05 })
  server.handle('hang', () => new Promise(() => {}))
  const registry = new Registry()
  registerMetrics(server, { registry })
  t.like(await client.call.hang(address), [false, null, { code: 'handlerTimeout' }])
  const samples = await scrape(registry)
  t.is(value(samples, 'rpcudp_handler_duration_seconds_count', { method: 'hang', outcome: 'timeout' }), 1)
  t.is(value(samples, 'rpcudp_handler_timeouts_total'), 1)
})

eachBackend('unregister() removes every metric and stops observing; closing the protocol does it by itself', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  server.handle('echo', (_s, x) => x)
  const registry = new Registry()
  const first = registerMetrics(client, { registry })
  await client.call.echo(address, 1)
  first.unregister()
  first.unregister()
  t.is((await registry.getMetricsAsJSON()).length, 0)
  await client.call.echo(address, 2)
  // registered again: only the calls made since count
  const second = registerMetrics(client, { registry })
  await client.call.echo(address, 3)
  const samples = await scrape(registry)
  t.is(value(samples, 'rpcudp_call_duration_seconds_count', { method: 'echo', outcome: 'ok' }), 1)
  t.is(value(samples, 'rpcudp_requests_sent_total'), 3)
  t.deepEqual(
    (await registry.getMetricsAsJSON()).map((m) => m.name),
    second.names,
  )
  await client.close()
  t.is((await registry.getMetricsAsJSON()).length, 0, 'closing the protocol unregisters')
  t.notThrows(() => second.unregister())
})

eachBackend('the same names twice in one registry are an RPCArgumentError that registers nothing; another prefix works', async (t, backend) => {
  const { server } = await pair(t, backend)
  const registry = new Registry()
  const first = registerMetrics(server, { registry })
  t.throws(() => registerMetrics(server, { registry }), { instanceOf: RPCArgumentError, code: 'ERR_RPC_INVALID_ARGUMENT', message: /rpcudp_requests_sent_total is registered in this registry already/ })
  t.is((await registry.getMetricsAsJSON()).length, first.names.length)
  const other = registerMetrics(server, { registry, prefix: 'again_' })
  t.is((await registry.getMetricsAsJSON()).length, 2 * first.names.length)
  t.true(other.names.every((n) => n.startsWith('again_')))
  // both registrations of the protocol end when it closes
  await server.close()
  t.is((await registry.getMetricsAsJSON()).length, 0)
})

test('bad arguments are RPCArgumentError', (t) => {
  const proto = new RPCProtocol({ backend: BACKENDS[1] })
  t.teardown(() => proto.close())
  const registry = new Registry()
  const bad: [unknown, unknown, RegExp][] = [
    [{}, undefined, /takes an RPCProtocol, got an object/],
    [undefined, undefined, /takes an RPCProtocol, got undefined/],
    [proto, null, /metrics options must be an object/],
    [proto, 5, /metrics options must be an object/],
    [proto, { regstry: registry }, /unknown option "regstry"; did you mean "registry"/],
    [proto, { registry: {} }, /registry must be a prom-client Registry/],
    [proto, { registry, prefix: '1x_' }, /prefix must be/],
    [proto, { registry, prefix: 'a-b' }, /prefix must be/],
    [proto, { registry, prefix: 3 }, /prefix must be/],
    [proto, { registry, labels: 'node=a' }, /labels must be an object/],
    [proto, { registry, labels: { reason: 'x' } }, /"reason" cannot be a constant label name/],
    [proto, { registry, labels: { 'bad-name': 'x' } }, /"bad-name" cannot be a constant label name/],
    [proto, { registry, labels: { __x: 'x' } }, /"__x" cannot be a constant label name/],
    [proto, { registry, labels: { node: 1 } }, /labels.node must be a string, got 1/],
  ]
  for (const [target, options, message] of bad)
    t.throws(() => registerMetrics(target as RPCProtocol, options as any), { instanceOf: RPCArgumentError, code: 'ERR_RPC_INVALID_ARGUMENT', message })
  t.is(registry.getMetricsAsArray().length, 0)
  // '' is a valid prefix
  t.true(registerMetrics(proto, { registry, prefix: '' }).names.includes('requests_sent_total'))
})

for (const backend of BACKENDS) {
  test.serial(`[${backend}] registerKademliaMetrics: the node's stats(), its lookups' durations and its protocol's metrics`, async (t) => {
    const nodes = [0, 1, 2].map(() => new KademliaNode({ backend, ksize: 5, diversity: false }))
    t.teardown(() => Promise.all(nodes.map((n) => n.close())))
    const addresses = await Promise.all(nodes.map((n) => n.listen(0, '127.0.0.1')))
    const registry = new Registry()
    const registration = registerKademliaMetrics(nodes[2], { registry, labels: { node: 'c' } })
    await nodes[1].bootstrap([addresses[0]])
    await nodes[2].bootstrap([addresses[0], addresses[1]])
    t.true(await nodes[2].set('k', 'v'))
    t.is(await nodes[2].get('k'), 'v') // held locally: no lookup
    t.is(await nodes[2].get('elsewhere'), null)
    const stats = nodes[2].stats()
    const samples = await scrape(registry)
    const c = { node: 'c' }
    t.true(stats.lookups >= 3)
    t.is(value(samples, 'rpcudp_kademlia_lookups_total', c), stats.lookups)
    t.is(value(samples, 'rpcudp_kademlia_lookup_calls_total', c), stats.lookupCalls)
    t.is(value(samples, 'rpcudp_kademlia_contacts', c), stats.contacts)
    t.is(value(samples, 'rpcudp_kademlia_keys', c), stats.keys)
    const lookups = (samples.get('rpcudp_kademlia_lookup_duration_seconds_count') ?? []).reduce((n, s) => n + s.value, 0)
    t.is(lookups, stats.lookups)
    t.is(value(samples, 'rpcudp_kademlia_lookup_duration_seconds_count', { ...c, kind: 'value' }), 1)
    matchesStats(t, samples, 'rpcudp_', stats.rpc!, c)
    // bootstrap pinged both; every call sent has its outcome timed, unless it is still waiting
    t.true(value(samples, 'rpcudp_call_duration_seconds_count', { ...c, method: 'ping', outcome: 'ok' })! >= 2)
    const calls = (samples.get('rpcudp_call_duration_seconds_count') ?? []).reduce((n, s) => n + s.value, 0)
    t.is(calls + stats.rpc!.outstanding, stats.rpc!.requestsSent)
    t.throws(() => registerKademliaMetrics(nodes[2], { registry }), { instanceOf: KademliaArgumentError, message: /rpcudp_kademlia_lookups_total is registered/ })
    t.throws(() => registerKademliaMetrics({} as KademliaNode), { instanceOf: KademliaArgumentError, message: /takes a KademliaNode/ })
    t.throws(() => registerKademliaMetrics(nodes[0], { prefix: '-' }), { instanceOf: KademliaArgumentError, message: /prefix must be/ })
    await nodes[2].close()
    t.is(registry.getMetricsAsArray().length, 0, 'closing the node unregisters')
    t.true(registration.names.includes('rpcudp_kademlia_lookup_duration_seconds'))
  })
}

test('a closed protocol publishes rpcudp:close once, with itself', async (t) => {
  const { subscribe, unsubscribe } = await import('node:diagnostics_channel')
  const proto = new RPCProtocol({ backend: BACKENDS[1] })
  await proto.listen(0, '127.0.0.1')
  const seen: unknown[] = []
  const onClose = (m: unknown) => (m as { protocol: unknown }).protocol === proto && seen.push(m)
  subscribe('rpcudp:close', onClose)
  t.teardown(() => unsubscribe('rpcudp:close', onClose))
  await proto.close()
  await proto.close()
  t.deepEqual(seen, [{ protocol: proto }])
})
