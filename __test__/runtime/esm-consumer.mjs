// The ES-module consumer of an installed rpcudp, run by run-all.cjs under each
// runtime from a staged project (node_modules/rpcudp holds the package's files
// as npm would install them: package.json, binding.js, the addon, dist/).
//
//   <runtime> esm-consumer.mjs <expect-json>
//
// Prints "ok N - name" / "not ok N - name", then "# pass N" and "# fail N".
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { RPCProtocol, RPCError, nativeBackend } from 'rpcudp'

const expectAuto = JSON.parse(process.argv[2] ?? '{}')
let pass = 0
let fail = 0
async function check(name, fn) {
  try {
    await fn()
    pass++
    console.log(`ok ${pass + fail} - ${name}`)
  } catch (err) {
    fail++
    console.log(`not ok ${pass + fail} - ${name}\n  # ${String(err?.stack ?? err).replace(/\n/g, '\n  # ')}`)
  }
}

await check('import and require share one module instance', () => {
  const cjs = createRequire(import.meta.url)('rpcudp')
  assert.equal(cjs.RPCProtocol, RPCProtocol)
  assert.equal(cjs.RPCError, RPCError)
})

await check('auto runs what the matrix says and answers a call', async () => {
  assert.equal(nativeBackend().available, true, nativeBackend().reason)
  const server = new RPCProtocol()
  server.handle('sum', (_s, a, b) => a + b)
  const client = new RPCProtocol()
  try {
    const address = await server.listen(0, '127.0.0.1')
    await client.listen(0, '127.0.0.1')
    assert.deepEqual([client.backend, client.nativeIo], [expectAuto.backend, expectAuto.nativeIo])
    assert.deepEqual(await client.call.sum(address, 2, 3), [true, 5])
  } finally {
    await client.close()
    await server.close()
  }
})

console.log(`# pass ${pass}\n# fail ${fail}`)
if (fail) process.exitCode = 1
