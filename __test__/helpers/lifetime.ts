/** Child-process scenarios for the process-lifetime tests in protocol.spec.ts. */
import { RPCProtocol, nativeBackend, type BackendChoice } from '../../src/index'

const [scenario, backend] = process.argv.slice(2) as [string, BackendChoice]

async function main() {
  if (scenario === 'close') {
    const server = new RPCProtocol({ backend })
    server.handle('x', () => 1)
    const address = await server.listen(0, '127.0.0.1')
    const client = new RPCProtocol({ backend, waitTimeout: 60 })
    await client.listen(0, '127.0.0.1')
    await client.call.x(address)
    const pending = client.call.x(['127.0.0.1', 9]) // never answered
    await client.close()
    await server.close()
    await pending
    console.log('closed') // then nothing may keep the loop alive
  } else if (scenario === 'idle') {
    await new RPCProtocol({ backend }).listen(0, '127.0.0.1')
    console.log('listening')
  } else if (scenario === 'unref') {
    const p = new RPCProtocol({ backend })
    await p.listen(0, '127.0.0.1')
    p.unref()
    console.log('listening')
  } else if (scenario === 'nobinary') {
    const auto = new RPCProtocol()
    let nativeError: { code?: string; message?: string } = {}
    try {
      new RPCProtocol({ backend: 'native' })
    } catch (err: any) {
      nativeError = { code: err.code, message: err.message }
    }
    auto.handle('sum', (_s, a: number, b: number) => a + b)
    const address = await auto.listen(0, '127.0.0.1')
    const call = await auto.call.sum(address, 1, 2)
    await auto.close()
    console.log(JSON.stringify({ auto: auto.backend, nativeError, status: nativeBackend(), call }))
  } else if (scenario === 'droplog') {
    // 500 datagrams too short to be anything: all counted, a few logged (NODE_DEBUG=rpcudp).
    const server = new RPCProtocol({ backend })
    server.handle('x', () => 1)
    const address = await server.listen(0, '127.0.0.1')
    const raw = (await import('node:dgram')).createSocket('udp4')
    for (let i = 0; i < 500; i++) raw.send(Buffer.from([1, 2, 3]), address[1], address[0])
    const client = new RPCProtocol({ backend })
    await client.listen(0, '127.0.0.1')
    while (server.stats().dropped.tooShort < 500) await new Promise((r) => setTimeout(r, 5))
    const call = await client.call.x(address)
    raw.close()
    await client.close()
    await server.close()
    console.log(JSON.stringify({ tooShort: server.stats().dropped.tooShort, call }))
  } else if (scenario === 'env') {
    const pick = (b: BackendChoice) => new RPCProtocol({ backend: b }).backend
    console.log(JSON.stringify({ auto: pick('auto'), native: pick('native'), pure: pick('pure') }))
  }
}
main().catch((err) => {
  console.error(err)
  process.exit(1)
})
