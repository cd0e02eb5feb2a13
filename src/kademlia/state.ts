import { readFile, rename, writeFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import type { Address } from '../protocol'
import { KademliaStateError } from './errors'
import { ID_BYTES } from './ids'
import { isPort } from './wire'

/** What save_state keeps: Python pickles the same four fields; here they are JSON with the id in hex. */
export interface SavedState {
  ksize: number
  alpha: number
  id: Buffer
  neighbors: Address[]
}

/** Writes the state atomically (a temporary file renamed over the old one), so a crash never leaves half a file. */
export async function writeState(path: string, state: SavedState): Promise<void> {
  const json = JSON.stringify({ ksize: state.ksize, alpha: state.alpha, id: state.id.toString('hex'), neighbors: state.neighbors }, null, 2)
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, json + '\n')
  await rename(tmp, path)
}

export async function readState(path: string): Promise<SavedState> {
  let data: unknown
  try {
    data = JSON.parse(await readFile(path, 'utf8'))
  } catch (err) {
    throw new KademliaStateError(`cannot read the node state in ${path}: ${err instanceof Error ? err.message : String(err)}`, err)
  }
  const d = data as Record<string, unknown>
  const ok =
    d !== null &&
    typeof d === 'object' &&
    Number.isInteger(d.ksize) &&
    (d.ksize as number) > 0 &&
    Number.isInteger(d.alpha) &&
    (d.alpha as number) > 0 &&
    typeof d.id === 'string' &&
    new RegExp(`^[0-9a-f]{${ID_BYTES * 2}}$`).test(d.id) &&
    Array.isArray(d.neighbors) &&
    d.neighbors.every((a) => Array.isArray(a) && a.length === 2 && typeof a[0] === 'string' && isIP(a[0]) !== 0 && isPort(a[1]))
  if (!ok) throw new KademliaStateError(`${path} does not hold a saved node ({ksize, alpha, id: 40 hex digits, neighbors: [[ip, port], ...]})`)
  return { ksize: d.ksize as number, alpha: d.alpha as number, id: Buffer.from(d.id as string, 'hex'), neighbors: d.neighbors as Address[] }
}
