/**
 * node:diagnostics_channel publication (README "Diagnostics channels"). Every
 * publisher checks `traced()` / `hasSubscribers` before building a context
 * object, so with nobody subscribed the hot paths allocate nothing.
 */
import { channel, tracingChannel, type TracingChannel } from 'node:diagnostics_channel'
import { RateWindow, type RateLimitedLog } from './log'
import type { Address, BackendName, DropReason } from './transport'
import type { CallResult, FailureCode, RPCProtocol } from './protocol'

export interface CallTraceContext {
  /** The protocol making the call; non-enumerable, so copies and logs of the context leave it out. */
  readonly protocol?: RPCProtocol<any>
  address: Address
  method: string
  backend: BackendName
  /** At asyncEnd: the call's result (a call never rejects for a network outcome). */
  result?: CallResult<unknown>
  /** At asyncEnd, when the result is `[false, null, failure]`: failure.code. */
  code?: FailureCode
}

export interface HandleTraceContext {
  /** The protocol running the handler; non-enumerable like CallTraceContext's. */
  readonly protocol?: RPCProtocol<any>
  sender: Address
  method: string
  /** At end (sync handler) or asyncEnd (async): what the handler returned or resolved to. */
  result?: unknown
  /** At error: what the handler threw or rejected with, or the handlerTimeout error. */
  error?: unknown
}

export interface DropMessage {
  reason: DropReason
  /** Where the datagram came from; null when not known: an outgoing datagram the socket refused (sendFailed), or a native answer whose body failed the JavaScript decoder. */
  sender: Address | null
}

export const callChannel: TracingChannel<object, CallTraceContext> = tracingChannel('rpcudp:call')
export const handleChannel: TracingChannel<object, HandleTraceContext> = tracingChannel('rpcudp:handle')
export const dropChannel = channel('rpcudp:drop')
/** `{ protocol }`, once, when an RPCProtocol closes: a subscriber that watches one protocol (registerMetrics) lets go of it. */
export const closeChannel = channel('rpcudp:close')

/**
 * `context` with `owner` under `key`, non-enumerable: a subscriber serving
 * several protocols in one process tells them apart, while a tracer that
 * spreads or serialises the context does not drag the whole protocol along.
 */
export function owned<T extends object>(context: T, key: string, owner: object): T {
  return Object.defineProperty(context, key, { value: owner })
}

/** TracingChannel.hasSubscribers, which Bun lacks: there, any of its five channels. */
export function traced(tc: TracingChannel<object, any>): boolean {
  return (
    tc.hasSubscribers ??
    (tc.start.hasSubscribers || tc.end.hasSubscribers || tc.asyncStart.hasSubscribers || tc.asyncEnd.hasSubscribers || tc.error.hasSubscribers)
  )
}

/** Publishes drops on `rpcudp:drop`, at most 10 a second per publisher, like the debug log. */
export class DropPublisher {
  private readonly window = new RateWindow()

  publish(reason: DropReason, sender: Address | null): void {
    if (dropChannel.hasSubscribers && this.window.admit()) dropChannel.publish({ reason, sender } satisfies DropMessage)
  }
}

/** A reply the reflection bound held back (counted by the caller): logged and published like any other drop. */
export function reportHeldBack(log: RateLimitedLog, drops: DropPublisher, host: string, port: number): void {
  log.log(`dropped datagram (unverified): reply to ${host}:${port}, which never answered a call, beyond its share`)
  drops.publish('unverified', [host, port])
}
