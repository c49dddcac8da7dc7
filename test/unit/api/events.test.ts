/**
 * The event stream (GET /v1/events) on a real API server: typed events,
 * the type filter, Last-Event-ID replay and reset, the heartbeat, a slow
 * client dropped at its buffer bound, the client limit, and the CLI's
 * stream client (parsing, reconnect with Last-Event-ID).
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { request } from 'node:http'
import { startApiServer, type ApiServer } from '../../../node/api/index.js'
import { NodeEvents, eventRoutes, type EventStreamOptions } from '../../../node/api/events.js'
import { EventStreamClient, type StreamedEvent } from '../../../node/api/event-client.js'
import { ApiClient } from '../../../node/api/client.js'
import { EventWake } from '../../../node/cli/event-watch.js'
import { FakeBackend } from './fake-backend.js'
import { waitFor } from '../../helpers/wait.js'

const TOKEN = 'test-token-0123456789abcdef'

/** Reads an SSE answer as text until `until` holds over what came, then closes. */
async function readStream (url: string, path: string, until: (text: string) => boolean, headers: Record<string, string> = {}): Promise<{ status: number, text: string }> {
  return await new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { headers: { authorization: `Bearer ${TOKEN}`, ...headers }, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      const done = (): void => { req.destroy(); resolve({ status: res.statusCode ?? 0, text }) }
      if (res.statusCode !== 200) { res.on('data', (c: string) => { text += c }); res.on('end', done); return }
      res.on('data', (c: string) => { text += c; if (until(text)) done() })
    })
    req.setTimeout(10_000, () => { req.destroy(new Error('stream read timed out')) })
    req.on('error', reject)
    req.end()
  })
}

describe('event stream (GET /v1/events)', () => {
  let server: ApiServer
  let events: NodeEvents
  const start = async (opts: Partial<EventStreamOptions> = {}, replay?: number): Promise<void> => {
    events = new NodeEvents(replay !== undefined ? { replay } : {})
    server = await startApiServer({ port: 0, token: TOKEN, backend: new FakeBackend(), routes: eventRoutes(events, opts) })
  }
  afterEach(async () => { await server?.close() })

  it('streams typed events after a hello, filtered by ?types=', async () => {
    await start()
    const reading = readStream(server.url, '/v1/events?types=task,peer', (t) => t.includes('event: peer'))
    await waitFor(() => events.subscribers === 1, 5_000, 'the stream subscribed')
    events.emit('deal', { dealId: '0x01', change: 'created', block: 3, txHash: '0xaa' })
    events.emit('task', { taskId: '0x02', state: 'COMPLETED', block: 4, txHash: '0xbb', resultCid: 'bafyx' })
    events.emit('peer', { change: 'connected', peerId: '12D3KooWX' })
    const { status, text } = await reading
    assert.equal(status, 200)
    assert.match(text, /^retry: \d+\nevent: hello\ndata: \{"lastId":0\}\n\n/)
    assert.ok(!text.includes('event: deal'), 'a deal event is filtered out')
    assert.match(text, /id: 2\nevent: task\ndata: \{"taskId":"0x02","state":"COMPLETED","block":4,"txHash":"0xbb","resultCid":"bafyx"\}\n\n/)
    assert.match(text, /id: 3\nevent: peer\n/)
    await waitFor(() => events.subscribers === 0, 5_000, 'the closed stream unsubscribed')
  })

  it('refuses an unknown type (400) and a caller without the token (401)', async () => {
    await start()
    const bad = await readStream(server.url, '/v1/events?types=task,<script>', () => true)
    assert.equal(bad.status, 400)
    assert.equal(JSON.parse(bad.text).error.code, 'API_BAD_REQUEST')
    const anon = await readStream(server.url, '/v1/events', () => true, { authorization: 'Bearer wrong-token-0123456789' })
    assert.equal(anon.status, 401)
  })

  it('replays what a reconnect missed (Last-Event-ID), or says reset when the ring dropped it', async () => {
    await start({}, 4)
    for (let i = 0; i < 3; i++) events.emit('peer', { change: 'connected', peerId: `p${i}` })
    const replayed = await readStream(server.url, '/v1/events', (t) => t.includes('"p2"'), { 'last-event-id': '1' })
    assert.ok(!replayed.text.includes('"p0"'), 'event 1 was seen before')
    assert.match(replayed.text, /id: 2\nevent: peer\ndata: \{"change":"connected","peerId":"p1"\}/)
    for (let i = 3; i < 10; i++) events.emit('peer', { change: 'connected', peerId: `p${i}` })
    const reset = await readStream(server.url, '/v1/events', (t) => t.includes('event: reset'), { 'last-event-id': '1' })
    assert.match(reset.text, /id: 10\nevent: reset\n/)
  })

  it('sends heartbeat comments', async () => {
    await start({ heartbeatMs: 50 })
    const { text } = await readStream(server.url, '/v1/events', (t) => t.includes(': heartbeat'))
    assert.ok(text.includes(': heartbeat\n\n'))
  })

  it('drops a client that does not read instead of buffering without bound', async () => {
    await start({ maxBufferedBytes: 64 * 1024 })
    const port = new URL(server.url).port
    // a raw socket that sends the request and never reads the answer
    const sock = connect(Number(port), '127.0.0.1')
    sock.pause()
    sock.write(`GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`)
    await waitFor(() => events.subscribers === 1, 5_000, 'the slow client subscribed')
    const big = 'x'.repeat(4096)
    // the socket's kernel buffers take some; then Node's queue grows until the bound drops the client
    for (let i = 0; i < 20_000 && events.subscribers > 0; i++) {
      events.emit('order', { change: 'added', type: 'requestorder', orderHash: big })
      if (i % 200 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    assert.equal(events.subscribers, 0, 'the slow client was dropped')
    sock.destroy()
  })

  it('answers 503 past the client limit', async () => {
    await start({ maxClients: 1 })
    const first = readStream(server.url, '/v1/events', (t) => t.includes('event: peer'))
    await waitFor(() => events.subscribers === 1, 5_000, 'first client')
    const second = await readStream(server.url, '/v1/events', () => true)
    assert.equal(second.status, 503)
    assert.equal(JSON.parse(second.text).error.code, 'API_BUSY')
    events.emit('peer', { change: 'connected', peerId: 'p' })
    await first
  })

  it('the stream client parses events and reconnects with Last-Event-ID after a drop', async () => {
    await start()
    const got: StreamedEvent[] = []
    const client = new EventStreamClient(server.url, TOKEN, (e) => got.push(e), () => {}, { types: ['task'] })
    await client.ready()
    events.emit('task', { taskId: '0x01', state: 'INITIALIZED', block: 1, txHash: '0x1' })
    await waitFor(() => got.some((e) => e.id === 1), 5_000, 'first event')
    // the server side goes away; events come while the client is disconnected
    await server.close()
    const port = Number(new URL(server.url).port)
    events.emit('task', { taskId: '0x01', state: 'COMPLETED', block: 2, txHash: '0x2' })
    server = await startApiServer({ port, token: TOKEN, backend: new FakeBackend(), routes: eventRoutes(events) })
    await waitFor(() => got.some((e) => e.id === 2), 10_000, 'the missed event replayed after the reconnect')
    assert.deepEqual(got.filter((e) => e.type === 'task').map((e) => (e.data as { state: string }).state), ['INITIALIZED', 'COMPLETED'])
    client.close()
  })

  it('EventWake wakes a watch at the next relevant event, and falls back to sleeping without a stream', async () => {
    await start()
    const api = new ApiClient(server.url, TOKEN)
    const wake = await EventWake.open(api, ['task'], (e) => (e.data as { taskId?: string }).taskId === '0xaa', 10_000, 60_000)
    assert.equal(wake.following, true)
    const t0 = Date.now()
    const waiting = wake.wait(60_000)
    events.emit('task', { taskId: '0xbb', state: 'INITIALIZED', block: 1, txHash: '0x1' })
    events.emit('task', { taskId: '0xaa', state: 'COMPLETED', block: 2, txHash: '0x2' })
    await waiting
    assert.ok(Date.now() - t0 < 30_000, 'woken by the event, not by the bound')
    wake.close()
    // a node without the route (404): waits are plain sleeps of the fallback
    const bare = await startApiServer({ port: 0, token: TOKEN, backend: new FakeBackend() })
    try {
      const polling = await EventWake.open(new ApiClient(bare.url, TOKEN), ['task'], () => true, 30)
      assert.equal(polling.following, false)
      const t1 = Date.now()
      await polling.wait(60_000)
      assert.ok(Date.now() - t1 < 10_000, 'a fallback sleep, bounded')
      polling.close()
    } finally {
      await bare.close()
    }
  })
})
