// Runs the README example over real UDP: the server in one process, the client in another.
const { spawn } = require('node:child_process')
const { join } = require('node:path')

const tsx = ['--import', 'tsx']
const server = spawn(process.execPath, [...tsx, join(__dirname, 'server.ts')], { stdio: ['ignore', 'pipe', 'inherit'] })
server.stdout.setEncoding('utf8')
server.stdout.once('data', (line) => {
  process.stdout.write(line)
  const client = spawn(process.execPath, [...tsx, join(__dirname, 'client.ts')], { stdio: 'inherit' })
  client.on('exit', (code) => {
    server.kill('SIGTERM')
    process.exitCode = code ?? 1
  })
})
server.on('exit', (code, signal) => {
  if (signal !== 'SIGTERM' && code !== 0) process.exitCode = 1
})
