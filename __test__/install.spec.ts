/**
 * The published shape, tested the way a user gets it: `npm run pack` (the
 * README's command, scripts/pack.cjs) writes the main package (after
 * `npm run build:ts`) and the linux-x64-gnu platform package (manifest from
 * npm/linux-x64-gnu plus the built addon); install the tarballs
 * into a fresh project with no registry and no cargo on PATH, and use rpcudp
 * there through require(), import() and the `rpcudp` bin. The same project
 * without the platform package must run on the pure backend.
 *
 * Linux x64 glibc only (the one addon built here); elsewhere it is skipped.
 */
import test from 'ava'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { consumerTsconfig } from './helpers/consumer-tsconfig'
import { runtimeDependencyDirs } from './helpers/dependencies'

const execFileP = promisify(execFile)
const ROOT = path.join(__dirname, '..')
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const TRIPLE = 'linux-x64-gnu'
const ADDON = path.join(ROOT, `rpcudp.${TRIPLE}.node`)
const glibc = process.platform === 'linux' && Boolean((process.report?.getReport() as any)?.header?.glibcVersionRuntime)
const supported = process.platform === 'linux' && process.arch === 'x64' && glibc

/** PATH without cargo/rustup: nothing may build from source. RPCUDP_* and NAPI_RS_* overrides removed. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!/^(RPCUDP_|NAPI_RS_|npm_)/i.test(k)) env[k] = v
  env.PATH = (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter((dir) => !/cargo|rustup/.test(dir))
    .join(path.delimiter)
  return env
}

async function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()) {
  try {
    return await execFileP(cmd, args, { cwd, env, maxBuffer: 16 << 20, timeout: 120_000 })
  } catch (err: any) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`)
  }
}

/** npm with a throwaway cache, never the registry. */
const npm = (args: string[], cwd: string, cache: string) =>
  sh('npm', [...args, '--offline', '--cache', cache, '--no-audit', '--no-fund', '--loglevel=error'], cwd)

/** The paths in a tarball npm packed, without npm's package/ prefix. */
async function tarFiles(tarball: string): Promise<string[]> {
  const { stdout } = await sh('tar', ['-tzf', tarball], path.dirname(tarball))
  return stdout.split('\n').filter((f) => f.endsWith('/') === false && f !== '').map((f) => f.replace(/^package\//, ''))
}

/** What the installed package reports, from a CommonJS and an ES module consumer. */
const CHECK_CJS = `
const rpcudp = require('rpcudp')
;(async () => {
  const server = new rpcudp.RPCProtocol()
  const registration = rpcudp.registerMetrics(server)
  server.handle('sum', (_sender, a, b) => a + b)
  const client = new rpcudp.RPCProtocol()
  const address = await server.listen(0, '127.0.0.1')
  await client.listen(0, '127.0.0.1')
  const result = await client.call.sum(address, 1, 2)
  const metrics = /^rpcudp_requests_received_total 1$/m.test(await registration.registry.metrics())
  await Promise.all([server.close(), client.close()])
  const addon = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
  console.log(JSON.stringify({ backend: client.backend, serverBackend: server.backend, result, metrics, native: rpcudp.nativeBackend(), addon, entry: require.resolve('rpcudp') }))
})()
`
const CHECK_ESM = `
import { RPCProtocol, nativeBackend, RPCError } from 'rpcudp'
import rpcudpDefault from 'rpcudp'
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const server = new RPCProtocol()
server.handle('sum', (_sender, a, b) => a + b)
const client = new RPCProtocol()
const address = await server.listen(0, '127.0.0.1')
await client.listen(0, '127.0.0.1')
const result = await client.callRemote(address, 'sum', [40, 2])
await Promise.all([server.close(), client.close()])
const sameModule = require('rpcudp').RPCProtocol === RPCProtocol && rpcudpDefault.RPCProtocol === RPCProtocol && typeof RPCError === 'function'
console.log(JSON.stringify({ backend: client.backend, result, native: nativeBackend(), sameModule, entry: import.meta.resolve('rpcudp') }))
`
/**
 * The published types, from both module systems (node16 resolution reads `exports`).
 * They mention Buffer, so a consumer needs @types/node, as for any Node library.
 */
const TYPES_CTS = `import { RPCProtocol, type CallResult } from 'rpcudp'
const p = new RPCProtocol<{ sum(a: number, b: number): number }>({ backend: 'auto' })
const r: Promise<CallResult<number>> = p.call.sum(['127.0.0.1', 1], 1, 2)
export { r }
`
const TYPES_MTS = `import { RPCProtocol, nativeBackend, type Stats } from 'rpcudp'
const p = new RPCProtocol()
const s: Stats = p.stats()
// @ts-expect-error backend is a closed set
new RPCProtocol({ backend: 'wasm' })
export { s, nativeBackend }
`
const TSCONFIG = consumerTsconfig('node16', ['types.cts', 'types.mts'])

async function makeApp(dir: string) {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'rpcudp-install-test', version: '1.0.0', private: true }))
  fs.writeFileSync(path.join(dir, 'check.cjs'), CHECK_CJS)
  fs.writeFileSync(path.join(dir, 'check.mjs'), CHECK_ESM)
}

async function runCheck(dir: string, file: string) {
  const { stdout } = await sh(process.execPath, [file], dir)
  return JSON.parse(stdout)
}

/** The installed `rpcudp` bin: serve in the background, call it, SIGINT it. */
async function binRoundTrip(dir: string) {
  const bin = path.join(dir, 'node_modules', '.bin', 'rpcudp')
  const child = spawn(bin, ['serve', '--port', '0'], { cwd: dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  try {
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    const exited = once(child, 'exit')
    const [address] = (await once(createInterface({ input: child.stdout }), 'line')) as [string]
    const call = await sh(bin, ['call', address, 'echo', '{"$base64":"AQID"}', '--timeout', '30'], dir)
    const help = await sh(bin, ['--help'], dir)
    for (let i = 0; i < 200 && !stderr.includes('backend)'); i++) await new Promise((r) => setTimeout(r, 25))
    child.kill('SIGINT')
    const [code] = await exited
    return { address, call: call.stdout, help: help.stdout, serveStderr: stderr, serveExit: code }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}

if (!supported) {
  test.skip(`install test (needs linux x64 glibc; this is ${process.platform} ${process.arch})`, () => {})
} else {
  test.serial('packed tarballs install offline; native with the platform package, pure without it', async (t) => {
    t.timeout(180_000)
    t.true(fs.existsSync(ADDON), `${ADDON} is missing: run npm run build:native first`)
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rpcudp-install-'))
    t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }))
    const cache = path.join(tmp, 'npm-cache')

    // 1-2. `npm run pack`: the main package, built and packed from the repository, and the
    // platform package, its manifest from npm/<triple> and the addon copied in (as `napi artifacts` does in CI).
    const packed = (await sh('npm', ['run', '--silent', 'pack', '--', tmp], ROOT)).stdout.trim().split('\n')
    const [main, platform] = await Promise.all(packed.map(async (filename) => ({ filename, files: await tarFiles(filename) })))
    t.is(path.basename(main.filename), `rpcudp-${PKG.version}.tgz`)
    for (const f of ['package.json', 'binding.js', 'binding.d.ts', 'dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/cli.js', 'docs/PROTOCOL.md'])
      t.true(main.files.includes(f), `tarball lacks ${f}`)
    const stray = main.files.filter((f) => /^(src|__test__|crates|npm|bench|examples|scripts|target|\.github)\/|\.node$|\.tgz$/.test(f))
    t.deepEqual(stray, [], 'the tarball holds only dist, docs, binding.js, binding.d.ts and metadata')
    t.false('optionalDependencies' in PKG, 'optionalDependencies are added at publish time by napi pre-publish, not committed')
    t.is(path.basename(platform.filename), `${PKG.napi.packageName}-${TRIPLE}-${PKG.version}.tgz`)
    t.deepEqual(platform.files.sort(), ['README.md', 'package.json', `rpcudp.${TRIPLE}.node`])
    const platformManifest = JSON.parse((await sh('tar', ['-xzOf', platform.filename, 'package/package.json'], tmp)).stdout)
    t.is(platformManifest.version, PKG.version, 'the platform package version must match (binding.js checks it)')

    // The runtime dependencies (prom-client, ...), packed from this checkout: offline, the registry cannot supply them.
    const depsDir = path.join(tmp, 'deps')
    fs.mkdirSync(depsDir)
    await npm(['pack', '--ignore-scripts', '--pack-destination', depsDir, ...runtimeDependencyDirs()], ROOT, cache)
    const deps = fs.readdirSync(depsDir).map((f) => path.join(depsDir, f))
    t.true(deps.some((f) => path.basename(f).startsWith('prom-client-')), String(deps))

    // 3. A fresh project with both tarballs: the native backend, the addon from the platform package.
    const withNative = path.join(tmp, 'app-native')
    await makeApp(withNative)
    await npm(['install', main.filename, platform.filename, ...deps], withNative, cache)
    const cjs = await runCheck(withNative, 'check.cjs')
    t.like(cjs, { backend: 'native', serverBackend: 'native', result: [true, 3], metrics: true, native: { available: true } })
    t.deepEqual(cjs.addon, [path.join(fs.realpathSync(withNative), 'node_modules', `rpcudp-${TRIPLE}`, `rpcudp.${TRIPLE}.node`)])
    t.is(cjs.entry, path.join(fs.realpathSync(withNative), 'node_modules', 'rpcudp', 'dist', 'index.js'))
    const esm = await runCheck(withNative, 'check.mjs')
    t.like(esm, { backend: 'native', result: [true, 42], native: { available: true }, sameModule: true })
    t.true(esm.entry.endsWith('/node_modules/rpcudp/dist/index.mjs'), esm.entry)

    const bin = await binRoundTrip(withNative)
    t.regex(bin.address, /^127\.0\.0\.1:\d+$/)
    t.is(bin.call, '[true,{"$base64":"AQID"}]\n')
    t.regex(bin.help, /^rpcudp \S+: RPC over UDP/)
    t.regex(bin.serveStderr, /\(native backend\)/)
    t.is(bin.serveExit, 0)

    // The published types resolve from both module systems.
    fs.writeFileSync(path.join(withNative, 'types.cts'), TYPES_CTS)
    fs.writeFileSync(path.join(withNative, 'types.mts'), TYPES_MTS)
    fs.writeFileSync(path.join(withNative, 'tsconfig.json'), JSON.stringify(TSCONFIG))
    await sh(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], withNative)

    // 4. The same without the platform package: the pure backend, and why native is unavailable.
    const pureOnly = path.join(tmp, 'app-pure')
    await makeApp(pureOnly)
    await npm(['install', main.filename, ...deps], pureOnly, cache)
    t.false(fs.existsSync(path.join(pureOnly, 'node_modules', `rpcudp-${TRIPLE}`)))
    const pureCjs = await runCheck(pureOnly, 'check.cjs')
    t.like(pureCjs, { backend: 'pure', serverBackend: 'pure', result: [true, 3], metrics: true, native: { available: false }, addon: [] })
    t.true(pureCjs.native.reason.startsWith(`rpcudp-${TRIPLE}, the package holding this platform's addon, is not installed`), pureCjs.native.reason)
    const pureEsm = await runCheck(pureOnly, 'check.mjs')
    t.like(pureEsm, { backend: 'pure', result: [true, 42], native: { available: false }, sameModule: true })
  })
}
