import http from 'node:http'
import https from 'node:https'

/**
 * Posts JSON-RPC bodies to one http(s) endpoint over kept-alive sockets and
 * returns the answer's text. It replaces ethers' FetchRequest under the
 * provider: that one decodes every answer with its own JavaScript UTF-8
 * decoder and wraps each request in objects of its own, which was a tenth
 * of what a node spent on JSON-RPC while a bag of tasks ran.
 *
 * Failures keep the shapes `isTransientRpcError` knows: socket errors with
 * their codes (ECONNREFUSED, ECONNRESET...), ETIMEDOUT past `timeoutMs`, and
 * a non-200 answer as an error with code SERVER_ERROR and its status.
 */
export class HttpTransport {
  private readonly url: URL
  private readonly agent: http.Agent
  private readonly request: typeof http.request
  private readonly auth: string | undefined

  constructor (url: string, private readonly timeoutMs: number) {
    this.url = new URL(url)
    const secure = this.url.protocol === 'https:'
    // a node's calls are short and frequent: kept sockets spare a TCP (and TLS) handshake each
    this.agent = secure ? new https.Agent({ keepAlive: true, maxSockets: 16 }) : new http.Agent({ keepAlive: true, maxSockets: 16 })
    this.request = secure ? https.request : http.request
    this.auth = this.url.username !== ''
      ? 'Basic ' + Buffer.from(`${decodeURIComponent(this.url.username)}:${decodeURIComponent(this.url.password)}`).toString('base64')
      : undefined
  }

  async post (body: string): Promise<string> {
    return await new Promise<string>((resolve, reject) => {
      const req = this.request({
        protocol: this.url.protocol,
        hostname: this.url.hostname,
        port: this.url.port,
        path: `${this.url.pathname}${this.url.search}`,
        method: 'POST',
        agent: this.agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          ...(this.auth !== undefined ? { authorization: this.auth } : {})
        }
      })
      const timer = setTimeout(() => {
        req.destroy(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' }))
      }, this.timeoutMs)
      req.on('response', (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => { chunks.push(c) })
        res.on('error', (err) => { clearTimeout(timer); reject(err) })
        res.on('end', () => {
          clearTimeout(timer)
          const text = Buffer.concat(chunks).toString('utf8')
          const status = res.statusCode ?? 0
          if (status !== 200) {
            reject(Object.assign(new Error(`HTTP ${status} from ${this.url.origin}: ${text.slice(0, 200)}`), { code: 'SERVER_ERROR', response: { statusCode: status } }))
            return
          }
          resolve(text)
        })
      })
      req.on('error', (err) => { clearTimeout(timer); reject(err) })
      req.end(body)
    })
  }

  /** Closes the kept sockets. */
  close (): void {
    this.agent.destroy()
  }
}
