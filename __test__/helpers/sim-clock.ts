/**
 * Simulated time for Kademlia nodes (KademliaNodeOptions.clock): timers wait
 * in a heap and fire in time order when the test advances the clock, so a
 * week of churn runs as fast as the nodes can compute. Between two instants
 * the promise jobs the fired timers started run to the end, so an answer
 * delivered at t is handled at t.
 */
import type { Clock, ClockTimer } from '../../src/kademlia'

interface Timer {
  at: number
  seq: number
  f: () => void
  live: boolean
}

const before = (a: Timer, b: Timer) => a.at < b.at || (a.at === b.at && a.seq < b.seq)

export class SimClock implements Clock {
  private t = 0
  private seq = 0
  private readonly heap: Timer[] = []

  now(): number {
    return this.t
  }

  /** Instants are whole milliseconds, so timers due together fire together. */
  setTimeout(f: () => void, ms: number): ClockTimer {
    const timer: Timer = { at: Math.ceil(this.t + Math.max(0, ms)), seq: this.seq++, f, live: true }
    this.push(timer)
    return timer
  }

  clearTimeout(timer: ClockTimer | undefined): void {
    if (timer !== undefined) (timer as Timer).live = false
  }

  /** Timers waiting, cancelled ones included until their instant passes. */
  get pending(): number {
    return this.heap.length
  }

  /** Fires every timer due by `until`, in order; then the clock reads `until`. */
  async runUntil(until: number): Promise<void> {
    while (this.heap.length > 0 && this.heap[0].at <= until) {
      const at = this.heap[0].at
      this.t = at
      while (this.heap.length > 0 && this.heap[0].at === at) {
        const timer = this.pop()
        if (!timer.live) continue
        timer.live = false
        timer.f()
      }
      await new Promise((r) => setImmediate(r))
    }
    this.t = Math.max(this.t, until)
  }

  /** Runs the clock until `p` settles (at most `limitMs` of simulated time) and returns its outcome. */
  async settle<T>(p: Promise<T>, limitMs = 3_600_000): Promise<T> {
    let done = false
    const watched = p.finally(() => {
      done = true
    })
    const end = this.t + limitMs
    while (!done && this.t < end) await this.runUntil(Math.min(end, this.t + 100))
    if (!done) throw new Error(`still pending after ${limitMs} ms of simulated time`)
    return watched
  }

  private push(timer: Timer): void {
    const h = this.heap
    let i = h.push(timer) - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(h[i], h[parent])) break
      ;[h[i], h[parent]] = [h[parent], h[i]]
      i = parent
    }
  }

  private pop(): Timer {
    const h = this.heap
    const top = h[0]
    const last = h.pop()!
    if (h.length > 0) {
      h[0] = last
      for (let i = 0; ; ) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l], h[m])) m = l
        if (r < h.length && before(h[r], h[m])) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m], h[i]]
        i = m
      }
    }
    return top
  }
}
