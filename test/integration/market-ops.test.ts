/**
 * The market's other routes on real nodes and anvil: a node without chain
 * settings still runs and says CHAIN_NOT_CONFIGURED; wallet, withdraw and
 * cancel (on chain and gossiped to every book, refused for another's order);
 * the gossip bid transport makes a deal too.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IexecNode } from '../../node/node.js'
import { initDataDir } from '../../node/config/index.js'
import { RLC, api, ok, startSwarm, waitFor } from './market-helpers.js'

const APP = { name: 'echo', cid: 'bafy-echo', checksum: '0x' + '22'.repeat(32), price: (1n * RLC).toString() }

describe('market routes on real nodes', function () {
  this.timeout(180_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('a node without chain settings runs and answers CHAIN_NOT_CONFIGURED on market routes', async () => {
    const root = await mkdtemp(join(tmpdir(), 'iexec-nochain-'))
    cleanup.push(async () => { await rm(root, { recursive: true, force: true }) })
    await initDataDir({ dataDir: root, devUnprotectedKey: true, config: { swarmId: 'nochain', advertIntervalMs: 60_000 } })
    const node = await IexecNode.create({ dataDir: root })
    cleanup.push(async () => { await node.stop() })
    await node.start()
    assert.equal(node.market, undefined)
    for (const [method, path, body] of [['GET', '/v1/orderbook'], ['GET', '/v1/wallet'], ['POST', '/v1/tasks', { app: 'x' }], ['POST', '/v1/stake', { amount: '1' }]] as const) {
      const r = await api(node, method, path, body)
      assert.equal(r.status, 503, path)
      assert.equal((r.body.error as { code: string }).code, 'CHAIN_NOT_CONFIGURED')
    }
    assert.equal((await api(node, 'GET', '/v1/status')).status, 200)
  })

  it('shows the wallet, withdraws, cancels an order everywhere and refuses to cancel another\'s', async () => {
    const s = await startSwarm({ providers: 2 }, cleanup)
    const [owner, other] = s.providers
    const requester = s.requesters[0]
    const w = await ok(requester, 'GET', '/v1/wallet')
    assert.equal(w.address, requester.address)
    assert.equal(w.balance, (10_000n * RLC).toString())
    assert.equal(w.rlc, (90_000n * RLC).toString())
    assert.equal(w.frozen, '0')
    assert.ok(BigInt(String(w.eth)) > 0n)
    const pw = await ok(owner, 'GET', '/v1/wallet')
    assert.equal(pw.stake, (1_000n * RLC).toString())
    assert.equal(pw.stakeLocked, '0')

    const wd = await ok(requester, 'POST', '/v1/account/withdraw', { amount: (1_000n * RLC).toString() })
    assert.equal(wd.balance, (9_000n * RLC).toString())
    assert.match(String(wd.txHash), /^0x[0-9a-f]{64}$/)
    const tooMuch = await api(requester, 'POST', '/v1/account/withdraw', { amount: (1_000_000n * RLC).toString() })
    assert.equal(tooMuch.status, 422)
    assert.equal((tooMuch.body.error as { code: string, details: { reason: string } }).details.reason, 'InsufficientBalance')
    const notAmount = await api(requester, 'POST', '/v1/stake', { amount: -5 })
    assert.equal(notAmount.status, 400)

    const app = await ok(owner, 'POST', '/v1/apps', APP)
    for (const n of s.all) await waitFor(async () => ((await ok(n, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 1, 15_000, 'app order everywhere')

    // a max price the balance cannot cover: refused before anything is gossiped
    const poor = await api(requester, 'POST', '/v1/tasks', { app: 'echo', maxPrice: (1n << 47n).toString() })
    assert.equal(poor.status, 422)
    assert.equal((poor.body.error as { code: string }).code, 'INSUFFICIENT_BALANCE')
    // its own book would hold the request had it been published
    assert.equal(((await ok(requester, 'GET', '/v1/orderbook?type=request')).orders as unknown[]).length, 0)
    const unknownApp = await api(requester, 'POST', '/v1/tasks', { app: 'no-such-app' })
    assert.equal(unknownApp.status, 404)
    assert.equal((unknownApp.body.error as { code: string }).code, 'APP_NOT_FOUND')

    const refused = await api(other, 'POST', '/v1/orders/cancel', { orderHash: app.orderHash })
    assert.equal(refused.status, 403)
    assert.equal((refused.body.error as { code: string }).code, 'NOT_ORDER_OWNER')
    const missing = await api(owner, 'POST', '/v1/orders/cancel', { orderHash: '0x' + 'ab'.repeat(32) })
    assert.equal(missing.status, 404)

    const cancelled = await ok(owner, 'POST', '/v1/orders/cancel', { orderHash: app.orderHash })
    assert.equal(cancelled.orderHash, app.orderHash)
    assert.match(String(cancelled.txHash), /^0x[0-9a-f]{64}$/)
    for (const n of s.all) await waitFor(async () => ((await ok(n, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 0, 15_000, 'cancelled order gone everywhere')
    // with no app order left, a request fails fast with a clear code
    const noOrder = await api(requester, 'POST', '/v1/tasks', { app: String(app.address), biddingWindowMs: 1000 })
    assert.equal(noOrder.status, 422)
    assert.equal((noOrder.body.error as { code: string }).code, 'NO_APP_ORDER')
  })

  it('makes a deal with bids on the gossip topic', async () => {
    const s = await startSwarm({ providers: 3, market: { bidTransport: 'gossip', biddingWindowMs: 4_000 } }, cleanup)
    const requester = s.requesters[0]
    await ok(s.providers[0], 'POST', '/v1/apps', APP)
    await waitFor(async () => ((await ok(requester, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 1, 15_000, 'app order at the requester')
    const deal = await ok(requester, 'POST', '/v1/tasks', { app: 'echo', trust: 1 })
    assert.equal((deal.workers as string[]).length, 1)
    assert.ok(s.providers.some((p) => p.address === (deal.workers as string[])[0]))
    await waitFor(() => s.providers.every((p) => p.market?.provider?.decisions.every((d) => d.sent !== 'pending') === true), 10_000, 'answers sent')
    for (const p of s.providers) assert.equal(p.market?.provider?.decisions[0]?.sent, 'gossip')
    // the bids went through every book's validators too
    assert.ok((requester.market?.stats.get('bid', 'accept') ?? 0) >= 1)
  })
})
