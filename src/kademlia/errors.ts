import { RPCError } from '../errors'

/** A value the DHT cannot hold: not int/float/bool/str/bytes (Python's check_dht_value_type), or too big for one datagram. */
export class KademliaValueError extends RPCError {
  constructor(message: string) {
    super('ERR_KAD_VALUE', message)
  }
}

/** A bad key, node id, option or address given to the Kademlia API. */
export class KademliaArgumentError extends RPCError {
  constructor(message: string) {
    super('ERR_KAD_INVALID_ARGUMENT', message)
  }
}

/** A state file that cannot be read or does not hold a saved node. */
export class KademliaStateError extends RPCError {
  constructor(message: string, cause?: unknown) {
    super('ERR_KAD_STATE', message, { cause })
  }
}

/** A Kademlia operation ended by its `signal` (or its `timeout`, as KademliaTimeoutError); nothing more is sent for it. */
export class KademliaAbortError extends RPCError {
  constructor(reason?: unknown, code = 'ERR_KAD_ABORTED') {
    super(code, `the operation was aborted${reason instanceof Error ? `: ${reason.message}` : ''}`, { cause: reason })
  }
}

/** Throws KademliaAbortError if `signal` was aborted: the check between an operation's steps. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new KademliaAbortError(signal.reason)
}

/** A Kademlia operation that ran past its `timeout`. */
export class KademliaTimeoutError extends KademliaAbortError {
  constructor(readonly seconds: number) {
    super(undefined, 'ERR_KAD_TIMEOUT')
    this.message = `the operation did not finish within ${seconds} s`
  }
}

/**
 * A mutable put whose seq is not above the record the network holds (or
 * whose seq would pass 2^64 - 1): nothing was sent. `currentSeq` is the
 * highest valid seq the lookup found, null when it found none.
 */
export class KademliaSeqError extends RPCError {
  constructor(
    message: string,
    readonly currentSeq: bigint | null,
    code = 'ERR_KAD_SEQ_TOO_LOW',
  ) {
    super(code, message)
  }
}

/** A mutable put with `cas` that found another seq, or whose record lost a race to another writer's. */
export class KademliaCasError extends KademliaSeqError {
  constructor(message: string, currentSeq: bigint | null) {
    super(message, currentSeq, 'ERR_KAD_CAS_MISMATCH')
  }
}

/** A signature that does not verify: from a `sign` callback, or a secret key that is not the public key's. Nothing was sent. */
export class KademliaSignatureError extends RPCError {
  constructor(message: string) {
    super('ERR_KAD_BAD_SIGNATURE', message)
  }
}

/** The runtime's node:crypto has no ed25519, which signed records need. */
export class KademliaCryptoError extends RPCError {
  constructor(message: string, cause?: unknown) {
    super('ERR_KAD_NO_ED25519', message, { cause })
  }
}
