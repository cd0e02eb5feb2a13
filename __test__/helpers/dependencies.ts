import * as fs from 'node:fs'
import * as path from 'node:path'

const ROOT = path.join(__dirname, '..', '..')

/**
 * The directories, in this checkout's node_modules, of the package's runtime
 * dependencies and theirs (prom-client and what it needs): what an install
 * from the registry would bring along, for the tests that build or install
 * the package where no registry can be reached.
 */
export function runtimeDependencyDirs(): string[] {
  const seen = new Set<string>()
  const visit = (dir: string) => {
    const deps: Record<string, string> = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).dependencies ?? {}
    for (const name of Object.keys(deps)) {
      if (seen.has(name)) continue
      seen.add(name)
      visit(path.join(ROOT, 'node_modules', name))
    }
  }
  visit(ROOT)
  return [...seen].sort().map((name) => path.join(ROOT, 'node_modules', name))
}
