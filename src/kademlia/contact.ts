import type { Address } from '../protocol'
import { fromKey, toKey, type IdKey } from './ids'

/** Another node as the routing table and lookups know it (Python's kademlia.node.Node). */
export class Contact {
  constructor(
    /** The id as an IdKey (20 latin1 characters). */
    readonly key: IdKey,
    readonly ip: string,
    readonly port: number,
  ) {}

  static fromId(id: Uint8Array, ip: string, port: number): Contact {
    return new Contact(toKey(id), ip, port)
  }

  /** The 20-byte id (a new Buffer each time). */
  get id(): Buffer {
    return fromKey(this.key)
  }

  get address(): Address {
    return [this.ip, this.port]
  }

  sameHomeAs(address: Address): boolean {
    return this.ip === address[0] && this.port === address[1]
  }

  /** The wire form of a neighbour: [id, ip, port], as Python's tuple(node). */
  toWire(): [Buffer, string, number] {
    return [this.id, this.ip, this.port]
  }
}
