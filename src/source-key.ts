import { withoutZone } from './address'

/**
 * What per-source limits count a peer as: its IPv4 address, or the /64 prefix
 * of its IPv6 address (one host usually holds a whole /64, so counting it by
 * address would let it take 2^64 shares). Same rule as the Rust core's
 * `limits::SourceKey`.
 */
export function sourceKey(host: string): string {
  if (!host.includes(':')) return host
  return ipv6Prefix(host, 4) + '::/64'
}

/**
 * The network a host is in for the Kademlia diversity bounds: an IPv4 /24 or
 * an IPv6 /48 (a site's usual allocation), so one operator's range cannot fill
 * a routing table either.
 */
export function subnetKey(host: string): string {
  if (!host.includes(':')) return host.slice(0, host.lastIndexOf('.')) + '/24'
  return ipv6Prefix(host, 3) + '::/48'
}

/** The first `groups` 16-bit groups of an IPv6 address, in canonical hex. */
function ipv6Prefix(host: string, groups: number): string {
  const addr = withoutZone(host)
  const gap = addr.indexOf('::')
  let all: string[]
  if (gap < 0) all = addr.split(':')
  else {
    const head = splitGroups(addr.slice(0, gap))
    const tail = splitGroups(addr.slice(gap + 2))
    // A trailing dotted quad stands for two groups; it is never in the first four.
    const width = head.length + tail.length + (tail.length > 0 && tail[tail.length - 1].includes('.') ? 1 : 0)
    all = [...head, ...new Array(Math.max(0, 8 - width)).fill('0'), ...tail]
  }
  return all
    .slice(0, groups)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')
}

function splitGroups(s: string): string[] {
  return s === '' ? [] : s.split(':')
}
