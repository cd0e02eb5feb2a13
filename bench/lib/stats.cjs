'use strict'
const fs = require('node:fs')

/** Nearest-rank percentiles of the samples (sorts a copy); [] of zeros when there are none. */
function percentiles(samples, ps) {
  const sorted = Float64Array.from(samples).sort()
  return ps.map((p) => {
    if (sorted.length === 0) return 0
    const rank = Math.ceil((p / 100) * sorted.length)
    return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]
  })
}

/** Udp counters of this network namespace (every process in it, not only ours). */
function udpSnmp() {
  try {
    const lines = fs.readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'))
    const names = lines[0].split(/\s+/).slice(1)
    const values = lines[1].split(/\s+/).slice(1).map(Number)
    return Object.fromEntries(names.map((n, i) => [n, values[i]]))
  } catch {
    return null
  }
}

module.exports = { percentiles, udpSnmp }
