/**
 * RFC 5952 text for 16 address bytes at `at` (lowercase hex, the longest run of
 * two or more zero groups as `::`, the first on a tie): the spelling the kernel,
 * node:dgram and Rust all report, so both backends show a peer the same way.
 */
export function formatIPv6(b: Uint8Array, at: number): string {
  const groups: number[] = new Array(8)
  for (let i = 0; i < 8; i++) groups[i] = (b[at + 2 * i] << 8) | b[at + 2 * i + 1]
  let bestStart = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) {
      bestStart = i
      bestLen = j - i
    }
    i = j
  }
  const hex = (from: number, to: number) => groups.slice(from, to).map((g) => g.toString(16)).join(':')
  if (bestStart < 0) return hex(0, 8)
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`
}
