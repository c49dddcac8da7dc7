/**
 * `--metrics-listen HOST:PORT`: a second listener that serves `GET /metrics`
 * only, without the API token, for a Prometheus that cannot hold the token
 * (or scrapes from another host). It serves nothing else: the API stays on
 * loopback behind its token. Bind it to loopback or a private interface.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { IexecError } from '../common/errors.js'
import type { NodeMetrics } from './metrics.js'
import { parseMetricsListen } from '../config/metrics-listen.js'

export { parseMetricsListen }


export interface MetricsServer {
  /** the URL of /metrics as bound (the port chosen when 0 was asked) */
  url: string
  close: () => Promise<void>
}

export async function startMetricsServer (metrics: NodeMetrics, listen: string): Promise<MetricsServer> {
  const { host, port } = parseMetricsListen(listen)
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n')
      return
    }
    metrics.text().then((text) => {
      res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : text)
    }, (err: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`)
    })
  })
  // a scraper that never reads must not hold sockets forever
  server.requestTimeout = 10_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => { reject(new IexecError('METRICS_LISTEN_FAILED', `cannot listen on ${listen} for metrics: ${err.code ?? err.message}`, { listen })) })
    server.listen(port, host, () => { resolve() })
  })
  const a = server.address() as AddressInfo
  const h = a.family === 'IPv6' ? `[${a.address}]` : a.address
  return {
    url: `http://${h}:${a.port}/metrics`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
