/** Scenarios run in a child process: a crash or a hang there is a result to assert on, not a dead test runner. */
import { spawn } from 'node:child_process'

export interface ChildResult {
  status: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs `node --import=tsx ...args`; kills it (SIGKILL) if it is still running after `timeoutMs`. */
export function runTsChild(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs: number; signal?: NodeJS.Signals }): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import=tsx', ...args], { env: { ...process.env, ...options.env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill(options.signal ?? 'SIGKILL'), options.timeoutMs)
    child.on('close', (status, signal) => {
      clearTimeout(timer)
      resolve({ status, signal, stdout, stderr })
    })
  })
}

/** The last line of stdout as JSON (the scenario's report), or undefined. */
export function lastJsonLine(stdout: string): any {
  const line = stdout.trim().split('\n').pop()
  try {
    return line ? JSON.parse(line) : undefined
  } catch {
    return undefined
  }
}
