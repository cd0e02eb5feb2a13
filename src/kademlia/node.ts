import { tracingChannel } from 'node:diagnostics_channel'
import { isIP } from 'node:net'
import { canonicalHost } from '../address'
import type { BackendChoice } from '../loader'
import { owned } from '../diagnostics'
import type { Address, RPCProtocol, RPCProtocolOptions, Stats } from '../protocol'
import { checkKeys } from '../validate'
import { isClock, systemClock, type Clock, type ClockTimer } from './clock'
import { Contact } from './contact'
import { crawl } from './crawl'
import { diversityBounds, type DiversityBounds, type DiversityOption } from './diversity'
import { toPublicKey, toSigner, type KeyPair, type RecordSigner } from './ed25519'
import { KademliaAbortError, KademliaArgumentError, KademliaStateError, KademliaTimeoutError, throwIfAborted } from './errors'
import { PeerHealth } from './health'
import { compareDistance, digest, isNodeId, randomId, randomIdInRange, toKey, type IdKey, type Key } from './ids'
import { LookupState, type LookupLimits, type LookupResult } from './lookup'
import { KademliaProtocol } from './protocol'
import { familyOf, reachOf } from './reach'
import { getImmutable, getMutable, putImmutable, putMutable, type PutImmutableResult, type PutMutableResult, type RecordHost } from './record-ops'
import { toSalt, toSeq, type MutableRecord } from './records'
import { readState, writeState } from './state'
import { ForgetfulStorage } from './storage'
import { RpcTransport, type KademliaCallOptions, type KademliaTransport } from './transport'
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
  /**
   * Seconds to wait for each answer. Default 5. Lookups do not wait that
   * long: a call is passed over after its peer's measured round-trip time
   * allows (docs/KADEMLIA.md), and waitTimeout is only the ceiling.
   */
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
  /**
   * Contacts one host (IPv4 address, IPv6 /64) and one network (IPv4 /24,
   * IPv6 /48) may hold in a bucket and among a lookup's candidates. Default
   * { perHost: 2, perSubnet: 8 }. `false` lifts the bounds: for networks on
   * loopback or one test subnet, where every node shares an address.
   */
  diversity?: DiversityOption
  /** Run on this transport instead of a UDP socket (tests with a simulated network). */
  transport?: KademliaTransport
  /** Read time and set timers on this clock instead of the system's (simulated-time runs, with `transport`). */
  clock?: Clock
  /**
   * Uniform numbers in [0, 1) for the refresh jitter and the ids refreshes look
   * up, instead of Math.random and node:crypto: a seeded one makes a simulated
   * run repeat exactly.
   */
  random?: () => number
}

/** Options of every operation that goes to the network, as RPCProtocol's callRemote takes them. */
export interface KademliaOperationOptions {
  /** Aborting stops sending at once; the operation rejects with KademliaAbortError. */
  signal?: AbortSignal
  /** Seconds the whole operation may take; then it rejects with KademliaTimeoutError. */
  timeout?: number
}

/** putMutable's options: BEP 44's salt, seq and cas. */
export interface PutMutableOptions extends KademliaOperationOptions {
  /** Up to 64 bytes (a string as UTF-8): one key holds one record per salt. */
  salt?: Buffer | string
  /** The record's seq (0..2^64 - 1); by default one more than the newest found, 0 if none. */
  seq?: number | bigint
  /** Put only if the newest record found has this seq and no other writer's record overtakes this one. */
  cas?: number | bigint
}

export interface GetMutableOptions extends KademliaOperationOptions {
  salt?: Buffer | string
}

export interface KademliaStats extends WireCounters {
  lookups: number
  /** Hops of every lookup, added up (a lookup's hops: the deepest it asked). */
  lookupRounds: number
  lookupCalls: number
  /** Lookups a limit ended before they converged. */
  lookupsCut: number
  /** Lookup calls passed over because their peer was slower than its timeout. */
  lookupPassedOver: number
  /** Lookup candidates left out: they failed recently, or their host or network held its diversity bound. */
  lookupSkipped: number
  /** Contacts the routing table refused because their host or network held its diversity bound of a bucket. */
  diversityRefused: number
  contacts: number
  buckets: number
  keys: number
  /** Stores refused because the record in them had a bad signature, a wrong target or an older seq than the one held. */
  recordsRefused: number
  /** Copies of a record that gets stored again on nodes that returned an older, invalid or no copy. */
  recordsHealed: number
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
  // the spelling answers come from and contacts hold: `::ffff:1.2.3.4` is the IPv4 peer 1.2.3.4
  return [canonicalHost(a[0]), a[1]]
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
  private readonly diversity: DiversityBounds
  private readonly counters = { lookups: 0, lookupRounds: 0, lookupCalls: 0, lookupsCut: 0, lookupPassedOver: 0, lookupSkipped: 0, recordsHealed: 0 }
  private readonly clock: Clock
  private readonly waitMs: number
  private readonly random: (() => number) | undefined
  private readonly records: RecordHost
  /** The addresses last given to bootstrap(): a node whose table empties joins through them again. */
  private seeds: Address[] = []
  private refreshTimer?: ClockTimer
  private saveTimer?: NodeJS.Timeout
  private state: 'new' | 'listening' | 'closed' = 'new'
  private bound: Address | undefined

  constructor(options: KademliaNodeOptions = {}) {
    if (options === null || typeof options !== 'object') throw new KademliaArgumentError(`options must be an object, got ${String(options)}`)
    checkKeys('KademliaNode options', options, NODE_OPTIONS)
    this.ksize = positiveInteger('ksize', options.ksize, 20)
    this.alpha = positiveInteger('alpha', options.alpha, 3)
    if (options.nodeId !== undefined && !isNodeId(options.nodeId)) throw new KademliaArgumentError('nodeId must be a 20-byte Buffer')
    this.id = options.nodeId === undefined ? randomId() : Buffer.from(options.nodeId)
    this.self = Contact.fromId(this.id, '', 0)
    if (options.clock !== undefined && !isClock(options.clock)) throw new KademliaArgumentError('clock must have now, setTimeout and clearTimeout functions')
    if (options.random !== undefined && typeof options.random !== 'function') throw new KademliaArgumentError('random must be a function returning numbers in [0, 1)')
    this.random = options.random
    this.clock = options.clock ?? systemClock
    const now = () => this.clock.now()
    this.refreshMs = positiveSeconds('refreshInterval', options.refreshInterval, 3600) * 1000
    this.maxBodySize = positiveInteger('maxBodySize', options.maxBodySize, 8192)
    this.limits = {
      maxRounds: positiveInteger('maxLookupRounds', options.maxLookupRounds, 32),
      maxCalls: positiveInteger('maxLookupCalls', options.maxLookupCalls, 8 * this.ksize),
    }
    this.storage = new ForgetfulStorage(positiveSeconds('ttl', options.ttl, 604800), positiveInteger('maxKeys', options.maxKeys, 65536), now)
    this.diversity = diversityBounds(options.diversity)
    const waitTimeout = positiveSeconds('waitTimeout', options.waitTimeout, 5)
    this.waitMs = waitTimeout * 1000
    this.transport =
      options.transport ??
      new RpcTransport({
        ...options.rpc,
        // A find_node answer is ~10x its request: a node must not reflect that at a spoofed sender.
        reflection: options.rpc?.reflection ?? {},
        backend: options.backend,
        waitTimeout,
        maxBodySize: this.maxBodySize,
      })
    this.protocol = new KademliaProtocol(this.self, this.storage, this.ksize, this.transport, new PeerHealth(waitTimeout * 1000, now), this.diversity, this.clock)
    this.transport.serve(this.protocol.handlers())
    this.records = {
      maxBodySize: this.maxBodySize,
      gather: (key, signal) => this.gather(key, signal),
      place: (key, nodes, value) => this.place(key, nodes, value),
      store: (key, value, signal) => this.store(key, value, signal),
      storeOn: (peers, key, value) => this.storeOn(peers, key, value),
      hold: (key, value) => this.protocol.hold(key, value),
      healed: (n) => (this.counters.recordsHealed += n),
    }
  }

  /** Which RPCProtocol backend this node runs on, if it runs on one. */
  get backend(): string | undefined {
    return protocolOf(this)?.backend
  }

  /**
   * Binds the UDP socket and starts the periodic refresh; resolves to the bound
   * [host, port]. On `::` the one socket serves IPv4 and IPv6 peers; on an IPv4
   * address it reaches IPv4 contacts only, on any other IPv6 address IPv6 ones
   * only (docs/KADEMLIA.md, "Dual-stack").
   */
  async listen(port = 0, host = '0.0.0.0'): Promise<Address> {
    if (this.state !== 'new') throw new KademliaStateError(this.state === 'closed' ? 'this node was closed' : 'listen() was called already')
    this.state = 'listening'
    try {
      this.bound = await this.transport.listen(port, host)
      this.protocol.reach = reachOf(this.bound[0])
    } catch (err) {
      this.state = 'new'
      throw err
    }
    this.scheduleRefresh()
    return this.bound
  }

  /** The bound [host, port]; KademliaStateError before listen() and after close(). */
  address(): Address {
    this.assertListening('address()')
    return [this.bound![0], this.bound![1]]
  }

  /** Like dgram's: an unref'd node does not keep the process alive by itself. */
  ref(): this {
    this.transport.ref?.()
    return this
  }

  unref(): this {
    this.transport.unref?.()
    return this
  }

  /** `await using node = new KademliaNode()` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.state !== 'closed') await this.close()
  }

  /**
   * Pings each address, then looks up this node's own id starting from those
   * that answered (Python's bootstrap). Resolves to the nearest nodes found.
   * An address of a family this node's socket cannot reach is skipped and
   * counted (`unreachableContacts`), as an unanswered one would be: a saved
   * state or a seed list may well name both families.
   */
  async bootstrap(addresses: readonly Address[], options?: KademliaOperationOptions): Promise<NodeInfo[]> {
    this.assertListening('bootstrap()')
    if (!Array.isArray(addresses)) throw new KademliaArgumentError('bootstrap takes an array of [ip, port] addresses')
    const checked: Address[] = []
    for (const a of addresses.map(checkAddress)) {
      if ((familyOf(a[0]) & this.protocol.reach) !== 0) checked.push(a)
      else this.protocol.counters.unreachableContacts++
    }
    this.seeds = checked
    return this.operation(options, (signal) => this.join(checked, signal))
  }

  /** Python's bootstrap: ping each address, then look up this node's own id through those that answered. */
  private async join(addresses: readonly Address[], signal: AbortSignal | undefined): Promise<NodeInfo[]> {
    const answered = await Promise.all(addresses.map((a) => this.bootstrapNode(a, signal)))
    throwIfAborted(signal)
    const peers = answered.filter((c): c is Contact => c !== undefined)
    // in the table at once, as Python's ping does: if the lookup's one call to a lone bootstrap node is lost,
    // the node still knows one peer, and its next refresh looks up through it
    for (const c of peers) this.protocol.welcomeIfNew(c)
    return (await this.runLookup(this.self.key, peers, false, signal)).nodes.map(nodeInfo)
  }

  /**
   * Pings `address` for its id. A lost datagram must not leave a node alone in
   * the network (one join in 50 at 1 % loss each way did, in the simulated
   * week), so a ping not answered after 1 s is sent again, and again at 2.5 s;
   * the first answer wins, and none waits past waitTimeout from the first.
   */
  private async bootstrapNode(address: Address, signal: AbortSignal | undefined): Promise<Contact | undefined> {
    const id = await new Promise<Buffer | undefined>((resolve) => {
      let sent = 0
      let open = 0
      let done = false
      const timers: ClockTimer[] = []
      const settle = (v: Buffer | undefined) => {
        if (done) return
        done = true
        for (const t of timers) this.clock.clearTimeout(t)
        resolve(v)
      }
      const attempt = (offsetMs: number) => {
        sent++
        open++
        const options: KademliaCallOptions = { timeout: (this.waitMs - offsetMs) / 1000, ...(signal !== undefined && { signal }) }
        this.transport.call(address, 'ping', [this.id], options).then(
          (result) => {
            open--
            if (done) return // another attempt settled it: a late answer is neither used nor counted
            if (result[0]) {
              const id = isNodeId(result[1]) ? result[1] : undefined
              if (id === undefined) this.protocol.counters.malformedReplies++
              return settle(id)
            }
            // only silence is worth asking again; an error answer or an abort is final
            if (result[2].code !== 'timeout' || (open === 0 && sent > retries.length)) settle(undefined)
          },
          () => settle(undefined), // only local failures reject: the node closed
        )
      }
      const retries = BOOTSTRAP_RETRIES_MS.filter((at) => at < this.waitMs)
      attempt(0)
      for (const at of retries) timers.push(this.clock.setTimeout(() => done || attempt(at), at, true))
    })
    if (id === undefined) return undefined
    if (id.equals(this.id)) {
      this.protocol.counters.ownIdClaims++
      return undefined
    }
    return Contact.fromId(id, address[0], address[1])
  }

  /** The value stored under `key`, or null when the network has none (Python's get). */
  async get(key: Key, options?: KademliaOperationOptions): Promise<KademliaValue | null> {
    this.assertListening('get()')
    const dkey = toKey(digest(key))
    return this.operation(options, async (signal) => {
      const local = this.storage.get(dkey)
      if (local !== undefined) return local
      const nearest = this.protocol.router.findNeighbors(dkey)
      if (nearest.length === 0) return null
      const found = await this.runLookup(dkey, nearest, true, signal)
      // the paper's caching (section 2.3): a copy on the nearest node that answered without it; not waited for
      if (found.value !== undefined && found.nearestWithoutValue !== undefined) void this.protocol.callStore(found.nearestWithoutValue, dkey, found.value)
      return found.value ?? null
    })
  }

  /** The k nodes nearest `target` (a 20-byte id) that an iterative lookup finds, nearest first (dht-rpc's findNode). */
  async findNode(target: Buffer, options?: KademliaOperationOptions): Promise<NodeInfo[]> {
    this.assertListening('findNode()')
    if (!isNodeId(target)) throw new KademliaArgumentError('a lookup target is a 20-byte id')
    const key = toKey(target)
    return this.operation(options, async (signal) => {
      const nearest = this.protocol.router.findNeighbors(key)
      if (nearest.length === 0) return []
      return (await this.runLookup(key, nearest, false, signal)).nodes.map(nodeInfo)
    })
  }

  /** Stores `value` under `key` on the k nodes nearest it; true if at least one acknowledged (Python's set). */
  async set(key: Key, value: KademliaValue | Uint8Array, options?: KademliaOperationOptions): Promise<boolean> {
    this.assertListening('set()')
    const checked = checkDhtValue(value, this.maxBodySize)
    const dkey = toKey(digest(key))
    return this.operation(options, async (signal) => (await this.store(dkey, checked, signal)) > 0)
  }

  /** Like set() with the 20-byte key already digested (Python's set_digest). */
  async setDigest(dkey: Buffer, value: KademliaValue | Uint8Array, options?: KademliaOperationOptions): Promise<boolean> {
    this.assertListening('setDigest()')
    if (!isNodeId(dkey)) throw new KademliaArgumentError('a digested key is 20 bytes')
    const checked = checkDhtValue(value, this.maxBodySize)
    return this.operation(options, async (signal) => (await this.store(toKey(dkey), checked, signal)) > 0)
  }

  /**
   * Signs `value` with `keys` (a key pair, or a public key and a `sign`
   * callback) and stores it under sha1(publicKey ‖ salt) on the k nearest
   * nodes: BEP 44's mutable put (docs/KADEMLIA.md, "Signed records").
   */
  async putMutable(keys: KeyPair | RecordSigner, value: KademliaValue | Uint8Array, options?: PutMutableOptions): Promise<PutMutableResult> {
    this.assertListening('putMutable()')
    if (options !== undefined && options !== null && typeof options === 'object') checkKeys('putMutable options', options, PUT_MUTABLE_OPTIONS)
    const signer = toSigner(keys)
    const put = { salt: toSalt(options?.salt), seq: toSeq('seq', options?.seq), cas: toSeq('cas', options?.cas) }
    return this.operation(options, (signal) => putMutable(this.records, signer, value, put, signal))
  }

  /** The newest verified record under sha1(publicKey ‖ salt) among the k nearest nodes, or null; older or forged copies found are replaced. */
  async getMutable(publicKey: Buffer, options?: GetMutableOptions): Promise<MutableRecord | null> {
    this.assertListening('getMutable()')
    if (options !== undefined && options !== null && typeof options === 'object') checkKeys('getMutable options', options, GET_MUTABLE_OPTIONS)
    const pk = toPublicKey(publicKey)
    const salt = toSalt(options?.salt)
    return this.operation(options, (signal) => getMutable(this.records, pk, salt, signal))
  }

  /** Stores `value` under sha1 of its msgpack encoding, the target getImmutable verifies it against. */
  async putImmutable(value: KademliaValue | Uint8Array, options?: KademliaOperationOptions): Promise<PutImmutableResult> {
    this.assertListening('putImmutable()')
    return this.operation(options, (signal) => putImmutable(this.records, value, signal))
  }

  /** The value stored by putImmutable under `target`, verified against it, or null. */
  async getImmutable(target: Buffer, options?: KademliaOperationOptions): Promise<KademliaValue | null> {
    this.assertListening('getImmutable()')
    if (!isNodeId(target)) throw new KademliaArgumentError('an immutable target is 20 bytes')
    const copy = Buffer.from(target)
    return this.operation(options, (signal) => getImmutable(this.records, copy, signal))
  }

  /** A node lookup of `dkey`, then the value on the k nearest; resolves to the acknowledgements. */
  private async store(dkey: IdKey, checked: KademliaValue, signal?: AbortSignal): Promise<number> {
    const nearest = this.protocol.router.findNeighbors(dkey)
    if (nearest.length === 0) return 0
    const { nodes } = await this.runLookup(dkey, nearest, false, signal)
    return this.place(dkey, nodes, checked)
  }

  private async place(dkey: IdKey, nodes: Contact[], checked: KademliaValue): Promise<number> {
    // this node holds it too when it is one of the k nearest (Python: only when nearer than the farthest found);
    // otherwise it hands the key over and drops its own copy, which would be stale or, republished every
    // interval by each node that once held it, multiply the republish traffic as the network turns over
    const farthest = nodes[nodes.length - 1]
    if (nodes.length < this.ksize || compareDistance(this.self.key, farthest.key, dkey) < 0) this.protocol.hold(dkey, checked)
    else this.storage.delete(dkey)
    return this.storeOn(nodes, dkey, checked)
  }

  /** Stores on each of `peers`; resolves to how many acknowledged. */
  private async storeOn(peers: Contact[], dkey: IdKey, value: KademliaValue): Promise<number> {
    const acks = await Promise.all(peers.map((n) => this.protocol.callStore(n, dkey, value)))
    return acks.filter(Boolean).length
  }

  /** A value lookup that asks each of the k nearest, and this node's own copy: a record's readers want the newest, not the first. */
  private async gather(dkey: IdKey, signal: AbortSignal | undefined) {
    const local = this.storage.get(dkey)
    const nearest = this.protocol.router.findNeighbors(dkey)
    if (nearest.length === 0) return { nodes: [], held: new Map(), local }
    const { nodes, held } = await this.runLookup(dkey, nearest, true, signal, true)
    return { nodes, held: held!, local }
  }

  /** Up to k [ip, port] of the nodes nearest this one, to bootstrap from next time (Python's bootstrappable_neighbors). */
  bootstrappableNeighbors(): Address[] {
    this.assertListening('bootstrappableNeighbors()')
    return this.protocol.router.findNeighbors(this.self.key).map((c) => c.address)
  }

  /**
   * Looks up a random id in every bucket without a lookup for a refresh
   * interval, then republishes the keys stored at least that long ago (Python's
   * _refresh_table). Runs by itself about every `refreshInterval` seconds.
   */
  async refresh(options?: KademliaOperationOptions): Promise<void> {
    this.assertListening('refresh()')
    await this.operation(options, (signal) => this.refreshNow(signal))
  }

  private async refreshNow(signal?: AbortSignal): Promise<void> {
    // every contact left (or none ever answered): join again through the addresses bootstrap() was given
    if (this.protocol.router.size === 0 && this.seeds.length > 0) await this.join(this.seeds, signal).catch(() => [])
    const buckets = this.protocol.router.lonelyBuckets(this.refreshMs)
    await Promise.all(
      buckets.map((b) => {
        // a full bucket needs no new contacts, only news of the old: its least recently seen answers (the bucket
        // is fresh) or leaves (its newest replacement takes its place), one call where a lookup costs k or more
        const head = b.head()
        if (b.nodes.size >= this.ksize && head !== undefined) return this.protocol.callPing(head)
        const rid = toKey(randomIdInRange(b.low, b.high, this.random))
        return this.runLookup(rid, this.protocol.router.findNeighbors(rid, this.alpha), false, signal)
      }),
    )
    // a key stored (by anyone) within the interval is not republished: whoever stored it just did (paper, section 2.5)
    for (const [dkey, value] of this.storage.olderThan(this.refreshMs / 1000)) {
      if (this.state !== 'listening') return
      await this.store(dkey, value, signal)
    }
  }

  /**
   * The next refresh, at a random point of the second half of the next
   * interval and the first half of the one after: nodes started together
   * drift apart, so one of a key's holders republishes it first and the
   * others, having just received it, skip it.
   */
  private scheduleRefresh(): void {
    const delay = this.refreshMs * (0.5 + (this.random ?? Math.random)())
    this.refreshTimer = this.clock.setTimeout(
      () => {
        if (this.state !== 'listening') return
        void this.refreshNow()
          .catch(() => {})
          .finally(() => {
            if (this.state === 'listening') this.scheduleRefresh()
          })
      },
      delay,
      false,
    )
  }

  /** Writes ksize, alpha, id and neighbours as JSON (Python's save_state, which pickles them). */
  async saveState(path: string): Promise<void> {
    this.assertListening('saveState()')
    await writeState(path, { ksize: this.ksize, alpha: this.alpha, id: this.id, neighbors: this.bootstrappableNeighbors() })
  }

  /** Saves now and then every `seconds` (Python's save_state_regularly; default 600). */
  saveStateRegularly(path: string, seconds = 600): void {
    this.assertListening('saveStateRegularly()')
    positiveSeconds('seconds', seconds, 600)
    clearInterval(this.saveTimer)
    void this.saveState(path)
    this.saveTimer = setInterval(() => {
      if (this.state === 'listening') void this.saveState(path).catch(() => {})
    }, seconds * 1000).unref()
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
      diversityRefused: router.diversityRefused,
      contacts: router.size,
      buckets: router.buckets.length,
      keys: this.storage.size,
      recordsRefused: this.protocol.recordsRefused,
      rpc: this.transport.stats?.(),
    }
  }

  /** Stops the timers and closes the socket; outstanding lookups end with what they have. A second close() does nothing. */
  async close(): Promise<void> {
    if (this.state === 'closed') return
    const wasListening = this.state === 'listening'
    this.state = 'closed'
    this.clock.clearTimeout(this.refreshTimer)
    clearInterval(this.saveTimer)
    if (wasListening) await this.transport.close()
  }

  private assertListening(what: string): void {
    if (this.state !== 'listening')
      throw new KademliaStateError(`${what} needs a listening node: ${this.state === 'new' ? 'call listen() first' : 'this node was closed'}`)
  }

  /** Runs `body` under the caller's signal and timeout, combined into one signal that the lookups and calls obey. */
  private async operation<T>(options: KademliaOperationOptions | undefined, body: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    if (options === undefined) return body(undefined)
    if (options === null || typeof options !== 'object') throw new KademliaArgumentError(`options must be an object, got ${String(options)}`)
    const { signal, timeout } = options
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new KademliaArgumentError('signal must be an AbortSignal')
    if (timeout !== undefined) positiveSeconds('timeout', timeout, 0)
    throwIfAborted(signal)
    if (timeout === undefined) return body(signal)
    const controller = new AbortController()
    const expired = new KademliaTimeoutError(timeout)
    const timer = this.clock.setTimeout(() => controller.abort(expired), timeout * 1000, true)
    const onAbort = () => controller.abort(signal!.reason)
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      return await body(controller.signal)
    } catch (err) {
      // a timeout is reported as itself, not as an abort whose reason is a timeout
      if (err instanceof KademliaAbortError && err.cause === expired) throw expired
      throw err
    } finally {
      this.clock.clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  private async runLookup(target: IdKey, peers: Contact[], findValue: boolean, signal: AbortSignal | undefined, collect = false): Promise<LookupResult> {
    const health = this.protocol.health
    const state = new LookupState(
      target,
      { k: this.ksize, alpha: this.alpha, findValue, collect, diversity: this.diversity, ...this.limits },
      (c) => health.recentlyFailed(c, this.clock.now()),
    )
    state.push(peers, 1)
    const result = lookupChannel.hasSubscribers
      ? await traceLookup(this, target, findValue, () => crawl(this.protocol, state, findValue, signal))
      : await crawl(this.protocol, state, findValue, signal)
    this.counters.lookups++
    this.counters.lookupRounds += result.rounds
    this.counters.lookupCalls += result.calls
    this.counters.lookupPassedOver += result.passedOver
    this.counters.lookupSkipped += result.skipped
    if (result.cut) this.counters.lookupsCut++
    return result
  }
}

/** When an unanswered bootstrap ping is sent again, ms after the first. */
const BOOTSTRAP_RETRIES_MS = [1000, 2500]

/** Every KademliaNodeOptions key: anything else is a typo, refused with the nearest of these. */
const NODE_OPTIONS = [
  'ksize', 'alpha', 'nodeId', 'backend', 'waitTimeout', 'refreshInterval', 'ttl', 'maxKeys', 'maxLookupRounds',
  'maxLookupCalls', 'maxBodySize', 'rpc', 'diversity', 'transport', 'clock', 'random',
] as const satisfies readonly (keyof KademliaNodeOptions)[]

const PUT_MUTABLE_OPTIONS = ['salt', 'seq', 'cas', 'signal', 'timeout'] as const satisfies readonly (keyof PutMutableOptions)[]
const GET_MUTABLE_OPTIONS = ['salt', 'signal', 'timeout'] as const satisfies readonly (keyof GetMutableOptions)[]

/** diagnostics_channel: every lookup, with `{ target, kind, rounds, calls }` (rounds and calls set at the end). */
export const lookupChannel = tracingChannel<unknown, LookupTrace>('rpcudp:kademlia:lookup')

export interface LookupTrace {
  /** The node looking up; non-enumerable, as the RPCProtocol is on `rpcudp:call`. */
  readonly node?: KademliaNode
  target: Buffer
  kind: 'node' | 'value'
  rounds?: number
  calls?: number
  passedOver?: number
  cut?: boolean
}

async function traceLookup(node: KademliaNode, target: IdKey, findValue: boolean, run: () => Promise<LookupResult>): Promise<LookupResult> {
  const context = owned<LookupTrace>({ target: Buffer.from(target, 'latin1'), kind: findValue ? 'value' : 'node' }, 'node', node)
  return lookupChannel.tracePromise(async () => {
    const result = await run()
    context.rounds = result.rounds
    context.calls = result.calls
    context.passedOver = result.passedOver
    context.cut = result.cut
    return result
  }, context)
}

/** The RPCProtocol a node runs on, undefined on an injected transport: for registerKademliaMetrics, outside the public API. */
export function protocolOf(node: KademliaNode): RPCProtocol | undefined {
  // element access: TypeScript's sanctioned way past `private`, kept to this one reader
  const transport = node['transport']
  return transport instanceof RpcTransport ? transport.proto : undefined
}

function nodeInfo(c: Contact): NodeInfo {
  return { id: c.id, ip: c.ip, port: c.port }
}
