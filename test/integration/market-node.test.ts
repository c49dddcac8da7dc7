/**
 * The market in real nodes: 4 providers and 1 requester (IexecNodes in this
 * process, libp2p on 127.0.0.1) over a real anvil with the hub. The whole
 * requester path through the HTTP API: app registered and its order gossiped
 * to every book, request gossiped, providers bid over the bid stream, the
 * requester matches and the deal on chain has the right workers, scheduler
 * and locked amounts; a late node syncs the orders; a restart keeps them.
 */
import assert from 'node:assert/strict'
import { swarmTopics } from '../../protocols/topics.js'
import { ZERO_ADDRESS, hashOrder, hubDomain, signOrder } from '../../protocols/eip712.js'
import { encodeMarketMessage, orderMessage, saltWithExpiry } from '../../protocols/market.js'
import { Wallet } from 'ethers'
import { RLC, api, ok, startSwarm, waitFor } from './market-helpers.js'
import type { Swarm } from './market-helpers.js'

const APP = { name: 'wordcount', cid: 'bafy-wordcount', checksum: '0x' + '11'.repeat(32), price: (2n * RLC).toString() }

describe('market in the node: request -> bids -> deal (4 providers, 1 requester, anvil)', function () {
  this.timeout(180_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  async function swarm (): Promise<Swarm> {
    return await startSwarm({
      providers: 4,
      // floors 5, 6, 7, 8 RLC: the cheapest bids are predictable
      provider: (i) => ({ priceFloor: BigInt(5 + i) * RLC }),
      market: { biddingWindowMs: 8_000 }
    }, cleanup)
  }

  async function orderbook (node: Swarm['all'][number], type: string): Promise<Array<Record<string, unknown>>> {
    return (await ok(node, 'GET', `/v1/orderbook?type=${type}`)).orders as Array<Record<string, unknown>>
  }

  it('registers an app, gossips its order to every book, matches a trust-3 request with the cheapest bids', async () => {
    const s = await swarm()
    const [p0] = s.providers
    const requester = s.requesters[0]

    const app = await ok(p0, 'POST', '/v1/apps', APP)
    assert.match(String(app.address), /^0x[0-9a-fA-F]{40}$/)
    for (const n of s.all) {
      await waitFor(async () => (await orderbook(n, 'app')).some((o) => o.orderHash === app.orderHash), 15_000, 'app order in every book')
    }
    // registering the same app again reuses it (same address), with a new order
    const again = await ok(p0, 'POST', '/v1/apps', APP)
    assert.equal(again.address, app.address)

    const before = await ok(requester, 'GET', '/v1/wallet')
    const t0 = Date.now()
    // trust 3 needs 2 agreeing workers (2^2 >= 3), plus one spare: 3 bids end the window early
    const deal = await ok(requester, 'POST', '/v1/tasks', { app: 'wordcount', args: 'hello world', trust: 3, volume: 2, maxPrice: (20n * RLC).toString() })
    const elapsed = Date.now() - t0
    assert.ok(elapsed < 6_000, `the 8 s window ended early once 3 bids were in (${elapsed} ms)`)

    // every provider saw the request and bid (the last bid may still be on its way)
    await waitFor(() => s.providers.every((p) => p.market?.provider?.decisions.every((d) => d.sent !== 'pending') === true), 10_000, 'every answer sent')
    for (const p of s.providers) {
      const decisions = p.market?.provider?.decisions ?? []
      assert.equal(decisions.length, 1, 'one decision per provider')
      assert.equal(decisions[0].decision.bid, true)
      assert.equal(decisions[0].sent, 'stream')
      // a bid after the window closed is answered BID_TOO_LATE (not checked, not counted)
      assert.ok(decisions[0].ack?.ok === true || decisions[0].ack?.code === 'BID_TOO_LATE', JSON.stringify(decisions[0].ack))
    }

    // the window closed on the first three bids; the task price is the highest of them (floors 5..8 RLC)
    const providerAddr = s.providers.map((p) => p.address)
    const workers = deal.workers as string[]
    assert.equal(new Set(workers).size, 3)
    assert.ok(workers.every((w) => providerAddr.includes(w)), 'workers are providers')
    // the deal took the cheapest of the bids that counted
    const counted = s.providers.filter((p) => p.market?.provider?.decisions[0]?.ack?.ok === true).map((p) => p.address)
    assert.ok(workers.every((w) => counted.includes(w)), 'every worker\'s bid counted')
    const cheapest = [...counted].sort((a, b) => providerAddr.indexOf(a) - providerAddr.indexOf(b)).slice(0, 3)
    assert.deepEqual([...workers].sort(), cheapest.sort(), 'the three cheapest counted bids')
    const price = workers.reduce((max, w) => { const f = BigInt(5 + providerAddr.indexOf(w)) * RLC; return f > max ? f : max }, 0n)
    assert.ok(providerAddr.includes(String(deal.scheduler)), 'the scheduler is one of the staked providers')
    const tasks = deal.tasks as Array<{ taskId: string, status: string }>
    assert.equal(tasks.length, 2)
    assert.ok(tasks.every((t) => /^0x[0-9a-f]{64}$/.test(t.taskId) && t.status === 'UNSET'))

    // on chain: the deal view and the money
    const view = await ok(requester, 'GET', `/v1/deals/${String(deal.dealId)}`)
    assert.equal(view.scheduler, deal.scheduler)
    assert.deepEqual(view.workers, workers)
    assert.equal(view.app, app.address)
    assert.equal(view.dataset, ZERO_ADDRESS)
    assert.equal(view.requester, requester.address)
    assert.equal(view.volume, '2')
    assert.equal(view.trust, '3')
    assert.equal(view.params, JSON.stringify({ iexec_args: 'hello world' }))
    // requester frozen = volume x (app price + task price)
    const after = await ok(requester, 'GET', '/v1/wallet')
    assert.equal(BigInt(String(after.frozen)) - BigInt(String(before.frozen)), 2n * (2n * RLC + price))
    assert.equal(BigInt(String(before.balance)) - BigInt(String(after.balance)), 2n * (2n * RLC + price))
    // each worker locks 30 % of the task price per task; the scheduler 30 % per task as well
    const workerLock = 2n * (price * 30n / 100n)
    for (const p of s.providers) {
      const w = await ok(p, 'GET', '/v1/wallet')
      let expected = workers.includes(p.address) ? workerLock : 0n
      if (p.address === deal.scheduler) expected += workerLock
      if (p.address !== deal.scheduler) {
        assert.equal(BigInt(String(w.stakeLocked)), expected, `locked stake of ${p.address}`)
        continue
      }
      // the scheduler is drawn lazily: its stake is locked by the first duty transaction that writes the draw
      await waitFor(async () => BigInt(String((await ok(p, 'GET', '/v1/wallet')).stakeLocked)) === expected, 30_000, `locked stake of the scheduler ${p.address}: ${String(expected)}`)
    }

    // the deal consumed the request: every book drops it (hub event)
    for (const n of s.all) {
      await waitFor(async () => (await orderbook(n, 'request')).length === 0, 10_000, 'request dropped after the deal')
    }
  })

  it('gives a late joiner the live orders (sync) and keeps the book across a restart', async () => {
    const s = await swarm()
    const app = await ok(s.providers[1], 'POST', '/v1/apps', APP)
    for (const n of s.all) await waitFor(async () => (await orderbook(n, 'app')).length === 1, 15_000, 'app order everywhere')

    // joins after the order was gossiped: only the sync protocol can give it
    const late = await s.addNode('late', 'provider', { bootstrap: [s.providers[2].multiaddrs()[0]] })
    await waitFor(async () => (await orderbook(late, 'app')).some((o) => o.orderHash === app.orderHash), 15_000, 'late joiner synced the app order')
    const synced = (await orderbook(late, 'app'))[0]
    assert.equal(synced.signer, s.providers[1].address)
    assert.equal((synced.order as Record<string, string>).appprice, APP.price)

    // restart with no peer left to sync from: the order comes from its own level store
    const dataDir = late.dataDir
    for (const n of s.all) await n.stop()
    const again = await s.restart(dataDir, { bootstrap: [] })
    assert.equal(again.status().connections, 0)
    const kept = await orderbook(again, 'app')
    assert.deepEqual(kept.map((o) => o.orderHash), [app.orderHash])
  })

  it('ends with NO_BIDS and the providers\' reasons; a forged request is rejected and the nodes keep running', async () => {
    const s = await swarm()
    const requester = s.requesters[0]
    await ok(s.providers[0], 'POST', '/v1/apps', APP)
    await waitFor(async () => (await orderbook(requester, 'app')).length === 1, 15_000, 'app order at the requester')

    // price below every floor (5..8 RLC)
    const t0 = Date.now()
    const cheap = await api(requester, 'POST', '/v1/tasks', { app: 'wordcount', maxPrice: (1n * RLC).toString(), biddingWindowMs: 5_000 })
    assert.ok(Date.now() - t0 < 5_000 + 3_000, 'answers within its window')
    assert.equal(cheap.status, 422, JSON.stringify(cheap.body))
    const err = cheap.body.error as { code: string, details: { reasons: Array<{ peerId: string, code: string, reason: string }> } }
    assert.equal(err.code, 'NO_BIDS')
    assert.equal(err.details.reasons.length, 4, JSON.stringify(err.details.reasons))
    assert.ok(err.details.reasons.every((r) => r.code === 'PRICE_TOO_LOW' && /price too low/.test(r.reason)))
    assert.deepEqual(new Set(err.details.reasons.map((r) => r.peerId)), new Set(s.providers.map((p) => p.peerId)))

    // a category nobody serves
    const none = await api(requester, 'POST', '/v1/tasks', { app: 'wordcount', category: 2, biddingWindowMs: 4_000 })
    assert.equal(none.status, 422)
    const err2 = none.body.error as { code: string, details: { reasons: Array<{ code: string }> } }
    assert.equal(err2.code, 'NO_BIDS')
    assert.ok(err2.details.reasons.length === 4 && err2.details.reasons.every((r) => r.code === 'NO_CATEGORY'))

    // a bad request body is a 400, not a hang
    const bad = await api(requester, 'POST', '/v1/tasks', { app: 'wordcount', trust: 0 })
    assert.equal(bad.status, 400)
    assert.equal((bad.body.error as { code: string }).code, 'MARKET_BAD_ARGUMENT')

    // forged: a request order naming the requester but signed by another key,
    // published raw by a provider's network (so it comes from a real peer)
    const market = s.providers[0].market
    assert.ok(market !== undefined)
    const domain = hubDomain(s.chain.chainId, s.chain.hub)
    const mallory = Wallet.createRandom()
    const app = (await orderbook(requester, 'app'))[0].order as Record<string, string>
    const forged = await signOrder(mallory, domain, 'RequestOrder', {
      app: app.app, appmaxprice: 10n * RLC, dataset: ZERO_ADDRESS, datasetmaxprice: 0n, workerpool: ZERO_ADDRESS, workerpoolmaxprice: 10n * RLC,
      requester: requester.address, volume: 1n, tag: '0x' + '00'.repeat(32), category: 0n, trust: 1n, beneficiary: requester.address,
      callback: ZERO_ADDRESS, params: '', salt: saltWithExpiry(Math.floor(Date.now() / 1000) + 600)
    })
    const { sign, ...order } = forged
    const rejectedBefore = s.providers.slice(1).map((p) => p.market?.stats.get('requestorder', 'reject', 'GOSSIP_BAD_SIGNATURE') ?? 0)
    await s.providers[0].network.publish(swarmTopics('mkt').requestorder, encodeMarketMessage(orderMessage('requestorder', domain, order, sign)))
    await waitFor(() => s.providers.slice(1).some((p, i) => (p.market?.stats.get('requestorder', 'reject', 'GOSSIP_BAD_SIGNATURE') ?? 0) > rejectedBefore[i]), 10_000, 'forged request rejected')
    const forgedHash = hashOrder(domain, 'RequestOrder', order).toLowerCase()
    for (const n of s.all) {
      assert.ok(!(await orderbook(n, 'request')).some((o) => o.orderHash === forgedHash), 'the forged request is in no book')
      assert.equal((await api(n, 'GET', '/v1/status')).status, 200, 'the node keeps running')
    }
    // nobody bid on it
    for (const p of s.providers) assert.equal(p.market?.provider?.decisions.filter((d) => d.requester === requester.address && d.decision.bid).length, 0)
  })
})
