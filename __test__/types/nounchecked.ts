/**
 * The README's client, as a consumer sees the built declarations (dist/), under `noUncheckedIndexedAccess` (compiled by
 * tsconfig.nounchecked.json): untyped names stay callable, typed ones typed.
 */
import { RPCProtocol, type Address, type CallResult } from '../../dist/index'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
declare function assert<T extends true>(): void

export async function readmeClient() {
  const client = new RPCProtocol<{ sum(a: number, b: number): number }>()
  await client.listen(0, '127.0.0.1')
  const peer: Address = ['127.0.0.1', 1234]
  const typed = client.call.sum(peer, 1, 2)
  assert<Equal<typeof typed, Promise<CallResult<number>>>>()
  const [ok2, , failure] = await client.call.nosuch(peer)
  if (!ok2) failure.code
  const untyped = new RPCProtocol()
  await untyped.call.anything(peer, 1)
  await using scoped = new RPCProtocol()
  await scoped.listen()
}
