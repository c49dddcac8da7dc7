import http from 'node:http'
import type { Socket } from 'node:net'
import WebSocket, { WebSocketServer } from 'ws'

/**
 * An HTTP and WebSocket proxy in front of a JSON-RPC endpoint (anvil serves
 * both on one port), for outage tests: it forwards each POST and each
 * WebSocket message and counts the JSON-RPC calls; `down()` cuts every
 * connection (WebSockets included) and resets new ones (what a client sees
 * of an endpoint that went away) until `up()`. `refuseSubscribe` answers
 * `eth_subscribe` with an error, like an endpoint without subscriptions.
 */
export class RpcProxy {
  /** JSON-RPC calls forwarded (a batch counts each call), by method */
  readonly calls = new Map<string, number>()
  /** HTTP requests forwarded */
  requests = 0
  /** connections reset while down */
  refused = 0
  /** WebSocket messages forwarded to the endpoint (a batch is one) */
  wsMessages = 0
  /** WebSocket connections accepted */
  wsConnections = 0
  /** answer eth_subscribe with a JSON-RPC error instead of forwarding it */
  refuseSubscribe = false
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false })
  private isDown = false
  private readonly sockets = new Set<Socket>()
  private readonly server: http.Server
  private port = 0

  private constructor (private readonly target: URL) {
    this.server = http.createServer((req, res) => { this.forward(req, res) })
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      if (this.isDown) { this.refused++; socket.destroy(); return }
      this.wss.handleUpgrade(req, socket, head, (client) => { this.bridge(client) })
    })
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

  /** the same endpoint over WebSocket */
  get wsUrl (): string { return `ws://127.0.0.1:${this.port}` }

  /** Calls counted so far of one method. */
  count (method: string): number { return this.calls.get(method) ?? 0 }

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
    this.wss.close()
    await new Promise<void>((resolve) => this.server.close(() => { resolve() }))
  }

  /** Pipes one client WebSocket to a new one to the endpoint, counting the calls. */
  private bridge (client: WebSocket): void {
    this.wsConnections++
    const up = new WebSocket(`ws://${this.target.host}${this.target.pathname}`, { perMessageDeflate: false })
    const queued: string[] = []
    up.on('open', () => { for (const m of queued.splice(0)) up.send(m) })
    up.on('message', (data) => { if (client.readyState === WebSocket.OPEN) client.send(data.toString()) })
    const end = (): void => { client.terminate(); up.terminate() }
    up.on('close', end)
    up.on('error', end)
    client.on('close', end)
    client.on('error', end)
    client.on('message', (data) => {
      const text = data.toString()
      let calls: Array<{ id?: unknown, method?: string }> = []
      try {
        const parsed = JSON.parse(text) as { method?: string } | Array<{ method?: string }>
        calls = Array.isArray(parsed) ? parsed : [parsed]
      } catch {}
      for (const c of calls) this.calls.set(String(c.method), (this.calls.get(String(c.method)) ?? 0) + 1)
      this.wsMessages++
      if (this.refuseSubscribe && calls.length === 1 && calls[0].method === 'eth_subscribe') {
        client.send(JSON.stringify({ jsonrpc: '2.0', id: calls[0].id, error: { code: -32601, message: 'the method eth_subscribe does not exist/is not available' } }))
        return
      }
      if (up.readyState === WebSocket.OPEN) up.send(text)
      else queued.push(text)
    })
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
