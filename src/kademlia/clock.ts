/** A timer a Clock handed out, to cancel it with. */
export type ClockTimer = unknown

/**
 * Where a node's time comes from. Every rule that depends on time (pass-over,
 * recent failures, lonely buckets, republish, ttl) reads it from here, so the
 * same code runs on the system clock and on a simulated one that plays a week
 * of churn in minutes.
 */
export interface Clock {
  /** Milliseconds, monotonic; only differences matter. */
  now(): number
  /** Runs `f` once after `ms`. A timer with `keepAlive` false does not keep the process alive by itself (dgram's unref). */
  setTimeout(f: () => void, ms: number, keepAlive: boolean): ClockTimer
  clearTimeout(timer: ClockTimer | undefined): void
}

/** performance.now() and Node's timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(f, ms, keepAlive) {
    const timer = setTimeout(f, Math.min(ms, 2 ** 31 - 1))
    if (!keepAlive) timer.unref()
    return timer
  },
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
}

/** A clock option: an object with now, setTimeout and clearTimeout functions. */
export function isClock(c: unknown): c is Clock {
  const o = c as Clock
  return typeof o === 'object' && o !== null && typeof o.now === 'function' && typeof o.setTimeout === 'function' && typeof o.clearTimeout === 'function'
}
