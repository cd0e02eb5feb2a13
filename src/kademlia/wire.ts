import { isIP } from 'node:net'
import { Contact } from './contact'
import { isNodeId } from './ids'
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
}

export function newWireCounters(): WireCounters {
  return { malformedRequests: 0, malformedReplies: 0, badNeighbours: 0, extraNeighbours: 0, ownIdClaims: 0 }
}

export function isPort(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535
}

/** The last IP literal parseNeighbour accepted: an answer's neighbours mostly share a few addresses, and isIP is a regular expression. */
let lastIp = ''

/** One neighbour entry, [id, ip, port], or undefined if it is anything else. */
export function parseNeighbour(entry: unknown): Contact | undefined {
  if (!Array.isArray(entry) || entry.length !== 3) return undefined
  const [id, ip, port] = entry
  if (!isNodeId(id) || typeof ip !== 'string' || !isPort(port)) return undefined
  if (ip !== lastIp) {
    if (isIP(ip) === 0) return undefined
    lastIp = ip
  }
  return Contact.fromId(id, ip, port)
}

export type FindReply = { value: KademliaValue } | { nodes: Contact[] } | undefined

/**
 * An answer to find_node or find_value: `{value}` for a found value (find_value
 * only), the neighbours otherwise, undefined for a malformed answer. Keeps at
 * most `ksize` well-formed neighbours, never this node's own id, each id once.
 */
export function parseFindReply(result: unknown, ksize: number, selfKey: string, counters: WireCounters, valueAllowed: boolean): FindReply {
  if (Array.isArray(result)) {
    const nodes: Contact[] = []
    const seen = new Set<string>()
    for (let i = 0; i < result.length; i++) {
      if (nodes.length === ksize) {
        counters.extraNeighbours += result.length - i
        break
      }
      const entry = result[i]
      const c = parseNeighbour(entry)
      if (c === undefined) counters.badNeighbours++
      else if (c.key === selfKey) counters.ownIdClaims++
      else if (!seen.has(c.key)) {
        seen.add(c.key)
        nodes.push(c)
      }
    }
    return { nodes }
  }
  if (valueAllowed && result !== null && typeof result === 'object' && !(result instanceof Map) && !Buffer.isBuffer(result)) {
    const keys = Object.keys(result)
    const value = (result as Record<string, unknown>).value
    if (keys.length === 1 && keys[0] === 'value' && isDhtValue(value)) return { value }
  }
  counters.malformedReplies++
  return undefined
}
