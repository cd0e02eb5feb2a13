import { Encoder } from '../codec'
import type { Address } from '../protocol'
import { sourceKey, subnetKey } from '../source-key'
import { ID_BYTES, compareDistance, fromKey, keyHead, toKey, type IdKey } from './ids'
import { familyOf } from './reach'

/**
 * Another node as the routing table and lookups know it (Python's
 * kademlia.node.Node). Immutable, so one object can stand for every mention
 * of the same id at the same address: see Contact.fromId.
 */
export class Contact {
  /** keyHead(key): sorting by distance compares these first. */
  readonly head: number
  /** IPV4 or IPV6 (reach.ts): answers and lookups test it against a socket's reach on every contact. */
  readonly family: number
  private wire: Buffer | undefined
  private keys: ContactKeys | undefined

  constructor(
    /** The id as an IdKey (20 latin1 characters). */
    readonly key: IdKey,
    readonly ip: string,
    readonly port: number,
  ) {
    this.head = keyHead(key)
    this.family = familyOf(ip)
  }

  /**
   * The contact for this id at this address, the same object as the last time
   * it was asked for if nothing displaced it: a node hears of the same peers
   * over and over (every answer names up to k of them), and a lookup here
   * costs no string and no allocation.
   */
  static fromId(id: Uint8Array, ip: string, port: number): Contact {
    return Contact.fromBytes(id, 0, ip, port)
  }

  /** fromId for the id at bytes[at, at + 20), e.g. inside a received datagram: no view of it is made unless the contact is new. */
  static fromBytes(bytes: Uint8Array, at: number, ip: string, port: number): Contact {
    const slot = (bytes[at] << 22) | (bytes[at + 1] << 14) | (bytes[at + 2] << 6) | (bytes[at + 3] >> 2)
    const known = recent.get(slot)
    if (known !== undefined && known.port === port && known.ip === ip && known.hasId(bytes, at)) return known
    const fresh = new Contact(toKey(bytes.subarray(at, at + ID_BYTES)), ip, port)
    if (recent.size >= RECENT_LIMIT) recent.clear()
    recent.set(slot, fresh)
    return fresh
  }

  /** The 20-byte id (a new Buffer each time). */
  get id(): Buffer {
    return fromKey(this.key)
  }

  get address(): Address {
    return [this.ip, this.port]
  }

  /** `ip:port`, what PeerHealth remembers a peer by. */
  get addressKey(): string {
    return (this.keys ??= contactKeys(this.ip, this.port)).address
  }

  /** The host as the diversity bounds count it: an IPv4 address or an IPv6 /64 (sourceKey). */
  get hostKey(): string {
    return (this.keys ??= contactKeys(this.ip, this.port)).host
  }

  /** The network as the diversity bounds count it: an IPv4 /24 or an IPv6 /48. */
  get subnetKey(): string {
    return (this.keys ??= contactKeys(this.ip, this.port)).subnet
  }

  sameHomeAs(address: Address): boolean {
    return this.ip === address[0] && this.port === address[1]
  }

  /**
   * The msgpack form of this contact as a neighbour entry, [bin id, str ip,
   * uint port] as Python's tuple(node) packs, encoded once: answers name the
   * same contacts again and again. Shared: callers only copy from it.
   */
  wireBytes(): Buffer {
    if (this.wire === undefined) {
      const len = entryEncoder.encode([fromKey(this.key), this.ip, this.port])
      // Its own memory: a slice of Buffer's shared pool would pin the whole 8 KiB slab for as long as this contact lives.
      this.wire = Buffer.allocUnsafeSlow(len)
      entryEncoder.bytes.copy(this.wire, 0, 0, len)
    }
    return this.wire
  }

  private hasId(bytes: Uint8Array, at: number): boolean {
    for (let i = 0; i < ID_BYTES; i++) if (this.key.charCodeAt(i) !== bytes[at + i]) return false
    return true
  }
}

interface ContactKeys {
  address: string
  host: string
  subnet: string
}

function contactKeys(ip: string, port: number): ContactKeys {
  return { address: ip + ':' + port, host: sourceKey(ip), subnet: subnetKey(ip) }
}

/** An entry is at most 3 + 22 + 47 (an IPv6 literal with a zone) + 3 bytes; the slack is for longer zone names. */
const entryEncoder = new Encoder(256)

/** Contacts by their first 30 bits, one per slot (the latest), for Contact.fromId; emptied when it reaches RECENT_LIMIT. */
const recent = new Map<number, Contact>()
const RECENT_LIMIT = 1 << 14

/** compareDistance for contacts, given keyHead(target): by their heads (plain numbers) first, byte by byte only on a tie. */
export function compareContacts(a: Contact, b: Contact, target: IdKey, targetHead: number): number {
  const d = (a.head ^ targetHead) - (b.head ^ targetHead)
  return d !== 0 ? d : compareDistance(a.key, b.key, target)
}
