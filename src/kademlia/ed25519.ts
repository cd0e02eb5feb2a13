import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto'
import { KademliaArgumentError, KademliaCryptoError } from './errors'

/** An ed25519 key pair; `secretKey` is the 32-byte seed (RFC 8032's private key), as libsodium's and BEP 44's tools take it. */
export interface KeyPair {
  publicKey: Buffer
  secretKey: Buffer
}

/** A key whose secret stays elsewhere (an HSM, another process): `sign` returns the 64-byte ed25519 signature of `message`. */
export interface RecordSigner {
  publicKey: Buffer
  sign(message: Buffer): Buffer | Uint8Array | Promise<Buffer | Uint8Array>
}

export const PUBLIC_KEY_BYTES = 32
export const SIGNATURE_BYTES = 64

// node:crypto takes raw ed25519 keys only inside DER: these are the fixed headers of a PKCS#8 seed and an SPKI key
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/** Which runtime this is, for an error that says where ed25519 is missing. */
function runtimeName(): string {
  const v = process.versions as Record<string, string | undefined>
  if (v.bun !== undefined) return `Bun ${v.bun}`
  if (v.deno !== undefined) return `Deno ${v.deno}`
  return `Node.js ${process.version}`
}

/** Runs a node:crypto call; a failure there (the lengths were checked before) means the runtime lacks ed25519. */
function ed25519<T>(f: () => T): T {
  try {
    return f()
  } catch (err) {
    throw new KademliaCryptoError(`ed25519 is not available in node:crypto on ${runtimeName()}: ${err instanceof Error ? err.message : String(err)}`, err)
  }
}

function privateKey(seed: Buffer): KeyObject {
  return ed25519(() => createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' }))
}

/** A new key pair from node:crypto's random source. */
export function generateKeyPair(): KeyPair {
  const secretKey = randomBytes(32)
  return { publicKey: publicKeyOf(secretKey), secretKey }
}

/** The public key of a 32-byte seed. */
export function publicKeyOf(secretKey: Buffer): Buffer {
  const der = ed25519(() => createPublicKey(privateKey(secretKey)).export({ format: 'der', type: 'spki' }))
  return Buffer.from(der.subarray(SPKI_PREFIX.length))
}

/** Signs with a 32-byte seed. Making the KeyObject costs ~10 signatures (it derives the public key): a signer keeps one (toSigner). */
export function signMessage(secretKey: Buffer | KeyObject, message: Buffer): Buffer {
  const key = Buffer.isBuffer(secretKey) ? privateKey(secretKey) : secretKey
  return ed25519(() => sign(null, message, key))
}

/**
 * Public KeyObjects of the keys verified lately: making one costs nearly as
 * much as the verification, and a get verifies the same key once per answer.
 */
const publicKeys = new Map<string, KeyObject>()
const PUBLIC_KEYS_KEPT = 1024

function publicKeyObject(publicKey: Buffer): KeyObject {
  const id = publicKey.toString('latin1')
  let key = publicKeys.get(id)
  if (key === undefined) {
    key = ed25519(() => createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' }))
    if (publicKeys.size >= PUBLIC_KEYS_KEPT) publicKeys.delete(publicKeys.keys().next().value!)
  } else publicKeys.delete(id)
  publicKeys.set(id, key)
  return key
}

export function verifySignature(publicKey: Buffer, message: Buffer, signature: Buffer): boolean {
  if (publicKey.length !== PUBLIC_KEY_BYTES || signature.length !== SIGNATURE_BYTES) return false
  const key = publicKeyObject(publicKey)
  return ed25519(() => verify(null, message, key, signature))
}

/** A public key an API call was given, as a Buffer of its own. */
export function toPublicKey(publicKey: unknown): Buffer {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_BYTES) throw new KademliaArgumentError('publicKey must be 32 bytes')
  return Buffer.from(publicKey)
}

/** The signer an API call was given: a key pair or a `sign` callback, checked before anything else. */
export function toSigner(keys: unknown): RecordSigner {
  if (keys === null || typeof keys !== 'object') throw new KademliaArgumentError('keys must be { publicKey, secretKey } or { publicKey, sign }')
  const { publicKey, secretKey, sign: callback } = keys as Partial<KeyPair & RecordSigner>
  const pk = toPublicKey(publicKey)
  if (typeof callback === 'function') return { publicKey: pk, sign: (m) => callback.call(keys, m) }
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== 32) throw new KademliaArgumentError('secretKey must be the 32-byte ed25519 seed (or give a sign function)')
  const key = privateKey(Buffer.from(secretKey))
  return { publicKey: pk, sign: (m) => signMessage(key, m) }
}
