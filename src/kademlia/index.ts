/** rpcudp/kademlia: a Kademlia DHT node that joins Python kademlia 2.2.3 networks (docs/KADEMLIA.md). */
export { KademliaNode } from './node'
export type { KademliaNodeOptions, KademliaOperationOptions, KademliaStats, NodeInfo, PutMutableOptions, GetMutableOptions } from './node'
export type { PutMutableResult, PutImmutableResult } from './record-ops'
export type { MutableRecord } from './records'
export type { KeyPair, RecordSigner } from './ed25519'
export { generateKeyPair } from './ed25519'
export type { DiversityBounds, DiversityOption } from './diversity'
export type { KademliaTransport, KademliaCallOptions } from './transport'
export type { Clock, ClockTimer } from './clock'
export type { KademliaValue } from './values'
export type { Key } from './ids'
export type { WireCounters } from './wire'
export type { Address, CallResult, Handler } from '../protocol'
export { digest } from './ids'
export { registerKademliaMetrics } from './metrics'
export type { MetricsOptions, MetricsRegistration } from '../metrics'
export {
  KademliaValueError,
  KademliaArgumentError,
  KademliaStateError,
  KademliaAbortError,
  KademliaTimeoutError,
  KademliaSeqError,
  KademliaCasError,
  KademliaSignatureError,
  KademliaCryptoError,
} from './errors'
