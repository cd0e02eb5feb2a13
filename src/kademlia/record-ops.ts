/**
 * putMutable/getMutable/putImmutable/getImmutable on top of a node's lookups
 * and stores (the RecordHost KademliaNode gives them): BEP 44's rules for
 * seq, cas and salt, over records.ts's envelope.
 */
import type { Contact } from './contact'
import { verifySignature, type RecordSigner } from './ed25519'
import { KademliaCasError, KademliaSeqError, KademliaSignatureError, throwIfAborted } from './errors'
import { toKey, type IdKey } from './ids'
import {
  IMMUTABLE,
  MAX_SEQ,
  encodeValue,
  immutableEnvelope,
  immutableTarget,
  mutableEnvelope,
  mutableTarget,
  newestRecord,
  signedMessage,
  verifiedRecord,
  type MutableRecord,
} from './records'
import { checkDhtValue, type KademliaValue } from './values'

export interface PutMutableResult {
  /** sha1(publicKey ‖ salt): the key the record is stored under. */
  target: Buffer
  seq: bigint
  /** Nodes that acknowledged the store. */
  stored: number
}

export interface PutImmutableResult {
  /** sha1 of the value's msgpack encoding. */
  target: Buffer
  stored: number
}

/** What a lookup that collects values found. */
export interface Gathered {
  /** The k nearest that answered, nearest first. */
  nodes: Contact[]
  /** What each of them that had a value returned. */
  held: Map<Contact, KademliaValue>
  /** This node's own copy. */
  local: KademliaValue | undefined
}

/** What the record operations need of a KademliaNode. */
export interface RecordHost {
  readonly maxBodySize: number
  /** A value lookup that asks each of the k nearest instead of ending at the first value. */
  gather(key: IdKey, signal?: AbortSignal): Promise<Gathered>
  /** Stores on `nodes` (a lookup's k nearest), and here if this node is one of them; resolves to the acknowledgements. */
  place(key: IdKey, nodes: Contact[], value: Buffer): Promise<number>
  /** A node lookup, then place(). */
  store(key: IdKey, value: Buffer, signal?: AbortSignal): Promise<number>
  /** Stores on exactly these peers (a heal); this node's own copy goes through hold(). */
  storeOn(peers: Contact[], key: IdKey, value: Buffer): Promise<number>
  /** Keeps `value` here if the store checks admit it. */
  hold(key: IdKey, value: Buffer): void
  /** Counts copies a get re-stored. */
  healed(n: number): void
}

export interface MutablePut {
  salt: Buffer
  seq: bigint | undefined
  cas: bigint | undefined
}

const NO_SIGNATURE = Buffer.alloc(64)

function* candidates(found: Gathered): Iterable<KademliaValue> {
  yield* found.held.values()
  if (found.local !== undefined) yield found.local
}

export async function putMutable(host: RecordHost, signer: RecordSigner, value: unknown, put: MutablePut, signal?: AbortSignal): Promise<PutMutableResult> {
  const valueBytes = encodeValue(value)
  // a signature is always 64 bytes, so the store request's size is known before the lookup and before signing
  checkDhtValue(mutableEnvelope(signer.publicKey, NO_SIGNATURE, 0n, put.salt, valueBytes), host.maxBodySize)
  const target = mutableTarget(signer.publicKey, put.salt)
  const key = toKey(target)
  const found = await host.gather(key, signal)
  const current = newestRecord(key, candidates(found))
  const currentSeq = current?.seq ?? null
  if (put.cas !== undefined && currentSeq !== put.cas)
    throw new KademliaCasError(`cas is ${put.cas}, but the newest record found has ${currentSeq === null ? 'no seq: there is none' : `seq ${currentSeq}`}`, currentSeq)
  const seq = put.seq ?? (current === undefined ? 0n : current.seq + 1n)
  if (seq > MAX_SEQ) throw new KademliaSeqError('the newest record found has seq 2^64 - 1: there is no next seq', currentSeq)
  // an equal seq may only repeat the same value (a republish): nodes keep the first record of a seq
  if (current !== undefined && (seq < current.seq || (seq === current.seq && !current.valueBytes.equals(valueBytes))))
    throw new KademliaSeqError(`seq ${seq} is not above the newest record found (seq ${current.seq})`, currentSeq)
  const message = signedMessage(put.salt, seq, valueBytes)
  const signature = Buffer.from(await signer.sign(message))
  if (!verifySignature(signer.publicKey, message, signature))
    throw new KademliaSignatureError('the signature does not verify with publicKey: the sign callback or the secret key belongs to another key')
  throwIfAborted(signal)
  const stored = await host.place(key, found.nodes, mutableEnvelope(signer.publicKey, signature, seq, put.salt, valueBytes))
  if (put.cas !== undefined) {
    // the wire carries no cas (Python's store takes a key and a value): a race is settled by reading back, where every reader picks the same winner
    const after = newestRecord(key, candidates(await host.gather(key, signal)))
    if (after !== undefined && !after.signature.equals(signature))
      throw new KademliaCasError(`another record with seq ${after.seq} won over this put`, after.seq)
  }
  return { target, seq, stored }
}

export async function getMutable(host: RecordHost, publicKey: Buffer, salt: Buffer, signal?: AbortSignal): Promise<MutableRecord | null> {
  const key = toKey(mutableTarget(publicKey, salt))
  const found = await host.gather(key, signal)
  const best = newestRecord(key, candidates(found))
  if (best === undefined) return null
  await heal(host, key, found, best.bytes)
  return { value: best.value, seq: best.seq, salt: Buffer.from(best.salt), publicKey: Buffer.from(best.publicKey), signature: Buffer.from(best.signature) }
}

export async function putImmutable(host: RecordHost, value: unknown, signal?: AbortSignal): Promise<PutImmutableResult> {
  const valueBytes = encodeValue(value)
  const envelope = immutableEnvelope(valueBytes)
  checkDhtValue(envelope, host.maxBodySize)
  const target = immutableTarget(valueBytes)
  return { target, stored: await host.store(toKey(target), envelope, signal) }
}

export async function getImmutable(host: RecordHost, target: Buffer, signal?: AbortSignal): Promise<KademliaValue | null> {
  const key = toKey(target)
  const found = await host.gather(key, signal)
  for (const v of candidates(found)) {
    const r = verifiedRecord(key, v)
    if (r?.kind !== IMMUTABLE) continue
    await heal(host, key, found, r.bytes)
    return r.value
  }
  return null
}

/** The winning record is stored again on each of the k nearest that returned something else or nothing, so a replayed or forged copy does not last. */
async function heal(host: RecordHost, key: IdKey, found: Gathered, bytes: Buffer): Promise<void> {
  const same = (v: KademliaValue | undefined) => Buffer.isBuffer(v) && v.equals(bytes)
  if (found.local !== undefined && !same(found.local)) host.hold(key, bytes)
  const stale = found.nodes.filter((n) => !same(found.held.get(n)))
  if (stale.length === 0) return
  host.healed(stale.length)
  await host.storeOn(stale, key, bytes)
}
