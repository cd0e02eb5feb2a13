/**
 * Type tests of the public API: compiles __test__/types/api.ts, whose
 * `@ts-expect-error` lines must fail and whose exact-type assertions must hold.
 */
import test from 'ava'
import { execFile } from 'node:child_process'
import * as path from 'node:path'
import { promisify } from 'node:util'

const ROOT = path.join(__dirname, '..')

const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

for (const config of ['tsconfig.json', 'tsconfig.nounchecked.json']) {
  test(`public API types: tsc --noEmit -p __test__/types/${config}`, async (t) => {
    try {
      await promisify(execFile)(process.execPath, [tsc, '--noEmit', '-p', path.join('__test__', 'types', config)], {
        cwd: ROOT,
        timeout: 120_000,
      })
      t.pass()
    } catch (err: any) {
      t.fail(`type errors:\n${err.stdout}${err.stderr}`)
    }
  })
}
