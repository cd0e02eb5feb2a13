export { RPCProtocol } from './protocol'
export type {
  Address,
  BackendName,
  BodyDecoder,
  CallFailure,
  CallOptions,
  CallProxy,
  CallResult,
  CloseOptions,
  FailureCode,
  Handler,
  PerSourceOptions,
  ReflectionOptions,
  RemoteOf,
  RPCProtocolOptions,
  Stats,
} from './protocol'
export type { BackendChoice, NativeIo, NativeRuntimeInfo, Runtime } from './loader'
export type { DropReason, WireDropReason } from './transport'
export { nativeBackend } from './loader'
export { registerMetrics } from './metrics'
export type { MetricsOptions, MetricsRegistration } from './metrics'
export {
  RPCError,
  RPCEncodeError,
  RPCSizeError,
  RPCStateError,
  RPCOverloadedError,
  RPCArgumentError,
  RPCBackendError,
  RPCSocketError,
} from './errors'
