/**
 * Providers bid on request orders that reach them by the late-joiner sync,
 * not only by gossip: a provider that joins while a request's bidding window
 * is open gets the request from its peers' books, bids on the bid topic (a
 * synced request names no peer to answer), and wins the deal. A request the
 * hub has consumed is refused by a node that never held it (its book's
 * record of DealCreated events, no chain read), so nobody bids on it.
 * Real IexecNodes in this process over a real anvil with the hub.
 */
import assert from 'node:assert/strict'
import { RLC, ok, startSwarm, waitFor } from './market-helpers.js'
import type { Swarm } from './market-helpers.js'
import type { IexecNode } from '../../node/node.js'
import type { SubmitResult } from '../../node/market/index.js'

const APP = { name: 'syncbid', cid: 'bafy-syncbid', checksum: '0x' + '44'.repeat(32), price: RLC.toString() }

describe('market: providers bid on synced request orders', function () {
  this.timeout(180_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  /** A provider node that joins the running swarm only once staked (so its first sync can already bid). */
  async function lateProvider (s: Swarm, name: string, priceFloor: bigint): Promise<IexecNode> {
    const node = await s.addNode(name, 'provider', { bootstrap: [], config: { priceFloor: priceFloor.toString() } })
    await ok(node, 'POST', '/v1/account/deposit', { amount: (1_000n * RLC).toString() })
    await ok(node, 'POST', '/v1/stake', { amount: (500n * RLC).toString() })
    // the connection makes both sides identify each other, which starts the market sync
    await node.network.dial(s.providers[0].multiaddrs()[0])
    return node
  }

  it('a provider joining during the bidding window bids on the synced request and gets the deal', async () => {
    // p0's floor (5 RLC) is above the request's max price (2 RLC): it declines, the window stays open
    const s = await startSwarm({ providers: 1, provider: () => ({ priceFloor: 5n * RLC }), market: { biddingWindowMs: 8_000 } }, cleanup)
    const [p0] = s.providers
    const requester = s.requesters[0]
    const market = requester.market
    assert.ok(market !== undefined)
    await ok(p0, 'POST', '/v1/apps', APP)
    await waitFor(async () => (await market.book.query({ type: 'apporder' })).length === 1, 15_000, 'app order at the requester')

    const submitted: Promise<SubmitResult> = market.requester.submit({ app: APP.name, args: 'late', trust: 1, maxPrice: 2n * RLC, biddingWindowMs: 60_000 })
    // the outcome is awaited below; a rejection before then must not go unhandled
    submitted.catch(() => {})
    const p0Provider = p0.market?.provider
    assert.ok(p0Provider !== undefined)
    await waitFor(() => p0Provider.decisions.length === 1 && p0Provider.decisions[0].sent === 'stream', 15_000, 'p0 declined over the bid stream')
    assert.equal(p0Provider.decisions[0].decision.code, 'PRICE_TOO_LOW')
    const requestHash = p0Provider.decisions[0].requestHash
    const request = await market.book.get(requestHash)
    assert.ok(request !== undefined, 'the open request is in the requester\'s book')

    // the late provider never saw the request's gossip (it was not connected)
    const late = await lateProvider(s, 'late', RLC)
    const lateProvider_ = late.market?.provider
    assert.ok(lateProvider_ !== undefined)
    const result = await submitted
    assert.equal(result.requestHash, requestHash)
    assert.deepEqual(result.workers, [late.address], 'the late joiner won the deal')
    assert.ok(result.timings.firstBidMs !== null)

    const decision = lateProvider_.decisions.find((d) => d.requestHash === requestHash)
    assert.ok(decision !== undefined, 'the late provider decided on the synced request')
    assert.equal(decision.via, 'sync')
    assert.equal(decision.decision.bid, true)
    assert.equal(decision.sent, 'gossip')
    assert.equal(lateProvider_.decisions.filter((d) => d.requestHash === requestHash).length, 1, 'one answer per request')

    // a second late provider never held the request; once its hub follower
    // has read the deal, a copy of the consumed request is refused (IGNORE,
    // not bid on), though no peer's book has it any more
    const late2 = await lateProvider(s, 'late2', RLC)
    const m2 = late2.market
    assert.ok(m2 !== undefined)
    await waitFor(async () => await m2.book.consumedByDeals(requestHash) === 1n, 20_000, 'late2 followed the deal')
    assert.equal(await m2.book.get(requestHash), undefined)
    const consumedBefore = m2.stats.get('requestorder', 'ignore', 'GOSSIP_CONSUMED')
    const { accepted } = await m2.validateAndAccept('requestorder', request.wire, s.providers[0].peerId, 'sync')
    assert.equal(accepted, false)
    assert.equal(m2.stats.get('requestorder', 'ignore', 'GOSSIP_CONSUMED'), consumedBefore + 1)
    assert.equal(m2.provider?.decisions.some((d) => d.requestHash === requestHash), false, 'no decision on a consumed request')
  })

  it('a synced request the provider declines gets no answer (no peer to send a decline to), and no bid', async () => {
    const s = await startSwarm({ providers: 1, provider: () => ({ priceFloor: 5n * RLC }), market: { biddingWindowMs: 8_000 } }, cleanup)
    const [p0] = s.providers
    const requester = s.requesters[0]
    const market = requester.market
    assert.ok(market !== undefined)
    await ok(p0, 'POST', '/v1/apps', APP)
    await waitFor(async () => (await market.book.query({ type: 'apporder' })).length === 1, 15_000, 'app order at the requester')
    const submitted = market.requester.submit({ app: APP.name, args: 'late', trust: 1, maxPrice: 2n * RLC, biddingWindowMs: 4_000 })
    submitted.catch(() => {})
    const p0Provider = p0.market?.provider
    assert.ok(p0Provider !== undefined)
    await waitFor(() => p0Provider.decisions.length === 1, 15_000, 'p0 decided')
    const requestHash = p0Provider.decisions[0].requestHash

    // its floor (3 RLC) is above the max price too
    const late = await lateProvider(s, 'late', 3n * RLC)
    const lp = late.market?.provider
    assert.ok(lp !== undefined)
    await waitFor(() => lp.decisions.some((d) => d.requestHash === requestHash && d.sent !== 'pending'), 20_000, 'the late provider decided on the synced request')
    const d = lp.decisions.find((x) => x.requestHash === requestHash)
    assert.equal(d?.via, 'sync')
    assert.equal(d?.decision.code, 'PRICE_TOO_LOW')
    assert.equal(d?.sent, 'skipped')
    // the requester's window ends with p0's decline only: nobody bid
    await assert.rejects(submitted, (err: unknown) => (err as { code?: string }).code === 'NO_BIDS')
  })
})
