import { sourceKey } from '../source-key'
import type { RateConfig } from '../transport'

interface Bucket {
  tokens: number
  last: number
}

/**
 * The TypeScript twin of the Rust core's `limits::SourceLimiter`, with the same
 * numbers: a token bucket per source (sourceKey), in a table bounded to
 * maxSources that forgets the least recently seen source first. A Map keeps
 * insertion order, so re-inserting on every sighting makes its first key the
 * least recent one.
 */
export class SourceLimiter {
  private readonly buckets = new Map<string, Bucket>()

  constructor(private readonly config: RateConfig) {}

  /** Takes a token from `host`'s bucket at `nowMs`; false when it is empty (drop the request). */
  admit(nowMs: number, host: string): boolean {
    const key = sourceKey(host)
    const { requestsPerSecond, burst, maxSources } = this.config
    let b = this.buckets.get(key)
    if (b !== undefined) {
      this.buckets.delete(key)
      b.tokens = Math.min(burst, b.tokens + (Math.max(0, nowMs - b.last) / 1000) * requestsPerSecond)
      b.last = nowMs
    } else {
      if (this.buckets.size >= maxSources) this.buckets.delete(this.buckets.keys().next().value!)
      b = { tokens: burst, last: nowMs }
    }
    this.buckets.set(key, b)
    if (b.tokens >= 1) {
      b.tokens -= 1
      return true
    }
    return false
  }

  /** Sources tracked now (never more than maxSources). */
  get size(): number {
    return this.buckets.size
  }
}
