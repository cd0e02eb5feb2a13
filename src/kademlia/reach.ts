/**
 * Address families as bits, so whether a socket can reach a contact is one
 * AND: a socket bound to an IPv4 address reaches IPv4 only, one bound to `::`
 * both (both backends bind it dual-stack), one bound to any other IPv6 address
 * (`::1`, a global or link-local one) IPv6 only.
 */
export const IPV4 = 1
export const IPV6 = 2

/** The family of a canonical IP literal (an IPv4-mapped address is written as IPv4 by then: canonicalHost). */
export function familyOf(ip: string): number {
  return ip.includes(':') ? IPV6 : IPV4
}

/** The families a socket bound to `host` (as listen() reports it) can send to. */
export function reachOf(host: string): number {
  return host === '::' ? IPV4 | IPV6 : familyOf(host)
}
