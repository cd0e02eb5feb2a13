// The original rpcudp README's server: accepts `sayhi` on UDP port 1234.
import { RPCProtocol, type Address } from 'rpcudp'

class RPCServer extends RPCProtocol {
  // Any method starting with "rpc_" is available to clients.
  rpc_sayhi(sender: Address, name: string) {
    // This could return a Promise as well. sender is [host, port].
    return `Hello ${name} you live at ${sender[0]}:${sender[1]}`
  }
}

const server = new RPCServer()
server.listen(1234, '127.0.0.1').then(([host, port]) => {
  console.log(`server listening on ${host}:${port} (${server.backend} backend)`)
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => server.close())
