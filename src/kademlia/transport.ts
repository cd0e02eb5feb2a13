import { RPCProtocol, type Address, type BodyDecoder, type CallResult, type Handler, type RPCProtocolOptions, type Stats } from '../protocol'

/** Per-call options a Kademlia node passes to its transport. */
export interface KademliaCallOptions {
  /** Seconds to wait for this answer (the lookup's adaptive per-contact timeout); the transport's own default otherwise. */
  timeout?: number
  /** Aborting settles the call at once as [false, null, {code: 'aborted'}]. */
  signal?: AbortSignal
  /** CallOptions.decode: parses the answer body from its bytes, or returns undefined to have it decoded generically. */
  decode?: BodyDecoder
}

/**
 * What a Kademlia node needs from the network: call a peer's method, serve its
 * own. Production runs it on RPCProtocol (RpcTransport); the simulated-network
 * tests inject an in-process one.
 */
export interface KademliaTransport {
  listen(port: number, host: string): Promise<Address>
  /** Never rejects for a network outcome: a lost call resolves to [false, null, failure]. */
  call(address: Address, name: string, args: unknown[], options?: KademliaCallOptions): Promise<CallResult<unknown>>
  /** Registers the handlers, by method name (without the rpc_ prefix). */
  serve(handlers: Record<string, Handler>): void
  close(): Promise<void>
  /** RPCProtocol's counters, when the transport is one. */
  stats?(): Stats
  /** Whether the socket keeps the process alive (dgram's ref/unref), when the transport has one. */
  ref?(): void
  unref?(): void
}

/** The production transport: one RPCProtocol, so one UDP socket per node. */
export class RpcTransport implements KademliaTransport {
  readonly proto: RPCProtocol

  constructor(options: RPCProtocolOptions) {
    this.proto = new RPCProtocol(options)
  }

  listen(port: number, host: string): Promise<Address> {
    return this.proto.listen(port, host)
  }

  call(address: Address, name: string, args: unknown[], options?: KademliaCallOptions): Promise<CallResult<unknown>> {
    return this.proto.callRemote(address, name, args, options)
  }

  serve(handlers: Record<string, Handler>): void {
    for (const [name, handler] of Object.entries(handlers)) this.proto.handle(name, handler)
  }

  close(): Promise<void> {
    return this.proto.close()
  }

  stats(): Stats {
    return this.proto.stats()
  }

  ref(): void {
    this.proto.ref()
  }

  unref(): void {
    this.proto.unref()
  }
}
