#!/usr/bin/env node
'use strict'
// rpcudp benchmark harness (issue 7). A measurement, not a test: it never exits
// non-zero because a target was missed. `node bench/run.cjs --help` for options.
//
// Every system runs as a server process and a client process (forked or spawned
// from here); this process only coordinates, reads /proc/net/snmp and writes the
// report. Node children run under `node --import tsx`, loading rpcudp from src/.

const { fork, spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const { udpSnmp, machineCpu, socketDrops } = require('./lib/stats.cjs')
const { renderChart } = require('./lib/chart.cjs')

const ROOT = path.resolve(__dirname, '..')
const BENCH = __dirname
const OUT = path.join(BENCH, 'out')
const PYTHON = path.join(ROOT, '.venv', 'bin', 'python')
const RUST_DIR = path.join(BENCH, 'rust-echo')
const RUST_BIN = path.join(RUST_DIR, 'target', 'release', 'rust-echo')
const NODE_ARGS = ['--import', 'tsx']

// ---------------------------------------------------------------- configuration

const HELP = `usage: node bench/run.cjs [options]        (npm run bench -- [options])

  --quick              smoke run: one round of ~1 s per level, short warm-ups, 10 000
                       outstanding calls for memory; writes bench/out/ only unless --write
  --rounds=N           rounds (default 3; quick 1): each round measures every level of
                       every system once, interleaved, and the report takes the median
                       per system and level, so a burst of foreign load hits one round
  --duration=MS        measured window per level per round (default 1000)      env BENCH_DURATION_MS
  --warmup=MS          warm-up before each window (default 300; quick 200)     env BENCH_WARMUP_MS
  --levels=1,64,...    calls kept in flight (default 1,64,256,1024)             env BENCH_LEVELS
  --systems=a,b,...    subset of: ${'native,native-thread,native-controls,pure,native-pure,dgram,krpc,dht,python,rust'}   env BENCH_SYSTEMS
  --timeout=MS         per-call timeout of the throughput runs (default 1000)
  --outstanding=N      calls held for the memory measurement (default 100000; quick 10000)
  --timer-calls=N      calls timed out for the timer measurement (default 10000)
  --no-memory          skip the memory measurement     --no-timers   skip the timer measurement
  --write / --no-write force / skip rewriting bench/RESULTS.md and bench/chart.svg
  --help`

function parseArgs(argv) {
  const flags = {}
  for (const a of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a)
    if (!m) {
      console.error(`unknown argument ${a}\n\n${HELP}`)
      process.exit(2)
    }
    flags[m[1]] = m[2] === undefined ? true : m[2]
  }
  if (flags.help) {
    console.log(HELP)
    process.exit(0)
  }
  const env = process.env
  const quick = Boolean(flags.quick || env.BENCH_QUICK === '1')
  const num = (v, d) => (v === undefined || v === true ? d : Number(v))
  const list = (v, d) => (v === undefined || v === true ? d : String(v).split(',').map((s) => s.trim()).filter(Boolean))
  const cfg = {
    quick,
    rounds: num(flags.rounds ?? env.BENCH_ROUNDS, quick ? 1 : 3),
    durationMs: num(flags.duration ?? env.BENCH_DURATION_MS, 1000),
    warmupMs: num(flags.warmup ?? env.BENCH_WARMUP_MS, quick ? 200 : 300),
    systemWarmupMs: quick ? 300 : 1000,
    levels: list(flags.levels ?? env.BENCH_LEVELS, ['1', '64', '256', '1024']).map(Number),
    systems: list(flags.systems ?? env.BENCH_SYSTEMS, null),
    timeoutMs: num(flags.timeout, 1000),
    outstanding: num(flags.outstanding, quick ? 10000 : 100000),
    timerCalls: num(flags['timer-calls'], 10000),
    timerWaitMs: 500,
    memory: !flags['no-memory'],
    timers: !flags['no-timers'],
    write: flags.write ? true : flags['no-write'] ? false : !quick,
    argv,
  }
  for (const [k, v] of Object.entries(cfg))
    if (typeof v === 'number' && !(v > 0)) {
      console.error(`--${k}: expected a positive number`)
      process.exit(2)
    }
  if (cfg.levels.some((l) => !Number.isInteger(l) || l < 1)) {
    console.error('--levels: expected positive integers')
    process.exit(2)
  }
  return cfg
}

// ---------------------------------------------------------------- systems

const node = (system) => ({ kind: 'node', system })
const SYSTEMS = [
  { key: 'native', label: 'rpcudp native↔native', server: node('native'), client: node('native'), needs: 'native' },
  {
    key: 'native-thread',
    label: "rpcudp native↔native, nativeIo: 'thread'",
    server: node('native-thread'),
    client: node('native-thread'),
    needs: 'native',
  },
  {
    key: 'native-controls',
    label: 'rpcudp native↔native, signal + perSource',
    server: node('native-controls'),
    client: node('native-controls'),
    needs: 'native',
    optIn: true, // bench/controls.cjs: only when named in --systems
  },
  { key: 'pure', label: 'rpcudp pure↔pure', server: node('pure'), client: node('pure') },
  { key: 'native-pure', label: 'rpcudp native client → pure server', server: node('pure'), client: node('native'), needs: 'native' },
  { key: 'dgram', label: 'node:dgram floor (hand-written)', server: node('dgram'), client: node('dgram') },
  { key: 'krpc', label: 'k-rpc-socket', server: node('krpc'), client: node('krpc') },
  { key: 'dht', label: 'dht-rpc (udx-native)', server: node('dht'), client: node('dht') },
  { key: 'python', label: 'Python rpcudp 5.0.1 (asyncio)', server: { kind: 'python' }, client: { kind: 'python' }, needs: 'python' },
  { key: 'rust', label: 'Rust tokio UDP echo (kernel limit)', server: { kind: 'rust' }, client: { kind: 'rust' }, needs: 'rust' },
]

// ---------------------------------------------------------------- children

/**
 * One child process with a message queue: Node children speak over IPC, Python
 * and Rust ones in JSON lines on stdout with text commands on stdin.
 */
class Child {
  constructor(name, proc, ipc) {
    this.name = name
    this.proc = proc
    this.ipc = ipc
    this.queue = []
    this.waiters = []
    this.stderr = ''
    this.exited = null
    proc.stderr?.on('data', (d) => (this.stderr = (this.stderr + d).slice(-4000)))
    if (ipc) proc.on('message', (m) => this.push(m))
    else {
      proc.stdout.setEncoding('utf8')
      readline.createInterface({ input: proc.stdout }).on('line', (line) => {
        if (!line.trim()) return
        try {
          this.push(JSON.parse(line))
        } catch {
          this.stderr = (this.stderr + '\n[stdout] ' + line).slice(-4000)
        }
      })
    }
    if (ipc) proc.stdout?.on('data', (d) => (this.stderr = (this.stderr + d).slice(-4000)))
    proc.on('exit', (code, signal) => {
      this.exited = { code, signal }
      for (const w of this.waiters.splice(0)) w.reject(this.error(`exited (${signal ?? code}) while waiting for ${w.ev}`))
    })
    proc.on('error', (err) => {
      this.exited = { code: -1 }
      for (const w of this.waiters.splice(0)) w.reject(this.error(`failed: ${err.message}`))
    })
  }

  static node(name, script, args, env, execArgv = NODE_ARGS) {
    const proc = fork(path.join(BENCH, 'lib', script), args, {
      cwd: ROOT,
      execArgv,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    })
    return new Child(name, proc, true)
  }

  static exec(name, cmd, args) {
    const proc = spawn(cmd, args, { cwd: BENCH, stdio: ['pipe', 'pipe', 'pipe'] })
    return new Child(name, proc, false)
  }

  error(message) {
    const tail = this.stderr.trim().split('\n').slice(-12).join('\n')
    return new Error(`${this.name}: ${message}${tail ? '\n' + tail : ''}`)
  }

  push(m) {
    if (m.ev === 'error') {
      const err = this.error(m.message)
      for (const w of this.waiters.splice(0)) w.reject(err)
      this.failed = err
      return
    }
    const i = this.waiters.findIndex((w) => w.ev === m.ev)
    if (i >= 0) this.waiters.splice(i, 1)[0].resolve(m)
    else this.queue.push(m)
  }

  next(ev, timeoutMs) {
    const i = this.queue.findIndex((m) => m.ev === ev)
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0])
    if (this.failed) return Promise.reject(this.failed)
    if (this.exited) return Promise.reject(this.error(`exited (${this.exited.signal ?? this.exited.code}) before ${ev}`))
    return new Promise((resolve, reject) => {
      const w = { ev, resolve, reject }
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        reject(this.error(`no ${ev} within ${timeoutMs} ms`))
      }, timeoutMs)
      w.resolve = (m) => (clearTimeout(timer), resolve(m))
      w.reject = (e) => (clearTimeout(timer), reject(e))
      this.waiters.push(w)
    })
  }

  send(cmd) {
    if (this.exited) return
    if (this.ipc) {
      if (this.proc.connected) this.proc.send(cmd)
      return
    }
    const line = cmd.cmd === 'run' ? `run ${cmd.inflight} ${cmd.warmupMs} ${cmd.durationMs} ${cmd.timeoutMs}` : cmd.cmd
    this.proc.stdin.write(line + '\n')
  }

  async stop() {
    if (this.exited) return
    this.send({ cmd: 'quit' })
    const gone = new Promise((r) => this.proc.once('exit', r))
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 3000)
    await gone
    clearTimeout(timer)
  }
}

function startSide(side, role, sys, cfg, port) {
  const name = `${sys.key} ${role}`
  const opts = { BENCH_CHILD_OPTS: JSON.stringify({ timeoutMs: cfg.timeoutMs, maxInflight: Math.max(...cfg.levels) }) }
  if (side.kind === 'node') return Child.node(name, 'node-child.cjs', role === 'server' ? [role, side.system] : [role, side.system, String(port)], opts)
  if (side.kind === 'python') return Child.exec(name, PYTHON, role === 'server' ? ['python_echo.py', 'server'] : ['python_echo.py', 'client', '127.0.0.1', String(port)])
  return Child.exec(name, RUST_BIN, role === 'server' ? ['server'] : ['client', `127.0.0.1:${port}`])
}

// ---------------------------------------------------------------- preflight

function sh(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts }).trim()
  } catch {
    return null
  }
}

function pkgVersion(name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return null
  }
}

function preflight(cfg) {
  const unavailable = {}
  // native: the addon must load in a child (never in this process)
  const probe = sh(process.execPath, [...NODE_ARGS, '-e', "const r=require('./src/index.ts').nativeBackend();console.log(JSON.stringify(r))"], { cwd: ROOT })
  let native = null
  try {
    native = JSON.parse(probe)
  } catch {}
  if (!native || !native.available) unavailable.native = `native backend unavailable: ${native ? native.reason : 'probe failed'}`

  if (!fs.existsSync(PYTHON) || sh(PYTHON, ['-c', 'import rpcudp']) === null) {
    console.log('# creating .venv with scripts/python-env.sh')
    sh('bash', [path.join(ROOT, 'scripts', 'python-env.sh')], { cwd: ROOT, timeout: 180000 })
    if (sh(PYTHON, ['-c', 'import rpcudp']) === null) unavailable.python = 'no .venv with rpcudp (scripts/python-env.sh failed)'
  }

  const src = path.join(RUST_DIR, 'src', 'main.rs')
  const stale = !fs.existsSync(RUST_BIN) || fs.statSync(RUST_BIN).mtimeMs < Math.max(fs.statSync(src).mtimeMs, fs.statSync(path.join(RUST_DIR, 'Cargo.toml')).mtimeMs)
  if (stale) {
    console.log('# building bench/rust-echo (cargo build --release)')
    const r = require('node:child_process').spawnSync('cargo', ['build', '--release', '--manifest-path', path.join(RUST_DIR, 'Cargo.toml')], { stdio: 'inherit', cwd: ROOT })
    if (r.status !== 0 || !fs.existsSync(RUST_BIN)) unavailable.rust = 'cargo build of bench/rust-echo failed'
  }
  return unavailable
}

function environment(cfg) {
  const cpu = (os.cpus()[0] || {}).model || 'unknown'
  const lock = sh('grep', ['-A1', 'name = "tokio"', path.join(RUST_DIR, 'Cargo.lock')])
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    command: `node bench/run.cjs${cfg.argv.length ? ' ' + cfg.argv.join(' ') : ''}`,
    nproc: sh('nproc', []) ?? String(os.cpus().length),
    cpu: cpu.trim(),
    kernel: `${os.type()} ${os.release()}`,
    loadavg: os.loadavg().map((l) => l.toFixed(2)).join(' '),
    rmemMax: sh('cat', ['/proc/sys/net/core/rmem_max']),
    node: process.version,
    rpcudp: JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version,
    git: sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']) ?? 'no commit',
    gitDirty: (sh('git', ['-C', ROOT, 'status', '--porcelain']) ?? '') !== '',
    krpc: pkgVersion('k-rpc-socket'),
    dht: pkgVersion('dht-rpc'),
    udx: pkgVersion('udx-native'),
    python: sh(PYTHON, ['-c', "import sys,importlib.metadata as m;print(sys.version.split()[0], 'rpcudp', m.version('rpcudp'), 'umsgpack', m.version('u-msgpack-python'))"]),
    rustc: sh('rustc', ['--version']),
    tokio: lock ? (/version = "([^"]+)"/.exec(lock) || [])[1] : null,
  }
}

// ---------------------------------------------------------------- throughput

async function serverCpu(server) {
  server.send({ cmd: 'cpu' })
  const m = await server.next('cpu', 10000)
  return m.user + m.system
}

async function runLevel(sys, server, client, cfg, inflight, warmupMs, durationMs) {
  const pids = [server.proc.pid, client.proc.pid]
  const snmp0 = udpSnmp()
  const drops0 = socketDrops(pids)
  client.send({ cmd: 'run', inflight, warmupMs, durationMs, timeoutMs: cfg.timeoutMs })
  const slack = 30000 + cfg.timeoutMs * 2
  await client.next('start', warmupMs + slack)
  const s0 = await serverCpu(server)
  const m0 = machineCpu()
  await client.next('end', durationMs + slack)
  const m1 = machineCpu()
  const s1 = await serverCpu(server)
  const r = await client.next('result', slack)
  const snmp1 = udpSnmp()
  const drops1 = socketDrops(pids)
  const calls = r.calls
  return {
    system: sys.key,
    inflight,
    calls,
    callsPerSec: calls / (r.elapsedMs / 1000),
    p50: r.p50,
    p99: r.p99,
    max: r.max,
    clientCpu: calls ? r.cpuUs / calls : null,
    serverCpu: calls ? (s1 - s0) / calls : null,
    timeouts: r.timeouts,
    errors: r.errors,
    // on the two processes' own sockets; the namespace-wide counter also sees every other process
    rcvbufDrops: drops0 !== null && drops1 !== null ? drops1 - drops0 : null,
    namespaceRcvbufErrors: snmp0 && snmp1 ? snmp1.RcvbufErrors - snmp0.RcvbufErrors : null,
    // CPU the rest of the machine used in the window, in % of all cores: the noise indicator
    otherCpu: m0 && m1 ? Math.max(0, ((m1.busyUs - m0.busyUs - r.cpuUs - (s1 - s0)) / ((m1.totalUs - m0.totalUs) || 1)) * 100) : null,
  }
}

/** Starts a system's server and client and runs one discarded warm-up window (JIT, caches). */
async function startSystem(sys, cfg) {
  const pair = { sys, server: null, client: null }
  try {
    pair.server = startSide(sys.server, 'server', sys, cfg)
    const { port } = await pair.server.next('ready', 30000)
    pair.client = startSide(sys.client, 'client', sys, cfg, port)
    await pair.client.next('ready', 30000)
    await runLevel(sys, pair.server, pair.client, cfg, Math.min(64, Math.max(...cfg.levels)), cfg.warmupMs, cfg.systemWarmupMs)
    return pair
  } catch (err) {
    await stopSystem(pair)
    throw err
  }
}

async function stopSystem(pair) {
  await Promise.all([pair.client?.stop(), pair.server?.stop()])
}

function median(values) {
  const v = values.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}

/** One row per system and level from its rounds: medians, except counts (summed) and the spread of calls/s. */
function aggregate(runs) {
  const rates = runs.map((r) => r.callsPerSec)
  const m = median(rates)
  const row = { ...runs[0], rounds: runs.length }
  for (const k of ['callsPerSec', 'p50', 'p99', 'max', 'clientCpu', 'serverCpu', 'otherCpu']) row[k] = median(runs.map((r) => r[k]))
  for (const k of ['calls', 'timeouts', 'errors', 'rcvbufDrops', 'namespaceRcvbufErrors']) row[k] = runs.reduce((a, r) => (a === null || r[k] === null ? null : a + r[k]), 0)
  row.spread = runs.length > 1 && m ? (Math.max(...rates) - Math.min(...rates)) / m : null
  row.perRound = runs.map((r) => ({ callsPerSec: r.callsPerSec, p50: r.p50, p99: r.p99, otherCpu: r.otherCpu }))
  return row
}

// ---------------------------------------------------------------- memory and timers

function startBlackhole() {
  // A bound socket that never reads: requests to it are never answered (and
  // once its buffer is full the kernel drops them, counted as RcvbufErrors).
  const code = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('127.0.0.1',0))\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()"
  const proc = spawn('python3', ['-c', code], { stdio: ['pipe', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    proc.on('error', reject)
    readline.createInterface({ input: proc.stdout }).once('line', (l) => resolve({ port: Number(l), stop: () => proc.kill() }))
  })
}

async function runMemTimer(mode, backend, cfg, blackholePort, echoPort) {
  const env = { BENCH_CHILD_OPTS: JSON.stringify({ outstanding: cfg.outstanding, timerCalls: cfg.timerCalls, timerWaitMs: cfg.timerWaitMs }) }
  const args = [mode, backend, String(blackholePort)]
  if (echoPort) args.push(String(echoPort))
  const child = Child.node(`${mode} ${backend}`, 'memtimer.cjs', args, env, ['--expose-gc', ...NODE_ARGS])
  try {
    return await child.next('result', 120000)
  } finally {
    if (!child.exited) child.proc.kill('SIGKILL')
  }
}

async function measureMemory(backends, cfg, blackhole) {
  const out = {}
  for (const backend of backends) {
    try {
      out[backend] = await runMemTimer('memory', backend, cfg, blackhole.port)
      const p = out[backend].perCall
      console.log(`memory ${backend}: ${fmt(liveBytes(p), 0)} B live, ${fmt(p.rss, 0)} B RSS, ${fmt(p.heapUsed, 0)} B JS heap, ${fmt(p.heapTotal, 0)} B heap committed, ${fmt(p.external, 0)} B external, ${fmt(p.native ?? 0, 0)} B Rust table per outstanding call`)
    } catch (err) {
      out[backend] = { error: err.message }
      console.log(`memory ${backend}: FAILED ${err.message}`)
    }
  }
  return out
}

async function measureTimers(backends, cfg, blackhole) {
  const out = {}
  for (const backend of backends) {
    const sys = { key: `timers-${backend}` }
    const server = startSide(node(backend), 'server', sys, cfg)
    try {
      const { port } = await server.next('ready', 30000)
      out[backend] = await runMemTimer('timers', backend, cfg, blackhole.port, port)
      const t = out[backend]
      console.log(`timers ${backend}: late by p50 ${fmt(t.p50, 2)} ms, p99 ${fmt(t.p99, 2)} ms, max ${fmt(t.max, 2)} ms (min ${fmt(t.min, 2)}), ${t.timedOut}/${t.calls} timed out, load ${fmt(t.loadCallsPerSec, 0)} calls/s`)
    } catch (err) {
      out[backend] = { error: err.message }
      console.log(`timers ${backend}: FAILED ${err.message}`)
    } finally {
      await server.stop()
    }
  }
  return out
}

// ---------------------------------------------------------------- report

function fmt(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–'
  return Number(v).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function find(rows, system, inflight) {
  return rows.find((r) => r.system === system && r.inflight === inflight) || null
}

/**
 * The issue's ratios. Each is taken per round, between windows measured a few
 * seconds apart under the same foreign load, and the median of those is reported.
 */
function ratios(results, memory, cfg) {
  const rows = results.flatMap((r) => r.rows)
  const at = cfg.levels.includes(256) ? 256 : Math.max(...cfg.levels)
  const low = Math.min(...cfg.levels)
  const rate = (s, l = at) => find(rows, s, l)?.callsPerSec ?? null
  const div = (a, b) => (a !== null && b !== null && b > 0 ? a / b : null)
  const runsOf = (s, l) => results.find((r) => r.key === s)?.runs?.[l] ?? null
  const paired = (a, b, l = at, metric = 'callsPerSec') => {
    const A = runsOf(a, l)
    const B = runsOf(b, l)
    if (!A || !B) return null
    return median(Array.from({ length: Math.min(A.length, B.length) }, (_, i) => div(A[i][metric], B[i][metric])))
  }
  const nat = find(rows, 'native', at)
  const jsPeers = ['krpc', 'dht'].map((s) => ({ s, r: rate(s) })).filter((x) => x.r !== null)
  const best = jsPeers.sort((a, b) => b.r - a.r)[0] || null
  const out = []
  const add = (name, value, target, pass, note = '') => out.push({ name, value, target, verdict: value === null ? 'n/a' : pass === null ? 'info' : pass ? 'PASS' : 'MISS', note })
  let v = paired('native', 'pure')
  add(`native↔native / pure↔pure calls/s at ${at} in flight`, v, '≥ 2', v === null ? null : v >= 2)
  v = best ? paired('native', best.s) : null
  add(`native / best JS peer (${best ? SYSTEMS.find((x) => x.key === best.s).label : 'none'}) at ${at}`, v, '≥ 1.5', v === null ? null : v >= 1.5)
  const np50 = find(rows, 'native', low)?.p50 ?? null
  const fp50 = find(rows, 'dgram', low)?.p50 ?? null
  v = paired('native', 'dgram', low, 'p50')
  add(`native p50 / node:dgram floor p50 at ${low} in flight`, v, '≤ 1 (no worse)', v === null ? null : v <= 1, np50 !== null && fp50 !== null ? `row medians ${fmt(np50)} µs vs ${fmt(fp50)} µs` : '')
  v = paired('native', 'rust')
  const clean = nat ? nat.timeouts === 0 && nat.rcvbufDrops === 0 : false
  add(`native / Rust echo at ${at}, with 0 timeouts and 0 rcvbuf drops`, v, '≥ 0.5', v === null ? null : v >= 0.5 && clean, nat ? `timeouts ${nat.timeouts}, rcvbuf drops ${nat.rcvbufDrops}` : '')
  v = paired('pure', 'dgram')
  add(`pure↔pure / node:dgram floor at ${at}`, v, '≥ 0.8', v === null ? null : v >= 0.8)
  for (const b of ['native', 'pure']) {
    const m = memory?.[b]
    v = m && m.perCall ? liveBytes(m.perCall) : null
    add(`bytes per outstanding call, ${b} (${fmt(cfg.outstanding, 0)} outstanding)`, v, '≤ 300', v === null ? null : v <= 300, m?.perCall ? `live bytes; RSS ${fmt(m.perCall.rss, 0)}, JS heap ${fmt(m.perCall.heapUsed, 0)}, external ${fmt(m.perCall.external, 0)}, Rust table ${fmt(m.perCall.native ?? 0, 0)}; a bare Map entry + promise: ${memory.floor?.perCall ? fmt(liveBytes(memory.floor.perCall), 0) : '–'}` : '')
  }
  return out
}

/**
 * Bytes an outstanding call keeps alive: JS heap objects, external buffers, and
 * (native) the Rust table's heap bytes as the core reports them. V8's own slack
 * (committed but unused heap) is left out: it is GC policy, not per call.
 */
function liveBytes(p) {
  return p.heapUsed + p.external + (p.native ?? 0)
}

function ratioValue(r) {
  if (r.value === null) return '–'
  return r.name.startsWith('bytes') ? fmt(r.value, 0) : fmt(r.value, 2)
}

function markdown(env, cfg, results, memory, timers, rs) {
  const L = []
  L.push(`Run ${env.date} on ${env.nproc} × ${env.cpu} (${env.kernel}, load average at start ${env.loadavg}, net.core.rmem_max ${env.rmemMax}).`)
  L.push('')
  L.push('```')
  L.push(env.command)
  L.push('```')
  L.push('')
  L.push(
    `Node ${env.node}; rpcudp ${env.rpcudp} (git ${env.git}${env.gitDirty ? ', uncommitted changes' : ''}); k-rpc-socket ${env.krpc}; dht-rpc ${env.dht} (udx-native ${env.udx}); Python ${env.python ?? 'n/a'}; ${env.rustc ?? 'rustc n/a'}, tokio ${env.tokio ?? 'n/a'}.`,
  )
  L.push('')
  L.push(
    `Echo of a 32-byte buffer over loopback, server and client in separate processes sharing the machine. ` +
      `${cfg.rounds} round${cfg.rounds > 1 ? 's' : ''}${cfg.quick ? ' (quick mode)' : ''}; in each, every system is measured at every level in turn: ${cfg.warmupMs} ms warm-up, then a ${cfg.durationMs} ms window. ` +
      `Values are medians over the rounds; *spread* is (max − min) / median of calls/s across them; timeouts and drops are summed. Per-call timeout ${cfg.timeoutMs} ms. ` +
      'CPU is process.cpuUsage / getrusage of each process over the window, divided by the calls completed in it. ' +
      "Drops are datagrams the kernel dropped on the two processes' own sockets (the drops column of /proc/net/udp, receive buffer full) over the whole level, warm-up and drain included; the namespace-wide Udp RcvbufErrors of /proc/net/snmp, which other processes move too, is in bench/out/latest.json. " +
      '*Other CPU* is the busy time of the whole machine (/proc/stat) not used by the two processes, in % of all cores: high values mark a noisy window.',
  )
  L.push('')
  L.push('| system | in flight | calls/s | spread | p50 µs | p99 µs | client CPU µs/call | server CPU µs/call | timeouts | rcvbuf drops | other CPU |')
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const res of results) {
    const sys = SYSTEMS.find((s) => s.key === res.key)
    for (const r of res.rows)
      L.push(`| ${sys.label} | ${r.inflight} | ${fmt(r.callsPerSec, 0)} | ${r.spread === null ? '–' : fmt(r.spread * 100, 0) + '%'} | ${fmt(r.p50, 0)} | ${fmt(r.p99, 0)} | ${fmt(r.clientCpu)} | ${fmt(r.serverCpu)} | ${r.timeouts}${r.errors ? ` (+${r.errors} errors)` : ''} | ${r.rcvbufDrops ?? '–'} | ${fmt(r.otherCpu, 0)}% |`)
    if (res.error || res.skipped) L.push(`| ${sys.label} | – | ${res.skipped ? 'skipped' : 'failed'}: ${oneLine(res.skipped || res.error)} | | | | | | | | |`)
  }
  L.push('')
  L.push('![calls/s against calls in flight](chart.svg)')
  L.push('')
  if (memory) {
    L.push(`**Memory** — ${fmt(cfg.outstanding, 0)} calls outstanding to a socket that never answers (waitTimeout 3600 s), fresh process with --expose-gc, after a warm-up and forced GCs; change per call. *Live* = JS heap used + external + the Rust table's heap bytes (native; reported by the core, since RSS cannot isolate it): what the calls keep alive, without V8's committed-but-unused heap (RSS shows that cost too):`)
    L.push('')
    L.push('| backend | live B/call | RSS B/call | JS heap used B/call | heap committed B/call | external B/call | Rust table B/call | outstanding seen by stats() |')
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|')
    for (const [b, m] of Object.entries(memory)) {
      if (m.error) L.push(`| ${b} | failed: ${oneLine(m.error)} | | | | | | |`)
      else L.push(`| ${b === 'floor' ? 'reference: Map entry + promise per call, no socket' : b} | ${fmt(liveBytes(m.perCall), 0)} | ${fmt(m.perCall.rss, 0)} | ${fmt(m.perCall.heapUsed, 0)} | ${fmt(m.perCall.heapTotal, 0)} | ${fmt(m.perCall.external, 0)} | ${fmt(m.perCall.native ?? 0, 0)} | ${fmt(m.reportedOutstanding, 0)} |`)
    }
    L.push('')
  }
  if (timers) {
    L.push(`**Timer accuracy** — ${fmt(cfg.timerCalls, 0)} calls to a socket that never answers, waitTimeout ${cfg.timerWaitMs} ms, started over ~1 s while the same process keeps 64 echo calls in flight to a server of the same backend; lateness = settle time − start − waitTimeout, as the caller sees it:`)
    L.push('')
    L.push('| backend | p50 late ms | p99 late ms | max late ms | earliest ms | timed out | load calls/s |')
    L.push('|---|---:|---:|---:|---:|---:|---:|')
    for (const [b, t] of Object.entries(timers)) {
      if (t.error) L.push(`| ${b} | failed: ${oneLine(t.error)} | | | | | |`)
      else L.push(`| ${b} | ${fmt(t.p50, 2)} | ${fmt(t.p99, 2)} | ${fmt(t.max, 2)} | ${fmt(t.min, 2)} | ${t.timedOut}/${t.calls} | ${fmt(t.loadCallsPerSec, 0)} |`)
    }
    L.push('')
  }
  L.push(`**Targets (issue 7)** — from this run; each ratio is the median of its per-round ratios (the two windows of a round are seconds apart, under the same foreign load):`)
  L.push('')
  L.push('| ratio | value | target | verdict |')
  L.push('|---|---:|---|---|')
  for (const r of rs) L.push(`| ${r.name}${r.note ? ` (${r.note})` : ''} | ${ratioValue(r)} | ${r.target} | ${r.verdict} |`)
  return L.join('\n')
}

function oneLine(s) {
  return String(s).split('\n')[0].replace(/\|/g, '/').slice(0, 200)
}

const START = '<!-- results:start -->'
const END = '<!-- results:end -->'

function writeResults(file, body) {
  let text
  if (fs.existsSync(file)) text = fs.readFileSync(file, 'utf8')
  else
    text = `# Benchmark results\n\nProduced by \`npm run bench\` (bench/run.cjs); the part between the markers is rewritten on every full run.\n\n${START}\n${END}\n\n## History\n\n(maintained by hand)\n`
  const a = text.indexOf(START)
  const b = text.indexOf(END)
  if (a < 0 || b < a) text = text.trimEnd() + `\n\n${START}\n${END}\n`
  const i = text.indexOf(START) + START.length
  const j = text.indexOf(END)
  fs.writeFileSync(file, text.slice(0, i) + '\n' + body + '\n' + text.slice(j))
}

// ---------------------------------------------------------------- main

async function main() {
  const cfg = parseArgs(process.argv.slice(2))
  const t0 = Date.now()
  fs.mkdirSync(OUT, { recursive: true })
  const unknown = (cfg.systems || []).filter((k) => !SYSTEMS.some((s) => s.key === k))
  if (unknown.length) {
    console.error(`unknown system(s): ${unknown.join(', ')}`)
    process.exit(2)
  }
  const unavailable = preflight(cfg)
  const env = environment(cfg)
  console.log(`# ${env.command} — ${env.date}, ${env.nproc} × ${env.cpu}, node ${env.node}, load ${env.loadavg}`)
  console.log(`# levels ${cfg.levels.join(', ')}; warm-up ${cfg.warmupMs} ms, measured ${cfg.durationMs} ms per level; timeout ${cfg.timeoutMs} ms`)

  const results = []
  const log = (r, round) =>
    console.log(
      `${r.system.padEnd(12)} ${String(r.inflight).padStart(5)} in flight${round === undefined ? '' : ` r${round + 1}`}: ${fmt(r.callsPerSec, 0).padStart(9)} calls/s  p50 ${fmt(r.p50, 0).padStart(7)} µs  p99 ${fmt(r.p99, 0).padStart(7)} µs  ` +
        `cpu client ${fmt(r.clientCpu).padStart(6)} server ${fmt(r.serverCpu).padStart(6)} µs/call  timeouts ${r.timeouts}${r.errors ? ` errors ${r.errors}` : ''}  drops ${r.rcvbufDrops}  other ${fmt(r.otherCpu, 0)}%`,
    )
  // Every system's pair stays up for the whole run (idle when not measured), so
  // rounds can interleave: round r measures level l of every system back to back.
  const pairs = []
  for (const sys of SYSTEMS) {
    if (cfg.systems ? !cfg.systems.includes(sys.key) : sys.optIn) continue
    const res = { key: sys.key, rows: [], runs: {} }
    results.push(res)
    if (sys.needs && unavailable[sys.needs]) {
      console.log(`${sys.key.padEnd(12)} skipped: ${unavailable[sys.needs]}`)
      res.skipped = unavailable[sys.needs]
      continue
    }
    try {
      pairs.push({ res, pair: await startSystem(sys, cfg) })
    } catch (err) {
      console.log(`${sys.key.padEnd(12)} FAILED to start: ${err.message}`)
      res.error = err.message
    }
  }
  try {
    for (let round = 0; round < cfg.rounds; round++)
      for (const inflight of cfg.levels)
        for (const { res, pair } of pairs) {
          if (res.error) continue
          try {
            const r = await runLevel(pair.sys, pair.server, pair.client, cfg, inflight, cfg.warmupMs, cfg.durationMs)
            ;(res.runs[inflight] ??= []).push(r)
            log(r, cfg.rounds > 1 ? round : undefined)
          } catch (err) {
            console.log(`${res.key.padEnd(12)} FAILED: ${err.message}`)
            res.error = err.message
            await stopSystem(pair)
          }
        }
  } finally {
    await Promise.all(pairs.map(({ pair }) => stopSystem(pair)))
  }
  for (const res of results) res.rows = cfg.levels.filter((l) => res.runs[l]).map((l) => aggregate(res.runs[l]))
  if (cfg.rounds > 1) {
    console.log(`\nmedians of ${cfg.rounds} rounds:`)
    for (const res of results) for (const r of res.rows) log(r)
  }

  let memory = null
  let timers = null
  const backends = ['native', 'pure'].filter((b) => !(b === 'native' && unavailable.native))
  if (cfg.memory || cfg.timers) {
    let blackhole = null
    try {
      blackhole = await startBlackhole()
      if (cfg.memory) memory = await measureMemory([...backends, 'floor'], cfg, blackhole)
      if (cfg.timers) timers = await measureTimers(backends, cfg, blackhole)
    } catch (err) {
      console.log(`memory/timers: FAILED ${err.message}`)
    } finally {
      blackhole?.stop()
    }
  }

  const rs = ratios(results, memory, cfg)
  console.log('\ntargets (issue 7):')
  for (const r of rs) console.log(`  ${r.verdict.padEnd(4)}  ${r.name}: ${ratioValue(r)} (target ${r.target})${r.note ? ` — ${r.note}` : ''}`)

  const body = markdown(env, cfg, results, memory, timers, rs)
  const json = { env, cfg, results, memory, timers, ratios: rs }
  fs.writeFileSync(path.join(OUT, cfg.quick ? 'quick.json' : 'latest.json'), JSON.stringify(json, null, 2))
  fs.writeFileSync(path.join(OUT, cfg.quick ? 'quick.md' : 'latest.md'), body + '\n')
  const svg = renderChart(
    results.filter((r) => r.rows.length).map((r) => ({ label: SYSTEMS.find((s) => s.key === r.key).label, points: r.rows.map((x) => [x.inflight, x.callsPerSec]) })),
    { title: `calls/s against calls in flight — ${env.nproc} × ${env.cpu}, ${env.date.slice(0, 10)}${cfg.quick ? ' (quick)' : ''}` },
  )
  fs.writeFileSync(path.join(OUT, cfg.quick ? 'quick.svg' : 'latest.svg'), svg)
  if (cfg.write) {
    writeResults(path.join(BENCH, 'RESULTS.md'), body)
    fs.writeFileSync(path.join(BENCH, 'chart.svg'), svg)
    console.log('\nwrote bench/RESULTS.md and bench/chart.svg')
  } else console.log(`\nwrote bench/out/${cfg.quick ? 'quick' : 'latest'}.{md,json,svg} (bench/RESULTS.md untouched; --write to update it)`)
  console.log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`)
}

main().catch((err) => {
  // a broken harness is worth a non-zero exit; a missed target never is
  console.error(err)
  process.exit(1)
})
