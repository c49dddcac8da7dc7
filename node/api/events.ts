import type { IncomingMessage, ServerResponse } from 'node:http'
import { ApiStream, type ApiRoute } from './router.js'
import { HttpError } from './errors.js'

/**
 * The node's live events, as `GET /v1/events` streams them (Server-Sent
 * Events: `id`, `event` = the type, `data` = the JSON payload).
 */
export type NodeEventType = 'task' | 'deal' | 'bid' | 'order' | 'peer'

export const NODE_EVENT_TYPES: readonly NodeEventType[] = ['task', 'deal', 'bid', 'order', 'peer']

/** A task's step on the hub, as its event says. */
export type TaskEventState = 'INITIALIZED' | 'CONTRIBUTED' | 'CONSENSUS' | 'REVEALED' | 'COMPLETED' | 'FAILED'

export interface NodeEventPayloads {
  task: { taskId: string, dealId?: string, state: TaskEventState, block: number, txHash: string, worker?: string, resultCid?: string }
  deal: { dealId: string, change: 'created' | 'scheduler-drawn' | 'scheduler-reelected', block: number, txHash: string, scheduler?: string, requester?: string, app?: string, volume?: string, requestHash?: string }
  /** `received`: a bid came for one of this node's requests; `sent` / `declined`: this provider's answer to a request */
  bid: { change: 'received' | 'sent' | 'declined', requestHash: string, worker?: string, from?: string, code?: string, reason?: string }
  order: { change: 'added' | 'cancelled' | 'consumed', type: string, orderHash: string, signer?: string }
  peer: { change: 'connected' | 'disconnected', peerId: string }
}

export interface NodeEvent<T extends NodeEventType = NodeEventType> {
  /** increases by one per event of this process (SSE `id`, the `Last-Event-ID` of a reconnect) */
  id: number
  type: T
  /** ms since epoch, the node's clock */
  at: number
  data: NodeEventPayloads[T]
}

export interface NodeEventsOptions {
  /** events kept for clients that reconnect with `Last-Event-ID` */
  replay: number
}

export const defaultNodeEventsOptions: NodeEventsOptions = {
  // a reconnect after a few seconds' gap in a busy bag (hundreds of task events a second at most) finds its events
  replay: 1024
}

/**
 * The node's event bus: modules `emit`, the event stream and the explorer
 * subscribe. Listeners run synchronously and must not throw (a throwing
 * listener is removed, so one bad client cannot stop the others).
 */
export class NodeEvents {
  private nextId = 1
  private readonly ring: NodeEvent[] = []
  private readonly listeners = new Set<(e: NodeEvent) => void>()
  private readonly opts: NodeEventsOptions

  constructor (options: Partial<NodeEventsOptions> = {}) {
    this.opts = { ...defaultNodeEventsOptions, ...options }
  }

  emit<T extends NodeEventType> (type: T, data: NodeEventPayloads[T]): NodeEvent<T> {
    const event: NodeEvent<T> = { id: this.nextId++, type, at: Date.now(), data }
    this.ring.push(event)
    if (this.ring.length > this.opts.replay) this.ring.shift()
    for (const fn of this.listeners) {
      try {
        fn(event)
      } catch {
        this.listeners.delete(fn)
      }
    }
    return event
  }

  subscribe (fn: (e: NodeEvent) => void): () => void {
    this.listeners.add(fn)
    return () => { this.listeners.delete(fn) }
  }

  /** Events after `lastId` still in the replay ring; undefined when some were already dropped (the client must re-read state). */
  since (lastId: number): NodeEvent[] | undefined {
    if (lastId >= this.nextId) return undefined
    const first = this.ring[0]
    if (first === undefined) return lastId === this.nextId - 1 ? [] : undefined
    if (lastId < first.id - 1) return undefined
    return this.ring.filter((e) => e.id > lastId)
  }

  get subscribers (): number { return this.listeners.size }
  get lastId (): number { return this.nextId - 1 }
}

export interface EventStreamOptions {
  /** a comment line this often keeps proxies and the client's idle timer from closing the stream */
  heartbeatMs: number
  /** bytes a client may leave unread before it is dropped (a slow client is never buffered without bound) */
  maxBufferedBytes: number
  /** most clients at once */
  maxClients: number
  /** how long a client waits before it reconnects (the SSE `retry` field) */
  retryMs: number
}

export const defaultEventStreamOptions: EventStreamOptions = {
  heartbeatMs: 15_000,
  // a few thousand events: a client that far behind re-reads state on reconnect anyway
  maxBufferedBytes: 1024 * 1024,
  // each client is a socket and a listener; a local API has a handful of watchers
  maxClients: 64,
  retryMs: 2_000
}

/** Parses `?types=task,deal`; undefined means every type. */
export function parseEventTypes (raw: string | null): Set<NodeEventType> | undefined {
  if (raw === null || raw === '') return undefined
  const out = new Set<NodeEventType>()
  for (const t of raw.split(',')) {
    if (!(NODE_EVENT_TYPES as readonly string[]).includes(t)) {
      throw new HttpError(400, 'API_BAD_REQUEST', `unknown event type "${t.slice(0, 32)}" (known: ${NODE_EVENT_TYPES.join(', ')})`)
    }
    out.add(t as NodeEventType)
  }
  return out
}

function lastEventId (req: IncomingMessage, query: URLSearchParams): number | undefined {
  const raw = req.headers['last-event-id'] ?? query.get('lastEventId') ?? undefined
  if (typeof raw !== 'string' || !/^\d{1,15}$/.test(raw)) return undefined
  return Number(raw)
}

export function frame (e: NodeEvent): string {
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`
}

/**
 * `GET /v1/events[?types=task,deal]`: Server-Sent Events. A reconnect with
 * `Last-Event-ID` gets the events it missed when they are still in the
 * replay ring, else a `reset` event (re-read the state you show). A client
 * whose unread bytes pass `maxBufferedBytes` is dropped; heartbeats are
 * comment lines.
 */
export function eventRoutes (events: NodeEvents, options: Partial<EventStreamOptions> = {}): ApiRoute[] {
  const opts = { ...defaultEventStreamOptions, ...options }
  let clients = 0
  return [{
    method: 'GET',
    path: '/v1/events',
    handler: (req) => {
      const types = parseEventTypes(req.query.get('types'))
      if (clients >= opts.maxClients) throw new HttpError(503, 'API_BUSY', `at most ${opts.maxClients} event streams at once`)
      return new ApiStream((httpReq: IncomingMessage, res: ServerResponse) => {
        clients++
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          connection: 'keep-alive',
          'x-accel-buffering': 'no'
        })
        // a long-lived answer: the server's request timeout is for ordinary calls
        httpReq.socket.setTimeout(0)
        res.socket?.setNoDelay(true)
        let closed = false
        const wanted = (e: NodeEvent): boolean => types === undefined || types.has(e.type)
        const write = (text: string): void => {
          if (closed) return
          res.write(text)
          // writableLength: bytes queued in Node that the socket has not taken: the client is not reading
          if (res.writableLength > opts.maxBufferedBytes) close()
        }
        const unsubscribe = events.subscribe((e) => { if (wanted(e)) write(frame(e)) })
        const heartbeat = setInterval(() => { write(': heartbeat\n\n') }, opts.heartbeatMs)
        heartbeat.unref()
        const close = (): void => {
          if (closed) return
          closed = true
          clients--
          clearInterval(heartbeat)
          unsubscribe()
          res.destroy()
        }
        res.on('close', close)
        httpReq.on('close', close)
        // `hello` tells a client the stream is live: state it reads from now on is not older than the events that follow
        write(`retry: ${opts.retryMs}\nevent: hello\ndata: ${JSON.stringify({ lastId: events.lastId })}\n\n`)
        const last = lastEventId(httpReq, req.query)
        if (last !== undefined) {
          const missed = events.since(last)
          if (missed === undefined) write(`id: ${events.lastId}\nevent: reset\ndata: {}\n\n`)
          else for (const e of missed) if (wanted(e)) write(frame(e))
        }
      })
    }
  }]
}
