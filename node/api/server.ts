import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createHash, timingSafeEqual } from 'node:crypto'
import { isIexecError } from '../common/errors.js'
import { ApiError, HttpError, type ApiErrorBody } from './errors.js'
import { defaultApiServerOptions, LOOPBACK_HOSTS, type ApiServerOptions } from './options.js'
import { ApiReply, ApiStream, Router, type HttpMethod } from './router.js'
import { coreRoutes } from './routes/resources.js'
import { API_IDENTITY_PATH, apiIdentityPayload, identityNonce } from './identity.js'
import type { ApiIdentity } from './identity.js'
import { LOGIN_PATH, loopbackHost, type BrowserSessions } from './session.js'

export interface ApiServer {
  /** base URL, e.g. http://127.0.0.1:5081 */
  url: string
  port: number
  /** stops listening and drops open connections; safe to call twice */
  close: () => Promise<void>
}

/**
 * Starts the local HTTP API. Every call must carry `Authorization: Bearer <token>`.
 *
 * @example
 * ```ts
 * const api = await startApiServer({ port: 0, token, backend: node })
 * // ... api.url is what the CLI reads from <dataDir>/api.json
 * await api.close()
 * ```
 */
export async function startApiServer (options: ApiServerOptions): Promise<ApiServer> {
  const opts = { ...defaultApiServerOptions, ...stripUndefined(options) }
  if (!LOOPBACK_HOSTS.includes(opts.host)) {
    throw new ApiError('API_BAD_OPTIONS', `the API only listens on loopback (127.0.0.1, ::1), not ${opts.host}`)
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new ApiError('API_BAD_OPTIONS', `API port must be an integer 0-65535, got ${String(opts.port)}`)
  }
  if (typeof opts.token !== 'string' || opts.token.length < 16) {
    // a short token is guessable by any local process
    throw new ApiError('API_BAD_OPTIONS', 'API token must be at least 16 characters')
  }

  const router = new Router()
  for (const route of [...coreRoutes(opts.backend), ...(opts.routes ?? [])]) router.add(route)
  const tokenDigest = digest(opts.token)

  // set once listening (no request comes before): the identity check signs it
  let selfUrl = ''
  const server = createServer((req, res) => {
    handle(req, res, router, tokenDigest, opts.maxBodyBytes, opts.identity, selfUrl, opts.sessions).catch((err: unknown) => {
      // handle() answers every error itself; this only fires if the socket died mid-answer
      if (!res.headersSent) sendError(res, 500, 'API_INTERNAL', errorMessage(err))
      else res.destroy()
    })
  })
  server.requestTimeout = opts.requestTimeoutMs
  server.headersTimeout = Math.min(opts.requestTimeoutMs, 10_000)
  // a CLI call is one request: idle keep-alive sockets only delay close()
  server.keepAliveTimeout = 1_000

  await listen(server, opts.port, opts.host)
  const addr = server.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port
  const hostForUrl = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  selfUrl = `http://${hostForUrl}:${port}`

  let closing: Promise<void> | undefined
  return {
    url: selfUrl,
    port,
    close: async () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => { resolve() })
        // close() alone waits for keep-alive sockets to time out
        server.closeAllConnections()
      })
      await closing
    }
  }
}

async function listen (server: Server, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening)
      if (err.code === 'EADDRINUSE') {
        reject(new ApiError('API_PORT_IN_USE', `API port ${port} on ${host} is already in use (pick another with --api-port, or 0 for any free port)`, { port, host }))
      } else {
        reject(new ApiError('API_BAD_OPTIONS', `cannot listen on ${host}:${port}: ${err.message}`, { port, host }, { cause: err }))
      }
    }
    const onListening = (): void => {
      server.off('error', onError)
      resolve()
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(port, host)
  })
}

async function handle (req: IncomingMessage, res: ServerResponse, router: Router, tokenDigest: Buffer, maxBodyBytes: number, identity: ApiIdentity | undefined, selfUrl: string, sessions?: BrowserSessions): Promise<void> {
  // the identity check comes before the token, which the client sends only once the node proved itself
  if (identity !== undefined && (req.url ?? '').startsWith(API_IDENTITY_PATH + '?') && req.method === 'GET') {
    req.resume()
    const nonce = identityNonce(new URL(req.url ?? '/', 'http://localhost').searchParams)
    if (nonce === undefined) {
      sendError(res, 400, 'API_BAD_REQUEST', 'nonce must be 32 bytes of lowercase hex')
      return
    }
    const { peerId, signature } = await identity(apiIdentityPayload(nonce, selfUrl))
    sendJson(res, 200, { peerId, url: selfUrl, signature: Buffer.from(signature).toString('base64') })
    return
  }
  // the explorer's one-time login: the code is the credential, the answer the session cookie
  if (sessions !== undefined && req.method === 'GET' && (req.url ?? '').startsWith(LOGIN_PATH + '?')) {
    req.resume()
    const code = new URL(req.url ?? '/', 'http://localhost').searchParams.get('code')
    if (!loopbackHost(req.headers.host) || !sessions.redeem(code)) {
      const text = 'This login link is unknown, used or expired. Run `iexec-p2p explorer` for a new one.\n'
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
      res.end(text)
      return
    }
    res.writeHead(303, { location: '/explorer', 'set-cookie': sessions.setCookie(), 'cache-control': 'no-store', 'content-length': 0 })
    res.end()
    return
  }
  // authenticate before anything else, so an unauthenticated caller learns nothing (not even which routes exist).
  // A browser session (cookie) reads only: a page another site makes the browser send cannot change anything
  const bySession = sessions !== undefined && req.method === 'GET' && loopbackHost(req.headers.host) && sessions.fromCookie(req.headers.cookie)
  if (!bySession && !authorized(req.headers.authorization, tokenDigest)) {
    sendError(res, 401, 'API_UNAUTHORIZED', 'missing or wrong API token (Authorization: Bearer <token from the data dir\'s api-token>)')
    req.resume()
    return
  }
  const method = req.method ?? 'GET'
  let url: URL
  try {
    url = new URL(req.url ?? '/', 'http://localhost')
  } catch {
    sendError(res, 400, 'API_BAD_REQUEST', 'malformed request URL')
    return
  }
  const match = router.match(method, url.pathname)
  if (match.kind === 'not-found') {
    req.resume()
    sendError(res, 404, 'API_NOT_FOUND', `no route ${method} ${url.pathname}`)
    return
  }
  if (match.kind === 'method-not-allowed') {
    req.resume()
    const allowed = match.allowed
    res.setHeader('Allow', allowed.join(', '))
    sendError(res, 405, 'API_METHOD_NOT_ALLOWED', `${method} is not allowed on ${url.pathname} (allowed: ${allowed.join(', ')})`)
    return
  }

  let body: unknown
  try {
    body = await readJsonBody(req, maxBodyBytes)
  } catch (err) {
    if (err instanceof HttpError) {
      sendError(res, err.status, err.code, err.message)
      // stop reading a body we refused; the connection cannot be reused
      res.once('finish', () => { req.destroy() })
      return
    }
    throw err
  }

  try {
    const result = await match.route.handler({ method: method as HttpMethod, path: url.pathname, params: match.params, query: url.searchParams, body })
    if (result instanceof ApiStream) {
      result.start(req, res)
      return
    }
    const reply = result instanceof ApiReply ? result : new ApiReply(result)
    if (reply.afterSend !== undefined) res.once('finish', reply.afterSend)
    if (reply.contentType !== undefined && typeof reply.body === 'string') {
      res.writeHead(reply.status, { 'content-type': reply.contentType, 'content-length': Buffer.byteLength(reply.body), 'cache-control': 'no-store' })
      res.end(reply.body)
    } else {
      sendJson(res, reply.status, reply.body ?? null)
    }
  } catch (err) {
    if (err instanceof HttpError) {
      sendError(res, err.status, err.code, err.message, err.details)
    } else if (isIexecError(err)) {
      // a module's typed error: keep its code so the client can branch on it
      sendError(res, 500, err.code, err.message, err.details)
    } else {
      sendError(res, 500, 'API_INTERNAL', errorMessage(err))
    }
  }
}

function digest (s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** Constant-time: compares digests, so neither content nor length leaks through timing. */
function authorized (header: string | undefined, tokenDigest: Buffer): boolean {
  if (header === undefined) return false
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
  const presented = digest(m?.[1] ?? '')
  return timingSafeEqual(presented, tokenDigest) && m !== null
}

async function readJsonBody (req: IncomingMessage, maxBodyBytes: number): Promise<unknown> {
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > maxBodyBytes) {
    throw new HttpError(413, 'API_BODY_TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${maxBodyBytes}`)
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    const buf = chunk as Buffer
    size += buf.length
    // a chunked body has no content-length: count as it comes
    if (size > maxBodyBytes) {
      throw new HttpError(413, 'API_BODY_TOO_LARGE', `request body exceeds the limit of ${maxBodyBytes} bytes`)
    }
    chunks.push(buf)
  }
  if (size === 0) return undefined
  const type = req.headers['content-type'] ?? ''
  if (!type.startsWith('application/json')) {
    throw new HttpError(415, 'API_BAD_REQUEST', `request body must be application/json, got "${type}"`)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new HttpError(400, 'API_BAD_REQUEST', 'request body is not valid JSON')
  }
}

function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store'
  })
  res.end(text)
}

function sendError (res: ServerResponse, status: number, code: string, message: string, details?: Record<string, unknown>): void {
  // details (e.g. NO_BIDS reasons) travel so the CLI can print them
  const body: ApiErrorBody = { ok: false, error: details !== undefined ? { code, message, details } : { code, message } }
  sendJson(res, status, body)
}

function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function stripUndefined<T extends object> (o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T
}
