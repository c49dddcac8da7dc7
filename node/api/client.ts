import { request } from 'node:http'
import type { NodeStatus, PeerView, ResourceQuery, ResourceView } from './backend.js'
import { ApiError } from './errors.js'
import { defaultApiClientOptions, type ApiClientOptions } from './options.js'

/**
 * Typed client of a running node's local API (what the CLI's client commands use).
 *
 * Errors: API_UNREACHABLE (nothing listens at the URL), API_TIMEOUT,
 * API_UNAUTHORIZED (wrong token), API_ERROR (any other error answer; the
 * server's code is in `details.serverCode`), API_BAD_RESPONSE.
 *
 * @example
 * ```ts
 * const api = new ApiClient('http://127.0.0.1:5081', token)
 * const peers = await api.peers()
 * ```
 */
export class ApiClient {
  readonly url: string
  private readonly token: string
  private readonly timeoutMs: number

  constructor (url: string, token: string, options: ApiClientOptions = {}) {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new ApiError('API_BAD_OPTIONS', `not a valid API URL: "${url}"`)
    }
    if (parsed.protocol !== 'http:') {
      throw new ApiError('API_BAD_OPTIONS', `the API URL must be http://host:port, got "${url}"`)
    }
    this.url = parsed.origin
    this.token = token.trim()
    this.timeoutMs = options.timeoutMs ?? defaultApiClientOptions.timeoutMs
  }

  async status (): Promise<NodeStatus> {
    return await this.call<NodeStatus>('GET', '/v1/status')
  }

  async peers (): Promise<PeerView[]> {
    return await this.call<PeerView[]>('GET', '/v1/peers')
  }

  async resources (query: ResourceQuery = {}): Promise<ResourceView[]> {
    const qs = new URLSearchParams()
    if (query.category !== undefined) qs.set('category', String(query.category))
    for (const tag of query.tags ?? []) qs.append('tag', tag)
    const suffix = qs.size > 0 ? `?${qs.toString()}` : ''
    return await this.call<ResourceView[]>('GET', `/v1/resources${suffix}`)
  }

  /** Asks the node to stop; resolves once the node has accepted (it stops right after). */
  async shutdown (): Promise<void> {
    await this.call<unknown>('POST', '/v1/shutdown')
  }

  /**
   * One call. Public so later modules' clients (orders, tasks...) reuse the
   * same transport and error mapping.
   */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const target = `${this.url}${path}`
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    return await new Promise<T>((resolve, reject) => {
      const req = request(target, {
        method,
        // one request per CLI call: no pooled socket to keep the process alive
        agent: false,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json',
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': payload.length } : {})
        }
      }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => { chunks.push(c) })
        res.on('error', (err) => { reject(new ApiError('API_UNREACHABLE', `connection to ${this.url} broke: ${err.message}`, { url: this.url })) })
        res.on('end', () => {
          clearTimeout(timer)
          const text = Buffer.concat(chunks).toString('utf8')
          let parsed: unknown
          try {
            parsed = text.length > 0 ? JSON.parse(text) : null
          } catch {
            reject(new ApiError('API_BAD_RESPONSE', `${method} ${path}: the node at ${this.url} answered ${res.statusCode ?? '?'} with non-JSON`, { url: this.url }))
            return
          }
          const status = res.statusCode ?? 0
          if (status >= 200 && status < 300) {
            resolve(parsed as T)
            return
          }
          const { code, message } = errorOf(parsed, status)
          if (status === 401) {
            reject(new ApiError('API_UNAUTHORIZED', `the node at ${this.url} refused the API token (check --token-file)`, { url: this.url, serverCode: code }))
          } else {
            reject(new ApiError('API_ERROR', message, { url: this.url, status, serverCode: code }))
          }
        })
      })
      const timer = setTimeout(() => {
        req.destroy(new ApiError('API_TIMEOUT', `${method} ${path}: no answer from ${this.url} within ${this.timeoutMs} ms`, { url: this.url }))
      }, this.timeoutMs)
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        if (err instanceof ApiError) {
          reject(err)
        } else if (err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET' || err.code === 'EHOSTUNREACH' || err.code === 'ENOTFOUND') {
          reject(new ApiError('API_UNREACHABLE', `no node answers at ${this.url} (${err.code}): is it running?`, { url: this.url }, { cause: err }))
        } else {
          reject(new ApiError('API_UNREACHABLE', `cannot reach ${this.url}: ${err.message}`, { url: this.url }, { cause: err }))
        }
      })
      req.end(payload)
    })
  }
}

function errorOf (body: unknown, status: number): { code: string, message: string } {
  if (typeof body === 'object' && body !== null && 'error' in body) {
    const e = (body as { error: unknown }).error
    if (typeof e === 'object' && e !== null) {
      const code = (e as { code?: unknown }).code
      const message = (e as { message?: unknown }).message
      if (typeof code === 'string' && typeof message === 'string') return { code, message }
    }
  }
  return { code: 'API_ERROR', message: `the node answered HTTP ${status}` }
}
