'use strict'
// The Node systems of the benchmark, each as a server (answers `echo` with its
// argument) and a client with one operation: call(done), done(status) where
// status is OK, TIMEOUT or ERROR. Run under `node --import tsx` (bench/run.cjs
// forks every Node child that way), so rpcudp comes straight from src/.

const dgram = require('node:dgram')
const { randomBytes } = require('node:crypto')

const OK = 0
const TIMEOUT = 1
const ERROR = 2
const HOST = '127.0.0.1'
const BUFFER = 4 << 20 // what rpcudp asks for by default; given to every system that lets us
const PAYLOAD = randomBytes(32)

function rpcudp() {
  return require('../../src/index.ts')
}

function bigBuffers(socket) {
  try {
    socket.setRecvBufferSize(BUFFER)
    socket.setSendBufferSize(BUFFER)
  } catch {}
}

function bindDgram() {
  const socket = dgram.createSocket('udp4')
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, HOST, () => {
      socket.off('error', reject)
      bigBuffers(socket)
      resolve(socket)
    })
  })
}

// ---------------------------------------------------------------- rpcudp

/**
 * The controls of issue 12 switched on with limits no benchmark reaches, so
 * only their cost shows: every request goes through the per-source token
 * bucket (in Rust on native) and the per-source handler count, and every call
 * carries an AbortSignal, a fresh one every BENCH_CALLS_PER_SIGNAL calls
 * (default 16, a lookup's worth; 1 is the worst case, a controller per call).
 */
const CONTROLS = { perSource: { requestsPerSecond: 1e9, burst: 1e9, maxHandlers: 1e6 } }
const CALLS_PER_SIGNAL = Math.max(1, Number(process.env.BENCH_CALLS_PER_SIGNAL) || 16)

function rpcudpServer(backend, nativeIo, controls = false) {
  return async () => {
    const { RPCProtocol } = rpcudp()
    const proto = new RPCProtocol({ backend, nativeIo, ...(controls ? CONTROLS : {}) })
    proto.handle('echo', (_sender, value) => value)
    const [, port] = await proto.listen(0, HOST)
    return { port, close: () => proto.close(), stats: () => proto.stats() }
  }
}

function rpcudpClient(backend, nativeIo, controls = false) {
  return async (port, { timeoutMs }) => {
    const { RPCProtocol } = rpcudp()
    const proto = new RPCProtocol({ backend, nativeIo, waitTimeout: timeoutMs / 1000, ...(controls ? CONTROLS : {}) })
    await proto.listen(0, HOST)
    const address = [HOST, port]
    const args = [PAYLOAD] // encoded synchronously by callRemote, so one array serves every call
    let calls = 0
    let options
    return {
      call(done) {
        if (controls && calls++ % CALLS_PER_SIGNAL === 0) options = { signal: new AbortController().signal }
        proto.callRemote(address, 'echo', args, options).then((r) => {
          if (r[0]) done(r[1] !== null && r[1].length === 32 ? OK : ERROR)
          else done(r[2].code === 'timeout' ? TIMEOUT : ERROR)
        })
      },
      close: () => proto.close(),
      stats: () => proto.stats(),
    }
  }
}

// ---------------------------------------------------------------- node:dgram floor
// The pure-JS floor: a u32 id, a Map of pending calls, and a sweep that expires
// calls older than the timeout (so a lost datagram cannot stall a slot forever).
// Datagram: type | id u32 LE | 16 zero bytes | 32-byte payload (53 bytes, an
// rpcudp header plus the argument without its msgpack framing).

async function dgramServer() {
  const socket = await bindDgram()
  socket.on('message', (msg, rinfo) => {
    msg[0] = 1
    socket.send(msg, rinfo.port, rinfo.address)
  })
  return { port: socket.address().port, close: () => socket.close() }
}

async function dgramClient(port, { timeoutMs }) {
  const socket = await bindDgram()
  const pending = new Map()
  let next = 0
  socket.on('message', (msg) => {
    if (msg.length < 5 || msg[0] !== 1) return
    const id = msg.readUInt32LE(1)
    const entry = pending.get(id)
    if (entry === undefined) return
    pending.delete(id)
    entry.done(msg.length === 53 ? OK : ERROR)
  })
  const sweep = setInterval(() => {
    const now = performance.now()
    for (const [id, entry] of pending) {
      if (entry.deadline <= now) {
        pending.delete(id)
        entry.done(TIMEOUT)
      }
    }
  }, Math.max(10, timeoutMs / 4))
  return {
    call(done) {
      const id = (next = (next + 1) >>> 0)
      const buf = Buffer.allocUnsafe(53) // dgram holds the buffer until the send completes
      buf.fill(0, 0, 21)
      buf.writeUInt32LE(id, 1)
      PAYLOAD.copy(buf, 21)
      pending.set(id, { done, deadline: performance.now() + timeoutMs })
      socket.send(buf, port, HOST)
    },
    close() {
      clearInterval(sweep)
      socket.close()
    },
  }
}

// ---------------------------------------------------------------- k-rpc-socket (bencode, BitTorrent DHT KRPC)

async function krpcServer() {
  const krpc = require('k-rpc-socket')
  const socket = await bindDgram()
  const rpc = krpc({ socket })
  rpc.on('query', (query, peer) => rpc.response(peer, query, { v: query.a.v }))
  rpc.on('warning', () => {})
  return { port: socket.address().port, close: () => rpc.destroy() }
}

async function krpcClient(port, { timeoutMs }) {
  const krpc = require('k-rpc-socket')
  const socket = await bindDgram()
  // k-rpc-socket checks ttl every timeout/4 and gives up after 4 checks
  const rpc = krpc({ socket, timeout: timeoutMs })
  rpc.on('warning', () => {})
  const peer = { host: HOST, port }
  const query = { q: 'echo', a: { v: PAYLOAD } } // encoded synchronously by query()
  return {
    call(done) {
      rpc.query(peer, query, (err, res) => {
        if (err) done(err.code === 'ETIMEDOUT' ? TIMEOUT : ERROR)
        else done(res.r && res.r.v && res.r.v.length === 32 ? OK : ERROR)
      })
    },
    close: () => rpc.destroy(),
  }
}

// ---------------------------------------------------------------- dht-rpc (Holepunch, on udx-native)
// Two nodes without bootstrap on loopback; a user command answered with its value.
// The congestion window is raised to the largest level so "calls in flight" means
// what it says (its default, 80 per 750 ms slot, would cap the higher levels).
// Retries stay at the library's default.

const ECHO_COMMAND = 42

async function dhtServer({ maxInflight }) {
  const DHT = require('dht-rpc')
  const node = new DHT({ bootstrap: [], ephemeral: false, firewalled: false, host: HOST, port: 0, maxWindow: Math.max(80, maxInflight) })
  await node.ready()
  node.on('request', (req) => {
    if (req.command === ECHO_COMMAND) req.reply(req.value)
    else req.error(1)
  })
  return { port: node.address().port, close: () => node.destroy() }
}

async function dhtClient(port, { maxInflight }) {
  const DHT = require('dht-rpc')
  const node = new DHT({ bootstrap: [], host: HOST, maxWindow: Math.max(80, maxInflight) })
  await node.ready()
  const to = { host: HOST, port }
  const request = { command: ECHO_COMMAND, value: PAYLOAD }
  return {
    call(done) {
      node.request(request, to).then(
        (res) => done(res.value && res.value.length === 32 ? OK : ERROR),
        (err) => done(err && err.code === 'REQUEST_TIMEOUT' ? TIMEOUT : ERROR),
      )
    },
    close: () => node.destroy(),
  }
}

/** Node systems by name: [server factory, client factory]. */
const SYSTEMS = {
  native: [rpcudpServer('native'), rpcudpClient('native')],
  'native-thread': [rpcudpServer('native', 'thread'), rpcudpClient('native', 'thread')],
  'native-controls': [rpcudpServer('native', undefined, true), rpcudpClient('native', undefined, true)],
  pure: [rpcudpServer('pure'), rpcudpClient('pure')],
  dgram: [dgramServer, dgramClient],
  krpc: [krpcServer, krpcClient],
  dht: [dhtServer, dhtClient],
}

module.exports = { SYSTEMS, OK, TIMEOUT, ERROR, HOST, PAYLOAD, rpcudp }
