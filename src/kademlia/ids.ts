import { createHash, randomBytes } from 'node:crypto'
import { KademliaArgumentError } from './errors'

/** Node ids and keys are 160 bits, sent as 20-byte msgpack bin, like Python kademlia. */
export const ID_BYTES = 20
export const ID_SPACE = 1n << 160n

/** A key as the API takes it: a string (hashed as UTF-8) or bytes (hashed as is). */
export type Key = string | Uint8Array

export function isNodeId(v: unknown): v is Buffer {
  return Buffer.isBuffer(v) && v.length === ID_BYTES
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

export function idToBigInt(id: Uint8Array): bigint {
  return BigInt('0x' + Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex'))
}

export function bigIntToId(n: bigint): Buffer {
  return Buffer.from(n.toString(16).padStart(ID_BYTES * 2, '0'), 'hex')
}

/** Whether `a` is nearer `target` than `b` by XOR distance (< 0), as near (0), or farther (> 0); no allocation. */
export function compareDistance(a: Uint8Array, b: Uint8Array, target: Uint8Array): number {
  for (let i = 0; i < ID_BYTES; i++) {
    const d = (a[i] ^ target[i]) - (b[i] ^ target[i])
    if (d !== 0) return d
  }
  return 0
}

/** A uniformly random id in [low, high] (both inclusive), for refreshing a bucket. */
export function randomIdInRange(low: bigint, high: bigint): Buffer {
  const span = high - low + 1n
  const r = idToBigInt(randomBytes(ID_BYTES + 8)) % span
  return bigIntToId(low + r)
}
