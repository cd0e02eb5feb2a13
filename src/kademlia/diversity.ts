import type { Contact } from './contact'
import { KademliaArgumentError } from './errors'

/**
 * How many contacts one host (an IPv4 address or IPv6 /64) and one network
 * (an IPv4 /24 or IPv6 /48) may hold in one bucket, and among one lookup's
 * candidates: a Sybil on one machine or one rented range cannot fill a routing
 * table or steer a lookup. Mainline bounds its non-secure nodes per IP the same
 * way; unlike BEP 42 this needs nothing new on the wire, so Python nodes stay
 * full members.
 */
export interface DiversityBounds {
  perHost: number
  perSubnet: number
}

export const DEFAULT_DIVERSITY: DiversityBounds = Object.freeze({ perHost: 2, perSubnet: 8 })

/** No bounds: every node of a test network on loopback shares one address. */
export const NO_DIVERSITY: DiversityBounds = Object.freeze({ perHost: Infinity, perSubnet: Infinity })

/** The `diversity` option: bounds, or false for none (loopback and test networks; it must be said explicitly). */
export type DiversityOption = Partial<DiversityBounds> | false

export function diversityBounds(option: DiversityOption | undefined): DiversityBounds {
  if (option === undefined) return DEFAULT_DIVERSITY
  if (option === false) return NO_DIVERSITY
  if (option === null || typeof option !== 'object') throw new KademliaArgumentError(`diversity must be false or { perHost, perSubnet }, got ${String(option)}`)
  const bound = (name: 'perHost' | 'perSubnet') => {
    const v = option[name]
    if (v === undefined) return DEFAULT_DIVERSITY[name]
    if (v !== Infinity && (!Number.isInteger(v) || v < 1)) throw new KademliaArgumentError(`diversity.${name} must be a positive integer or Infinity, got ${String(v)}`)
    return v
  }
  return { perHost: bound('perHost'), perSubnet: bound('perSubnet') }
}

/** Whether `c` may join `others` (contacts already there) without passing a bound. */
export function fitsAmong(c: Contact, others: Iterable<Contact>, bounds: DiversityBounds): boolean {
  if (bounds === NO_DIVERSITY) return true
  let host = 0
  let subnet = 0
  for (const o of others) {
    if (o.subnetKey !== c.subnetKey) continue
    if (++subnet >= bounds.perSubnet) return false
    if (o.hostKey === c.hostKey && ++host >= bounds.perHost) return false
  }
  return true
}

/** Running counts for a set that only grows (a lookup's candidates): O(1) a check. */
export class DiversityCounter {
  private readonly hosts = new Map<string, number>()
  private readonly subnets = new Map<string, number>()

  constructor(private readonly bounds: DiversityBounds) {}

  /** Counts `c` in and returns true, or returns false if it would pass a bound. */
  admit(c: Contact): boolean {
    if (this.bounds === NO_DIVERSITY) return true
    const h = this.hosts.get(c.hostKey) ?? 0
    const s = this.subnets.get(c.subnetKey) ?? 0
    if (h >= this.bounds.perHost || s >= this.bounds.perSubnet) return false
    this.hosts.set(c.hostKey, h + 1)
    this.subnets.set(c.subnetKey, s + 1)
    return true
  }
}
