/** Base class of every error rpcudp throws; `code` is stable, messages are not. */
export class RPCError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** A value that has no msgpack form in rpcudp's value mapping (docs/PROTOCOL.md). */
export class RPCEncodeError extends RPCError {
  constructor(message: string) {
    super('ERR_RPC_ENCODE', message)
  }
}

/** A request or reply body larger than `maxBodySize` (8192 bytes by default, like Python). */
export class RPCSizeError extends RPCError {
  readonly size: number
  readonly limit: number
  constructor(size: number, limit: number) {
    super('ERR_RPC_TOO_LARGE', `msgpack body is ${size} bytes; the limit is ${limit}`)
    this.size = size
    this.limit = limit
  }
}

/** Used before `listen()` or after `close()`. */
export class RPCStateError extends RPCError {}

/** `maxOutstanding` calls are already waiting for answers. */
export class RPCOverloadedError extends RPCError {
  constructor(limit: number) {
    super('ERR_RPC_OVERLOADED', `${limit} calls are already outstanding (maxOutstanding)`)
  }
}

/** A bad option, address or method name given to the API. */
export class RPCArgumentError extends RPCError {
  constructor(message: string) {
    super('ERR_RPC_INVALID_ARGUMENT', message)
  }
}

/** The requested backend cannot be used here; `cause` holds the load error. */
export class RPCBackendError extends RPCError {
  constructor(message: string, cause?: unknown) {
    super('ERR_RPC_BACKEND_UNAVAILABLE', message, { cause })
  }
}

/** A socket-level failure (bind failed, address in use, ...). */
export class RPCSocketError extends RPCError {
  constructor(message: string, cause?: unknown) {
    super('ERR_RPC_SOCKET', message, { cause })
  }
}

export const notListening = () => new RPCStateError('ERR_RPC_NOT_LISTENING', 'call listen() first')
export const closedError = () => new RPCStateError('ERR_RPC_CLOSED', 'this protocol is closed')
