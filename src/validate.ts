/**
 * Checks for values given at the API boundary: every bad option or argument
 * becomes an RPCArgumentError here, before either backend sees it, so both
 * backends refuse exactly the same inputs.
 */
import { RPCArgumentError } from './errors'

/** setTimeout's limit (2^31 − 1 ms) in seconds: the longest waitTimeout or per-call timeout. */
export const MAX_TIMEOUT_SECONDS = 2147483.647

/** Largest maxOutstanding and maxHandlers: far past any real load, and small enough for 32-bit tokens to stay unique. */
export const MAX_CONCURRENCY = 2 ** 24

/** Largest socket buffer size requested: the kernel takes an int. */
export const MAX_SOCKET_BUFFER = 2 ** 31 - 1

/** A value as an error message can show it; never throws (symbols, bigints, null-prototype objects, cycles). */
export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'symbol' || typeof v === 'function') return typeof v
  if (v === null || typeof v !== 'object') return String(v)
  return Array.isArray(v) ? `an array of ${v.length}` : 'an object'
}

/** A positive number no larger than `max`, or `dflt` when absent; `integer` also rules out fractions. */
export function positive(name: string, v: unknown, dflt: number, max: number, integer: boolean): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !(v > 0) || !(v <= max) || (integer && !Number.isInteger(v)))
    throw new RPCArgumentError(`${name} must be a positive ${integer ? 'integer' : 'number'} <= ${max}, got ${describe(v)}`)
  return v
}

/** Seconds as milliseconds, for waitTimeout and a call's `timeout`. */
export function timeoutMs(name: string, v: unknown, dfltSeconds: number): number {
  return positive(name, v, dfltSeconds, MAX_TIMEOUT_SECONDS, false) * 1000
}

export function boolean(name: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt
  if (typeof v !== 'boolean') throw new RPCArgumentError(`${name} must be true or false, got ${describe(v)}`)
  return v
}

export function oneOf<T extends string>(name: string, v: unknown, choices: readonly T[]): T {
  if (!choices.includes(v as T))
    throw new RPCArgumentError(`${name} must be ${choices.map((c) => `'${c}'`).join(' or ')}, got ${describe(v)}`)
  return v as T
}

/** A UDP port: 0..65535 where 0 (any free port) is allowed, else 1..65535. */
export function port(v: unknown, allowZero: boolean): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < (allowZero ? 0 : 1) || v > 65535)
    throw new RPCArgumentError(`port must be an integer ${allowZero ? 0 : 1}..65535, got ${describe(v)}`)
  return v
}

/** Levenshtein distance, for suggesting the option a misspelt key meant. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = row
  }
  return prev[b.length]
}

/**
 * Refuses a key of `obj` not in `allowed` (a typo such as `waitTimeot` would
 * otherwise leave the default silently in force), naming the nearest allowed
 * key. `where` prefixes the message: 'RPCProtocol options', 'perSource'.
 */
export function checkKeys(where: string, obj: object, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (allowed.includes(key)) continue
    let nearest = allowed[0]
    for (const a of allowed) if (editDistance(key, a) < editDistance(key, nearest)) nearest = a
    throw new RPCArgumentError(`${where}: unknown option ${JSON.stringify(key)}; did you mean ${JSON.stringify(nearest)}?`)
  }
}
