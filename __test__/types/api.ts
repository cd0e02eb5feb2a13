/**
 * Compile-time tests of rpcudp's public types (checked by `tsc --noEmit -p
 * __test__/types/tsconfig.json`, which __test__/types.spec.ts runs). Nothing here
 * executes: each `expectType` is an exact-type assertion, and each
 * `@ts-expect-error` fails the build if the line below it ever compiles.
 *
 * It imports the package entry (src/index.ts), i.e. only what users can import.
 */
import {
  RPCProtocol,
  RPCError,
  RPCArgumentError,
  RPCBackendError,
  nativeBackend,
  type Address,
  type BackendChoice,
  type BackendName,
  type CallFailure,
  type CallProxy,
  type CallResult,
  type FailureCode,
  type Handler,
  type RPCProtocolOptions,
  type RemoteOf,
  type Stats,
} from '../../src/index'

/** Exact type equality (not mere assignability). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
declare function expectType<T>(value: T): void
declare function assert<T extends true>(): void

declare const addr: Address

async function typedProxy() {
  interface Remote {
    sum(a: number, b: number): number
    greet(name: string, loud?: boolean): Promise<string>
    nothing(): void
    bytes(b: Uint8Array): Buffer
  }
  const client = new RPCProtocol<Remote>()

  // a typed call returns Promise<CallResult<return type>>, unwrapping async results
  const sum = client.call.sum(addr, 1, 2)
  assert<Equal<typeof sum, Promise<CallResult<number>>>>()
  assert<Equal<Awaited<ReturnType<typeof client.call.greet>>, CallResult<string>>>()
  assert<Equal<Awaited<ReturnType<typeof client.call.nothing>>, CallResult<void>>>()
  client.call.greet(addr, 'snake')
  client.call.greet(addr, 'snake', true)
  client.call.bytes(addr, Buffer.from('x'))

  // @ts-expect-error wrong argument type
  client.call.sum(addr, '1', 2)
  // @ts-expect-error missing argument
  client.call.sum(addr, 1)
  // @ts-expect-error too many arguments
  client.call.sum(addr, 1, 2, 3)
  // @ts-expect-error the address comes first
  client.call.sum(1, 2)
  // @ts-expect-error an address is [host, port]
  client.call.sum(['127.0.0.1', '1234'], 1, 2)
  // @ts-expect-error an address is [host, port], not a string
  client.call.sum('127.0.0.1:1234', 1, 2)

  // CallResult narrows on its first element
  const r = await sum
  if (r[0]) {
    expectType<number>(r[1])
    // @ts-expect-error a success has no failure element
    r[2]
  } else {
    expectType<null>(r[1])
    expectType<CallFailure>(r[2])
    assert<Equal<typeof r[2]['code'], FailureCode>>()
    expectType<string>(r[2].message)
  }

  // methods not in Remote still work, untyped (any, so that noUncheckedIndexedAccess does not make them uncallable: see nounchecked.ts)
  const other = client.call.somethingElse(addr, 1, 'x', { a: [1] })
  assert<Equal<typeof other, any>>()
}

async function untyped() {
  const proto = new RPCProtocol()
  const r: CallResult = await proto.call.anything(addr, 1, 'two', [3], new Map(), Buffer.alloc(1), 5n, null)
  expectType<boolean>(r[0])

  // the explicit form, with a result type and per-call options
  const e = proto.callRemote<string[]>(addr, 'list', [1, 2], { timeout: 0.5 })
  assert<Equal<typeof e, Promise<CallResult<string[]>>>>()
  const d = proto.callRemote(addr, 'list')
  assert<Equal<typeof d, Promise<CallResult<any>>>>()
  // @ts-expect-error args is an array, not spread
  proto.callRemote(addr, 'list', 1, 2)
  // @ts-expect-error timeout is seconds as a number
  proto.callRemote(addr, 'list', [], { timeout: '1s' })
  // @ts-expect-error unknown call option
  proto.callRemote(addr, 'list', [], { retries: 3 })

  // CallProxy is usable on its own
  const typed: CallProxy<{ f(x: string): boolean }> = new RPCProtocol<{ f(x: string): boolean }>().call
  assert<Equal<ReturnType<typeof typed.f>, Promise<CallResult<boolean>>>>()
}

async function handlers() {
  const proto = new RPCProtocol()
  // handle() is chainable; the sender is an Address; handlers may be async
  const same = proto
    .handle('ping', (sender) => {
      expectType<Address>(sender)
      expectType<string>(sender[0])
      expectType<number>(sender[1])
      return 'pong'
    })
    .handle('add', (_sender, a: number, b: number) => a + b)
    .handle('later', async () => 1)
  expectType<RPCProtocol>(same)
  const h: Handler = (_sender, ...args) => args.length
  proto.handle('count', h)
  // @ts-expect-error the name is a string
  proto.handle(1, h)
  // @ts-expect-error the handler is a function
  proto.handle('x', 'pong')

  // subclassing with rpc_<name> methods
  class Node extends RPCProtocol<{ find(key: string): string[] }> {
    rpc_find(_sender: Address, key: string): string[] {
      return [key]
    }
  }
  const node = new Node({ waitTimeout: 1 })
  const found = await node.call.find(addr, 'k')
  assert<Equal<typeof found, CallResult<string[]>>>()

  const bound = await proto.listen(0, '127.0.0.1')
  expectType<Address>(bound)
  await proto.listen()
  // @ts-expect-error the port is a number
  await proto.listen('1234')
  expectType<Promise<void>>(proto.close())
  expectType<RPCProtocol>(proto.ref().unref())
}

function options() {
  const all: RPCProtocolOptions = {
    waitTimeout: 5,
    backend: 'auto',
    maxBodySize: 8192,
    maxOutstanding: 1,
    maxHandlers: 1,
    errorReplies: true,
    exposeErrors: false,
    checkSender: true,
    recvBufferSize: 1,
    sendBufferSize: 1,
  }
  new RPCProtocol(all)
  new RPCProtocol({})
  new RPCProtocol({ backend: 'native' })
  new RPCProtocol({ backend: 'pure', waitTimeout: 0.25 })
  // @ts-expect-error backend is auto, native or pure
  new RPCProtocol({ backend: 'rust' })
  // @ts-expect-error waitTimeout is seconds as a number
  new RPCProtocol({ waitTimeout: '5' })
  // @ts-expect-error unknown option (Python's spelling)
  new RPCProtocol({ wait_timeout: 5 })
  // @ts-expect-error errorReplies is a boolean
  new RPCProtocol({ errorReplies: 1 })

  assert<Equal<BackendName, 'native' | 'pure'>>()
  assert<Equal<BackendChoice, 'auto' | 'native' | 'pure'>>()
  expectType<BackendName>(new RPCProtocol().backend)
  // @ts-expect-error backend is read-only
  new RPCProtocol().backend = 'pure'
}

function statsAndErrors() {
  const s: Stats = new RPCProtocol().stats()
  expectType<number>(s.requestsSent)
  expectType<number>(s.timeouts)
  expectType<number>(s.droppedTotal)
  expectType<number>(s.dropped.handlersBusy)
  expectType<number>(s.dropped.wrongSender)
  // @ts-expect-error no such counter
  s.dropped.nonsense

  const n = nativeBackend()
  if (n.available) {
    // @ts-expect-error no reason when available
    n.reason
  } else expectType<string>(n.reason)
  expectType<'node' | 'bun' | 'deno'>(n.runtime)
  expectType<'loop' | 'thread'>(n.defaultIo)
  expectType<string | undefined>(n.loopUnavailable)
  expectType<'loop' | 'thread' | undefined>(new RPCProtocol().nativeIo)

  const err: unknown = null
  if (err instanceof RPCError) expectType<string>(err.code)
  expectType<RPCError>(new RPCArgumentError('x'))
  expectType<RPCError>(new RPCBackendError('x'))
}

async function controls(proto: RPCProtocol) {
  const ac = new AbortController()
  const r = await proto.callRemote(addr, 'find_node', [1], { timeout: 2, signal: ac.signal })
  if (!r[0]) expectType<'aborted' | 'handlerTimeout' extends FailureCode ? true : false>(true)
  // @ts-expect-error a signal is an AbortSignal
  proto.callRemote(addr, 'x', [], { signal: {} })
  new RPCProtocol({ handlerTimeout: 10, perSource: { requestsPerSecond: 200, burst: 400, maxHandlers: 32, maxSources: 65536 } })
  // @ts-expect-error perSource is an object of numbers
  new RPCProtocol({ perSource: { requestsPerSecond: '200' } })
  expectType<Address | null>(proto.address())
  expectType<Promise<void>>(proto.close({ drain: 2 }))
  expectType<AbortSignal>(proto.handlerSignal)
  const s = proto.stats()
  expectType<number>(s.dropped.rateLimited)
  expectType<number>(s.dropped.closing)
  expectType<number>(s.handlerTimeouts)
  expectType<number>(s.sourcesTracked)
}

async function remoteOfAndHandle() {
  class Server extends RPCProtocol {
    rpc_sum(_sender: Address, a: number, b: number) {
      return a + b
    }
    async rpc_greet(_sender: Address, name: string): Promise<string> {
      return name
    }
    notRpc(x: number) {
      return x
    }
    rpc_notAMethod = 5
  }
  type R = RemoteOf<Server>
  assert<Equal<keyof R, 'sum' | 'greet'>>()
  assert<Equal<R['sum'], (a: number, b: number) => number>>()
  const client = new RPCProtocol<RemoteOf<Server>>()
  const sum = client.call.sum(addr, 1, 2)
  assert<Equal<typeof sum, Promise<CallResult<number>>>>()
  assert<Equal<Awaited<ReturnType<typeof client.call.greet>>, CallResult<string>>>()
  // @ts-expect-error sum takes numbers
  client.call.sum(addr, 1, 'two')
  // @ts-expect-error the sender is not the caller's to give
  client.call.sum(addr, addr, 1, 2)

  // handle() infers the handler's argument and return types from the function
  const proto = new RPCProtocol()
  proto.handle('add', (sender, a: number, b: number) => {
    expectType<Address>(sender)
    return a + b
  })
  proto.handle('later', async (_sender, s: string) => s.length)
  // @ts-expect-error the sender is an Address, not a string
  proto.handle('bad', (sender: string) => sender)

  // await using closes at the end of the scope
  {
    await using p = new RPCProtocol()
    expectType<Promise<void>>(p[Symbol.asyncDispose]())
  }
}

export { typedProxy, untyped, handlers, options, statsAndErrors, controls, remoteOfAndHandle }
