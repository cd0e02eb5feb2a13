/**
 * The `--metrics host:port` endpoint of `rpcudp serve` and `rpcudp dht serve`:
 * GET /metrics answers a registry's Prometheus text, anything else 404.
 */
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { Registry } from 'prom-client'
import type { Address } from './transport'

export interface MetricsEndpoint {
  /** Where it listens (the bound port when 0 was asked for). */
  readonly address: Address
  close(): Promise<void>
}

/** Listens on `host`:`port` (an IP literal; port 0 picks a free one); rejects if it cannot bind. */
export async function serveMetrics(registry: Registry, host: string, port: number): Promise<MetricsEndpoint> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /metrics\n')
      return
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err instanceof Error ? err.message : String(err)}\n`),
    )
  })
  server.listen(port, host)
  // once() rejects on 'error': a port in use fails the command (exit 4)
  await once(server, 'listening')
  const bound = server.address() as { address: string; port: number }
  return {
    address: [bound.address, bound.port],
    close: () =>
      new Promise<void>((resolve) => {
        // a scraper's keep-alive connection must not hold the shutdown open
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
