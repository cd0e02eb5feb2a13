#!/usr/bin/env node
// Runs conformance.cjs under every runtime of the matrix below, with backend
// 'auto' and each explicit backend (native in each I/O mode the runtime
// allows), and esm-consumer.mjs from a project that has rpcudp installed (as
// an ES module consumer would), each run in its own process with a time
// limit, so a crash or a hang is a failed run rather than a dead runner. Ends with "N passed, N failed"
// (checks passed/failed, plus one failure per run that crashed or hung).
//
// The runtimes come from npm, pinned in package.json beside this file
// (`npm ci --prefix __test__/runtime`): platform packages without install
// scripts. A runtime whose package is not installed for this platform is
// reported as skipped, never as passed.
//
//   node __test__/runtime/run-all.cjs [runtime-name ...]   (default: all)
'use strict'
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const HERE = __dirname
const ROOT = path.join(HERE, '..', '..')
const MODULES = path.join(HERE, 'node_modules')
const RUN_LIMIT_MS = 90_000

// What `auto` picks on each runtime (README's runtime matrix says the same).
const ON_LOOP = { backend: 'native', nativeIo: 'loop' }
const ON_THREAD = { backend: 'native', nativeIo: 'thread' }
const nodeMajor = (major) => ({ name: `node${major}`, bin: path.join(MODULES, `node${major}`, 'bin', 'node'), args: [], auto: ON_LOOP, ioModes: ['loop', 'thread'] })
const RUNTIMES = [
  nodeMajor(20),
  nodeMajor(22),
  nodeMajor(24),
  nodeMajor(26),
  { name: 'bun', bin: path.join(MODULES, '@oven', 'bun-linux-x64', 'bin', 'bun'), args: [], auto: ON_THREAD, ioModes: ['thread'] },
  { name: 'deno', bin: path.join(MODULES, '@deno', 'linux-x64-glibc', 'deno'), args: ['run', '-A'], auto: ON_THREAD, ioModes: ['thread'] },
]

function configs(rt) {
  return [['auto', 'default'], ...rt.ioModes.map((io) => ['native', io]), ['pure', 'default']]
}

/**
 * A consumer project with rpcudp in node_modules, laid out as npm installs the
 * packed package (its `files`, plus the addon the platform package would bring).
 */
function stageConsumer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rpcudp-runtimes-'))
  const pkg = path.join(dir, 'node_modules', 'rpcudp')
  fs.mkdirSync(pkg, { recursive: true })
  const files = ['package.json', ...JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).files]
  for (const f of files) fs.cpSync(path.join(ROOT, f), path.join(pkg, f), { recursive: true })
  for (const f of fs.readdirSync(ROOT).filter((n) => n.endsWith('.node'))) fs.copyFileSync(path.join(ROOT, f), path.join(pkg, f))
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'rpcudp-esm-consumer', private: true, type: 'module' }))
  fs.copyFileSync(path.join(HERE, 'esm-consumer.mjs'), path.join(dir, 'esm-consumer.mjs'))
  return dir
}

function runOne(rt, cwd, script, scriptArgs, extraEnv = {}) {
  return new Promise((resolve) => {
    const args = [...rt.args, script, ...scriptArgs]
    // RPCUDP_* would override what the matrix is checking.
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RPCUDP_'))), ...extraEnv }
    const child = spawn(rt.bin, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const num = (re) => Number((out.match(re) || [])[1] ?? 0)
      resolve({ code, signal, out, pass: num(/^# pass (\d+)$/m), fail: num(/^# fail (\d+)$/m), rate: num(/^# calls\/s (\d+)$/m) })
    })
  })
}

/**
 * A runtime and backend whose calls/s is below this fraction of the same run's
 * Node pure figure has hit a cliff (Deno pure was 1/25 with a 4 MiB SO_RCVBUF);
 * generous (Deno pure is ~1/5 of Node pure on its own), since runs share a loaded machine.
 */
const RATE_FLOOR = 1 / 10

/** A copy of binding.js with no addon beside it and no platform package reachable: napi's real "missing" path. */
function stageNoAddon() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rpcudp-no-addon-'))
  fs.copyFileSync(path.join(ROOT, 'binding.js'), path.join(dir, 'binding.js'))
  return dir
}

async function main() {
  const only = process.argv.slice(2)
  const consumer = stageConsumer()
  const noAddon = stageNoAddon()
  const rates = []
  let passed = 0
  let failed = 0
  for (const rt of RUNTIMES.filter((r) => only.length === 0 || only.includes(r.name))) {
    if (!fs.existsSync(rt.bin)) {
      // CI installs every runtime (.ci/run): there, a missing one is a failure, not a skip.
      if (process.env.CI) failed++
      console.log(`# ${process.env.CI ? 'FAILED' : 'skip'} ${rt.name}: not installed (${path.relative(HERE, rt.bin)}); run npm ci --prefix __test__/runtime`)
      continue
    }
    const runs = [
      ...configs(rt).map(([backend, io]) => ({
        label: `${rt.name} backend=${backend} nativeIo=${io}`,
        run: () => runOne(rt, ROOT, path.join(HERE, 'conformance.cjs'), [backend, io, JSON.stringify(rt.auto)]),
      })),
      { label: `${rt.name} ES module consumer of the installed package`, run: () => runOne(rt, consumer, 'esm-consumer.mjs', [JSON.stringify(rt.auto)]) },
      {
        label: `${rt.name} without the addon (install message)`,
        run: () =>
          runOne(rt, ROOT, path.join(HERE, 'conformance.cjs'), ['auto', 'default', '{}'], {
            RPCUDP_NATIVE_PATH: path.join(noAddon, 'binding.js'),
            RPCUDP_CONFORMANCE_NO_ADDON: '1',
          }),
      },
    ]
    for (const { label, run } of runs) {
      const r = await run()
      // a run that exited badly without failing a check, or ran none, counts as one failure
      const crashed = (r.code !== 0 && r.fail === 0) || r.pass + r.fail === 0
      passed += r.pass
      failed += r.fail + (crashed ? 1 : 0)
      const verdict = r.fail === 0 && !crashed ? 'ok' : 'FAILED'
      if (r.rate > 0) rates.push({ label, rate: r.rate, nodePure: rt.name.startsWith('node') && label.includes('backend=pure') })
      console.log(`${verdict} ${label}: ${r.pass} passed, ${r.fail} failed${r.rate > 0 ? `, ${r.rate} calls/s` : ''}${crashed ? `, exited ${r.signal ?? r.code}` : ''}`)
      if (verdict !== 'ok') console.log(r.out.replace(/^/gm, '    '))
    }
  }
  fs.rmSync(consumer, { recursive: true, force: true })
  fs.rmSync(noAddon, { recursive: true, force: true })
  const reference = rates.find((r) => r.nodePure)
  if (reference !== undefined) {
    const floor = Math.round(reference.rate * RATE_FLOOR)
    for (const r of rates.filter((r) => r.rate < floor)) {
      failed++
      console.log(`FAILED ${r.label}: ${r.rate} calls/s, below ${floor} (1/${1 / RATE_FLOOR} of ${reference.label}, ${reference.rate})`)
    }
  }
  console.log(`${passed} passed, ${failed} failed`)
  if (failed) process.exitCode = 1
}

main()
