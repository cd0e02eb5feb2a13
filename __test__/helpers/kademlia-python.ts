import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { ExecutionContext } from 'ava'
import { PYTHON } from './python'

const NODES = join(__dirname, '..', 'python', 'kad_nodes.py')

export interface PyNode {
  node: number
  port: number
  id: string
}

/**
 * Python kademlia 2.2.3 Server instances in one Python process
 * (__test__/python/kad_nodes.py), each on its own port on 127.0.0.1 or the
 * interface startNodes names (`::1` for IPv6).
 * Values cross as JSON with bytes as {"$base64": ...}.
 */
export class PythonKademlia {
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>()
  private stderr = ''

  private constructor(private readonly child: ReturnType<typeof spawn>) {
    child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-8000)))
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line)
      const p = this.pending.get(msg.id)
      if (p === undefined) return
      this.pending.delete(msg.id)
      clearTimeout(p.timer)
      if (msg.ok) p.resolve(msg.result)
      else p.reject(new Error(`python kademlia: ${msg.error}\n${this.stderr}`))
    })
    child.once('exit', (code, signal) => {
      for (const p of this.pending.values()) {
        clearTimeout(p.timer)
        p.reject(new Error(`python kademlia exited (${code ?? signal}); stderr:\n${this.stderr}`))
      }
      this.pending.clear()
    })
  }

  /** Starts the Python process; it is killed when the test ends and exits by itself after `lifetimeSeconds`. */
  static async start(t: ExecutionContext, lifetimeSeconds = 120): Promise<PythonKademlia> {
    const child = spawn(PYTHON, ['-u', NODES, String(lifetimeSeconds)], { stdio: ['pipe', 'pipe', 'pipe'] })
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`python kademlia did not start in 20 s; stderr:\n${stderr}`)), 20_000)
      child.stdout.once('data', () => {
        clearTimeout(timer)
        resolve()
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`python kademlia exited (${code}) before ready; stderr:\n${stderr}`))
      })
    })
    return new PythonKademlia(child)
  }

  command<T = any>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`python kademlia: no answer to ${cmd} within ${timeoutMs} ms; stderr:\n${this.stderr}`))
      }, timeoutMs)
      this.pending.set(id, { resolve, reject, timer })
      this.child.stdin!.write(JSON.stringify({ id, cmd, ...args }) + '\n')
    })
  }

  startNodes(count: number, ksize = 20, alpha = 3, iface = '127.0.0.1'): Promise<PyNode[]> {
    return this.command('start', { count, ksize, alpha, interface: iface })
  }
}

/** A value as kad_nodes.py writes it to JSON: bytes as {"$base64": ...}. */
export function toPyJson(v: unknown): unknown {
  return Buffer.isBuffer(v) ? { $base64: v.toString('base64') } : v
}

export function fromPyJson(v: unknown): unknown {
  if (v !== null && typeof v === 'object' && '$base64' in v) return Buffer.from((v as { $base64: string }).$base64, 'base64')
  return v
}
