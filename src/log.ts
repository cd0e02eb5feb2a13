import { debuglog } from 'node:util'

/** NODE_DEBUG=rpcudp; for the few once-per-process lines (no rate limit needed). */
export const debug = debuglog('rpcudp')

/**
 * Debug logging (NODE_DEBUG=rpcudp) limited to `perSecond` lines, so a flood of
 * hostile datagrams cannot turn into a flood of log lines; what is held back is
 * summarised once the window ends. Every drop is counted in stats() regardless.
 */
export class RateLimitedLog {
  private windowStart = 0
  private lines = 0
  private suppressed = 0

  constructor(private readonly perSecond = 10) {}

  log(message: string): void {
    if (!debug.enabled) return
    const now = Date.now()
    if (now - this.windowStart >= 1000) {
      if (this.suppressed > 0) debug('%d more messages suppressed', this.suppressed)
      this.windowStart = now
      this.lines = 0
      this.suppressed = 0
    }
    if (this.lines++ < this.perSecond) debug(message)
    else this.suppressed++
  }
}
