// The original rpcudp README's client: calls `sayhi` from UDP port 5678.
import { RPCProtocol, type CallResult } from 'rpcudp'

class RPCClient extends RPCProtocol<{ sayhi(name: string): string }> {
  handleResult(result: CallResult<string>) {
    // result[0] says whether a response was received; result[1] is the response.
    if (result[0]) console.log(`Success! ${result[1]}`)
    else console.log('Response not received.')
  }
}

async function main() {
  const client = new RPCClient()
  await client.listen(5678, '127.0.0.1')
  client.handleResult(await client.call.sayhi(['127.0.0.1', 1234], process.argv[2] ?? 'Snake Plissken'))
  await client.close()
}
main()
