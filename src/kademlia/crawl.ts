import type { ClockTimer } from './clock'
import type { Contact } from './contact'
import { KademliaAbortError } from './errors'
import type { LookupResult, LookupState, Query } from './lookup'
import type { KademliaProtocol } from './protocol'

/**
 * Drives a LookupState on the node's clock: sends what it asks for, feeds it the
 * answers, and keeps one timer for the earliest pass-over. Resolves as soon
 * as the state is done; calls passed over are left to settle by themselves
 * (their answers still update the routing table). An abort stops sending at
 * once, aborts the calls in flight and rejects with KademliaAbortError.
 */
export function crawl(protocol: KademliaProtocol, state: LookupState, findValue: boolean, signal?: AbortSignal): Promise<LookupResult> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new KademliaAbortError(signal.reason))
    let finished = false
    let timer: ClockTimer | undefined
    let timerAt = Infinity
    const { health, clock } = protocol
    const timeoutFor = (c: Contact) => health.timeoutFor(c)
    // every other lookup skips a peer passed over here until it answers
    const passed = (q: Query) => health.slow(q.peer, clock.now())

    const finish = (err?: KademliaAbortError) => {
      finished = true
      clock.clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      if (err !== undefined) reject(err)
      else resolve(state.result())
    }
    const onAbort = () => finish(new KademliaAbortError(signal!.reason))

    const pump = () => {
      if (finished) return
      const now = clock.now()
      // the next pass-over: the earliest of the calls still in flight and of those sent now (not done means one of them exists)
      let at = state.expire(now, passed) ?? Infinity
      for (const q of state.next(now, timeoutFor)) {
        send(q)
        if (q.passAt < at) at = q.passAt
      }
      if (state.done) return finish()
      if (at !== timerAt) {
        clock.clearTimeout(timer)
        timerAt = at
        timer = clock.setTimeout(onTimer, Math.max(0, at - now), true)
      }
    }
    const onTimer = () => {
      timerAt = Infinity
      pump()
    }
    const send = (q: Query) => {
      const call = findValue ? protocol.callFindValue(q.peer, state.target, signal) : protocol.callFindNode(q.peer, state.target, signal)
      void call.then((reply) => {
        if (finished) return
        state.answered(q, reply)
        pump()
      })
    }

    signal?.addEventListener('abort', onAbort, { once: true })
    pump()
  })
}
