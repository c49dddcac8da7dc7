import { request, type ClientRequest, type IncomingMessage } from 'node:http'
import { ApiError } from './errors.js'
import type { NodeEventType } from './events.js'

/** One event as the stream carries it (`hello` and `reset` included). */
export interface StreamedEvent {
  id?: number
  type: string
  data: unknown
}

export interface EventStreamClientOptions {
  types?: NodeEventType[]
  /** a connection that fails this many times in a row ends the stream (onEnd with the error) */
  maxReconnects?: number
  /** bound of the first answer (headers) of each connection */
  connectTimeoutMs?: number
}

/**
 * A client of `GET /v1/events`: parses the SSE frames, reconnects with
 * `Last-Event-ID` after a dropped connection (the node replays what it
 * still holds, or sends `reset`).
 */
export class EventStreamClient {
  private req?: ClientRequest
  private res?: IncomingMessage
  private lastId?: number
  private closed = false
  private failures = 0
  private readonly opened: Promise<void>
  private resolveOpened!: () => void
  private rejectOpened!: (err: Error) => void

  constructor (
    private readonly url: string,
    private readonly token: string,
    private readonly onEvent: (e: StreamedEvent) => void,
    private readonly onEnd: (err?: Error) => void,
    private readonly opts: EventStreamClientOptions = {}
  ) {
    this.opened = new Promise((resolve, reject) => { this.resolveOpened = resolve; this.rejectOpened = reject })
    // a rejection nobody awaits yet must not crash the process
    this.opened.catch(() => {})
    this.connect()
  }

  /** Resolves at the first `hello` (the stream is live); rejects when the first connection fails. */
  async ready (): Promise<void> { await this.opened }

  close (): void {
    this.closed = true
    this.res?.destroy()
    this.req?.destroy()
  }

  private connect (): void {
    if (this.closed) return
    const qs = this.opts.types !== undefined ? `?types=${this.opts.types.join(',')}` : ''
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: 'text/event-stream' }
    if (this.lastId !== undefined) headers['last-event-id'] = String(this.lastId)
    const req = request(`${this.url}/v1/events${qs}`, { headers })
    this.req = req
    const timer = setTimeout(() => { req.destroy(new ApiError('API_TIMEOUT', 'the event stream did not answer')) }, this.opts.connectTimeoutMs ?? 10_000)
    // a connection given up on (a reconnect replaced it) says nothing more
    const current = (): boolean => this.req === req
    req.on('response', (res) => {
      clearTimeout(timer)
      if (!current()) { res.destroy(); return }
      this.res = res
      if (res.statusCode !== 200) {
        res.resume()
        const err = new ApiError(res.statusCode === 401 ? 'API_UNAUTHORIZED' : 'API_ERROR', `GET /v1/events answered ${String(res.statusCode)}`, { status: res.statusCode })
        this.fail(err, false)
        return
      }
      res.setEncoding('utf8')
      let buf = ''
      res.on('data', (chunk: string) => {
        buf += chunk
        let end: number
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, end)
          buf = buf.slice(end + 2)
          if (current()) this.frame(frame)
        }
      })
      res.on('end', () => { if (current()) this.fail(new ApiError('API_UNREACHABLE', 'the event stream ended'), true) })
      res.on('error', (err) => { if (current()) this.fail(err, true) })
    })
    req.on('error', (err) => {
      clearTimeout(timer)
      if (current()) this.fail(err, true)
    })
    req.end()
  }

  private frame (text: string): void {
    let type = 'message'
    let data = ''
    let id: number | undefined
    for (const line of text.split('\n')) {
      if (line.startsWith(':')) continue
      const i = line.indexOf(':')
      const field = i < 0 ? line : line.slice(0, i)
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '')
      if (field === 'event') type = value
      else if (field === 'data') data += (data.length > 0 ? '\n' : '') + value
      else if (field === 'id' && /^\d+$/.test(value)) id = Number(value)
    }
    if (data === '') return
    if (id !== undefined) this.lastId = id
    let parsed: unknown
    try {
      parsed = JSON.parse(data)
    } catch {
      return
    }
    if (type === 'hello') {
      this.failures = 0
      if (this.lastId === undefined) this.lastId = Number((parsed as { lastId?: unknown }).lastId ?? 0)
      this.resolveOpened()
    }
    this.onEvent({ ...(id !== undefined ? { id } : {}), type, data: parsed })
  }

  private fail (err: Error, retry: boolean): void {
    if (this.closed) return
    this.req?.destroy()
    this.failures++
    const first = this.lastId === undefined
    if (!retry || first || this.failures > (this.opts.maxReconnects ?? 5)) {
      this.closed = true
      this.rejectOpened(err)
      this.onEnd(err)
      return
    }
    const t = setTimeout(() => { this.connect() }, Math.min(2_000, 200 * this.failures))
    t.unref()
  }
}
