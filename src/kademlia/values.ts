import { Encoder } from '../codec'
import { RPCError } from '../errors'
import { ID_BYTES } from './ids'
import { KademliaValueError } from './errors'

/** What a DHT value can be: Python's int, float, bool, str and bytes. */
export type KademliaValue = number | bigint | boolean | string | Buffer

/** Python's check_dht_value_type, in JavaScript types (bytes arrive as Buffer). */
export function isDhtValue(v: unknown): v is KademliaValue {
  const t = typeof v
  return t === 'number' || t === 'bigint' || t === 'boolean' || t === 'string' || v instanceof Uint8Array
}

// as large as a datagram allows: the caller's maxBodySize is compared below
const encoder = new Encoder(65486)
const SAMPLE_ID = Buffer.alloc(ID_BYTES)

/**
 * Throws KademliaValueError unless `value` is a DHT value whose store request
 * (the largest message that carries it) fits in `maxBodySize`, so nothing is
 * sent for a value some node could not pass on.
 */
export function checkDhtValue(value: unknown, maxBodySize: number): KademliaValue {
  if (!isDhtValue(value))
    throw new KademliaValueError(`a value must be a number, bigint, boolean, string or bytes (Python's int, float, bool, str, bytes), got ${describe(value)}`)
  let len: number
  try {
    len = encoder.encodeRequest('store', [SAMPLE_ID, SAMPLE_ID, value])
  } catch (err) {
    throw new KademliaValueError(`the value cannot be sent: ${err instanceof RPCError ? err.message : String(err)}`)
  }
  if (len > maxBodySize) throw new KademliaValueError(`the store request for this value is ${len} bytes; the limit is ${maxBodySize}`)
  return value instanceof Uint8Array && !Buffer.isBuffer(value) ? Buffer.from(value) : value
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? (v.constructor?.name ?? 'an object') : typeof v
}

/** A string that is equal for equal values of the same type, to count which value most peers hold. */
export function valueIdentity(v: KademliaValue): string {
  if (Buffer.isBuffer(v)) return 'b' + v.toString('hex')
  if (typeof v === 'number') return 'n' + (Object.is(v, -0) ? '-0' : String(v))
  if (typeof v === 'bigint') return 'n' + v.toString()
  return (typeof v === 'string' ? 's' : 't') + String(v)
}
