import type { KademliaValue } from './values'

interface Entry {
  key: Buffer
  value: KademliaValue
  /** When it was stored (performance.now() ms). */
  at: number
}

/**
 * Python's ForgetfulStorage: values by key, oldest first, dropped after `ttl`
 * seconds. Unlike Python it also holds at most `maxKeys` keys (the oldest go
 * first), so peers storing random keys cannot grow it without bound.
 */
export class ForgetfulStorage {
  private readonly data = new Map<string, Entry>()

  constructor(
    readonly ttlSeconds = 604800,
    readonly maxKeys = 65536,
  ) {}

  set(key: Buffer, value: KademliaValue): void {
    const k = key.toString('hex')
    this.data.delete(k)
    this.data.set(k, { key, value, at: performance.now() })
    while (this.data.size > this.maxKeys) this.data.delete(this.data.keys().next().value!)
    this.cull()
  }

  get(key: Buffer): KademliaValue | undefined {
    this.cull()
    return this.data.get(key.toString('hex'))?.value
  }

  /** Entries stored at least `seconds` ago, oldest first (Python's iter_older_than). */
  olderThan(seconds: number): Array<[Buffer, KademliaValue]> {
    const before = performance.now() - seconds * 1000
    const out: Array<[Buffer, KademliaValue]> = []
    for (const e of this.data.values()) {
      if (e.at > before) break
      out.push([e.key, e.value])
    }
    return out
  }

  entries(): Array<[Buffer, KademliaValue]> {
    this.cull()
    return [...this.data.values()].map((e) => [e.key, e.value])
  }

  get size(): number {
    return this.data.size
  }

  private cull(): void {
    const before = performance.now() - this.ttlSeconds * 1000
    for (const [k, e] of this.data) {
      if (e.at > before) break
      this.data.delete(k)
    }
  }
}
