import type { RateConfig } from '../transport'
import { SourceTable } from './source-table'

interface Bucket {
  tokens: number
  last: number
}

/**
 * The TypeScript twin of the Rust core's `limits::SourceLimiter`, with the same
 * numbers: a token bucket per source, in a SourceTable. A source seen afresh
 * starts with a full bucket.
 */
export class SourceLimiter {
  private readonly table: SourceTable<Bucket>

  constructor(private readonly config: RateConfig) {
    this.table = new SourceTable(config.maxSources)
  }

  /** Takes a token from `host`'s bucket at `nowMs`; false when it is empty (drop the request). */
  admit(nowMs: number, host: string): boolean {
    const { requestsPerSecond, burst } = this.config
    const b = this.table.touch(host, () => ({ tokens: burst, last: nowMs }))
    b.tokens = Math.min(burst, b.tokens + (Math.max(0, nowMs - b.last) / 1000) * requestsPerSecond)
    b.last = nowMs
    if (b.tokens >= 1) {
      b.tokens -= 1
      return true
    }
    return false
  }

  /** Sources tracked now (never more than maxSources). */
  get size(): number {
    return this.table.size
  }
}
