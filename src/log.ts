import { debuglog } from 'node:util'

/** NODE_DEBUG=rpcudp; for the few once-per-process lines (no rate limit needed). */
export const debug = debuglog('rpcudp')

/**
 * At most `perSecond` events per one-second window, so a flood of hostile
 * datagrams cannot turn into a flood of log lines or channel messages;
 * `suppressed` counts what the current window held back.
 */
export class RateWindow {
  private windowStart = 0
  private admitted = 0
  suppressed = 0

  constructor(private readonly perSecond = 10) {}

  /** True if this event fits the window; a new window first passes what the last one held back to `onNewWindow`. */
  admit(onNewWindow?: (suppressed: number) => void): boolean {
    const now = Date.now()
    if (now - this.windowStart >= 1000) {
      if (this.suppressed > 0) onNewWindow?.(this.suppressed)
      this.windowStart = now
      this.admitted = 0
      this.suppressed = 0
    }
    if (this.admitted++ < this.perSecond) return true
    this.suppressed++
    return false
  }
}

const summarise = (n: number) => debug('%d more messages suppressed', n)

/**
 * Debug logging (NODE_DEBUG=rpcudp) limited to 10 lines a second; what is held
 * back is summarised once the window ends. Every drop is counted in stats() regardless.
 */
export class RateLimitedLog {
  private readonly window = new RateWindow()

  log(message: string): void {
    if (debug.enabled && this.window.admit(summarise)) debug(message)
  }
}
