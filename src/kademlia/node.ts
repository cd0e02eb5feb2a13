import { isIP } from 'node:net'
import type { BackendChoice } from '../loader'
import type { Address, RPCProtocolOptions, Stats } from '../protocol'
import { Contact } from './contact'
import { KademliaArgumentError } from './errors'
import { compareDistance, digest, fromKey, isNodeId, randomId, randomIdInRange, toKey, type IdKey, type Key } from './ids'
import { lookup, type LookupLimits } from './lookup'
import { KademliaProtocol } from './protocol'
import { readState, writeState } from './state'
import { ForgetfulStorage } from './storage'
import { RpcTransport, type KademliaTransport } from './transport'
import { checkDhtValue, type KademliaValue } from './values'
import { isPort, type WireCounters } from './wire'

export interface KademliaNodeOptions {
  /** k: bucket size, neighbours per answer, nodes a key is stored on. Default 20. */
  ksize?: number
  /** Parallel calls per lookup round. Default 3. */
  alpha?: number
  /** This node's 20-byte id; random by default. */
  nodeId?: Buffer
  /** The RPCProtocol backend: 'auto' (default), 'native' or 'pure'. */
  backend?: BackendChoice
  /** Seconds to wait for each answer. Default 5. */
  waitTimeout?: number
  /** Seconds between routing-table refreshes and the republish of keys stored that long ago (Python: 3600). */
  refreshInterval?: number
  /** Seconds a stored value lives (Python's ForgetfulStorage: a week). */
  ttl?: number
  /** Keys held at most; the oldest go first. Default 65536. */
  maxKeys?: number
  /** Bounds on one lookup. Default 32 rounds, 8 * ksize calls. */
  maxLookupRounds?: number
  maxLookupCalls?: number
  /** Largest message, in bytes; a value whose store request is bigger is refused. Default 8192 (Python's limit). */
  maxBodySize?: number
  /** Other RPCProtocol options (socket buffers, ...). */
  rpc?: Omit<RPCProtocolOptions, 'backend' | 'waitTimeout' | 'maxBodySize'>
  /** Run on this transport instead of a UDP socket (tests with a simulated network). */
  transport?: KademliaTransport
}

export interface KademliaStats extends WireCounters {
  lookups: number
  lookupRounds: number
  lookupCalls: number
  /** Lookups a limit ended before they converged. */
  lookupsCut: number
  contacts: number
  buckets: number
  keys: number
  /** The RPCProtocol's own counters (absent on an injected transport that has none). */
  rpc?: Stats
}

/** A node as bootstrap() reports it. */
export interface NodeInfo {
  id: Buffer
  ip: string
  port: number
}

function positiveInteger(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt
  if (!Number.isInteger(v) || v < 1) throw new KademliaArgumentError(`${name} must be a positive integer, got ${String(v)}`)
  return v
}

function positiveSeconds(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new KademliaArgumentError(`${name} must be a positive number of seconds, got ${String(v)}`)
  return v
}

function checkAddress(a: unknown): Address {
  if (!Array.isArray(a) || a.length !== 2 || typeof a[0] !== 'string' || isIP(a[0]) === 0 || !isPort(a[1]))
    throw new KademliaArgumentError(`an address is [ip, port] with an IP literal and a port 1..65535, got ${JSON.stringify(a)}`)
  return [a[0], a[1]]
}

/**
 * A Kademlia DHT node that is a full member of a Python kademlia 2.2.3
 * network: the same RPCs, value shapes and key digest (Python's
 * kademlia.network.Server). docs/KADEMLIA.md lists where it deliberately differs.
 */
export class KademliaNode {
  readonly ksize: number
  readonly alpha: number
  /** This node's id (20 bytes). */
  readonly id: Buffer
  private readonly self: Contact
  private readonly storage: ForgetfulStorage
  private readonly transport: KademliaTransport
  private readonly protocol: KademliaProtocol
  private readonly limits: LookupLimits
  private readonly refreshMs: number
  private readonly maxBodySize: number
  private readonly counters = { lookups: 0, lookupRounds: 0, lookupCalls: 0, lookupsCut: 0 }
  private refreshTimer?: NodeJS.Timeout
  private saveTimer?: NodeJS.Timeout
  private state: 'new' | 'listening' | 'closed' = 'new'

  constructor(options: KademliaNodeOptions = {}) {
    this.ksize = positiveInteger('ksize', options.ksize, 20)
    this.alpha = positiveInteger('alpha', options.alpha, 3)
    if (options.nodeId !== undefined && !isNodeId(options.nodeId)) throw new KademliaArgumentError('nodeId must be a 20-byte Buffer')
    this.id = options.nodeId === undefined ? randomId() : Buffer.from(options.nodeId)
    this.self = Contact.fromId(this.id, '', 0)
    this.refreshMs = positiveSeconds('refreshInterval', options.refreshInterval, 3600) * 1000
    this.maxBodySize = positiveInteger('maxBodySize', options.maxBodySize, 8192)
    this.limits = {
      maxRounds: positiveInteger('maxLookupRounds', options.maxLookupRounds, 32),
      maxCalls: positiveInteger('maxLookupCalls', options.maxLookupCalls, 8 * this.ksize),
    }
    this.storage = new ForgetfulStorage(positiveSeconds('ttl', options.ttl, 604800), positiveInteger('maxKeys', options.maxKeys, 65536))
    this.transport =
      options.transport ??
      new RpcTransport({
        ...options.rpc,
        backend: options.backend,
        waitTimeout: positiveSeconds('waitTimeout', options.waitTimeout, 5),
        maxBodySize: this.maxBodySize,
      })
    this.protocol = new KademliaProtocol(this.self, this.storage, this.ksize, this.transport)
    this.transport.serve(this.protocol.handlers())
  }

  /** Which RPCProtocol backend this node runs on, if it runs on one. */
  get backend(): string | undefined {
    return this.transport instanceof RpcTransport ? this.transport.proto.backend : undefined
  }

  /** Binds the UDP socket and starts the periodic refresh; resolves to the bound [host, port]. */
  async listen(port = 0, host = '0.0.0.0'): Promise<Address> {
    const bound = await this.transport.listen(port, host)
    this.state = 'listening'
    this.refreshTimer = setInterval(() => void this.refresh(), this.refreshMs).unref()
    return bound
  }

  /**
   * Pings each address, then looks up this node's own id starting from those
   * that answered (Python's bootstrap). Resolves to the nearest nodes found.
   */
  async bootstrap(addresses: readonly Address[]): Promise<NodeInfo[]> {
    if (!Array.isArray(addresses)) throw new KademliaArgumentError('bootstrap takes an array of [ip, port] addresses')
    const checked = addresses.map(checkAddress)
    const answered = await Promise.all(checked.map((a) => this.bootstrapNode(a)))
    const peers = answered.filter((c): c is Contact => c !== undefined)
    return (await this.runLookup(this.self.key, peers, false)).nodes.map(nodeInfo)
  }

  private async bootstrapNode(address: Address): Promise<Contact | undefined> {
    let result
    try {
      result = await this.transport.call(address, 'ping', [this.id])
    } catch {
      return undefined
    }
    if (!result[0]) return undefined
    if (!isNodeId(result[1])) {
      this.protocol.counters.malformedReplies++
      return undefined
    }
    if (result[1].equals(this.id)) {
      this.protocol.counters.ownIdClaims++
      return undefined
    }
    return Contact.fromId(result[1], address[0], address[1])
  }

  /** The value stored under `key`, or null when the network has none (Python's get). */
  async get(key: Key): Promise<KademliaValue | null> {
    const dkey = toKey(digest(key))
    const local = this.storage.get(dkey)
    if (local !== undefined) return local
    const nearest = this.protocol.router.findNeighbors(dkey)
    if (nearest.length === 0) return null
    return (await this.runLookup(dkey, nearest, true)).value ?? null
  }

  /** Stores `value` under `key` on the k nodes nearest it; true if at least one acknowledged (Python's set). */
  async set(key: Key, value: KademliaValue | Uint8Array): Promise<boolean> {
    const checked = checkDhtValue(value, this.maxBodySize)
    return this.store(toKey(digest(key)), checked)
  }

  /** Like set() with the 20-byte key already digested (Python's set_digest). */
  async setDigest(dkey: Buffer, value: KademliaValue | Uint8Array): Promise<boolean> {
    if (!isNodeId(dkey)) throw new KademliaArgumentError('a digested key is 20 bytes')
    return this.store(toKey(dkey), checkDhtValue(value, this.maxBodySize))
  }

  private async store(dkey: IdKey, checked: KademliaValue): Promise<boolean> {
    const nearest = this.protocol.router.findNeighbors(dkey)
    if (nearest.length === 0) return false
    const { nodes } = await this.runLookup(dkey, nearest, false)
    // this node holds it too when it is one of the k nearest (Python: only when nearer than the farthest found)
    const farthest = nodes[nodes.length - 1]
    if (nodes.length < this.ksize || compareDistance(this.self.key, farthest.key, dkey) < 0) this.storage.set(dkey, checked)
    const acks = await Promise.all(nodes.map((n) => this.protocol.callStore(n, dkey, checked)))
    return acks.includes(true)
  }

  /** Up to k [ip, port] of the nodes nearest this one, to bootstrap from next time (Python's bootstrappable_neighbors). */
  bootstrappableNeighbors(): Address[] {
    return this.protocol.router.findNeighbors(this.self.key).map((c) => c.address)
  }

  /**
   * Looks up a random id in every bucket without a lookup for a refresh
   * interval, then republishes the keys stored at least that long ago (Python's
   * _refresh_table). Runs by itself every `refreshInterval` seconds.
   */
  async refresh(): Promise<void> {
    if (this.state !== 'listening') return
    const buckets = this.protocol.router.lonelyBuckets(this.refreshMs)
    await Promise.all(
      buckets.map((b) => {
        const rid = toKey(randomIdInRange(b.low, b.high))
        return this.runLookup(rid, this.protocol.router.findNeighbors(rid, this.alpha), false)
      }),
    )
    for (const [dkey, value] of this.storage.olderThan(this.refreshMs / 1000)) {
      if (this.state !== 'listening') return
      await this.store(dkey, value)
    }
  }

  /** Writes ksize, alpha, id and neighbours as JSON (Python's save_state, which pickles them). */
  async saveState(path: string): Promise<void> {
    await writeState(path, { ksize: this.ksize, alpha: this.alpha, id: this.id, neighbors: this.bootstrappableNeighbors() })
  }

  /** Saves now and then every `seconds` (Python's save_state_regularly; default 600). */
  saveStateRegularly(path: string, seconds = 600): void {
    positiveSeconds('seconds', seconds, 600)
    clearInterval(this.saveTimer)
    void this.saveState(path)
    this.saveTimer = setInterval(() => void this.saveState(path).catch(() => {}), seconds * 1000).unref()
  }

  /** A node with the saved id, ksize and alpha, listening on `port` and bootstrapped from the saved neighbours (Python's load_state). */
  static async loadState(path: string, options: KademliaNodeOptions & { port?: number; host?: string } = {}): Promise<KademliaNode> {
    const saved = await readState(path)
    const { port, host, ...rest } = options
    const node = new KademliaNode({ ...rest, ksize: saved.ksize, alpha: saved.alpha, nodeId: saved.id })
    await node.listen(port ?? 0, host ?? '0.0.0.0')
    if (saved.neighbors.length > 0) await node.bootstrap(saved.neighbors)
    return node
  }

  stats(): KademliaStats {
    const router = this.protocol.router
    return {
      ...this.protocol.counters,
      ...this.counters,
      contacts: router.size,
      buckets: router.buckets.length,
      keys: this.storage.size,
      rpc: this.transport.stats?.(),
    }
  }

  /** Stops the timers and closes the socket; outstanding lookups end with what they have. */
  async close(): Promise<void> {
    this.state = 'closed'
    clearInterval(this.refreshTimer)
    clearInterval(this.saveTimer)
    await this.transport.close()
  }

  private async runLookup(target: IdKey, peers: Contact[], findValue: boolean) {
    const result = await lookup(this.protocol, target, peers, this.alpha, this.limits, findValue)
    this.counters.lookups++
    this.counters.lookupRounds += result.rounds
    this.counters.lookupCalls += result.calls
    if (result.cut) this.counters.lookupsCut++
    return result
  }
}

function nodeInfo(c: Contact): NodeInfo {
  return { id: c.id, ip: c.ip, port: c.port }
}
