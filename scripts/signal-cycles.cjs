#!/usr/bin/env node
/**
 * `rpcudp serve` -> calls -> signal, over and over, counting how each server
 * process ended. A server once exited 134 (SIGABRT) on SIGINT after some calls
 * with nothing on stderr; an abort on teardown shows up here as a signal or code
 * other than the two a clean shutdown can give:
 *   - exit 0 after one signal (serve closes and returns), and
 *   - exit 0 or death by the second signal itself when a second one arrives
 *     while closing (untilStopped() has removed its listeners, so Node's
 *     default applies: exit now).
 * (With stdout closed, exit 0 too: the CLI's EPIPE handler exits with it.)
 * Anything else, or stderr beyond the "serving" line, is a failure, kept with
 * its stderr.
 *
 * Each cycle leaves calls in flight when the signal lands: a few pings and
 * echoes answered just before, and a sleep the server is still holding (its
 * handler aborts on close), so teardown runs with live requests and timers.
 *
 *   node scripts/signal-cycles.cjs [--cycles 1000] [--modes native-loop,native-thread,pure]
 *
 * Uses dist/ (npm run build:ts). __test__/signal.spec.ts runs a few cycles of each.
 */
const { spawn } = require('node:child_process')
const path = require('node:path')
const { createInterface } = require('node:readline')

const ROOT = path.join(__dirname, '..')
const CLI = path.join(ROOT, 'dist', 'cli.js')

/** A mode is a backend and, for native, where it receives. */
const MODES = {
  'native-loop': { RPCUDP_BACKEND: 'native', RPCUDP_NATIVE_IO: 'loop' },
  'native-thread': { RPCUDP_BACKEND: 'native', RPCUDP_NATIVE_IO: 'thread' },
  pure: { RPCUDP_BACKEND: 'pure', RPCUDP_NATIVE_IO: '' },
}

/**
 * Cycle i's variant, in turn: SIGINT or SIGTERM, alone, followed by a second
 * one while closing, or with stdout closed by the reader (serve's last stats
 * line then fails with EPIPE, and the CLI calls process.exit with the socket
 * still open: the addon's environment cleanup hooks close it).
 */
function variant(i) {
  return { signal: i % 2 === 0 ? 'SIGINT' : 'SIGTERM', second: i % 6 >= 2 && i % 6 < 4, epipe: i % 6 >= 4 }
}

/** One serve process: start, call, signal; resolves with how it ended. */
async function cycle(client, env, { signal, second, epipe }) {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...(epipe ? ['--stats-interval', '60'] : [])], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig })))
  const first = await new Promise((resolve) => {
    const lines = createInterface({ input: child.stdout })
    lines.once('line', resolve)
    lines.once('close', () => resolve(undefined))
  })
  let callsOk = false
  if (first !== undefined) {
    const i = first.lastIndexOf(':')
    const target = [first.slice(0, i), Number(first.slice(i + 1))]
    const answered = await Promise.all([
      client.callRemote(target, 'ping', [], { timeout: 10 }),
      client.callRemote(target, 'echo', [{ n: 1, s: 'x'.repeat(200) }], { timeout: 10 }),
      client.callRemote(target, 'ping', [], { timeout: 10 }),
    ])
    callsOk = answered.every((r) => r[0])
    // held by the server until it closes; its answer never comes
    void client.callRemote(target, 'sleep', [30], { timeout: 0.5 })
    await new Promise((r) => setImmediate(r))
  }
  if (epipe) child.stdout.destroy()
  child.kill(signal)
  if (second) {
    await new Promise((r) => setTimeout(r, Math.random() * 3))
    child.kill(signal)
  }
  const end = await exited
  const extra = stderr.replace(/^rpcudp: serving .*\n/, '')
  const clean = first !== undefined && callsOk && extra === '' && (end.code === 0 || (second && end.signal === signal))
  return { ...end, clean, callsOk, stderr: extra, started: first !== undefined }
}

/**
 * Runs `cycles` cycles of one mode, `parallel` at a time. Returns the tally of
 * endings ("exit 0", "signal SIGINT", ...) and the failures.
 */
async function runCycles(mode, cycles, { parallel = 2 } = {}) {
  const { RPCProtocol } = require(path.join(ROOT, 'dist', 'index.js'))
  const client = new RPCProtocol({ backend: 'pure' })
  await client.listen(0, '127.0.0.1')
  const endings = {}
  const failures = []
  let next = 0
  const worker = async () => {
    while (next < cycles) {
      const i = next++
      const v = variant(i)
      const r = await cycle(client, MODES[mode], v)
      const ending = r.signal ? `signal ${r.signal}` : `exit ${r.code}`
      endings[ending] = (endings[ending] ?? 0) + 1
      if (!r.clean) failures.push({ cycle: i, ...v, ...r })
    }
  }
  try {
    await Promise.all(Array.from({ length: parallel }, worker))
  } finally {
    await client.close()
  }
  return { mode, cycles, endings, failures }
}

module.exports = { runCycles, MODES }

if (require.main === module) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(`--${name}`)
    return i === -1 ? fallback : process.argv[i + 1]
  }
  const cycles = Number(arg('cycles', '1000'))
  const modes = arg('modes', Object.keys(MODES).join(',')).split(',')
  ;(async () => {
    let failed = 0
    for (const mode of modes) {
      const started = Date.now()
      const r = await runCycles(mode, cycles)
      failed += r.failures.length
      console.log(`${mode}: ${cycles} cycles in ${((Date.now() - started) / 1000).toFixed(0)} s, endings ${JSON.stringify(r.endings)}, ${r.failures.length} failures`)
      for (const f of r.failures.slice(0, 10)) console.log('  ' + JSON.stringify(f))
    }
    process.exitCode = failed === 0 ? 0 : 1
  })()
}
