/**
 * The one place hosts are normalised, for RPCProtocol and both transports:
 * what a caller may write as a host, and the single spelling each backend is
 * handed and reports, so the backends cannot diverge on an address.
 */
import { isIP, isIPv6 } from 'node:net'
import { RPCArgumentError } from './errors'
import { describe } from './validate'

/** `::ffff:1.2.3.4` -> `1.2.3.4`: handlers see an IPv4 peer the same way on a dual-stack socket and on both backends. */
export function fromMappedV4(host: string): string {
  return host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host
}

/**
 * One spelling per IPv6 address (the one the kernel reports), so a sender
 * check compares like with like; an IPv4-mapped address becomes the IPv4
 * address it stands for. A zone (`%eth0`) is kept as given.
 */
export function canonicalHost(host: string): string {
  if (!isIPv6(host)) return host
  const zone = host.indexOf('%') // URL does not take zone ids
  const canonical = new URL(`http://[${withoutZone(host)}]/`).hostname.slice(1, -1)
  // An IPv4-mapped address is the IPv4 peer itself: answers from it arrive as plain IPv4 (fromMappedV4).
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical)
  if (mapped && zone < 0) {
    const hi = parseInt(mapped[1], 16)
    const lo = parseInt(mapped[2], 16)
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`
  }
  return canonical + (zone < 0 ? '' : host.slice(zone))
}

/**
 * `host` without its zone. The sender check ignores zones on both backends (the
 * kernel names the zone of an answer, a caller may have given its number).
 */
export function withoutZone(host: string): string {
  const zone = host.indexOf('%')
  return zone < 0 ? host : host.slice(0, zone)
}

function literal(host: unknown): string {
  if (typeof host !== 'string') throw new RPCArgumentError(`host must be a string, got ${describe(host)}`)
  // IP literals only: a DNS lookup per call has no place on a DHT's hot path.
  if (isIP(host) === 0) throw new RPCArgumentError(`host must be an IP address literal, got ${describe(host)}`)
  return canonicalHost(host)
}

/**
 * The host listen() binds. '' is every IPv4 interface, as in Python's
 * `listen(port, '')` and node:dgram; 'localhost' is 127.0.0.1.
 */
export function bindHost(host: unknown): string {
  if (host === '') return '0.0.0.0'
  if (host === 'localhost') return '127.0.0.1'
  return literal(host)
}

/**
 * The host a call goes to, in the spelling both transports take: '' and
 * 'localhost' are this host (Python 5.0.1 sends `('', port)` to INADDR_ANY,
 * which the kernel delivers locally), written as the loopback address of the
 * socket's family so the sender check recognises the answer; an IPv4-mapped
 * address is its IPv4 address; an IPv6 peer cannot be reached from an IPv4
 * socket. The last host is memoised: most traffic goes to few peers.
 */
export class CallHosts {
  private readonly loopback: string
  private lastIn: unknown
  private lastOut: string

  constructor(private readonly v6: boolean) {
    this.loopback = v6 ? '::1' : '127.0.0.1'
    this.lastIn = ''
    this.lastOut = this.loopback
  }

  resolve(host: unknown): string {
    if (host === this.lastIn) return this.lastOut
    const out = host === '' || host === 'localhost' ? this.loopback : literal(host)
    if (!this.v6 && isIPv6(out)) throw new RPCArgumentError(`cannot reach IPv6 peer ${out} from a socket bound to IPv4`)
    this.lastIn = host
    this.lastOut = out
    return out
  }
}
