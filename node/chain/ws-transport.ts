import WebSocket from 'ws'
import { backoffDelay } from './backoff.js'

/** One JSON-RPC call as ethers hands it over. */
export interface RpcCall {
  method: string
  params: unknown[] | Record<string, unknown>
  id: number | string
  jsonrpc: '2.0'
}

/** One JSON-RPC answer (result or error), under the caller's id. */
export interface RpcAnswer {
  id: number | string
  result?: unknown
  error?: { code: number, message: string, data?: unknown }
}

export interface WsTransportOptions {
  /** one call's deadline, and the handshake's */
  requestTimeoutMs: number
  /** first wait before reopening a dropped socket that carries subscriptions; doubles, with jitter */
  retryBaseDelayMs: number
  /** cap of that wait */
  retryMaxDelayMs: number
}

/** What a subscriber is told. */
export interface SubscriptionHandlers {
  /** each notification's `result` (as the endpoint sent it: check it) */
  onNotify: (result: unknown) => void
  /** live: after the first `eth_subscribe`, and again after each resubscription on a new socket */
  onLive?: () => void
  /** the socket dropped: no notification until the next `onLive` */
  onLost?: (err: Error) => void
  /** the endpoint answered `eth_subscribe` with an error: the subscription is given up */
  onRefused?: (err: Error) => void
}

export interface Subscription {
  /** stops notifications (and unsubscribes, best effort) */
  close: () => void
}

/** Something that opens `eth_subscribe` subscriptions (a WebSocket endpoint). */
export interface RpcSubscriber {
  subscribe: (params: unknown[], handlers: SubscriptionHandlers) => Subscription
}

interface Pending {
  resolve: (answer: RpcAnswer) => void
  reject: (err: Error) => void
  /** run in the message handler itself, before any later message of the socket is read */
  sync?: (answer: RpcAnswer) => void
}

interface Sub {
  params: unknown[]
  handlers: SubscriptionHandlers
  /** the endpoint's id for it on the current socket; undefined while it is not subscribed */
  serverId?: string
  closed: boolean
}

function coded (message: string, code: string, cause?: unknown): Error {
  return Object.assign(new Error(message, cause !== undefined ? { cause } : undefined), { code })
}

/**
 * JSON-RPC over one WebSocket: calls (batched as a JSON array when there are
 * several) matched to their answers by ids of its own, and `eth_subscribe`
 * subscriptions kept alive across dropped sockets.
 *
 * Failures keep the shapes `isTransientRpcError` knows, so the provider's
 * bounded retry treats them like HTTP's: a socket that cannot be opened is
 * ECONNREFUSED, one that drops with calls in flight ECONNRESET, a call
 * without an answer past `requestTimeoutMs` ETIMEDOUT. The socket is opened
 * on the first call and again on the next call after a drop.
 *
 * Subscriptions: a dropped socket tells each subscriber (`onLost`), then
 * reopens with backoff (`retryBaseDelayMs` doubling up to `retryMaxDelayMs`)
 * until it can subscribe again (`onLive`). Notifications sent while the
 * socket was down are lost: a subscriber reads what it missed itself.
 */
export class WsTransport implements RpcSubscriber {
  private socket: WebSocket | undefined
  private opening: Promise<WebSocket> | undefined
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly subs = new Set<Sub>()
  private readonly byServerId = new Map<string, Sub>()
  private closed = false
  private restoring = false
  private reconnectTimer: NodeJS.Timeout | undefined
  private reconnectAttempt = 0
  /** messages sent to the endpoint (a batch is one) */
  messagesSent = 0

  constructor (readonly url: string, private readonly opts: WsTransportOptions) {}

  /** Sends `calls` (one message) and returns their answers in the same order, under the callers' ids. */
  async call (calls: RpcCall[]): Promise<RpcAnswer[]> {
    return await this.exchange(calls)
  }

  private async exchange (calls: RpcCall[], sync?: (answer: RpcAnswer) => void): Promise<RpcAnswer[]> {
    const ws = await this.open()
    const ids = calls.map(() => this.nextId++)
    const answers = new Array<RpcAnswer>(calls.length)
    return await new Promise<RpcAnswer[]>((resolve, reject) => {
      let left = calls.length
      const done = (err?: Error): void => {
        clearTimeout(timer)
        for (const id of ids) this.pending.delete(id)
        if (err !== undefined) reject(err)
        else resolve(answers)
      }
      const timer = setTimeout(() => { done(coded(`no answer from ${this.url} within ${this.opts.requestTimeoutMs} ms`, 'ETIMEDOUT')) }, this.opts.requestTimeoutMs)
      ids.forEach((id, i) => {
        this.pending.set(id, {
          resolve: (a) => {
            answers[i] = { ...a, id: calls[i].id }
            if (--left === 0) done()
          },
          reject: (err) => { done(err) },
          ...(sync !== undefined ? { sync } : {})
        })
      })
      const messages = calls.map((c, i) => ({ jsonrpc: '2.0', id: ids[i], method: c.method, params: c.params }))
      this.messagesSent++
      ws.send(JSON.stringify(messages.length === 1 ? messages[0] : messages), (err) => {
        if (err != null) done(coded(`send to ${this.url} failed: ${err.message}`, 'ECONNRESET', err))
      })
    })
  }

  /**
   * Subscribes (`eth_subscribe` with `params`, e.g. `['newHeads']`) now and
   * again on every new socket, until `close`.
   */
  subscribe (params: unknown[], handlers: SubscriptionHandlers): Subscription {
    const sub: Sub = { params, handlers, closed: false }
    this.subs.add(sub)
    void this.restore()
    return {
      close: () => {
        if (sub.closed) return
        sub.closed = true
        this.subs.delete(sub)
        if (sub.serverId !== undefined) {
          this.byServerId.delete(sub.serverId)
          const id = sub.serverId
          sub.serverId = undefined
          if (this.socket !== undefined) void this.call([{ jsonrpc: '2.0', id: 0, method: 'eth_unsubscribe', params: [id] }]).catch(() => undefined)
        }
      }
    }
  }

  /** Closes the socket; calls in flight fail, subscriptions end. */
  close (): void {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.reconnectTimer)
    this.subs.clear()
    this.byServerId.clear()
    const ws = this.socket
    this.socket = undefined
    this.failPending(coded(`connection to ${this.url} closed`, 'ECONNRESET'))
    ws?.terminate()
  }

  private async open (): Promise<WebSocket> {
    if (this.closed) throw coded(`connection to ${this.url} closed`, 'ECONNRESET')
    if (this.socket !== undefined && this.socket.readyState === WebSocket.OPEN) return this.socket
    this.opening ??= new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(this.url, { handshakeTimeout: this.opts.requestTimeoutMs, perMessageDeflate: false })
      const fail = (err: Error): void => {
        this.opening = undefined
        ws.removeAllListeners()
        ws.on('error', () => undefined)
        ws.terminate()
        reject(coded(`cannot open ${this.url}: ${err.message}`, 'ECONNREFUSED', err))
      }
      ws.once('error', fail)
      ws.once('close', () => { fail(new Error('closed during the handshake')) })
      ws.once('open', () => {
        this.opening = undefined
        ws.removeAllListeners()
        if (this.closed) {
          ws.terminate()
          reject(coded(`connection to ${this.url} closed`, 'ECONNRESET'))
          return
        }
        this.attach(ws)
        resolve(ws)
        // a socket opened by a call after a drop carries the subscriptions again at once
        if ([...this.subs].some((s) => s.serverId === undefined)) void this.restore()
      })
    })
    return await this.opening
  }

  private attach (ws: WebSocket): void {
    this.socket = ws
    ws.on('message', (data: WebSocket.RawData) => { this.onMessage(data) })
    // 'close' follows every 'error'
    ws.on('error', () => undefined)
    ws.on('close', () => { this.onClose(ws) })
  }

  private onClose (ws: WebSocket): void {
    if (this.socket !== ws) return
    this.socket = undefined
    const err = coded(`connection to ${this.url} dropped`, 'ECONNRESET')
    this.failPending(err)
    this.byServerId.clear()
    for (const sub of this.subs) {
      const wasLive = sub.serverId !== undefined
      sub.serverId = undefined
      if (wasLive) sub.handlers.onLost?.(err)
    }
    if (this.subs.size > 0) this.scheduleRestore()
  }

  private failPending (err: Error): void {
    const pending = [...this.pending.values()]
    this.pending.clear()
    for (const p of pending) p.reject(err)
  }

  private onMessage (data: WebSocket.RawData): void {
    let parsed: unknown
    try {
      parsed = JSON.parse(data.toString())
    } catch {
      return // not JSON: nothing to match it to
    }
    for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
      if (typeof m !== 'object' || m === null) continue
      const msg = m as { id?: unknown, method?: unknown, params?: { subscription?: unknown, result?: unknown }, result?: unknown, error?: unknown }
      if (msg.method === 'eth_subscription') {
        const sub = typeof msg.params?.subscription === 'string' ? this.byServerId.get(msg.params.subscription) : undefined
        if (sub === undefined || sub.closed) continue
        try {
          sub.handlers.onNotify(msg.params?.result)
        } catch {
          // a subscriber's failure is its own
        }
        continue
      }
      if (typeof msg.id !== 'number') continue
      const p = this.pending.get(msg.id)
      if (p === undefined) continue
      this.pending.delete(msg.id)
      const error = msg.error as RpcAnswer['error'] | undefined
      const answer: RpcAnswer = error !== undefined && error !== null
        ? { id: msg.id, error: { code: Number(error.code), message: String(error.message), ...(error.data !== undefined ? { data: error.data } : {}) } }
        : { id: msg.id, result: msg.result }
      p.sync?.(answer)
      p.resolve(answer)
    }
  }

  private scheduleRestore (): void {
    if (this.closed || this.reconnectTimer !== undefined) return
    this.reconnectAttempt++
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      void this.restore()
    }, backoffDelay(this.reconnectAttempt, this.opts))
  }

  /** Opens the socket if needed and subscribes every subscription not subscribed on it. */
  private async restore (): Promise<void> {
    if (this.restoring || this.closed) return
    this.restoring = true
    try {
      const ws = await this.open()
      for (const sub of [...this.subs]) {
        if (sub.closed || sub.serverId !== undefined) continue
        const [answer] = await this.exchange([{ jsonrpc: '2.0', id: 0, method: 'eth_subscribe', params: sub.params }], (a) => {
          // mapped before the next message is read: a notification may follow the answer in the same chunk
          if (typeof a.result === 'string' && !sub.closed && this.socket === ws) {
            sub.serverId = a.result
            this.byServerId.set(a.result, sub)
          }
        })
        if (sub.closed) continue
        if (sub.serverId !== undefined) {
          sub.handlers.onLive?.()
          continue
        }
        this.subs.delete(sub)
        sub.closed = true
        const why = answer.error !== undefined ? `${answer.error.message} (${answer.error.code})` : 'no subscription id in the answer'
        sub.handlers.onRefused?.(new Error(`${this.url} refused eth_subscribe(${JSON.stringify(sub.params[0])}): ${why}`))
      }
      this.reconnectAttempt = 0
    } catch {
      // the socket could not be opened or dropped again: later, with a longer wait
      if (!this.closed && this.subs.size > 0) this.scheduleRestore()
    } finally {
      this.restoring = false
    }
  }
}
