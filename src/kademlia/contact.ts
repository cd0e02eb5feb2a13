import type { Address } from '../protocol'
import { idToBigInt } from './ids'

/** Another node as the routing table and lookups know it (Python's kademlia.node.Node). */
export class Contact {
  /** The id as hex, the key of every map that holds contacts. */
  readonly key: string
  /** The id as a number, for bucket ranges (Python's long_id). */
  readonly long: bigint

  constructor(
    readonly id: Buffer,
    readonly ip: string,
    readonly port: number,
  ) {
    this.key = id.toString('hex')
    this.long = idToBigInt(id)
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
