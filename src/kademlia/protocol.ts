import type { Address, CallResult, Handler } from '../protocol'
import type { Clock } from './clock'
import { Contact } from './contact'
import type { DiversityBounds } from './diversity'
import { KademliaArgumentError } from './errors'
import type { PeerHealth } from './health'
import { compareDistance, fromKey, isNodeId, toKey, type IdKey } from './ids'
import { IPV4, IPV6, familyOf } from './reach'
import { admits } from './records'
import { RoutingTable } from './routing'
import type { ForgetfulStorage } from './storage'
import type { KademliaCallOptions, KademliaTransport } from './transport'
import { isDhtValue, type KademliaValue } from './values'
import { decodeNeighbours, encodeNeighbours, newWireCounters, parseFindReply, type FindReply } from './wire'

/**
 * Python's kademlia.protocol.KademliaProtocol: the five RPCs this node serves,
 * the calls it makes, and the routing-table upkeep around both (a peer that
 * answers is welcomed, a peer that does not is dropped).
 */
export class KademliaProtocol {
  readonly router: RoutingTable
  readonly counters = newWireCounters()
  /** The families this node's socket can send to (reach.ts): set by listen(), from the address it bound. */
  reach = IPV4 | IPV6
  /** Stores of records with a bad signature, a wrong target, or an older seq than the one held. */
  recordsRefused = 0
  /** This node's id as sent on the wire. */
  private readonly selfId: Buffer
  /** Contacts the table asked to have pinged (heads of full buckets, replacements for a freed slot) being pinged now, so a burst pings each once. */
  private readonly pinging = new Set<string>()
  /** Addresses of new request senders being pinged before they may enter the table. */
  private readonly verifying = new Set<string>()

  constructor(
    readonly self: Contact,
    private readonly storage: ForgetfulStorage,
    readonly ksize: number,
    private readonly transport: KademliaTransport,
    readonly health: PeerHealth,
    diversity: DiversityBounds,
    readonly clock: Clock,
  ) {
    this.selfId = self.id
    this.router = new RoutingTable(self.key, ksize, (contact) => this.pingFor(contact), diversity, () => clock.now())
  }

  /** The handlers to serve, named as on the wire (Python's rpc_* methods). */
  handlers(): Record<string, Handler> {
    return {
      stun: (sender: Address) => sender,
      ping: (sender: Address, nodeid: unknown) => {
        this.heardFrom(this.source(sender, nodeid))
        return this.selfId
      },
      store: (sender: Address, nodeid: unknown, key: unknown, value: unknown) => {
        const source = this.source(sender, nodeid)
        if (!isNodeId(key) || !isDhtValue(value)) throw this.malformed('store needs a 20-byte key and an int, float, bool, str or bytes value')
        this.heardFrom(source)
        this.hold(toKey(key), value)
        // Python's answer whatever happened: its store has no refusal to mirror
        return true
      },
      find_node: (sender: Address, nodeid: unknown, key: unknown) => {
        const source = this.source(sender, nodeid)
        if (!isNodeId(key)) throw this.malformed('find_node needs a 20-byte key')
        this.heardFrom(source)
        return this.neighboursFor(toKey(key), sender)
      },
      find_value: (sender: Address, nodeid: unknown, key: unknown) => {
        const source = this.source(sender, nodeid)
        if (!isNodeId(key)) throw this.malformed('find_value needs a 20-byte key')
        this.heardFrom(source)
        const k = toKey(key)
        const value = this.storage.get(k)
        return value === undefined ? this.neighboursFor(k, sender) : { value }
      },
    }
  }

  /** Stores `value` unless it is a record that fails its checks (records.ts: admits), which is counted instead. */
  hold(key: IdKey, value: KademliaValue): void {
    if (admits(key, value, this.storage.get(key))) this.storage.set(key, value)
    else this.recordsRefused++
  }

  /** The asker's own family first: it reached this node over it, so it can reach those (routing.findNeighbors' `prefer`). */
  private neighboursFor(key: IdKey, asker: Address) {
    return encodeNeighbours(this.router.findNeighbors(key, this.ksize, asker, familyOf(asker[0])))
  }

  private source(sender: Address, nodeid: unknown): Contact {
    if (!isNodeId(nodeid)) throw this.malformed('the sender node id must be 20 bytes')
    return Contact.fromId(nodeid, sender[0], sender[1])
  }

  private malformed(message: string): KademliaArgumentError {
    this.counters.malformedRequests++
    return new KademliaArgumentError(message)
  }

  /**
   * A request's sender. One the table holds at this address is seen again.
   * One whose bucket is full waits unverified in its replacement cache
   * (routing.offer), where Python's would wait too. Any other new one (or a
   * known id at a new address) is pinged first, and welcomed only when it
   * answers: a request's source address can be forged, and only an answer
   * proves someone is there (which also verifies the address for the
   * transport's reflection bound). Python welcomes every sender at once.
   */
  private heardFrom(contact: Contact): void {
    if (contact.key === this.self.key) {
      this.counters.ownIdClaims++
      return
    }
    if (this.router.has(contact)) {
      this.health.heardFrom(contact)
      this.router.add(contact)
      return
    }
    if (this.router.offer(contact)) return
    const key = contact.addressKey
    if (this.verifying.has(key) || this.verifying.size >= MAX_VERIFYING) return
    this.verifying.add(key)
    void this.callPing(contact).finally(() => this.verifying.delete(key))
  }

  /**
   * Python's welcome_if_new, corrected: a node not in the table yet is sent
   * every stored key it should hold (it is among the k nearest the table knows
   * and this node is nearer than any of them; Python tests the digest of the
   * key instead of the key). Every contact that is heard from is then (re)added,
   * which also makes it the most recently seen of its bucket.
   */
  welcomeIfNew(contact: Contact): void {
    if (contact.key === this.self.key) {
      this.counters.ownIdClaims++
      return
    }
    if (!this.router.isNew(contact)) {
      this.router.add(contact)
      return
    }
    // which keys it should hold is decided before it is added (it would be among its own neighbours)
    const welcome: Array<[IdKey, KademliaValue]> = []
    this.storage.forEach((key, value) => {
      if (this.router.knowsNearerThanSelf(key)) return
      const neighbours = this.router.findNeighbors(key)
      const last = neighbours[neighbours.length - 1]
      if (neighbours.length < this.ksize || compareDistance(contact.key, last.key, key) < 0) welcome.push([key, value])
    })
    // a contact the table refuses stays new: welcoming it would repeat on every answer it gives
    if (this.router.add(contact)) for (const [key, value] of welcome) void this.callStore(contact, key, value)
  }

  private pingFor(contact: Contact): void {
    if (this.pinging.has(contact.key)) return
    this.pinging.add(contact.key)
    void this.callPing(contact).finally(() => this.pinging.delete(contact.key))
  }

  /** A call, timed for PeerHealth: an answer is a round-trip sample, a timeout a failure. */
  private async call(peer: Contact, name: string, args: unknown[], options?: KademliaCallOptions): Promise<CallResult<unknown>> {
    const sent = this.clock.now()
    let result: CallResult<unknown>
    try {
      result = await this.transport.call(peer.address, name, args, options)
    } catch (err) {
      // only local failures reject (the node is closed); the lookup just ends
      return [false, null, { code: 'closed', message: err instanceof Error ? err.message : String(err) }]
    }
    if (result[0]) this.health.answered(peer, this.clock.now() - sent)
    else if (result[2].code === 'timeout') this.health.failed(peer, this.clock.now(), sent)
    return result
  }

  /**
   * Python's handle_call_response: a peer that answered is welcomed, one that
   * did not leaves the table. A call this node aborted or closed says nothing
   * about the peer.
   */
  private answered(result: CallResult<unknown>, peer: Contact): boolean {
    if (!result[0]) {
      if (!saysNothing(result)) this.router.remove(peer)
      return false
    }
    this.welcomeIfNew(peer)
    return true
  }

  /** True when the peer answered with its own id (anything else is a malformed answer, and the peer is treated as silent). */
  async callPing(peer: Contact): Promise<boolean> {
    const result = await this.call(peer, 'ping', [this.selfId])
    if (result[0] && !(isNodeId(result[1]) && toKey(result[1]) === peer.key)) {
      this.counters.malformedReplies++
      this.router.remove(peer)
      return false
    }
    return this.answered(result, peer)
  }

  /** True when the peer acknowledged the store. */
  async callStore(peer: Contact, key: IdKey, value: KademliaValue): Promise<boolean> {
    const result = await this.call(peer, 'store', [this.selfId, fromKey(key), value])
    return this.answered(result, peer) && result[1] === true
  }

  callFindNode(peer: Contact, target: IdKey, signal?: AbortSignal): Promise<FindReply> {
    return this.find(peer, 'find_node', target, signal)
  }

  callFindValue(peer: Contact, target: IdKey, signal?: AbortSignal): Promise<FindReply> {
    return this.find(peer, 'find_value', target, signal)
  }

  /** The parsed answer, or undefined when the peer did not answer or answered with a malformed shape (it then leaves the table). */
  private async find(peer: Contact, name: 'find_node' | 'find_value', target: IdKey, signal?: AbortSignal): Promise<FindReply> {
    const result = await this.call(peer, name, [this.selfId, fromKey(target)], signal === undefined ? FIND_OPTIONS : { ...FIND_OPTIONS, signal })
    if (!result[0]) {
      if (!saysNothing(result)) this.router.remove(peer)
      return undefined
    }
    const reply = parseFindReply(result[1], this.ksize, this.self.key, this.reach, this.counters, name === 'find_value')
    if (reply === undefined) this.router.remove(peer)
    else this.welcomeIfNew(peer)
    return reply
  }
}

/** New request senders pinged at once at most: a flood of forged sources costs a bounded number of pings. */
const MAX_VERIFYING = 1024

/** A failure of this node's own making (an abort, a close), not the peer's. */
function saysNothing(result: CallResult<unknown>): boolean {
  return !result[0] && (result[2].code === 'aborted' || result[2].code === 'closed')
}

/** Answers to find_node/find_value are parsed from their bytes into contacts; parseFindReply then applies its rules to either form. */
const FIND_OPTIONS: KademliaCallOptions = { decode: decodeNeighbours }
