/**
 * node:diagnostics_channel publication on both backends: rpcudp:call,
 * rpcudp:handle (TracingChannels) and rpcudp:drop. Channels are process-wide,
 * so the tests run serially and each keeps only the messages for its own sockets.
 */
import test from 'ava'
import diagnostics_channel from 'node:diagnostics_channel'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import type { Address } from '../src/index'
import { callChannel, handleChannel } from '../src/diagnostics'
import { eachBackendSerial, pair } from './helpers/backends'

type Event = [string, Record<string, unknown>]

/** Subscribes to every event of a TracingChannel until the test ends, recording [event, snapshot of the context]. */
function record(t: import('ava').ExecutionContext, name: string, keep: (ctx: any) => boolean): Event[] {
  const events: Event[] = []
  const tc = diagnostics_channel.tracingChannel(name)
  const push = (kind: string) => (ctx: any) => {
    if (keep(ctx)) events.push([kind, { ...ctx }])
  }
  const handlers = { start: push('start'), end: push('end'), asyncStart: push('asyncStart'), asyncEnd: push('asyncEnd'), error: push('error') }
  tc.subscribe(handlers)
  t.teardown(() => tc.unsubscribe(handlers))
  return events
}

const until = async (cond: () => boolean) => {
  while (!cond()) await new Promise((r) => setTimeout(r, 5))
}

eachBackendSerial('rpcudp:call traces each call: start/end, then asyncEnd with result and failure code', async (t, backend) => {
  const { server, address, client } = await pair(t, backend, undefined, { waitTimeout: 2 })
  server.handle('sum', (_s, a: number, b: number) => a + b)
  const events = record(t, 'rpcudp:call', (ctx) => ctx.address === address)
  t.deepEqual(await client.call.sum(address, 1, 2), [true, 3])
  const failed = await client.callRemote(address, 'nosuch')
  t.is(failed[0], false)
  t.deepEqual(
    events.map(([kind]) => kind),
    ['start', 'end', 'asyncStart', 'asyncEnd', 'start', 'end', 'asyncStart', 'asyncEnd'],
  )
  t.deepEqual(events[3], ['asyncEnd', { address, method: 'sum', backend, result: [true, 3] }])
  t.like(events[7][1], { address, method: 'nosuch', backend, code: 'unknownMethod', result: failed })
})

eachBackendSerial('rpcudp:call: a call refused at once (bad address) publishes error and still rejects', async (t, backend) => {
  const { client } = await pair(t, backend)
  const bad = ['127.0.0.1', 70000] as Address
  const events = record(t, 'rpcudp:call', (ctx) => ctx.address === bad)
  await t.throwsAsync(client.callRemote(bad, 'x'), { code: 'ERR_RPC_INVALID_ARGUMENT' })
  t.deepEqual(
    events.map(([kind]) => kind),
    ['start', 'error', 'end'],
  )
})

eachBackendSerial('rpcudp:handle traces sync and async handlers, with the error when one throws or rejects', async (t, backend) => {
  const { server, address, client, clientAddress } = await pair(t, backend)
  server.handle('sync', (_s, x: number) => x * 2)
  server.handle('async', async (_s, x: number) => x + 1)
  server.handle('throws', () => {
    throw new Error('sync boom')
  })
  server.handle('rejects', async () => {
    throw new Error('async boom')
  })
  const same = (a: Address, b: Address) => a[0] === b[0] && a[1] === b[1]
  const events = record(t, 'rpcudp:handle', (ctx) => same(ctx.sender, clientAddress))
  await client.call.sync(address, 2)
  t.deepEqual(events.map(([k]) => k), ['start', 'end'])
  t.deepEqual(events[1][1], { sender: clientAddress, method: 'sync', result: 4 })
  events.length = 0
  await client.call.async(address, 2)
  t.deepEqual(events.map(([k]) => k), ['start', 'end', 'asyncStart', 'asyncEnd'])
  t.like(events[3][1], { sender: clientAddress, method: 'async', result: 3 })
  events.length = 0
  await client.call.throws(address)
  t.deepEqual(events.map(([k]) => k), ['start', 'error', 'end'])
  t.is((events[1][1].error as Error).message, 'sync boom')
  events.length = 0
  await client.call.rejects(address)
  t.deepEqual(events.map(([k]) => k), ['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
  t.is((events[4][1].error as Error).message, 'async boom')
})

eachBackendSerial('rpcudp:drop reports a dropped datagram with its reason and sender, at most 10 a second', async (t, backend) => {
  const { server, address } = await pair(t, backend)
  const socket = createSocket('udp4')
  t.teardown(() => socket.close())
  socket.bind(0, '127.0.0.1')
  await once(socket, 'listening')
  const from: Address = ['127.0.0.1', socket.address().port]
  const messages: unknown[] = []
  const onDrop = (m: any) => {
    if (m.sender?.[1] === from[1]) messages.push(m)
  }
  diagnostics_channel.subscribe('rpcudp:drop', onDrop)
  t.teardown(() => diagnostics_channel.unsubscribe('rpcudp:drop', onDrop))
  const sent = 50
  for (let i = 0; i < sent; i++) socket.send(Buffer.from([0]), address[1], address[0])
  await until(() => server.stats().dropped.tooShort >= sent)
  await until(() => messages.length > 0)
  t.deepEqual(messages[0], { reason: 'tooShort', sender: from })
  // 50 drops in well under two one-second windows: at most 10 per window
  t.true(messages.length <= 20, `${messages.length} messages`)
})

eachBackendSerial('with no subscriber, calls and handlers never enter the tracing path', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  server.handle('sum', (_s, a: number, b: number) => a + b)
  t.false(callChannel.hasSubscribers)
  t.false(handleChannel.hasSubscribers)
  const { tracePromise } = callChannel
  const { traceSync } = handleChannel
  const refuse = () => {
    throw new Error('the tracing path ran with nobody subscribed')
  }
  callChannel.tracePromise = refuse
  handleChannel.traceSync = refuse
  try {
    t.deepEqual(await client.call.sum(address, 1, 2), [true, 3])
  } finally {
    callChannel.tracePromise = tracePromise
    handleChannel.traceSync = traceSync
  }
})
