// Runs the example: the Python node, then the TypeScript node joining through it.
// Exits 0 when each has read the other's key.
const { spawn } = require('node:child_process')
const { join } = require('node:path')
const { createInterface } = require('node:readline')

const root = join(__dirname, '..', '..')
const python = spawn(join(root, '.venv', 'bin', 'python'), ['-u', join(__dirname, 'python_node.py'), '8468'], { stdio: ['ignore', 'pipe', 'inherit'] })
let sawPythonGet = false
createInterface({ input: python.stdout }).on('line', (line) => {
  console.log(line)
  if (line.startsWith("python: get('from-typescript') -> ")) sawPythonGet = true
  if (!line.includes('ready on')) return
  const ts = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'ts_node.ts'), '8469', '8468'], { cwd: root, stdio: 'inherit' })
  ts.on('exit', (code) => {
    python.kill('SIGTERM')
    process.exitCode = code === 0 && sawPythonGet ? 0 : 1
  })
})
python.on('error', (err) => {
  console.error(`cannot start the Python node (${err.message}); run bash scripts/python-env.sh first`)
  process.exitCode = 1
})
