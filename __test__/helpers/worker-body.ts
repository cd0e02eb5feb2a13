/**
 * A Worker's side of the workers suite (run by worker-scenario.ts): opens
 * listening sockets, leaves calls outstanding (one unanswered, one to the
 * main thread's server), reports ready, then ends the way `workerData.end`
 * says, never calling close().
 */
import { parentPort, workerData } from 'node:worker_threads'
import { RPCProtocol, type Address, type BackendName } from '../../src/index'

export type WorkerEnd = 'return' | 'terminate' | 'uncaught' | 'exit'
export interface WorkerInput {
  backend: BackendName
  nativeIo: 'loop' | 'thread'
  end: WorkerEnd
  mainServer: Address
}

async function main(input: WorkerInput) {
  const options = { backend: input.backend, nativeIo: input.nativeIo, waitTimeout: 30 }
  const server = new RPCProtocol(options)
  server.handle('hang', () => new Promise(() => {}))
  const serverAddress = await server.listen(0, '127.0.0.1')
  const client = new RPCProtocol(options)
  await client.listen(0, '127.0.0.1')
  // Outstanding when the Worker ends: two never answered, one the main thread answers after 1 s.
  for (const target of [serverAddress, input.mainServer, serverAddress]) void client.callRemote(target, target === serverAddress ? 'hang' : 'slow')
  // Long enough for the datagrams to be out.
  await new Promise((r) => setTimeout(r, 20))
  parentPort!.postMessage({ ready: true, outstanding: client.stats().outstanding, backend: client.backend, nativeIo: client.nativeIo })
  if (input.end === 'return') {
    // Nothing left that keeps the Worker's loop alive: it ends by itself, sockets still open.
    server.unref()
    client.unref()
  } else if (input.end === 'uncaught') {
    setTimeout(() => {
      throw new Error('uncaught in worker')
    }, 10)
  } else if (input.end === 'exit') {
    setTimeout(() => process.exit(3), 10)
  } // 'terminate': the parent terminates us
}

main(workerData as WorkerInput).catch((err) => {
  parentPort!.postMessage({ error: String(err?.stack ?? err) })
})
