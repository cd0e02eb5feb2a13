import type { ReflectionConfig } from '../transport'
import { SourceTable } from './source-table'

interface Budget {
  received: number
  sent: number
  verified: boolean
}

const fresh = (): Budget => ({ received: 0, sent: 0, verified: false })

/**
 * The TypeScript twin of the Rust core's `reflection::ReflectionGuard`, with the
 * same rule: a source that never answered one of our calls may be sent at most
 * `allowance + factor x` the bytes received from it. Our own calls always go,
 * and count.
 */
export class ReflectionGuard {
  private readonly table: SourceTable<Budget>

  constructor(private readonly config: ReflectionConfig) {
    this.table = new SourceTable(config.maxSources)
  }

  /** A datagram of `bytes` arrived from `host` (whatever it turns out to be). */
  received(host: string, bytes: number): void {
    this.table.touch(host, fresh).received += bytes
  }

  /** `host` answered one of our calls: it can receive, and is no longer bounded. */
  verified(host: string): void {
    this.table.touch(host, fresh).verified = true
  }

  /** Our own call of `bytes` to `host`: always sent, always counted. */
  called(host: string, bytes: number): void {
    this.table.touch(host, fresh).sent += bytes
  }

  /** Whether a reply of `bytes` may go to `host`; if so it is counted as sent. */
  mayReply(host: string, bytes: number): boolean {
    const b = this.table.touch(host, fresh)
    if (b.verified) return true
    if (b.sent + bytes > this.config.allowance + this.config.factor * b.received) return false
    b.sent += bytes
    return true
  }

  /** Sources tracked now (never more than maxSources). */
  get size(): number {
    return this.table.size
  }
}
