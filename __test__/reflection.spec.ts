/**
 * The reflection bound (issue 20): a raw socket spoofs 2 000 find_node
 * requests from a victim's address at a Kademlia node with a full routing
 * table. The victim, which never answers, may receive at most 8 KiB + 2x the
 * attacker's bytes. The same flood with the bound off shows what it prevents,
 * and a legitimate newcomer bootstrapping through the flooded node is unaffected.
 */
import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { join } from 'node:path'
import { KademliaNode, type KademliaNodeOptions } from '../src/kademlia'
import type { BackendName } from '../src/index'
import { BACKENDS } from './helpers/backends'
import { REQUEST, datagram, newId, requestBody, sleep } from './helpers/raw'

const SPOOFED = 2000
const VICTIM = '127.0.0.77'

async function network(t: ExecutionContext, backend: BackendName, n: number, options: KademliaNodeOptions = {}) {
  const nodes: KademliaNode[] = []
  t.teardown(() => Promise.all(nodes.map((x) => x.close())))
  for (let i = 0; i < n; i++) {
    const node = new KademliaNode({ backend, diversity: false, ...options })
    nodes.push(node)
    await node.listen(0, '127.0.0.1')
    if (i > 0) await node.bootstrap([nodes[0].address()!])
  }
  return nodes
}

/** Floods `port` with `count` copies of `payload` from VICTIM:victimPort; resolves with the attacker's bytes. */
async function spoof(port: number, payload: Buffer, victimPort: number): Promise<number> {
  const child = spawn('python3', [join(__dirname, 'helpers/spoof_flood.py'), String(port), String(SPOOFED), payload.toString('hex'), `${VICTIM}:${victimPort}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 60_000,
  })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  const code = await new Promise<number | null>((r) => child.on('exit', r))
  if (code !== 0) throw new Error(`spoof_flood.py exited ${code}`)
  return (JSON.parse(out) as { sent: number }).sent * payload.length
}

/** A victim socket that counts what it receives and never answers. */
async function victim(t: ExecutionContext) {
  const socket = createSocket('udp4')
  const got = { bytes: 0, datagrams: 0 }
  socket.on('message', (m) => {
    got.bytes += m.length
    got.datagrams++
  })
  await new Promise<void>((r) => socket.bind(0, VICTIM, r))
  // Native replies in sendmmsg batches; a default 208 KiB buffer would drop them and hide the amplification.
  socket.setRecvBufferSize(4 << 20)
  t.teardown(() => socket.close())
  return { port: socket.address().port, got }
}

async function flood(t: ExecutionContext, backend: BackendName, reflection: boolean) {
  const nodes = await network(t, backend, 40, reflection ? {} : { rpc: { reflection: false } })
  const target = nodes[0]
  const v = await victim(t)
  // Python kademlia's find_node(sender_id, key): a fresh claimed id, a random key.
  const payload = datagram(REQUEST, newId(), requestBody('find_node', [newId(), newId()]))
  const before = target.stats().rpc!
  const attacker = await spoof(target.address()![1], payload, v.port)
  await sleep(1500)
  const after = target.stats().rpc!
  const held = after.dropped.unverified - before.dropped.unverified
  t.log(
    `[${backend}] reflection ${reflection ? 'on' : 'off'}: attacker sent ${attacker} B in ${SPOOFED} datagrams; ` +
      `victim received ${v.got.bytes} B in ${v.got.datagrams} datagrams (${(v.got.bytes / attacker).toFixed(2)}x); ` +
      `${held} replies held back; ${after.requestsReceived - before.requestsReceived} requests received`,
  )
  return { nodes, attacker, victim: v.got.bytes, held, received: after.requestsReceived - before.requestsReceived }
}

for (const backend of BACKENDS) {
  test.serial(`[${backend}] 2 000 spoofed find_node requests reflect at most 8 KiB + 2x their bytes at the victim`, async (t) => {
    const r = await flood(t, backend, true)
    t.true(r.received >= SPOOFED * 0.9, `the node saw the flood: ${r.received} requests`)
    t.true(r.victim <= 8192 + 2 * r.attacker, `${r.victim} B > 8 KiB + 2 x ${r.attacker} B`)
    t.true(r.held > 0, 'replies were held back and counted as unverified')
    // A newcomer bootstrapping through the flooded node gets a full table and can set and get.
    const [newcomer] = await network(t, backend, 1)
    const found = await newcomer.bootstrap([r.nodes[0].address()!])
    t.true(found.length >= 20, `bootstrap found ${found.length} contacts`)
    t.true(await newcomer.set('after the flood', 'still works'))
    t.is(await r.nodes[7].get('after the flood'), 'still works')
  })

  test.serial(`[${backend}] without the bound, the same flood reflects several times its bytes (what the bound prevents)`, async (t) => {
    const r = await flood(t, backend, false)
    t.is(r.held, 0)
    t.true(r.victim > 5 * r.attacker, `${r.victim} B <= 5 x ${r.attacker} B`)
  })
}
