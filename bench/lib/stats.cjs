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

/** The median (the mean of the middle two for an even count); NaN when there are none. */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

module.exports = { percentiles, udpSnmp, median }

/** Busy and total CPU time of the whole machine so far, µs (from /proc/stat, USER_HZ ticks). */
function machineCpu() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number)
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f
    const tick = 1e6 / 100 // USER_HZ is 100 on Linux
    return { busyUs: (user + nice + system + irq + softirq + steal) * tick, totalUs: (user + nice + system + idle + iowait + irq + softirq + steal) * tick }
  } catch {
    return null
  }
}

module.exports.machineCpu = machineCpu

/** Inodes of the sockets a process holds open. */
function socketInodes(pid) {
  const out = new Set()
  let fds = []
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`)
  } catch {
    return out
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) out.add(m[1])
    } catch {}
  }
  return out
}

/**
 * Datagrams the kernel dropped on these processes' UDP sockets so far (the
 * `drops` column of /proc/net/udp{,6}: receive buffer full, mostly). Unlike the
 * namespace-wide RcvbufErrors it counts only the system under test. null when unreadable.
 */
function socketDrops(pids) {
  const inodes = new Set()
  for (const pid of pids) for (const i of socketInodes(pid)) inodes.add(i)
  let total = 0
  let found = 0
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let lines = []
    try {
      lines = fs.readFileSync(file, 'utf8').split('\n').slice(1)
    } catch {
      continue
    }
    for (const line of lines) {
      const f = line.trim().split(/\s+/)
      if (f.length < 13 || !inodes.has(f[9])) continue
      total += Number(f[12])
      found++
    }
  }
  return found ? total : null
}

module.exports.socketDrops = socketDrops
