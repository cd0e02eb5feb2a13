import * as path from 'node:path'

const ROOT = path.join(__dirname, '..', '..')

/** A strict tsconfig for type-checking a consumer of an installed package (`tsc -p`), with this repo's @types/node. */
export function consumerTsconfig(resolution: 'node16' | 'node10', files: string[]) {
  return {
    compilerOptions: {
      module: resolution === 'node16' ? 'node16' : 'commonjs',
      moduleResolution: resolution,
      target: 'es2022',
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      typeRoots: [path.join(ROOT, 'node_modules', '@types')],
      types: ['node'],
    },
    files,
  }
}
