/**
 * Prometheus metrics for an RPCProtocol (README "Metrics"), with prom-client.
 * Counters are read from stats() when the registry is scraped, so they cost
 * the hot path nothing; the latency histograms are fed by the `rpcudp:call`
 * and `rpcudp:handle` TracingChannels, which publish only while subscribed.
 * prom-client is loaded on the first registration: `require('rpcudp')` alone
 * does not pay its ~60 ms start-up.
 */
import type { TracingChannel } from 'node:diagnostics_channel'
import type { Counter, Gauge, Histogram, Metric, Registry } from 'prom-client'
import { RPCArgumentError, RPCError } from './errors'
import { callChannel, closeChannel, handleChannel, type CallTraceContext, type HandleTraceContext } from './diagnostics'
import { RPCProtocol, type Stats } from './protocol'
import { checkKeys, describe } from './validate'

/** Options of {@link registerMetrics} (and of `registerKademliaMetrics` in rpcudp/kademlia). */
export interface MetricsOptions {
  /** The prom-client Registry to register in. Default: prom-client's global `register`. */
  registry?: Registry
  /** Put before every metric name: a Prometheus name start, `[a-zA-Z_:][a-zA-Z0-9_:]*`, or ''. Default 'rpcudp_'. */
  prefix?: string
  /** Constant labels on every series, e.g. `{ node: 'a' }`; names `[a-zA-Z_][a-zA-Z0-9_]*`, values strings. Default none. */
  labels?: Record<string, string>
}

/** What a registration put in its registry, and how to take it out again. */
export interface MetricsRegistration {
  readonly registry: Registry
  /** The metric names registered, prefix included. */
  readonly names: readonly string[]
  /**
   * Removes the metrics from the registry and stops observing latencies. It
   * happens by itself when the protocol closes; calling it again does nothing.
   */
  unregister(): void
}

/**
 * Seconds. Loopback round trips are tens of microseconds, a call that times
 * out takes waitTimeout (5 s by default): prom-client's default buckets start
 * at 5 ms and would put every healthy call in the first one.
 */
const LATENCY_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

type PromClient = typeof import('prom-client')
let promClient: PromClient | undefined
const prom = (): PromClient => (promClient ??= require('prom-client') as PromClient)

/**
 * One stats() key as a metric: a counter (monotonic, named `..._total`) or a
 * gauge (a level). `read` gives a number, or one number per value of `label`
 * (`dropped` by reason).
 */
export interface StatMetric<S> {
  name: string
  kind: 'counter' | 'gauge'
  help: string
  read: (stats: S) => number | Readonly<Record<string, number>>
  label?: string
}

export const counter = <S>(name: string, help: string, read: StatMetric<S>['read'], label?: string): StatMetric<S> => ({ name, kind: 'counter', help, read, label })
export const gauge = <S>(name: string, help: string, read: StatMetric<S>['read']): StatMetric<S> => ({ name, kind: 'gauge', help, read })

/** RPCProtocol.stats() as metrics; droppedTotal is left out, being sum(dropped_total). */
const PROTOCOL_METRICS: StatMetric<Stats>[] = [
  counter('requests_sent_total', 'Requests sent (calls made).', (s) => s.requestsSent),
  counter('requests_received_total', 'Requests accepted for a handler.', (s) => s.requestsReceived),
  counter('responses_sent_total', 'Answers sent.', (s) => s.responsesSent),
  counter('responses_received_total', 'Answers matched to an outstanding call.', (s) => s.responsesReceived),
  counter('errors_sent_total', 'Error replies sent.', (s) => s.errorsSent),
  counter('errors_received_total', 'Error replies received.', (s) => s.errorsReceived),
  counter('timeouts_total', 'Calls that got no answer in time.', (s) => s.timeouts),
  counter('socket_errors_total', 'Errors the socket reported.', (s) => s.socketErrors),
  counter('handler_errors_total', 'Handlers that threw or rejected.', (s) => s.handlerErrors),
  counter('handler_timeouts_total', 'Handlers that ran past handlerTimeout.', (s) => s.handlerTimeouts),
  counter('unknown_methods_total', 'Requests for a method with no handler.', (s) => s.unknownMethods),
  counter('reply_too_large_total', 'Answers over maxBodySize, not sent.', (s) => s.replyTooLarge),
  counter('reply_unencodable_total', 'Answers with no msgpack form, not sent.', (s) => s.replyUnencodable),
  counter('dropped_total', 'Datagrams and requests dropped, by reason (README, stats() counters).', (s) => s.dropped, 'reason'),
  gauge('outstanding_calls', 'Calls waiting for an answer now.', (s) => s.outstanding),
  gauge('handlers_running', 'Async handlers running now.', (s) => s.handlersRunning),
  gauge('recv_buffer_bytes', 'Receive buffer size the kernel granted.', (s) => s.recvBufferSize),
  gauge('send_buffer_bytes', 'Send buffer size the kernel granted.', (s) => s.sendBufferSize),
  gauge('sources_tracked', 'Sources with a rate-limit bucket (perSource).', (s) => s.sourcesTracked),
  gauge('reflection_sources', 'Sources the reflection bound tracks.', (s) => s.reflectionSources),
]

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
/** Label names the metrics themselves use: a constant label of the same name would be ambiguous. */
const OWN_LABELS = new Set(['reason', 'method', 'outcome', 'kind', 'le', 'quantile'])

type Labels = Record<string, string>

/** A subscription to every event of a TracingChannel, as `subscribe` takes it. */
type TraceHandlers<C> = Partial<Record<'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error', (context: C) => void>>

/**
 * One registration's metrics and subscriptions, shared with rpcudp/kademlia's
 * registerKademliaMetrics: options checked, every name checked free before
 * any is registered, so a refused registration leaves the registry as it was.
 */
export class MetricsSet implements MetricsRegistration {
  readonly registry: Registry
  readonly names: string[] = []
  private readonly prefix: string
  private readonly labels: Labels
  private readonly labelNames: string[]
  private readonly subscriptions: (() => void)[] = []
  private registered = false

  constructor(
    options: MetricsOptions | undefined,
    private readonly fail: (message: string) => RPCError,
  ) {
    if (options === undefined) options = {}
    if (options === null || typeof options !== 'object') throw fail(`metrics options must be an object, got ${describe(options)}`)
    try {
      checkKeys('metrics options', options, ['registry', 'prefix', 'labels'])
    } catch (err) {
      throw fail((err as Error).message)
    }
    const { registry, prefix = 'rpcudp_', labels = {} } = options
    if (registry !== undefined && !isRegistry(registry)) throw fail(`registry must be a prom-client Registry, got ${describe(registry)}`)
    if (typeof prefix !== 'string' || (prefix !== '' && !METRIC_NAME.test(prefix)))
      throw fail(`prefix must be '' or match ${METRIC_NAME.source}, got ${describe(prefix)}`)
    if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) throw fail(`labels must be an object of strings, got ${describe(labels)}`)
    for (const [name, value] of Object.entries(labels)) {
      if (!LABEL_NAME.test(name) || name.startsWith('__') || OWN_LABELS.has(name)) throw fail(`labels: ${JSON.stringify(name)} cannot be a constant label name`)
      if (typeof value !== 'string') throw fail(`labels.${name} must be a string, got ${describe(value)}`)
    }
    this.registry = registry ?? prom().register
    this.prefix = prefix
    this.labels = { ...labels }
    this.labelNames = Object.keys(labels)
  }

  /** Refuses, before registering anything, names the registry holds already (the same protocol or prefix twice). */
  claim(names: readonly string[]): void {
    for (const name of names) {
      const full = this.prefix + name
      if (this.registry.getSingleMetric(full) !== undefined)
        throw this.fail(`${full} is registered in this registry already: unregister the earlier registration, or give another prefix or registry`)
    }
  }

  /** Metrics read from `read()` at each scrape. */
  addStats<S>(specs: readonly StatMetric<S>[], read: () => S): void {
    const { Counter, Gauge } = prom()
    const constant = this.labels
    for (const spec of specs) {
      // a counter has no set(): collect() starts it afresh and adds the current value
      const put = (m: Counter | Gauge, labels: Labels, v: number) => (spec.kind === 'counter' ? (m as Counter).inc(labels, v) : (m as Gauge).set(labels, v))
      const collect = function (this: Counter | Gauge) {
        this.reset()
        const value = spec.read(read())
        if (typeof value === 'number') put(this, constant, value)
        else for (const [k, v] of Object.entries(value)) put(this, { ...constant, [spec.label!]: k }, v)
      }
      const config = { name: this.prefix + spec.name, help: spec.help, labelNames: [...this.labelNames, ...(spec.label ? [spec.label] : [])], registers: [], collect }
      this.add(config.name, spec.kind === 'counter' ? new Counter(config) : new Gauge(config))
    }
  }

  /** A latency histogram, in seconds, over LATENCY_BUCKETS; `observe` adds the constant labels. */
  addHistogram(name: string, help: string, labelNames: string[]): (labels: Labels, seconds: number) => void {
    const full = this.prefix + name
    const histogram: Histogram = new (prom().Histogram)({ name: full, help, labelNames: [...this.labelNames, ...labelNames], buckets: [...LATENCY_BUCKETS], registers: [] })
    this.add(full, histogram)
    return (labels, seconds) => histogram.observe({ ...this.labels, ...labels }, seconds)
  }

  /** Subscribes until unregister(). */
  subscribe<C extends object>(channel: TracingChannel<any, C>, handlers: TraceHandlers<C>): void {
    channel.subscribe(handlers as any)
    this.subscriptions.push(() => channel.unsubscribe(handlers as any))
  }

  /** unregister() when `proto` closes. */
  untilClosed(proto: RPCProtocol<any>): void {
    const onClose = (message: unknown) => {
      if ((message as { protocol: unknown }).protocol === proto) this.unregister()
    }
    closeChannel.subscribe(onClose)
    this.subscriptions.push(() => closeChannel.unsubscribe(onClose))
  }

  unregister(): void {
    if (!this.registered) return
    this.registered = false
    for (const unsubscribe of this.subscriptions.splice(0)) unsubscribe()
    for (const name of this.names) this.registry.removeSingleMetric(name)
  }

  private add(name: string, metric: Metric): void {
    this.registry.registerMetric(metric)
    this.names.push(name)
    this.registered = true
  }
}

/** Duck-typed: a Registry from another copy of prom-client works as well as this one's. */
function isRegistry(v: unknown): v is Registry {
  const r = v as Registry
  return r !== null && typeof r === 'object' && ['registerMetric', 'getSingleMetric', 'removeSingleMetric', 'metrics'].every((m) => typeof (r as any)[m] === 'function')
}

/** Times the traced operations `mine` picks out, from their `start` event to `stop()`. */
export class Stopwatch<C extends object> {
  private readonly started = new WeakMap<C, number>()

  constructor(private readonly mine: (context: C) => boolean) {}

  start = (context: C): void => {
    if (this.mine(context)) this.started.set(context, performance.now())
  }

  /** Seconds since `context` started, once; undefined for a context not started here. */
  stop(context: C): number | undefined {
    const t0 = this.started.get(context)
    if (t0 === undefined) return undefined
    this.started.delete(context)
    return (performance.now() - t0) / 1000
  }
}

/** A handler's outcome label: 'ok', 'timeout' (handlerTimeout) or 'error' (threw or rejected). */
function handlerOutcome(context: HandleTraceContext): string {
  if (!('error' in context)) return 'ok'
  const err = context.error
  return err instanceof RPCError && err.code === 'ERR_RPC_HANDLER_TIMEOUT' ? 'timeout' : 'error'
}

/** Whether a sync handler's result is a promise-like, whose outcome comes at asyncEnd. */
function pending(context: HandleTraceContext): boolean {
  try {
    const r = context.result as PromiseLike<unknown> | null | undefined
    return r !== null && typeof r === 'object' && typeof r.then === 'function'
  } catch {
    return false // a hostile `then` getter: the protocol answers handler_error, with no asyncEnd
  }
}

const CALL_HISTOGRAM = 'call_duration_seconds'
const HANDLER_HISTOGRAM = 'handler_duration_seconds'

/** The RPCProtocol part of a registration, for registerMetrics and registerKademliaMetrics. */
export function addProtocolMetrics(set: MetricsSet, proto: RPCProtocol<any>): void {
  set.addStats(PROTOCOL_METRICS, () => proto.stats())
  const observeCall = set.addHistogram(CALL_HISTOGRAM, 'Outgoing calls, from send to outcome, by method and outcome (ok or the failure code).', ['method', 'outcome'])
  const calls = new Stopwatch<CallTraceContext>((c) => c.protocol === proto)
  set.subscribe(callChannel, {
    start: calls.start,
    asyncEnd: (c) => {
      const seconds = calls.stop(c)
      if (seconds !== undefined) observeCall({ method: c.method, outcome: c.code ?? 'ok' }, seconds)
    },
  })
  const observeHandler = set.addHistogram(HANDLER_HISTOGRAM, 'Incoming requests, handler run time by method and outcome (ok, error, timeout).', ['method', 'outcome'])
  const handlers = new Stopwatch<HandleTraceContext>((c) => c.protocol === proto)
  const finish = (c: HandleTraceContext) => {
    const seconds = handlers.stop(c)
    if (seconds !== undefined) observeHandler({ method: c.method, outcome: handlerOutcome(c) }, seconds)
  }
  set.subscribe(handleChannel, {
    start: handlers.start,
    end: (c) => {
      if ('error' in c || !pending(c)) finish(c)
    },
    asyncEnd: finish,
  })
  set.untilClosed(proto)
}

/** Every metric name registerMetrics registers, without the prefix. */
export const PROTOCOL_METRIC_NAMES: readonly string[] = [...PROTOCOL_METRICS.map((m) => m.name), CALL_HISTOGRAM, HANDLER_HISTOGRAM]

/**
 * Registers `proto`'s counters (from `stats()`, read at each scrape) and its
 * call and handler latency histograms in a prom-client registry, until
 * `unregister()` or until the protocol closes. README "Metrics" lists the
 * names. Throws RPCArgumentError for a bad option, for something other than
 * an RPCProtocol, and when the registry holds one of the names already (the
 * same protocol, or another with the same prefix: give each its own prefix or
 * registry).
 *
 * ```ts
 * const { registry } = registerMetrics(proto)
 * http.createServer(async (req, res) => res.end(await registry.metrics())).listen(9100)
 * ```
 */
export function registerMetrics(proto: RPCProtocol<any>, options?: MetricsOptions): MetricsRegistration {
  const fail = (message: string) => new RPCArgumentError(message)
  if (!(proto instanceof RPCProtocol)) throw fail(`registerMetrics takes an RPCProtocol, got ${describe(proto)}`)
  const set = new MetricsSet(options, fail)
  set.claim(PROTOCOL_METRIC_NAMES)
  addProtocolMetrics(set, proto)
  return set
}
