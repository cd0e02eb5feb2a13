/**
 * The README as an installed package shows it: every stats() key documented,
 * links that resolve outside a checkout, and package.json pointing at the
 * repository.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { RPCProtocol } from '../src/index'
import { BACKENDS } from './helpers/backends'

const ROOT = path.join(__dirname, '..')
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))

function keys(value: object, prefix = ''): string[] {
  return Object.entries(value).flatMap(([k, v]) => (typeof v === 'object' && v !== null ? keys(v, `${prefix}${k}.`) : [`${prefix}${k}`]))
}

for (const backend of BACKENDS) {
  test(`[${backend}] every stats() key is in the README's counter table`, async (t) => {
    const proto = new RPCProtocol({ backend })
    await proto.listen(0, '127.0.0.1')
    const stats = proto.stats()
    await proto.close()
    const table = README.slice(README.indexOf('#### Every `stats()` counter'))
    const rows = table.slice(0, table.indexOf('\n\n', table.indexOf('| key |'))).split('\n').filter((l) => l.startsWith('| `'))
    const documented = new Set(rows.flatMap((row) => [...row.split('|')[1].matchAll(/`([\w.]+)`/g)].map((m) => m[1])))
    t.deepEqual(keys(stats).filter((k) => !documented.has(k)), [])
    t.deepEqual([...documented].filter((k) => !keys(stats).includes(k)), [])
  })
}

/** Whether package.json files includes `p` (itself or a directory above it). */
const shipped = (p: string) => (PKG.files as string[]).some((f) => p === f || p.startsWith(f.replace(/\/?$/, '/')))

test('README links are absolute or ship in the package', (t) => {
  const relative = [...README.matchAll(/\]\(([^)#]+)(#[^)]*)?\)/g)].map((m) => m[1]).filter((u) => !/^[a-z]+:/.test(u))
  t.deepEqual(relative.filter((u) => !shipped(u)), [])
})

test('package.json names the repository, homepage and issue tracker', (t) => {
  t.deepEqual(PKG.repository, { type: 'git', url: 'git+https://github.com/rpcudp/rpcudp.git' })
  t.is(PKG.homepage, 'https://github.com/rpcudp/rpcudp#readme')
  t.deepEqual(PKG.bugs, { url: 'https://github.com/rpcudp/rpcudp/issues' })
})

test('every doc that src/ (error messages, comments in dist/) cites ships in the package', (t) => {
  const cited = new Set<string>()
  for (const f of fs.readdirSync(path.join(ROOT, 'src'), { recursive: true }) as string[])
    if (f.endsWith('.ts')) for (const m of fs.readFileSync(path.join(ROOT, 'src', f), 'utf8').matchAll(/\bdocs\/[\w-]+\.md/g)) cited.add(m[0])
  t.true(cited.has('docs/PROTOCOL.md'))
  for (const doc of cited) t.true(shipped(doc) && fs.existsSync(path.join(ROOT, doc)), doc)
})
