/**
 * 10 000 calls through a relay that loses 20 % of datagrams, duplicates 10 %
 * and delays/reorders a third of them: every call settles exactly once, every
 * answer is its own call's, every failure is a timeout on time.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { RPCProtocol, type CallResult } from '../src/index'
import { eachBackendSerial, listening } from './helpers/backends'
import { ChaosRelay } from './helpers/chaos-relay'
import { sleep } from './helpers/raw'

const CALLS = 10_000
const IN_FLIGHT = 256
const WAIT = 0.4 // seconds
const SEED = 0xc4a05

eachBackendSerial('10 000 calls through loss, duplication, reordering and jitter', async (t, backend) => {
  t.timeout(60_000)
  const make = (o: object) =>
    new RPCProtocol(o).handle('echo', (_sender, n: number, nonce: string) =>
      // a quarter of the answers come from async handlers that take a while, which reorders them too
      n % 4 === 0 ? sleep(n % 7).then(() => [n, nonce]) : [n, nonce],
    )
  const { proto: server, address } = await listening(t, make, { backend })
  const relay = await ChaosRelay.open(address, { seed: SEED + (backend === 'pure' ? 1 : 0), loss: 0.2, duplicate: 0.1, delay: 0.3, maxDelayMs: 25 })
  t.teardown(() => relay.close())
  const { proto: client } = await listening(t, (o) => new RPCProtocol(o), { backend, waitTimeout: WAIT })

  const HUNG = Symbol('hung')
  const outcomes: { n: number; nonce: string; r: CallResult<any> | typeof HUNG; ms: number }[] = []
  let next = 0
  // how late the event loop itself runs (other test files share these two cores): a timeout
  // cannot be delivered to JavaScript sooner than the loop gets round to it
  const loopDelay = monitorEventLoopDelay({ resolution: 5 })
  loopDelay.enable()
  const started = performance.now()
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < CALLS) {
        const n = next++
        const nonce = `${n}:${Math.random().toString(36).slice(2)}`
        const t0 = performance.now()
        let guard: NodeJS.Timeout | undefined
        const r = await Promise.race([
          client.callRemote(relay.address, 'echo', [n, nonce]),
          new Promise<typeof HUNG>((resolve) => (guard = setTimeout(() => resolve(HUNG), WAIT * 1000 + 2000))),
        ])
        clearTimeout(guard)
        outcomes.push({ n, nonce, r, ms: performance.now() - t0 })
      }
    }),
  )
  const elapsed = performance.now() - started
  loopDelay.disable()
  const maxLoopDelayMs = loopDelay.max / 1e6

  let ok = 0
  let timedOut = 0
  let wrongValue = 0
  let late = 0
  let lateBeyondLoop = 0
  let early = 0
  let otherFailure = 0
  let hung = 0
  let slowest = 0
  for (const { n, nonce, r, ms } of outcomes) {
    if (r === HUNG) hung++
    else if (r[0]) {
      ok++
      if (!(Array.isArray(r[1]) && r[1][0] === n && r[1][1] === nonce)) wrongValue++
    } else if (r[2].code === 'timeout') {
      timedOut++
      slowest = Math.max(slowest, ms)
      if (ms > WAIT * 1000 + 100) late++
      if (ms > WAIT * 1000 + 100 + maxLoopDelayMs) lateBeyondLoop++
      if (ms < WAIT * 1000 - 1) early++
    } else otherFailure++
  }
  const s = client.stats()
  const figures = { backend, elapsedMs: Math.round(elapsed), ok, timedOut, slowestTimeoutMs: Math.round(slowest), lateOver100ms: late, maxLoopDelayMs: Math.round(maxLoopDelayMs), relay: relay.counts, client: { responsesReceived: s.responsesReceived, timeouts: s.timeouts, dropped: s.dropped }, serverRequests: server.stats().requestsReceived }
  t.log(JSON.stringify(figures))

  t.is(outcomes.length, CALLS)
  t.is(new Set(outcomes.map((o) => o.n)).size, CALLS)
  t.is(hung, 0, 'calls that never settled')
  t.is(wrongValue, 0, "answers carrying another call's value")
  t.is(otherFailure, 0, 'failures other than timeouts')
  t.is(early, 0, 'timeouts before waitTimeout')
  // within waitTimeout + 100 ms; on a starved machine, late by no more than the event loop itself was
  t.is(lateBeyondLoop, 0, 'timeouts later than waitTimeout + 100 ms + the worst event-loop delay')
  t.true(late <= CALLS / 100, `${late} timeouts later than waitTimeout + 100 ms`)
  t.is(ok + timedOut, CALLS)
  // each call settled once at the transport too: one answer or one timeout, never both
  t.is(s.responsesReceived, ok)
  t.is(s.timeouts, timedOut)
  t.is(s.errorsReceived, 0)
  t.is(s.requestsSent, CALLS)
  t.is(s.outstanding, 0)
  // the impairment really happened, and the protocol coped with each kind
  t.true(relay.counts.lost > 0.15 * relay.counts.received && relay.counts.lost < 0.25 * relay.counts.received)
  t.true(relay.counts.duplicated > 0.05 * relay.counts.received)
  t.true(relay.counts.reordered > 0.05 * relay.counts.received)
  t.true(ok > 0.55 * CALLS && ok < 0.8 * CALLS, `ok ${ok}`) // ~0.8 * 0.8 each way, plus what duplicates save
  t.true(s.dropped.unmatchedResponse > 0, 'duplicated or late answers were dropped as unmatched')
  t.is(s.dropped.wrongSender, 0, 'the relay answers from the address the client called')
  t.true(server.stats().requestsReceived > CALLS * 0.8, 'duplicated requests reached the server')

  // once the network heals, every call is answered
  relay.impair = false
  await sleep(WAIT * 1000 + 100) // let stragglers (delayed copies) drain
  const results = await Promise.all(Array.from({ length: 500 }, (_, i) => client.callRemote(relay.address, 'echo', [i, 'x'])))
  t.true(results.every((r, i) => r[0] && r[1][0] === i))
})
