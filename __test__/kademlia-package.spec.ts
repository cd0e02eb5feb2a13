/**
 * The `rpcudp/kademlia` subpath as a consumer gets it: the TypeScript is built
 * into a temporary package (tsc + scripts/write-esm.cjs, never touching the
 * repository's dist/), which a fresh project then uses through require(),
 * import() and the published types (node16 `exports` and node10 `typesVersions`).
 */
import test from 'ava'
import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { promisify } from 'node:util'
import { consumerTsconfig } from './helpers/consumer-tsconfig'
import { runtimeDependencyDirs } from './helpers/dependencies'

const execFileP = promisify(execFile)
const ROOT = path.join(__dirname, '..')
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

async function run(args: string[], cwd: string) {
  try {
    return await execFileP(process.execPath, args, { cwd, timeout: 120_000, maxBuffer: 16 << 20 })
  } catch (err: any) {
    throw new Error(`node ${args.join(' ')} failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`)
  }
}

const CHECK_CJS = `
const { KademliaNode, KademliaValueError, digest } = require('rpcudp/kademlia')
const { RPCError } = require('rpcudp')
;(async () => {
  const a = new KademliaNode({ ksize: 5 })
  const b = new KademliaNode({ ksize: 5 })
  const address = await a.listen(0, '127.0.0.1')
  await b.listen(0, '127.0.0.1')
  const found = await b.bootstrap([address])
  const stored = await b.set('cjs-key', 'cjs-value')
  const value = await a.get('cjs-key')
  let typed = null
  try { await a.set('x', { no: 'objects' }) } catch (err) { typed = err instanceof KademliaValueError && err instanceof RPCError ? err.code : String(err) }
  await Promise.all([a.close(), b.close()])
  console.log(JSON.stringify({ found: found.length, stored, value, typed, digest: digest('hello').toString('hex'), entry: require.resolve('rpcudp/kademlia') }))
})()
`
const CHECK_ESM = `
import { KademliaNode } from 'rpcudp/kademlia'
import kad from 'rpcudp/kademlia'
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const a = new KademliaNode({ ksize: 5 })
const b = new KademliaNode({ ksize: 5 })
const address = await a.listen(0, '127.0.0.1')
await b.listen(0, '127.0.0.1')
await b.bootstrap([address])
const stored = await a.set(Buffer.from('esm-key'), 42)
const value = await b.get(Buffer.from('esm-key'))
await Promise.all([a.close(), b.close()])
const sameModule = require('rpcudp/kademlia').KademliaNode === KademliaNode && kad.KademliaNode === KademliaNode
console.log(JSON.stringify({ stored, value, sameModule, entry: import.meta.resolve('rpcudp/kademlia') }))
`
const TYPES = `import { KademliaNode, KademliaCasError, generateKeyPair, type KademliaValue, type NodeInfo, type Address, type MutableRecord, type PutMutableResult, type KeyPair } from 'rpcudp/kademlia'
const node = new KademliaNode({ ksize: 20, alpha: 3, backend: 'auto', waitTimeout: 5 })
const v: Promise<KademliaValue | null> = node.get('k')
const found: Promise<NodeInfo[]> = node.bootstrap([['127.0.0.1', 8468]])
const n: Address[] = node.bootstrappableNeighbors()
// @ts-expect-error values are int, float, bool, str or bytes
node.set('k', { a: 1 })
const keys: KeyPair = generateKeyPair()
const put: Promise<PutMutableResult> = node.putMutable(keys, 'v', { salt: 's', seq: 1n, cas: 0 })
const signed = node.putMutable({ publicKey: keys.publicKey, sign: async (m: Buffer) => m }, Buffer.from('v'))
const got: Promise<MutableRecord | null> = node.getMutable(keys.publicKey, { salt: Buffer.from('s'), timeout: 1 })
const seq: bigint | null = new KademliaCasError('x', 1n).currentSeq
const imm: Promise<KademliaValue | null> = node.putImmutable(7).then((r) => node.getImmutable(r.target))
// @ts-expect-error records hold DHT values only
node.putImmutable({ a: 1 })
// @ts-expect-error a get takes no seq
node.getMutable(keys.publicKey, { seq: 1 })
export { v, found, n, put, signed, got, seq, imm }
`

test.serial('rpcudp/kademlia: CommonJS, ESM (one shared instance) and types from a built package', async (t) => {
  t.timeout(180_000)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rpcudp-kad-pkg-'))
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }))
  const pkg = path.join(tmp, 'pkg')
  fs.mkdirSync(pkg)
  await run([TSC, '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', path.join(pkg, 'dist')], ROOT)
  const written = await run([path.join(ROOT, 'scripts', 'write-esm.cjs'), path.join(pkg, 'dist')], ROOT)
  t.regex(written.stdout, /dist\/kademlia\/index\.mjs re-exports \d+ names: .*KademliaNode/)
  for (const f of ['index.js', 'index.mjs', 'index.d.ts']) t.true(fs.existsSync(path.join(pkg, 'dist', 'kademlia', f)), `dist/kademlia/${f}`)
  for (const f of ['package.json', 'binding.js', 'binding.d.ts']) fs.copyFileSync(path.join(ROOT, f), path.join(pkg, f))
  // its dependencies where an install would put them (the published .d.ts name prom-client's types)
  for (const dir of runtimeDependencyDirs()) {
    const link = path.join(pkg, 'node_modules', path.relative(path.join(ROOT, 'node_modules'), dir))
    fs.mkdirSync(path.dirname(link), { recursive: true })
    fs.symlinkSync(dir, link, 'dir')
  }

  const app = path.join(tmp, 'app')
  fs.mkdirSync(path.join(app, 'node_modules'), { recursive: true })
  fs.symlinkSync(pkg, path.join(app, 'node_modules', 'rpcudp'), 'dir')
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'kad-app', private: true }))
  fs.writeFileSync(path.join(app, 'check.cjs'), CHECK_CJS)
  fs.writeFileSync(path.join(app, 'check.mjs'), CHECK_ESM)

  const cjs = JSON.parse((await run(['check.cjs'], app)).stdout)
  t.like(cjs, { found: 1, stored: true, value: 'cjs-value', typed: 'ERR_KAD_VALUE', digest: 'aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d' })
  t.is(fs.realpathSync(cjs.entry), fs.realpathSync(path.join(pkg, 'dist', 'kademlia', 'index.js')))
  const esm = JSON.parse((await run(['check.mjs'], app)).stdout)
  t.like(esm, { stored: true, value: 42, sameModule: true })
  t.true(esm.entry.endsWith('/dist/kademlia/index.mjs'), esm.entry)

  fs.writeFileSync(path.join(app, 'types.cts'), TYPES)
  fs.writeFileSync(path.join(app, 'types.mts'), TYPES)
  fs.writeFileSync(path.join(app, 'types.ts'), TYPES)
  fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify(consumerTsconfig('node16', ['types.cts', 'types.mts'])))
  fs.writeFileSync(path.join(app, 'tsconfig.node10.json'), JSON.stringify(consumerTsconfig('node10', ['types.ts'])))
  await run([TSC, '-p', 'tsconfig.json'], app)
  await run([TSC, '-p', 'tsconfig.node10.json'], app)
  t.pass()
})
