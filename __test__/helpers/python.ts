import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { ExecutionContext } from 'ava'

const ROOT = join(__dirname, '..', '..')
/** The venv scripts/python-env.sh creates, with rpcudp==5.0.1 and u-msgpack-python==2.8.0. */
export const PYTHON = join(ROOT, '.venv', 'bin', 'python')
const PEER = join(ROOT, '__test__', 'python', 'peer.py')

export function pythonAvailable(): boolean {
  return existsSync(PYTHON)
}

export interface MetricSample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Prometheus text as Python's prometheus_client parses it (__test__/python/parse_metrics.py): family name -> type and samples. */
export function parsePrometheus(text: string): Promise<Map<string, { type: string; samples: MetricSample[] }>> {
  return new Promise((resolve, reject) => {
    const child = execFile(PYTHON, [join(ROOT, '__test__', 'python', 'parse_metrics.py')], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`parse_metrics.py failed: ${err.message}\n${stderr}`))
      const families = JSON.parse(stdout) as { name: string; type: string; samples: MetricSample[] }[]
      resolve(new Map(families.map((f) => [f.name, { type: f.type, samples: f.samples }])))
    })
    child.stdin!.end(text)
  })
}

/** The value of the one sample named `name` whose labels include `labels`; undefined if there is none. */
export function sample(families: Map<string, { samples: MetricSample[] }>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values())
    for (const s of f.samples) if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value
  return undefined
}

type Pending = { resolve: (v: any) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

/**
 * A live Python rpcudp peer (__test__/python/peer.py): a real
 * rpcudp.protocol.RPCProtocol server on 127.0.0.1:`port` and a Python client
 * driven by `command()`. Values on the control channel are Python expressions.
 */
export class PythonPeer {
  /** The Python server's address. */
  readonly address: [string, number]
  /** The Python client's address (where its requests come from). */
  readonly clientAddress: [string, number]
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private stderr = ''
  private exited = false

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    ready: { port: number; clientPort: number },
    lines: AsyncIterator<string>,
  ) {
    this.address = ['127.0.0.1', ready.port]
    this.clientAddress = ['127.0.0.1', ready.clientPort]
    child.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-8000)
    })
    child.once('exit', (code, signal) => {
      this.exited = true
      const err = new Error(`python peer exited (${code ?? signal}); stderr:\n${this.stderr}`)
      for (const p of this.pending.values()) {
        clearTimeout(p.timer)
        p.reject(err)
      }
      this.pending.clear()
    })
    void (async () => {
      for (;;) {
        const next = await lines.next()
        if (next.done) return
        let msg: { id: number; ok: boolean; result?: unknown; error?: string }
        try {
          msg = JSON.parse(next.value)
        } catch {
          continue
        }
        const p = this.pending.get(msg.id)
        if (!p) continue
        this.pending.delete(msg.id)
        clearTimeout(p.timer)
        if (msg.ok) p.resolve(msg.result)
        else p.reject(new Error(`python peer: ${msg.error}`))
      }
    })()
  }

  /** Starts a peer and kills it when the test ends; the peer also exits by itself after `lifetimeSeconds`. */
  static async start(t: ExecutionContext, lifetimeSeconds = 60): Promise<PythonPeer> {
    const child = spawn(PYTHON, ['-u', PEER, String(lifetimeSeconds)], { stdio: ['pipe', 'pipe', 'pipe'] })
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
    const first = await Promise.race([
      lines.next(),
      new Promise<never>((_, reject) => {
        const timer = setTimeout(() => reject(new Error(`python peer did not start in 10 s; stderr:\n${stderr}`)), 10_000)
        child.once('exit', (code) => {
          clearTimeout(timer)
          reject(new Error(`python peer exited (${code}) before ready; stderr:\n${stderr}`))
        })
        child.stdout.once('data', () => clearTimeout(timer))
      }),
    ])
    if (first.done) throw new Error(`python peer closed stdout; stderr:\n${stderr}`)
    const ready = JSON.parse(first.value)
    if (ready.event !== 'ready') throw new Error(`python peer said ${first.value}`)
    return new PythonPeer(child, ready, lines)
  }

  /** Sends one control command; rejects on a Python-side error or after `timeoutMs`. */
  command<T = any>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 20_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`python peer has exited; stderr:\n${this.stderr}`))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`python peer: no answer to ${cmd} within ${timeoutMs} ms; stderr:\n${this.stderr}`))
      }, timeoutMs)
      this.pending.set(id, { resolve, reject, timer })
      this.child.stdin.write(JSON.stringify({ id, cmd, ...args }) + '\n')
    })
  }

  /** Registers named Python values: `value` as Python sends/expects it, `back` what it expects after a round trip through TypeScript. */
  cases(cases: Record<string, [value: string, back: string | null]>): Promise<number> {
    return this.command('cases', { cases })
  }

  /** One call from the Python client (args are Python expressions). */
  call(
    address: [string, number],
    method: string,
    args: string[],
    options: { timeout?: number; expect?: string } = {},
  ): Promise<PyCallResult> {
    return this.command('call', { host: address[0], port: address[1], method, args, timeout: options.timeout ?? 1, expect: options.expect ?? null })
  }

  /** umsgpack.packb of each expression, as hex. */
  packb(exprs: string[], precision?: 'single' | 'double'): Promise<string[]> {
    return this.command('packb', { exprs, precision: precision ?? null })
  }

  /** Log lines of the rpcudp logger and unretrieved task exceptions since the last call. */
  logs(): Promise<string[]> {
    return this.command('logs')
  }

  /** Collects log lines until `done(lines)` holds or `ms` pass (Python may log a moment after the TypeScript side is done). */
  async logsUntil(done: (lines: string[]) => boolean, ms = 5000): Promise<string[]> {
    const lines: string[] = []
    const end = Date.now() + ms
    for (;;) {
      lines.push(...(await this.logs()))
      if (done(lines) || Date.now() > end) return lines
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }
}

/** What one Python call produced: `raised` when the call proxy refused to send; otherwise whether an answer came. */
export interface PyCallResult {
  raised?: 'MalformedMessage'
  message?: string
  /** len(umsgpack.packb([method, args])), the body Python's size check measures. */
  bodyLen: number
  answered?: boolean
  /** The result with every type shown, e.g. list[int(1), float(1.0)]; 'None' on a timeout. */
  describe?: string
  /** Whether the result equals `expect` strictly (types included). */
  same?: boolean
}
