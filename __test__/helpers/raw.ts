/**
 * Raw UDP peers for the hostile, fuzz and flood specs: they speak the wire
 * format by hand (docs/PROTOCOL.md), so they can send what no RPCProtocol would.
 */
import { randomBytes } from 'node:crypto'
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { Encoder } from '../../src/codec'
import type { Stats } from '../../src/index'
import { WIRE_DROP_REASONS } from '../../src/transport'

export const REQUEST = 0
export const RESPONSE = 1
export const ERROR = 2

const encoder = new Encoder(65000)

/** type byte | 20-byte id | body */
export function datagram(type: number, id: Buffer, body: ArrayLike<number> | Buffer): Buffer {
  return Buffer.concat([Buffer.from([type]), id, Buffer.from(body as ArrayLike<number>)])
}

export function requestBody(name: string, args: unknown[]): Buffer {
  return Buffer.from(encoder.bytes.subarray(0, encoder.encodeRequest(name, args)))
}

export function valueBody(value: unknown): Buffer {
  return Buffer.from(encoder.bytes.subarray(0, encoder.encode(value)))
}

export const newId = () => randomBytes(20)

export interface Received {
  msg: Buffer
  rinfo: RemoteInfo
}

/** A dgram socket that records what it receives and lets a test wait for a particular datagram. */
export class RawPeer {
  readonly received: Received[] = []
  private waiters: { pred: (r: Received) => boolean; resolve: (r: Received) => void }[] = []

  private constructor(
    readonly socket: Socket,
    readonly address: [string, number],
    private readonly keep: boolean,
  ) {
    socket.on('message', (msg, rinfo) => {
      const r = { msg, rinfo }
      const i = this.waiters.findIndex((w) => w.pred(r))
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(r)
      else if (this.keep) this.received.push(r)
    })
  }

  /** `keep: false` discards anything no one waits for (a sink for floods of replies). */
  static async open(host = '127.0.0.1', port = 0, keep = true): Promise<RawPeer> {
    const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: false })
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(port, host, () => {
        socket.off('error', reject)
        resolve()
      })
    })
    try {
      socket.setRecvBufferSize(4 << 20)
    } catch {}
    const a = socket.address()
    return new RawPeer(socket, [a.address, a.port], keep)
  }

  send(buf: Buffer, to: [string, number]): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(buf, to[1], to[0], (err) => (err ? reject(err) : resolve())))
  }

  /** The next datagram matching `pred` (already received or yet to come); rejects after `ms`. */
  next(pred: (r: Received) => boolean = () => true, ms = 2000): Promise<Received> {
    const i = this.received.findIndex(pred)
    if (i >= 0) return Promise.resolve(this.received.splice(i, 1)[0])
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (r: Received) => {
          clearTimeout(timer)
          resolve(r)
        },
      }
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w)
        reject(new Error(`no matching datagram within ${ms} ms`))
      }, ms)
      this.waiters.push(w)
    })
  }

  /**
   * Sends a valid request for `method` and waits for the answer with its id.
   * A server takes datagrams from one socket in order, so once the fence is
   * answered every datagram this peer sent before it has been classified.
   */
  async fence(to: [string, number], method = 'fence', ms = 3000): Promise<Received> {
    const id = newId()
    const answered = this.next((r) => r.msg.length >= 21 && r.msg.compare(id, 0, 20, 1, 21) === 0, ms)
    await this.send(datagram(REQUEST, id, requestBody(method, [])), to)
    return answered
  }

  close() {
    try {
      this.socket.close()
    } catch {}
  }
}

/** Polls `cond` every few ms until it holds; rejects with `what` after `ms`. */
export async function until(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(2)
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

type Flat = Record<string, number>

/** Every numeric counter of stats(), dropped.* flattened as "dropped.<reason>". */
export function flatten(s: Stats): Flat {
  const out: Flat = {}
  for (const [k, v] of Object.entries(s)) {
    if (k === 'dropped') for (const [r, n] of Object.entries(v as Flat)) out['dropped.' + r] = n
    else if (typeof v === 'number' && k !== 'recvBufferSize' && k !== 'sendBufferSize') out[k] = v
  }
  return out
}

/** The counters that changed between two snapshots, with their deltas. */
export function delta(before: Stats, after: Stats): Flat {
  const a = flatten(before)
  const b = flatten(after)
  const out: Flat = {}
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[k] ?? 0) - (a[k] ?? 0)
    if (d !== 0) out[k] = d
  }
  return out
}

/** Datagrams a server accounted for on receipt: classified as a request, an answer, or a drop on the wire. */
export function received(s: Stats): number {
  let n = s.requestsReceived + s.responsesReceived + s.errorsReceived
  for (const r of WIRE_DROP_REASONS) if (r !== 'sendFailed') n += s.dropped[r]
  return n
}

/** UDP receive-buffer overflows in this network namespace (/proc/net/snmp), i.e. datagrams the kernel dropped. */
export function rcvbufErrors(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'))
  const names = lines[0].split(/\s+/)
  const values = lines[1].split(/\s+/)
  return Number(values[names.indexOf('RcvbufErrors')])
}

/** A seeded PRNG (mulberry32): every fuzz and chaos run is reproducible from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `global.gc` when node runs with --expose-gc, else the same function obtained at run time. */
export function gc(): () => void {
  const g = (globalThis as any).gc
  if (typeof g === 'function') return g
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('node:v8').setFlagsFromString('--expose-gc')
  return require('node:vm').runInNewContext('gc')
}

/** RSS in MB after a full collection. */
export async function settledRss(collect = gc()): Promise<number> {
  for (let i = 0; i < 3; i++) {
    collect()
    await sleep(20)
  }
  return process.memoryUsage().rss / 2 ** 20
}
