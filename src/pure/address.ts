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
  return new URL(`http://[${addr}]/`).hostname.slice(1, -1) + (zone < 0 ? '' : host.slice(zone))
}
