/**
 * The requester's choice among bids (issue 22): `minScore` counts only bids
 * of workers with that score on the hub, and tells the others why
 * (SCORE_TOO_LOW); `beneficiary` is signed into the request and recorded in
 * the deal. Real IexecNodes, a real anvil with the hub.
 */
import assert from 'node:assert/strict'
import { Wallet } from 'ethers'
import { RLC, api, ok, startSwarm, waitFor } from './market-helpers.js'
import type { BidStrategy } from '../../node/market/index.js'

const APP = { name: 'choice', cid: 'bafy-choice', checksum: '0x' + '66'.repeat(32), price: '0' }

interface Reason { peerId: string, code: string, reason: string }

describe('market: the requester counts bids by score and names a beneficiary (anvil)', function () {
  this.timeout(180_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('a minimum score no worker has: NO_BIDS, each bidder SCORE_TOO_LOW, nothing frozen; score 0 and a beneficiary: the deal records it', async () => {
    const s = await startSwarm({ providers: 2, market: { biddingWindowMs: 3_000 } }, cleanup)
    const [p0, p1] = s.providers
    const requester = s.requesters[0]
    await ok(p0, 'POST', '/v1/apps', APP)
    await waitFor(async () => ((await ok(requester, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 1, 15_000, 'app order at the requester')
    const hub = requester.market!.hub
    const [balance0, frozen0] = await hub.accountOf(requester.address)

    // order show: one order of the book and what the hub counts consumed; the orderbook filters by tag
    const appOrder = ((await ok(requester, 'GET', '/v1/orderbook?type=app')).orders as Array<{ orderHash: string }>)[0]
    const shownOrder = await ok(requester, 'GET', `/v1/orders/${appOrder.orderHash}`)
    assert.equal(shownOrder.orderHash, appOrder.orderHash)
    assert.equal(shownOrder.consumed, '0')
    assert.equal((shownOrder.order as Record<string, string>).requesterrestrict, '0x0000000000000000000000000000000000000000')
    const unknownOrder = await api(requester, 'GET', `/v1/orders/0x${'ab'.repeat(32)}`)
    assert.equal(unknownOrder.status, 404)
    assert.equal((unknownOrder.body.error as { code: string }).code, 'ORDER_NOT_FOUND')
    assert.equal((await api(requester, 'GET', '/v1/orders/0x12')).status, 400)
    assert.equal(((await ok(requester, 'GET', '/v1/orderbook?type=app&tag=region:eu')).orders as unknown[]).length, 0, 'the app order requires no tag')
    const badTag = await api(requester, 'GET', '/v1/orderbook?tag=region:mars')
    assert.equal((badTag.body.error as { code: string }).code, 'TAG_UNKNOWN')

    // fresh workers have score 0
    assert.equal(await hub.scoreOf(p0.address), 0n)
    const high = await api(requester, 'POST', '/v1/tasks', { app: APP.name, maxPrice: (3n * RLC).toString(), minScore: 1 })
    assert.equal(high.status, 422, JSON.stringify(high.body))
    const err = high.body.error as { code: string, details: { reasons: Reason[] } }
    assert.equal(err.code, 'NO_BIDS')
    const byPeer = new Map(err.details.reasons.map((r) => [r.peerId, r]))
    for (const p of [p0, p1]) {
      assert.equal(byPeer.get(p.peerId)?.code, 'SCORE_TOO_LOW', `${p.peerId}: ${JSON.stringify(err.details.reasons)}`)
      assert.match(byPeer.get(p.peerId)?.reason ?? '', /has score 0, the request needs 1/)
    }
    assert.deepEqual([...await hub.accountOf(requester.address)], [balance0, frozen0], 'nothing frozen')

    // bad input: a coded error, nothing signed
    for (const [body, code] of [
      [{ minScore: -1 }, 'MARKET_BAD_ARGUMENT'],
      [{ minScore: 'high' }, 'API_BAD_REQUEST'],
      [{ beneficiary: '0x12' }, 'API_BAD_REQUEST'],
      [{ beneficiary: 7 }, 'API_BAD_REQUEST'],
      [{ callback: '0x12' }, 'API_BAD_REQUEST'],
      [{ callback: ['0x' + '11'.repeat(20)] }, 'API_BAD_REQUEST']
    ] as Array<[Record<string, unknown>, string]>) {
      const r = await api(requester, 'POST', '/v1/tasks', { app: APP.name, maxPrice: (3n * RLC).toString(), ...body })
      assert.equal(r.status, 400, JSON.stringify(body))
      assert.equal((r.body.error as { code: string }).code, code, JSON.stringify(body))
    }

    const beneficiary = Wallet.createRandom().address
    const deal = await ok(requester, 'POST', '/v1/tasks', { app: APP.name, maxPrice: (3n * RLC).toString(), minScore: 0, beneficiary })
    const shown = await ok(requester, 'GET', `/v1/deals/${String(deal.dealId)}`)
    assert.equal(shown.beneficiary, beneficiary)
    assert.equal(shown.requester, requester.address, 'the requester still pays')
  })

  it('required tags are checked against the bidder\'s signed advert as well as its bid: a bidder that does not advertise them is not counted (TAG_NOT_ADVERTISED)', async () => {
    // p0 bids on everything, tags or not; p1 advertises region:eu and bids by the rules
    const liar: BidStrategy = (request) => ({ bid: true, code: 'OK', reason: 'bids on anything', price: 0n, volume: request.volume })
    const s = await startSwarm({ providers: 2, provider: (i) => (i === 0 ? { bidStrategy: liar } : { tags: ['region:eu'] }), market: { biddingWindowMs: 3_000 } }, cleanup)
    const [p0, p1] = s.providers
    const requester = s.requesters[0]
    await ok(p1, 'POST', '/v1/apps', APP)
    await ok(p1, 'POST', '/v1/apps', { ...APP, name: 'choice-eu', tags: ['region:eu'] })
    await waitFor(async () => ((await ok(requester, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 2, 15_000, 'app orders at the requester')
    // the orderbook's tag filter: only the app order that requires region:eu
    const eu = (await ok(requester, 'GET', '/v1/orderbook?type=app&tag=region:eu')).orders as Array<{ order: { tag: string } }>
    assert.equal(eu.length, 1)
    assert.equal(BigInt(eu[0].order.tag), 1n << 16n)
    const deal = await ok(requester, 'POST', '/v1/tasks', { app: APP.name, maxPrice: (3n * RLC).toString(), tags: ['region:eu'], biddingWindowMs: 5_000 })
    // the liar bid 0, cheaper than p1: only the advert check keeps it out
    assert.deepEqual(deal.workers, [p1.address])
    // alone, the liar's bid is refused with the rule
    await p1.stop()
    const alone = await api(requester, 'POST', '/v1/tasks', { app: APP.name, maxPrice: (3n * RLC).toString(), tags: ['region:eu'], biddingWindowMs: 3_000 })
    assert.equal(alone.status, 422, JSON.stringify(alone.body))
    const err = alone.body.error as { code: string, details: { reasons: Reason[] } }
    assert.equal(err.code, 'NO_BIDS')
    const mine = err.details.reasons.find((r) => r.peerId === p0.peerId)
    assert.equal(mine?.code, 'TAG_NOT_ADVERTISED', JSON.stringify(err.details.reasons))
  })
})
