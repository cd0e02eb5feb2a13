import { withoutZone } from './address'

/**
 * What per-source limits count a peer as: its IPv4 address, or the /64 prefix
 * of its IPv6 address (one host usually holds a whole /64, so counting it by
 * address would let it take 2^64 shares). Same rule as the Rust core's
 * `limits::SourceKey`.
 */
export function sourceKey(host: string): string {
  if (!host.includes(':')) return host
  const addr = withoutZone(host)
  const gap = addr.indexOf('::')
  let groups: string[]
  if (gap < 0) groups = addr.split(':')
  else {
    const head = splitGroups(addr.slice(0, gap))
    const tail = splitGroups(addr.slice(gap + 2))
    // A trailing dotted quad stands for two groups; it is never in the first four.
    const width = head.length + tail.length + (tail.length > 0 && tail[tail.length - 1].includes('.') ? 1 : 0)
    groups = [...head, ...new Array(Math.max(0, 8 - width)).fill('0'), ...tail]
  }
  return groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':') + '::/64'
}

function splitGroups(s: string): string[] {
  return s === '' ? [] : s.split(':')
}
