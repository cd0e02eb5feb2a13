/**
 * Run by surface.spec.ts inside a network namespace of its own whose loopback
 * has the link-local address fe80::1: binds, calls and reports senders with a
 * zone on each backend and prints one JSON line of outcomes per backend.
 */
import { networkInterfaces } from 'node:os'
import { RPCProtocol, type Address, type BackendName } from '../../src/index'

const LINK_LOCAL = 'fe80::1'

async function outcome(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await fn() }
  } catch (err) {
    return { error: (err as Error).name, code: (err as { code?: string }).code }
  }
}

async function run(backend: BackendName) {
  const index = networkInterfaces().lo?.find((a) => a.address === LINK_LOCAL)?.scopeid
  const open: RPCProtocol[] = []
  const proto = async (host: string) => {
    const p = new RPCProtocol({ backend, waitTimeout: 2 })
    open.push(p)
    p.handle('whoami', (sender: Address) => sender)
    return { p, address: await p.listen(0, host) }
  }
  try {
    const server = await proto(`${LINK_LOCAL}%lo`)
    const client = await proto(`${LINK_LOCAL}%lo`)
    const dual = await proto('::')
    const port = server.address[1]
    return {
      backend,
      bound: server.address[0],
      byName: await outcome(() => client.p.call.whoami([`${LINK_LOCAL}%lo`, port])),
      byIndex: await outcome(() => client.p.call.whoami([`${LINK_LOCAL}%${index}`, port])),
      fromDualStack: await outcome(() => dual.p.call.whoami([`${LINK_LOCAL}%lo`, port])),
      // A socket on '::' can answer a link-local sender only through the zone it reported.
      toDualStack: await outcome(() => client.p.call.whoami([`${LINK_LOCAL}%lo`, dual.address[1]])),
      // The server answers the sender it saw: its zone must lead back to the client.
      clientPort: client.address[1],
      dualPort: dual.address[1],
      noSuchZone: await outcome(() => new RPCProtocol({ backend }).listen(0, `${LINK_LOCAL}%nosuch0`)),
      withoutZone: await outcome(() => client.p.callRemote([LINK_LOCAL, port], 'whoami', [], { timeout: 0.3 })),
      // An unknown zone is scope 0 on both backends (as libuv makes it): what happens is the kernel's choice, the same for both.
      unknownZone: await outcome(async () => {
        const before = dual.p.stats().dropped.sendFailed
        const [ok, , failure] = await dual.p.callRemote([`${LINK_LOCAL}%nosuch0`, port], 'whoami', [], { timeout: 0.3 })
        return [ok, failure?.code, dual.p.stats().dropped.sendFailed - before]
      }),
    }
  } finally {
    for (const p of open) await p.close()
  }
}

void (async () => {
  for (const backend of ['native', 'pure'] as const) console.log(JSON.stringify(await run(backend)))
})()
