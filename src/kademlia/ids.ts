import { createHash, randomBytes } from 'node:crypto'
import { KademliaArgumentError } from './errors'

/** Node ids and keys are 160 bits, sent as 20-byte msgpack bin, like Python kademlia. */
export const ID_BYTES = 20
export const ID_SPACE = 1n << 160n

/** A key as the API takes it: a string (hashed as UTF-8) or bytes (hashed as is). */
export type Key = string | Uint8Array

/**
 * Inside the routing table, storage and lookups an id is an IdKey: its 20 bytes
 * as a 20-character latin1 string. It is a Map key as it is, compares in id
 * order with < and >, and costs no Buffer (small Buffers are slices of a shared
 * 8 KiB pool, so every long-lived one would pin a slab).
 */
export type IdKey = string

export function isNodeId(v: unknown): v is Buffer {
  return Buffer.isBuffer(v) && v.length === ID_BYTES
}

export function toKey(id: Uint8Array): IdKey {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('latin1')
}

export function fromKey(key: IdKey): Buffer {
  return Buffer.from(key, 'latin1')
}

/** Python's kademlia.utils.digest: sha1 of the UTF-8 string or of the bytes. */
export function digest(key: Key): Buffer {
  if (typeof key !== 'string' && !(key instanceof Uint8Array))
    throw new KademliaArgumentError(`a key is a string or bytes, got ${typeof key}`)
  return createHash('sha1').update(key).digest()
}

/** A random node id; Python uses digest(random.getrandbits(255)), which is as uniform. */
export function randomId(): Buffer {
  return randomBytes(ID_BYTES)
}

/**
 * The id's first 24 bits as a number (a small integer, so never boxed): XOR
 * distances compare by their first 24 bits as plain numbers, and only ties
 * need the byte-by-byte compareDistance.
 */
export function keyHead(key: IdKey): number {
  return (key.charCodeAt(0) << 16) | (key.charCodeAt(1) << 8) | key.charCodeAt(2)
}

export function bigIntToKey(n: bigint): IdKey {
  return Buffer.from(n.toString(16).padStart(ID_BYTES * 2, '0'), 'hex').toString('latin1')
}

/** Whether `a` is nearer `target` than `b` by XOR distance (< 0), as near (0), or farther (> 0); no allocation. */
export function compareDistance(a: IdKey, b: IdKey, target: IdKey): number {
  for (let i = 0; i < ID_BYTES; i++) {
    const t = target.charCodeAt(i)
    const d = (a.charCodeAt(i) ^ t) - (b.charCodeAt(i) ^ t)
    if (d !== 0) return d
  }
  return 0
}

/** Bits `a` and `b` share from the top. */
export function sharedPrefixBits(a: IdKey, b: IdKey): number {
  for (let i = 0; i < ID_BYTES; i++) {
    const x = a.charCodeAt(i) ^ b.charCodeAt(i)
    if (x !== 0) return i * 8 + Math.clz32(x) - 24
  }
  return ID_BYTES * 8
}

/** A uniformly random id in [low, high] (both inclusive), for refreshing a bucket; from `random` if given, else node:crypto. */
export function randomIdInRange(low: bigint, high: bigint, random?: () => number): Buffer {
  const span = high - low + 1n
  const bytes = random === undefined ? randomBytes(ID_BYTES + 8) : Buffer.from(Array.from({ length: ID_BYTES + 8 }, () => Math.floor(random() * 256)))
  const r = BigInt('0x' + bytes.toString('hex')) % span
  return fromKey(bigIntToKey(low + r))
}
