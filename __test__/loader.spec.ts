/**
 * Why the native backend is unavailable, as nativeBackend().reason, the
 * backend: 'native' error and NODE_DEBUG=rpcudp tell it: napi's real loader
 * (a copy of binding.js with no addon beside it and no platform package
 * resolvable from it) in a child process, since the loader loads once.
 */
import test from 'ava'
import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { promisify } from 'node:util'
import { PLATFORM_TRIPLES, platformPackage } from '../src/loader'

const ROOT = path.join(__dirname, '..')
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const here = platformPackage()

const PROBE = `
const { nativeBackend, RPCProtocol } = require(${JSON.stringify(path.join(ROOT, 'src', 'index.ts'))})
let error
try { new RPCProtocol({ backend: 'native' }) } catch (e) { error = { code: e.code, message: e.message } }
const auto = new RPCProtocol()
console.log(JSON.stringify({ native: nativeBackend(), error, auto: auto.backend }))
`

async function probe(addon?: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rpcudp-loader-'))
  try {
    fs.copyFileSync(path.join(ROOT, 'binding.js'), path.join(dir, 'binding.js'))
    if (addon !== undefined) fs.writeFileSync(path.join(dir, `rpcudp.${here!.slice('rpcudp-'.length)}.node`), addon)
    const env = { ...process.env, RPCUDP_NATIVE_PATH: path.join(dir, 'binding.js'), RPCUDP_BACKEND: '', NODE_DEBUG: 'rpcudp' }
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '-e', PROBE], { cwd: ROOT, env })
    return { ...JSON.parse(stdout), stderr }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

test('the platform package names match the npm/ directories and napi.targets', (t) => {
  t.deepEqual([...PLATFORM_TRIPLES].sort(), fs.readdirSync(path.join(ROOT, 'npm')).sort())
  t.is(PLATFORM_TRIPLES.length, PKG.napi.targets.length)
  t.is(platformPackage('linux', 'x64', false), 'rpcudp-linux-x64-gnu')
  t.is(platformPackage('linux', 'x64', true), 'rpcudp-linux-x64-musl')
  t.is(platformPackage('win32', 'x64', false), 'rpcudp-win32-x64-msvc')
  t.is(platformPackage('darwin', 'arm64', false), 'rpcudp-darwin-arm64')
  t.is(platformPackage('freebsd', 'x64', false), undefined)
})

if (here !== undefined) {
  test('a missing platform package is named, with none of napi\'s generic advice; auto runs on pure and says why under NODE_DEBUG', async (t) => {
    const r = await probe()
    t.false(r.native.available)
    t.true(r.native.reason.startsWith(`${here}, the package holding this platform's addon, is not installed`), r.native.reason)
    t.notRegex(r.native.reason, /4828|wasm32-wasi|wasi/)
    t.is(r.error.code, 'ERR_RPC_BACKEND_UNAVAILABLE')
    t.is(r.error.message, `the native backend cannot load here: ${r.native.reason}`)
    t.is(r.auto, 'pure')
    t.regex(r.stderr, new RegExp(`RPCUDP \\d+: backend 'auto' runs on pure: the native backend cannot load here: ${here},`))
  })

  test('an addon that is there but does not load is reported with its own error', async (t) => {
    const r = await probe('not an ELF file')
    t.regex(r.native.reason, new RegExp(`^${here} is installed but does not load: .*rpcudp\\.[\\w-]+\\.node: (invalid ELF header|file too short)`))
  })
}
