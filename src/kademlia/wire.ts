import { isIP } from 'node:net'
import { canonicalHost } from '../address'
import { PreEncoded } from '../codec'
import { Contact } from './contact'
import { ID_BYTES, isNodeId } from './ids'
import { isDhtValue, type KademliaValue } from './values'

/** What this node dropped or cut from peers' messages; every hostile shape is counted here, none is thrown. */
export interface WireCounters {
  /** Requests with a node id or key that is not 20 bytes, or a value the DHT cannot hold. */
  malformedRequests: number
  /** Answers of the wrong shape (not a neighbour list nor {value}); the peer is treated as not answering. */
  malformedReplies: number
  /** Neighbour entries that are not [20-byte id, IP literal, port 1..65535]. */
  badNeighbours: number
  /** Neighbour entries past `ksize` in one answer. */
  extraNeighbours: number
  /** Peers or neighbour entries that claimed this node's own id. */
  ownIdClaims: number
  /** Neighbour entries and bootstrap addresses of an address family this node's socket cannot send to (reach.ts). */
  unreachableContacts: number
}

export function newWireCounters(): WireCounters {
  return { malformedRequests: 0, malformedReplies: 0, badNeighbours: 0, extraNeighbours: 0, ownIdClaims: 0, unreachableContacts: 0 }
}

export function isPort(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535
}

/**
 * An IP literal as contacts hold it, or undefined if `ip` is none: IPv6 in its
 * one canonical spelling and an IPv4-mapped address as IPv4 (canonicalHost), so
 * a peer named by a Python node on a dual-stack socket (`::ffff:1.2.3.4`) is
 * the same contact, and of the same family, as that peer heard from directly.
 */
function ipLiteral(ip: string): string | undefined {
  const family = isIP(ip)
  return family === 0 ? undefined : family === 6 ? canonicalHost(ip) : ip
}

/** The last IP literal parseNeighbour accepted, and its canonical form: an answer's neighbours mostly share a few addresses, and isIP is a regular expression. */
// seeded with a literal isIP accepts: an empty cache would let an empty ip through unchecked
let lastIp = '0.0.0.0'
let lastCanonical = '0.0.0.0'

/** One neighbour entry, [id, ip, port], or undefined if it is anything else. */
export function parseNeighbour(entry: unknown): Contact | undefined {
  if (!Array.isArray(entry) || entry.length !== 3) return undefined
  const [id, ip, port] = entry
  if (!isNodeId(id) || typeof ip !== 'string' || !isPort(port)) return undefined
  if (ip !== lastIp) {
    const canonical = ipLiteral(ip)
    if (canonical === undefined) return undefined
    lastIp = ip
    lastCanonical = canonical
  }
  return Contact.fromId(id, lastCanonical, port)
}

/** At most `ksize` neighbours, never this node's own id, none it cannot reach, each id once; every entry left out is counted. */
function selectNeighbours<T>(entries: readonly T[], toContact: (entry: T) => Contact | undefined, ksize: number, selfKey: string, reach: number, counters: WireCounters): FindReply {
  const nodes: Contact[] = []
  const seen = new Set<string>()
  for (let i = 0; i < entries.length; i++) {
    if (nodes.length === ksize) {
      counters.extraNeighbours += entries.length - i
      break
    }
    const c = toContact(entries[i])
    if (c === undefined) counters.badNeighbours++
    else if (c.key === selfKey) counters.ownIdClaims++
    else if ((c.family & reach) === 0) counters.unreachableContacts++
    else if (!seen.has(c.key)) {
      seen.add(c.key)
      nodes.push(c)
    }
  }
  return { nodes }
}

const asContact = (c: Contact) => c

export type FindReply = { value: KademliaValue } | { nodes: Contact[] } | undefined

/**
 * An answer to find_node or find_value: `{value}` for a found value (find_value
 * only), the neighbours otherwise, undefined for a malformed answer. Keeps at
 * most `ksize` well-formed neighbours, never this node's own id nor one of a
 * family outside `reach` (reach.ts), each id once.
 */
export function parseFindReply(result: unknown, ksize: number, selfKey: string, reach: number, counters: WireCounters, valueAllowed: boolean): FindReply {
  if (result instanceof DecodedNeighbours) return selectNeighbours(result.contacts, asContact, ksize, selfKey, reach, counters)
  if (Array.isArray(result)) return selectNeighbours(result, parseNeighbour, ksize, selfKey, reach, counters)
  if (valueAllowed && result !== null && typeof result === 'object' && !(result instanceof Map) && !Buffer.isBuffer(result)) {
    const keys = Object.keys(result)
    const value = (result as Record<string, unknown>).value
    if (keys.length === 1 && keys[0] === 'value' && isDhtValue(value)) return { value }
  }
  counters.malformedReplies++
  return undefined
}

/** A neighbour list as an answer body: the array header, then each contact's cached entry bytes (Contact.wireBytes). */
export function encodeNeighbours(contacts: readonly Contact[]): PreEncoded {
  const n = contacts.length
  let len = n < 16 ? 1 : n < 0x10000 ? 3 : 5
  for (let i = 0; i < n; i++) len += contacts[i].wireBytes().length
  const out = Buffer.allocUnsafe(len)
  let p = 0
  if (n < 16) out[p++] = 0x90 | n
  else if (n < 0x10000) {
    out[p++] = 0xdc
    p = out.writeUInt16BE(n, p)
  } else {
    out[p++] = 0xdd
    p = out.writeUInt32BE(n, p)
  }
  for (let i = 0; i < n; i++) p += contacts[i].wireBytes().copy(out, p)
  return new PreEncoded(out)
}

/** A neighbour list decoded by decodeNeighbours: every entry well-formed, not yet selected by parseFindReply's rules. */
export class DecodedNeighbours {
  constructor(readonly contacts: Contact[]) {}
}

/** The bytes of the last IP decodeNeighbours accepted, and its string. */
// seeded like lastIp, so a zero-length ip never matches the cache
let lastIpBytes = Buffer.from('0.0.0.0')
let lastIpString = '0.0.0.0'

/**
 * A find_node/find_value answer body parsed from its bytes when it is the shape
 * peers send (an array of [bin 20, ASCII str IP literal, uint port 1..65535]),
 * without building the generic values; undefined for anything else, which the
 * generic decoder and parseFindReply then judge. So the rules live in one
 * place: this only recognises entries parseNeighbour would accept.
 */
export function decodeNeighbours(buf: Buffer, start: number, end: number): DecodedNeighbours | undefined {
  let p = start
  if (p >= end) return undefined
  const t = buf[p++]
  let n: number
  if ((t & 0xf0) === 0x90) n = t & 0x0f
  else if (t === 0xdc && p + 2 <= end) {
    n = buf.readUInt16BE(p)
    p += 2
  } else return undefined
  // an entry is at least 1 + 22 + 1 + 1 bytes: the count cannot make this allocate more than the body
  if (n * 25 > end - p) return undefined
  const contacts = new Array<Contact>(n)
  for (let i = 0; i < n; i++) {
    if (p + 25 > end || buf[p] !== 0x93 || buf[p + 1] !== 0xc4 || buf[p + 2] !== ID_BYTES) return undefined
    const idAt = p + 3
    p = idAt + ID_BYTES
    const s = buf[p++]
    if ((s & 0xe0) !== 0xa0) return undefined
    const ipLen = s & 0x1f
    const ipAt = p
    p += ipLen
    if (p >= end) return undefined
    let port: number
    const q = buf[p++]
    if (q < 0x80) port = q
    else if (q === 0xcc && p < end) port = buf[p++]
    else if (q === 0xcd && p + 2 <= end) {
      port = buf.readUInt16BE(p)
      p += 2
    } else return undefined
    if (port === 0) return undefined
    const ip = ipLen === lastIpBytes.length && buf.compare(lastIpBytes, 0, ipLen, ipAt, ipAt + ipLen) === 0 ? lastIpString : newIp(buf, ipAt, ipLen)
    if (ip === undefined) return undefined
    contacts[i] = Contact.fromBytes(buf, idAt, ip, port)
  }
  return p === end ? new DecodedNeighbours(contacts) : undefined
}

/** An ASCII IP literal at buf[at, at + len) in its canonical form (ipLiteral), remembered as the last one; undefined for anything else. */
function newIp(buf: Buffer, at: number, len: number): string | undefined {
  for (let i = at; i < at + len; i++) if (buf[i] >= 0x80) return undefined
  const ip = ipLiteral(buf.toString('latin1', at, at + len))
  if (ip === undefined) return undefined
  lastIpBytes = Buffer.from(buf.subarray(at, at + len))
  lastIpString = ip
  return ip
}
