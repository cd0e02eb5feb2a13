// A TypeScript rpcudp/kademlia node for examples/kademlia (see README.md).
//
//   npx tsx examples/kademlia/ts_node.ts [PORT] [BOOTSTRAP_PORT]
//
// Listens on 127.0.0.1:PORT (default 8469), joins through 127.0.0.1:BOOTSTRAP_PORT
// (default 8468, where python_node.py listens), stores "from-typescript", then
// waits (up to 60 s) for the key "from-python" and exits.
import { KademliaNode } from 'rpcudp/kademlia'

const port = Number(process.argv[2] ?? 8469)
const bootstrapPort = Number(process.argv[3] ?? 8468)

async function main() {
  const node = new KademliaNode()
  await node.listen(port, '127.0.0.1')
  const found = await node.bootstrap([['127.0.0.1', bootstrapPort]])
  console.log(`typescript: node ${node.id.toString('hex').slice(0, 8)}… on 127.0.0.1:${port} (${node.backend} backend), joined through ${found.length} node(s)`)
  console.log(`typescript: set('from-typescript') -> ${await node.set('from-typescript', 'hello from TypeScript')}`)
  let value = null
  for (let i = 0; i < 120 && value === null; i++) {
    value = await node.get('from-python')
    if (value === null) await new Promise((r) => setTimeout(r, 500))
  }
  console.log(`typescript: get('from-python') -> ${JSON.stringify(value)}`)
  await node.close()
  process.exitCode = value === null ? 1 : 0
}

void main()
