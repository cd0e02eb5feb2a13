#!/usr/bin/env node
/**
 * npm run pack [-- <dir>]: the two tarballs a user installs from a checkout,
 * written to <dir> (default: the repository root), their paths printed one a
 * line: rpcudp-<version>.tgz (dist/ rebuilt first) and this platform's addon
 * package, rpcudp-<triple>-<version>.tgz, from npm/<triple>/ plus the built
 * rpcudp.<triple>.node (npm run build:native), staged as `napi artifacts` does
 * for a release.
 */
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')
const { platformPackage } = require(path.join(ROOT, 'dist', 'loader.js'))

function npm(args, cwd) {
  // npm's own lines (and build output) go to stderr; stdout is only the paths
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], shell: process.platform === 'win32' })
}

function pack(cwd, dest) {
  const [info] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', dest], cwd))
  return path.join(dest, info.filename)
}

const dest = path.resolve(process.argv[2] ?? ROOT)
fs.mkdirSync(dest, { recursive: true })
const pkg = platformPackage()
if (pkg === undefined) throw new Error(`no platform package is built for ${process.platform}-${process.arch} (package.json napi.targets)`)
const triple = pkg.slice('rpcudp-'.length)
const addon = path.join(ROOT, `rpcudp.${triple}.node`)
if (!fs.existsSync(addon)) throw new Error(`${addon} is missing: run npm run build:native first`)

execFileSync('npm', ['run', '--silent', 'build:ts'], { cwd: ROOT, stdio: ['ignore', process.stderr, 'inherit'], shell: process.platform === 'win32' })
const main = pack(ROOT, dest)
const stage = fs.mkdtempSync(path.join(os.tmpdir(), `${pkg}-`))
try {
  for (const f of ['package.json', 'README.md']) fs.copyFileSync(path.join(ROOT, 'npm', triple, f), path.join(stage, f))
  fs.copyFileSync(addon, path.join(stage, path.basename(addon)))
  console.log(main)
  console.log(pack(stage, dest))
} finally {
  fs.rmSync(stage, { recursive: true, force: true })
}
