import { systemClock } from './clock'
import type { IdKey } from './ids'
import type { KademliaValue } from './values'

interface Entry {
  value: KademliaValue
  /** When it was stored (ms, the node's clock). */
  at: number
}

/**
 * Python's ForgetfulStorage: values by key, oldest first, dropped after `ttl`
 * seconds. Unlike Python it also holds at most `maxKeys` keys (the oldest go
 * first), so peers storing random keys cannot grow it without bound.
 */
export class ForgetfulStorage {
  private readonly data = new Map<IdKey, Entry>()

  constructor(
    readonly ttlSeconds = 604800,
    readonly maxKeys = 65536,
    private readonly now: () => number = systemClock.now,
  ) {}

  set(key: IdKey, value: KademliaValue): void {
    this.data.delete(key)
    this.data.set(key, { value: Buffer.isBuffer(value) ? unpooled(value) : value, at: this.now() })
    while (this.data.size > this.maxKeys) this.data.delete(this.data.keys().next().value!)
    this.cull()
  }

  delete(key: IdKey): void {
    this.data.delete(key)
  }

  get(key: IdKey): KademliaValue | undefined {
    this.cull()
    return this.data.get(key)?.value
  }

  /** Entries stored at least `seconds` ago, oldest first (Python's iter_older_than). */
  olderThan(seconds: number): Array<[IdKey, KademliaValue]> {
    const before = this.now() - seconds * 1000
    const out: Array<[IdKey, KademliaValue]> = []
    for (const [k, e] of this.data) {
      if (e.at > before) break
      out.push([k, e.value])
    }
    return out
  }

  /** Calls `f` for every live entry, oldest first (a callback, not a generator: welcome_if_new runs it for every newcomer). */
  forEach(f: (key: IdKey, value: KademliaValue) => void): void {
    this.cull()
    for (const [k, e] of this.data) f(k, e.value)
  }

  get size(): number {
    return this.data.size
  }

  private cull(): void {
    const before = this.now() - this.ttlSeconds * 1000
    for (const [k, e] of this.data) {
      if (e.at > before) break
      this.data.delete(k)
    }
  }
}

/** A copy with its own memory: a small decoded Buffer is a slice of a shared pool it would otherwise pin. */
function unpooled(b: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(b.length)
  b.copy(copy)
  return copy
}
