import { isIPv6 } from 'node:net'

/** `::ffff:1.2.3.4` -> `1.2.3.4`: handlers see an IPv4 peer the same way on a dual-stack socket and on both backends. */
export function fromMappedV4(host: string): string {
  return host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host
}

/** One spelling per IPv6 address (the one the kernel reports), so a sender check compares like with like. */
export function canonicalHost(host: string): string {
  if (!isIPv6(host)) return host
  const zone = host.indexOf('%') // URL does not take zone ids; keep the zone as given
  const addr = zone < 0 ? host : host.slice(0, zone)
  const canonical = new URL(`http://[${addr}]/`).hostname.slice(1, -1)
  // An IPv4-mapped address is the IPv4 peer itself: answers from it arrive as plain IPv4 (fromMappedV4).
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical)
  if (mapped && zone < 0) {
    const hi = parseInt(mapped[1], 16)
    const lo = parseInt(mapped[2], 16)
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`
  }
  return canonical + (zone < 0 ? '' : host.slice(zone))
}
