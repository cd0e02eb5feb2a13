import { sourceKey } from '../source-key'

/**
 * The TypeScript twin of the Rust core's `source_table::SourceTable`: state per
 * source (sourceKey: an IPv4 address or an IPv6 /64), bounded to `maxSources`
 * entries, forgetting the least recently seen first. A Map keeps insertion
 * order, so re-inserting on every sighting makes its first key the least recent.
 */
export class SourceTable<V> {
  private readonly entries = new Map<string, V>()

  constructor(private readonly maxSources: number) {}

  /** `host`'s entry, made the most recent; `fresh()` makes a new one. */
  touch(host: string, fresh: () => V): V {
    const key = sourceKey(host)
    let v = this.entries.get(key)
    if (v !== undefined) this.entries.delete(key)
    else {
      if (this.entries.size >= this.maxSources) this.entries.delete(this.entries.keys().next().value!)
      v = fresh()
    }
    this.entries.set(key, v)
    return v
  }

  /** Sources tracked now (never more than maxSources). */
  get size(): number {
    return this.entries.size
  }
}
