/**
 * The seam between RPCProtocol and a backend. A transport owns the socket, the
 * message ids, the outstanding-call table with its deadlines, and the wire
 * counters; RPCProtocol owns handlers, values and promises. Bodies cross as
 * msgpack bytes in both directions.
 */
import type { DecodeReason } from './codec'
import { DROP_REASONS } from './wire-names'

export type BackendName = 'native' | 'pure'

/** A per-source token bucket on incoming requests (crates/rpcudp-core/src/limits.rs, src/pure/limits.ts). */
export interface RateConfig {
  /** Tokens added per second to each source's bucket. */
  requestsPerSecond: number
  /** A bucket's capacity, and its content when a source is first seen. */
  burst: number
  /** Sources tracked at once; beyond it the least recently seen is forgotten. */
  maxSources: number
}

/** The reflection bound on replies to unverified sources (crates/rpcudp-core/src/reflection.rs, src/pure/reflection.ts). */
export interface ReflectionConfig {
  /** Bytes any source may be sent before its own bytes count. */
  allowance: number
  /** Bytes that may be sent per byte received, beyond the allowance. */
  factor: number
  /** Sources tracked at once; beyond it the least recently seen is forgotten. */
  maxSources: number
}

export interface TransportOptions {
  maxBodySize: number
  maxOutstanding: number
  checkSender: boolean
  recvBufferSize: number
  sendBufferSize: number
  /** Native only: receive on Node's event loop ('loop') or on the Rust runtime thread ('thread'). */
  nativeIo: 'loop' | 'thread'
  /** Per-source token bucket on incoming requests (native: enforced in Rust); null: no limit. */
  perSource: RateConfig | null
  /** The reflection bound (native: enforced in Rust); null: no bound. */
  reflection: ReflectionConfig | null
}

export type Address = [host: string, port: number]

/**
 * Receives a transport's events on the JavaScript thread, already validated and
 * decoded with the shared codec (answer bodies excepted, see onResponse): a datagram that fails validation is counted as
 * a drop by the transport and never reaches the sink.
 */
export interface TransportSink {
  onRequest(id: Buffer, sender: Address, name: string, args: unknown[]): void
  /**
   * An answer's body, bytes [start, end) of `buf`, decoded here (with the call's
   * own decoder if it has one) before this returns: the transport reuses `buf`.
   * Returns why the body does not decode, leaving the call unsettled, or undefined.
   */
  onResponse(token: number, buf: Buffer, start: number, end: number): DecodeReason | undefined
  onErrorReply(token: number, code: string, message: string): void
  onTimeout(token: number): void
}

/** Counters a transport keeps; RPCProtocol adds its handler-side ones. */
export interface WireStats {
  requestsSent: number
  requestsReceived: number
  responsesSent: number
  responsesReceived: number
  errorsSent: number
  errorsReceived: number
  timeouts: number
  outstanding: number
  dropped: Record<WireDropReason, number>
  /** Receive-side socket failures (a failed poll on native, a dgram 'error' on pure), each also logged. */
  socketErrors: number
  recvBufferSize: number
  sendBufferSize: number
  /** Sources the per-source rate limit tracks now (bounded by its maxSources; 0 without one). */
  sourcesTracked: number
  /** Sources the reflection bound tracks now (bounded by its maxSources; 0 without it). */
  reflectionSources: number
}

/** Every reason a datagram is dropped (defined in the Rust core; see src/wire-names.ts). */
export type DropReason = (typeof DROP_REASONS)[number]
/** The reasons a transport counts; `handlersBusy` and `closing` are RPCProtocol's, since handlers run in JavaScript. */
export type WireDropReason = Exclude<DropReason, 'handlersBusy' | 'closing'>
export const WIRE_DROP_REASONS = DROP_REASONS.filter((r): r is WireDropReason => r !== 'handlersBusy' && r !== 'closing')

export interface Transport {
  readonly backend: BackendName
  bind(port: number, host: string, sink: TransportSink): Promise<Address>
  /** Starts a call; throws RPCSizeError / RPCOverloadedError. `token` comes back in onResponse/onErrorReply/onTimeout. */
  call(host: string, port: number, body: Buffer, len: number, timeoutMs: number, token: number): void
  reply(id: Buffer, host: string, port: number, body: Buffer, len: number): void
  /** An error reply (type 0x02, body `[code, message]`, the message cut to fit maxBodySize). */
  replyError(id: Buffer, host: string, port: number, code: string, message: string): void
  /** Forgets the outstanding call `token`: no event for it follows, and an answer to it is counted as unmatchedResponse. */
  cancel(token: number): void
  /** Stops the socket; outstanding calls produce no further events. */
  close(): void
  ref(): void
  unref(): void
  stats(): WireStats
}
