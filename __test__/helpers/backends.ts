import test, { type ExecutionContext } from 'ava'
import { RPCProtocol, type BackendName, type RPCProtocolOptions } from '../../src/index'

/** Every behaviour test runs once per backend: a test only one backend passes is a bug in the other. */
export const BACKENDS: readonly BackendName[] = ['native', 'pure']

/** Registers `fn` as one test per backend, titled "[native] ..." and "[pure] ...". */
export function eachBackend(title: string, fn: (t: ExecutionContext, backend: BackendName) => Promise<void> | void) {
  for (const backend of BACKENDS) test(`[${backend}] ${title}`, (t) => fn(t, backend))
}

/** Same, serially (timing-sensitive tests). */
export function eachBackendSerial(title: string, fn: (t: ExecutionContext, backend: BackendName) => Promise<void> | void) {
  for (const backend of BACKENDS) test.serial(`[${backend}] ${title}`, (t) => fn(t, backend))
}

/** A listening protocol on loopback that the test closes when it ends. */
export async function listening<P extends RPCProtocol<any>>(
  t: ExecutionContext,
  make: (options: RPCProtocolOptions) => P,
  options: RPCProtocolOptions,
  host = '127.0.0.1',
): Promise<{ proto: P; address: [string, number] }> {
  const proto = make(options)
  t.teardown(() => proto.close())
  const address = await proto.listen(0, host)
  return { proto, address }
}

/** A server and a client of the given backend(s). */
export async function pair<S extends RPCProtocol<any>>(
  t: ExecutionContext,
  backend: BackendName,
  makeServer: (options: RPCProtocolOptions) => S = (o) => new RPCProtocol(o) as S,
  options: RPCProtocolOptions = {},
  clientBackend: BackendName = backend,
) {
  const server = await listening(t, makeServer, { ...options, backend })
  const client = await listening(t, (o) => new RPCProtocol<any>(o), { ...options, backend: clientBackend })
  return { server: server.proto, address: server.address, client: client.proto, clientAddress: client.address }
}
