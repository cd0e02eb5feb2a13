/**
 * Signed and content-addressed records (BEP 44's semantics) carried as plain
 * bytes values, so Python kademlia 2.2.3 nodes store and serve them as they
 * are. The envelope, byte for byte, is in docs/KADEMLIA.md.
 */
import { createHash } from 'node:crypto'
import { Decoder, Encoder } from '../codec'
import { RPCError } from '../errors'
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, verifySignature } from './ed25519'
import { KademliaArgumentError, KademliaValueError } from './errors'
import { fromKey, type IdKey } from './ids'
import { isDhtValue, type KademliaValue } from './values'

/** "rpcr", then the version: a bytes value that starts with it is a record and is checked as one. */
export const RECORD_MAGIC = Buffer.from('rpcr', 'latin1')
export const RECORD_VERSION = 1
export const MUTABLE = 1
export const IMMUTABLE = 2
export const MAX_SALT_BYTES = 64
export const MAX_SEQ = (1n << 64n) - 1n

const HEAD = RECORD_MAGIC.length + 2
const PK_AT = HEAD
const SIG_AT = PK_AT + PUBLIC_KEY_BYTES
const SEQ_AT = SIG_AT + SIGNATURE_BYTES
const SALT_LEN_AT = SEQ_AT + 8
const SALT_AT = SALT_LEN_AT + 1

/** What a mutable record signs starts with this, so its signature means nothing to any other protocol using the same key. */
const SIGNED_PREFIX = Buffer.from('rpcudp/kademlia mutable v1\0', 'latin1')

/** A verified mutable record, as getMutable returns it. */
export interface MutableRecord {
  value: KademliaValue
  seq: bigint
  salt: Buffer
  publicKey: Buffer
  signature: Buffer
}

export interface ParsedMutable extends MutableRecord {
  kind: typeof MUTABLE
  /** The whole envelope. */
  bytes: Buffer
  /** The value's msgpack encoding, as signed. */
  valueBytes: Buffer
}

export interface ParsedImmutable {
  kind: typeof IMMUTABLE
  value: KademliaValue
  bytes: Buffer
  valueBytes: Buffer
}

export type ParsedRecord = ParsedMutable | ParsedImmutable

// a record must fit a datagram; the caller's maxBodySize is checked on the envelope
const encoder = new Encoder(65486)
const decoder = new Decoder()

/** The value's msgpack encoding: the rpcudp codec packs with umsgpack's widths, so equal values give equal bytes. */
export function encodeValue(value: unknown): Buffer {
  if (!isDhtValue(value)) throw new KademliaValueError('a record value must be a number, bigint, boolean, string or bytes (Python\'s int, float, bool, str, bytes)')
  try {
    return Buffer.from(encoder.bytes.subarray(0, encoder.encode(value)))
  } catch (err) {
    throw new KademliaValueError(`the value cannot be sent: ${err instanceof RPCError ? err.message : String(err)}`)
  }
}

/** A salt as the API takes it (bytes, or a string as UTF-8), at most 64 bytes as in BEP 44. */
export function toSalt(salt: unknown): Buffer {
  if (salt === undefined) return Buffer.alloc(0)
  if (typeof salt !== 'string' && !(salt instanceof Uint8Array)) throw new KademliaArgumentError('salt must be a string or bytes')
  const bytes = Buffer.from(salt as Uint8Array)
  if (bytes.length > MAX_SALT_BYTES) throw new KademliaArgumentError(`salt is ${bytes.length} bytes; at most ${MAX_SALT_BYTES}`)
  return bytes
}

/** A seq or cas as the API takes it: an integer 0..2^64 - 1. */
export function toSeq(name: string, v: unknown): bigint | undefined {
  if (v === undefined) return undefined
  if ((typeof v === 'number' && Number.isSafeInteger(v)) || typeof v === 'bigint') {
    const n = BigInt(v)
    if (n >= 0n && n <= MAX_SEQ) return n
  }
  throw new KademliaArgumentError(`${name} must be an integer 0..2^64 - 1, got ${String(v)}`)
}

/** BEP 44's mutable target: sha1(publicKey ‖ salt). */
export function mutableTarget(publicKey: Buffer, salt: Buffer): Buffer {
  return createHash('sha1').update(publicKey).update(salt).digest()
}

/** An immutable record's target: sha1 of its value's msgpack encoding. */
export function immutableTarget(valueBytes: Buffer): Buffer {
  return createHash('sha1').update(valueBytes).digest()
}

/** What the owner signs: the prefix, the salt's length and bytes, seq (u64 BE), then the value's encoding. */
export function signedMessage(salt: Buffer, seq: bigint, valueBytes: Buffer): Buffer {
  const head = Buffer.alloc(1 + salt.length + 8)
  head[0] = salt.length
  salt.copy(head, 1)
  head.writeBigUInt64BE(seq, 1 + salt.length)
  return Buffer.concat([SIGNED_PREFIX, head, valueBytes])
}

function header(kind: number): Buffer {
  return Buffer.concat([RECORD_MAGIC, Buffer.from([RECORD_VERSION, kind])])
}

export function mutableEnvelope(publicKey: Buffer, signature: Buffer, seq: bigint, salt: Buffer, valueBytes: Buffer): Buffer {
  const fixed = Buffer.alloc(PUBLIC_KEY_BYTES + SIGNATURE_BYTES + 8 + 1)
  publicKey.copy(fixed, 0)
  signature.copy(fixed, PUBLIC_KEY_BYTES)
  fixed.writeBigUInt64BE(seq, PUBLIC_KEY_BYTES + SIGNATURE_BYTES)
  fixed[fixed.length - 1] = salt.length
  return Buffer.concat([header(MUTABLE), fixed, salt, valueBytes])
}

export function immutableEnvelope(valueBytes: Buffer): Buffer {
  return Buffer.concat([header(IMMUTABLE), valueBytes])
}

/** Whether a stored value claims to be a record (and must then be a valid one). */
export function isRecordBytes(v: unknown): v is Buffer {
  return Buffer.isBuffer(v) && v.length >= HEAD && v.subarray(0, RECORD_MAGIC.length).equals(RECORD_MAGIC)
}

/** The envelope's fields, or undefined if it is not a well-formed record of a known version; nothing is verified yet. */
export function parseRecord(bytes: Buffer): ParsedRecord | undefined {
  if (!isRecordBytes(bytes) || bytes[RECORD_MAGIC.length] !== RECORD_VERSION) return undefined
  const kind = bytes[RECORD_MAGIC.length + 1]
  if (kind === IMMUTABLE) {
    const value = decodeValue(bytes, HEAD)
    return value === undefined ? undefined : { kind, value, bytes, valueBytes: bytes.subarray(HEAD) }
  }
  if (kind !== MUTABLE || bytes.length < SALT_AT) return undefined
  const saltLength = bytes[SALT_LEN_AT]
  const valueAt = SALT_AT + saltLength
  if (saltLength > MAX_SALT_BYTES || bytes.length <= valueAt) return undefined
  const value = decodeValue(bytes, valueAt)
  if (value === undefined) return undefined
  return {
    kind,
    value,
    bytes,
    valueBytes: bytes.subarray(valueAt),
    publicKey: bytes.subarray(PK_AT, SIG_AT),
    signature: bytes.subarray(SIG_AT, SEQ_AT),
    seq: bytes.readBigUInt64BE(SEQ_AT),
    salt: bytes.subarray(SALT_AT, valueAt),
  }
}

function decodeValue(bytes: Buffer, at: number): KademliaValue | undefined {
  try {
    const v = decoder.decode(bytes, at, bytes.length)
    return isDhtValue(v) ? v : undefined
  } catch {
    return undefined
  }
}

/** The record held under `key` if it is one and it verifies: its target is `key` and, if mutable, its signature holds. */
export function verifiedRecord(key: IdKey, value: unknown): ParsedRecord | undefined {
  if (!Buffer.isBuffer(value)) return undefined
  const r = parseRecord(value)
  if (r === undefined) return undefined
  const target = r.kind === MUTABLE ? mutableTarget(r.publicKey, r.salt) : immutableTarget(r.valueBytes)
  if (!fromKey(key).equals(target)) return undefined
  if (r.kind === MUTABLE && !verifySignature(r.publicKey, signedMessage(r.salt, r.seq, r.valueBytes), r.signature)) return undefined
  return r
}

/**
 * Whether a node should store `value` under `key` where it holds `held`: any
 * value that is not a record, a verified immutable record, or a verified
 * mutable record newer than the one held. At an equal seq the first record
 * stays (only a copy of it is taken): a node never flips between two records
 * the owner signed with one seq, so concurrent writers converge on the one
 * most nodes took first (docs/KADEMLIA.md, "cas").
 */
export function admits(key: IdKey, value: KademliaValue, held: KademliaValue | undefined): boolean {
  if (!isRecordBytes(value)) return true
  const r = verifiedRecord(key, value)
  if (r === undefined) return false
  if (r.kind === IMMUTABLE || !isRecordBytes(held)) return true
  // checked again: a copy that does not verify (one a heal replaces) must not hold its place
  const old = verifiedRecord(key, held)
  if (old?.kind !== MUTABLE) return true
  return r.seq > old.seq || (r.seq === old.seq && r.bytes.equals(old.bytes))
}

/**
 * Of the values peers returned for a mutable target, the verified record that
 * wins: the highest seq; at an equal seq the one most peers hold, then the
 * smaller signature, so every reader of the same answers picks the same one.
 */
export function newestRecord(key: IdKey, values: Iterable<KademliaValue>): ParsedMutable | undefined {
  const bySignature = new Map<string, { r: ParsedMutable; n: number }>()
  for (const v of values) {
    const r = verifiedRecord(key, v)
    if (r?.kind !== MUTABLE) continue
    const id = r.signature.toString('latin1')
    const entry = bySignature.get(id) ?? { r, n: 0 }
    entry.n++
    bySignature.set(id, entry)
  }
  let best: { r: ParsedMutable; n: number } | undefined
  for (const e of bySignature.values())
    if (best === undefined || e.r.seq > best.r.seq || (e.r.seq === best.r.seq && (e.n > best.n || (e.n === best.n && Buffer.compare(e.r.signature, best.r.signature) < 0))))
      best = e
  return best?.r
}
