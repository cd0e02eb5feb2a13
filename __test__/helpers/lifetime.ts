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
  } else if (scenario === 'env') {
    const pick = (b: BackendChoice) => new RPCProtocol({ backend: b }).backend
    console.log(JSON.stringify({ auto: pick('auto'), native: pick('native'), pure: pick('pure') }))
  }
}
main().catch((err) => {
  console.error(err)
  process.exit(1)
})
