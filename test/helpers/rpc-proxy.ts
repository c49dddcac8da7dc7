import http from 'node:http'
import type { Socket } from 'node:net'

/**
 * An HTTP proxy in front of a JSON-RPC endpoint, for outage tests: it
 * forwards each POST and counts the JSON-RPC calls; `down()` cuts every
 * connection and resets new ones (what a client sees of an endpoint that
 * went away) until `up()`.
 */
export class RpcProxy {
  /** JSON-RPC calls forwarded (a batch counts each call), by method */
  readonly calls = new Map<string, number>()
  /** HTTP requests forwarded */
  requests = 0
  /** connections reset while down */
  refused = 0
  private isDown = false
  private readonly sockets = new Set<Socket>()
  private readonly server: http.Server
  private port = 0

  private constructor (private readonly target: URL) {
    this.server = http.createServer((req, res) => { this.forward(req, res) })
    this.server.on('connection', (socket) => {
      if (this.isDown) {
        this.refused++
        socket.destroy()
        return
      }
      this.sockets.add(socket)
      socket.on('close', () => { this.sockets.delete(socket) })
    })
  }

  static async start (target: string): Promise<RpcProxy> {
    const p = new RpcProxy(new URL(target))
    await new Promise<void>((resolve) => p.server.listen(0, '127.0.0.1', resolve))
    p.port = (p.server.address() as { port: number }).port
    return p
  }

  get url (): string { return `http://127.0.0.1:${this.port}` }

  /** Calls counted so far (all methods). */
  get totalCalls (): number {
    let n = 0
    for (const v of this.calls.values()) n += v
    return n
  }

  down (): void {
    this.isDown = true
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
  }

  up (): void {
    this.isDown = false
  }

  async close (): Promise<void> {
    this.down()
    await new Promise<void>((resolve) => this.server.close(() => { resolve() }))
  }

  private forward (req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (this.isDown) { req.socket.destroy(); return }
      const body = Buffer.concat(chunks)
      try {
        const parsed = JSON.parse(body.toString('utf8')) as { method?: string } | Array<{ method?: string }>
        for (const c of Array.isArray(parsed) ? parsed : [parsed]) this.calls.set(String(c.method), (this.calls.get(String(c.method)) ?? 0) + 1)
      } catch {}
      this.requests++
      const up = http.request({ hostname: this.target.hostname, port: this.target.port, path: this.target.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length } }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, { 'content-type': 'application/json' })
        answer.pipe(res)
      })
      up.on('error', () => { res.destroy() })
      up.end(body)
    })
  }
}
