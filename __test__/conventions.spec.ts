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

eachBackend('await using closes the protocol when the scope ends', async (t, backend) => {
  let kept: RPCProtocol
  {
    await using proto = new RPCProtocol({ backend })
    await proto.listen(0, '127.0.0.1')
    kept = proto
    t.truthy(proto.address())
  }
  t.is(kept.address(), null)
  await t.throwsAsync(kept.listen(0, '127.0.0.1'), { instanceOf: RPCStateError, code: 'ERR_RPC_CLOSED' })
  t.is(typeof RPCProtocol.prototype[Symbol.asyncDispose], 'function')
})

eachBackend('a second listen() is an RPCStateError and leaves the first socket bound', async (t, backend) => {
  const proto = new RPCProtocol({ backend })
  t.teardown(() => proto.close())
  const bound = await proto.listen(0, '127.0.0.1')
  await t.throwsAsync(proto.listen(0, '127.0.0.1'), { instanceOf: RPCStateError, code: 'ERR_RPC_ALREADY_LISTENING' })
  t.deepEqual(proto.address(), bound)
})

test('an unknown option is an RPCArgumentError naming the nearest valid one', (t) => {
  const cases: [object, RegExp][] = [
    [{ waitTimeot: 5 }, /RPCProtocol options: unknown option "waitTimeot"; did you mean "waitTimeout"\?/],
    [{ maxHandler: 5 }, /"maxHandler"; did you mean "maxHandlers"/],
    [{ backnd: 'pure' }, /"backnd"; did you mean "backend"/],
    [{ perSource: { requestPerSecond: 5 } }, /perSource: unknown option "requestPerSecond"; did you mean "requestsPerSecond"/],
    [{ perSource: { brust: 5, requestsPerSecond: 5 } }, /perSource: unknown option "brust"; did you mean "burst"/],
  ]
  for (const [options, message] of cases) t.throws(() => new RPCProtocol(options as any), { instanceOf: RPCArgumentError, message })
  // every documented option is accepted (and nothing is bound, so nothing to close)
  t.notThrows(() =>
    new RPCProtocol({
      waitTimeout: 1, backend: 'pure', maxBodySize: 100, maxOutstanding: 1, maxHandlers: 1, errorReplies: true, exposeErrors: false,
      checkSender: true, recvBufferSize: 1 << 16, sendBufferSize: 1 << 16, nativeIo: 'loop', handlerTimeout: 1,
      perSource: { requestsPerSecond: 1, burst: 1, maxHandlers: 1, maxSources: 1 },
    }),
  )
})
