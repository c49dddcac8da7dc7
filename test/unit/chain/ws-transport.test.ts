/**
 * The WebSocket transport against endpoints that misbehave (a local `ws`
 * server standing in for one): answers that are not JSON, carry unknown
 * ids or never come, a socket closed mid-call, notifications for unknown
 * subscriptions. Every failure has the transport shape the bounded retry
 * knows, and the provider turns it into RPC_UNREACHABLE.
 */
import assert from 'node:assert/strict'
import { WebSocketServer, type WebSocket } from 'ws'
import { WsTransport } from '../../../node/chain/ws-transport.js'
import { makeProvider } from '../../../node/chain/rpc.js'
import { isChainError } from '../../../node/chain/errors.js'
import { freePort } from '../../../node/chain/local-chain.js'
import { waitFor } from './fixture.js'

type Behaviour = (socket: WebSocket, msg: { id: number, method: string, params: unknown[] }) => void

describe('WebSocket transport against a misbehaving endpoint', () => {
  let server: WebSocketServer
  let url: string
  let behaviour: Behaviour
  const transports: WsTransport[] = []
  const opts = { requestTimeoutMs: 300, retryBaseDelayMs: 20, retryMaxDelayMs: 100 }

  before(async () => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise<void>((resolve) => server.once('listening', () => { resolve() }))
    url = `ws://127.0.0.1:${(server.address() as { port: number }).port}`
    server.on('connection', (socket) => {
      socket.on('message', (data) => {
        let msg: unknown
        try { msg = JSON.parse(data.toString()) } catch { return }
        for (const m of Array.isArray(msg) ? msg : [msg]) behaviour(socket, m as { id: number, method: string, params: unknown[] })
      })
    })
  })

  afterEach(() => { for (const t of transports.splice(0)) t.close() })
  after(async () => { await new Promise<void>((resolve) => { server.close(() => { resolve() }) }) })

  const transport = (): WsTransport => {
    const t = new WsTransport(url, opts)
    transports.push(t)
    return t
  }
  const call = (method: string) => ({ jsonrpc: '2.0' as const, id: 7, method, params: [] })
  const hasCode = (code: string) => (err: unknown): boolean => { assert.equal((err as { code?: string }).code, code); return true }

  it('answers a batch under the callers\' ids, in order, whatever order the endpoint answers in', async () => {
    behaviour = (s, m) => { setTimeout(() => { s.send(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: m.method })) }, m.method === 'a' ? 30 : 0) }
    const answers = await transport().call([{ ...call('a'), id: 'x' }, { ...call('b'), id: 41 }])
    assert.deepEqual(answers, [{ id: 'x', result: 'a' }, { id: 41, result: 'b' }])
  })

  it('garbage, unknown ids and silence: ETIMEDOUT after the request timeout, and the socket still serves', async () => {
    behaviour = (s, m) => {
      if (m.method === 'silent') {
        s.send('not json{')
        s.send(JSON.stringify({ jsonrpc: '2.0', id: m.id + 1000, result: 'someone else\'s' }))
        s.send(JSON.stringify([1, null, 'x', { method: 'eth_subscription', params: { subscription: '0xnobody', result: {} } }]))
        return
      }
      s.send(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: 'ok' }))
    }
    const t = transport()
    const started = Date.now()
    await assert.rejects(t.call([call('silent')]), hasCode('ETIMEDOUT'))
    assert.ok(Date.now() - started < 2_000)
    assert.deepEqual(await t.call([call('fine')]), [{ id: 7, result: 'ok' }])
  })

  it('a socket closed with a call in flight: ECONNRESET, and the next call opens a new socket', async () => {
    behaviour = (s, m) => {
      if (m.method === 'drop') s.terminate()
      else s.send(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: 'again' }))
    }
    const t = transport()
    await assert.rejects(t.call([call('drop')]), hasCode('ECONNRESET'))
    assert.deepEqual(await t.call([call('fine')]), [{ id: 7, result: 'again' }])
  })

  it('a JSON-RPC error is an answer, not a transport failure', async () => {
    behaviour = (s, m) => { s.send(JSON.stringify({ jsonrpc: '2.0', id: m.id, error: { code: -32000, message: 'nope' } })) }
    assert.deepEqual(await transport().call([call('x')]), [{ id: 7, error: { code: -32000, message: 'nope' } }])
  })

  it('no endpoint: ECONNREFUSED; through the provider, RPC_UNREACHABLE after the bounded retries', async () => {
    const dead = `ws://127.0.0.1:${await freePort()}`
    await assert.rejects(new WsTransport(dead, opts).call([call('x')]), hasCode('ECONNREFUSED'))
    const provider = makeProvider(dead, 31337, { ...opts, retryAttempts: 3, pollingIntervalMs: 50 })
    try {
      await assert.rejects(provider.getBlockNumber(), (err: unknown) => isChainError(err, 'RPC_UNREACHABLE'))
    } finally {
      provider.destroy()
    }
  })

  it('a subscription refused is given up (onRefused); one accepted is resubscribed on a new socket after a drop', async () => {
    let subscribes = 0
    behaviour = (s, m) => {
      if (m.method !== 'eth_subscribe') return
      if (m.params[0] === 'refused') { s.send(JSON.stringify({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'no subscriptions here' } })); return }
      subscribes++
      const sub = `0x${subscribes}`
      s.send(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: sub }))
      // a notification right behind the answer, in the same turn
      s.send(JSON.stringify({ jsonrpc: '2.0', method: 'eth_subscription', params: { subscription: sub, result: subscribes } }))
      if (subscribes === 1) setTimeout(() => { s.terminate() }, 20)
    }
    const t = transport()
    const refused: Error[] = []
    t.subscribe(['refused'], { onNotify: () => {}, onRefused: (err) => { refused.push(err) } })
    const seen: unknown[] = []
    let live = 0
    let lost = 0
    t.subscribe(['newHeads'], { onNotify: (r) => { seen.push(r) }, onLive: () => { live++ }, onLost: () => { lost++ } })
    await waitFor('the resubscription', () => live >= 2 && seen.length >= 2)
    assert.equal(refused.length, 1)
    assert.match(refused[0].message, /no subscriptions here/)
    assert.equal(lost, 1)
    assert.deepEqual(seen, [1, 2], 'the notification right behind each answer is delivered')
  })
})
