/**
 * What a requester hears when bids do not make a deal, from real nodes over
 * a real anvil: a bid its validators refuse (told with the rule it broke,
 * and the provider's ack carries the same code), a provider with every slot
 * busy (NO_CAPACITY), one whose resources are below the category's needs
 * (RESOURCES_TOO_SMALL), and a trust level that the bids received cannot
 * reach (NOT_ENOUGH_BIDS, no deal made). A custom bid strategy, passed to
 * the node, makes the refused bid.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { appWasmPath } from '../../examples/build-apps.js'
import { RLC, api, ok, startSwarm, waitFor } from './market-helpers.js'
import type { BidStrategy } from '../../node/market/index.js'
import { lpStream } from '@libp2p/utils'
import { signOrder } from '../../protocols/eip712.js'
import { bidStreamProtocol, decodeBidStreamAck, encodeBidStreamMessage, orderMessage, saltWithExpiry } from '../../protocols/market.js'

const APP = { name: 'bids', cid: 'bafy-bids', checksum: '0x' + '55'.repeat(32), price: RLC.toString() }

interface Reason { peerId: string, code: string, reason: string }

describe('market: refused bids, busy and small providers, not enough bids', function () {
  this.timeout(180_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  // a strategy that always bids one nRLC above what the request allows: the hub could never accept it
  const overpricing: BidStrategy = (request) => ({ bid: true, code: 'OK', reason: 'always bid above the max', price: request.workerpoolmaxprice + 1n, volume: request.volume })

  it('a provider does not bid on an app its executor cannot run, and says why; it bids on one it can', async () => {
    const s = await startSwarm({ providers: 1, market: { biddingWindowMs: 3_000 } }, cleanup)
    const [p0] = s.providers
    const requester = s.requesters[0]
    // registered through the API, past app publish's check: a valid module with no _start (8 bytes)
    const empty = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00])
    const added = await ok(p0, 'POST', '/v1/content', { data: empty.toString('base64') }) as { cid: string, checksum: string }
    await ok(p0, 'POST', '/v1/apps', { name: 'no-start', cid: added.cid, checksum: added.checksum, price: '0' })
    const wasm = await readFile(appWasmPath('wordcount'))
    const good = await ok(p0, 'POST', '/v1/content', { data: wasm.toString('base64') }) as { cid: string, checksum: string }
    await ok(p0, 'POST', '/v1/apps', { name: 'runnable', cid: good.cid, checksum: good.checksum, price: '0' })
    await waitFor(async () => ((await ok(requester, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 2, 15_000, 'app orders at the requester')

    const refused = await api(requester, 'POST', '/v1/tasks', { app: 'no-start', maxPrice: (3n * RLC).toString(), biddingWindowMs: 3_000 })
    assert.equal(refused.status, 422, JSON.stringify(refused.body))
    const err = refused.body.error as { code: string, details: { reasons: Reason[] } }
    assert.equal(err.code, 'NO_BIDS')
    assert.equal(err.details.reasons.length, 1)
    assert.equal(err.details.reasons[0].code, 'APP_NOT_RUNNABLE')
    assert.match(err.details.reasons[0].reason, /MODULE_NOT_COMMAND/)

    const deal = await ok(requester, 'POST', '/v1/tasks', { app: 'runnable', maxPrice: (3n * RLC).toString(), biddingWindowMs: 3_000 }) as { dealId: string }
    assert.match(deal.dealId, /^0x[0-9a-f]{64}$/, 'the runnable app got its bid and its deal')
  })

  it('each provider\'s reason reaches the requester; trust 3 with one bid makes no deal', async () => {
    const s = await startSwarm({
      providers: 3,
      // p0 overprices, p1 has less memory than the XS category needs (256 MB), p2 is an ordinary provider
      provider: (i) => (i === 0 ? { bidStrategy: overpricing } : i === 1 ? { memoryMb: 128 } : {}),
      market: { biddingWindowMs: 3_000 }
    }, cleanup)
    const [p0, p1, p2] = s.providers
    const requester = s.requesters[0]
    await ok(p2, 'POST', '/v1/apps', APP)
    await waitFor(async () => ((await ok(requester, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 1, 15_000, 'app order at the requester')

    // p2 has both its slots taken (as if its worker ran two tasks)
    const p2Provider = p2.market?.provider
    assert.ok(p2Provider !== undefined)
    p2Provider.settings.busyTasks = () => 2
    const busy = await api(requester, 'POST', '/v1/tasks', { app: APP.name, maxPrice: (3n * RLC).toString(), biddingWindowMs: 3_000 })
    assert.equal(busy.status, 422, JSON.stringify(busy.body))
    const err = busy.body.error as { code: string, details: { reasons: Reason[] } }
    assert.equal(err.code, 'NO_BIDS')
    const byPeer = new Map(err.details.reasons.map((r) => [r.peerId, r]))
    assert.equal(byPeer.get(p0.peerId)?.code, 'BID_REFUSED')
    assert.match(byPeer.get(p0.peerId)?.reason ?? '', /GOSSIP_BID_PRICE_ABOVE_MAX/)
    assert.equal(byPeer.get(p1.peerId)?.code, 'RESOURCES_TOO_SMALL')
    assert.match(byPeer.get(p1.peerId)?.reason ?? '', /needs 1 cpus, 256 MiB, 64 MiB of disk; has \d+ cpus, 128 MiB/)
    assert.equal(byPeer.get(p2.peerId)?.code, 'NO_CAPACITY')
    // the overpricing provider was told why its bid did not count
    const refused = p0.market?.provider?.decisions.find((d) => d.requestHash === (busy.body.error as { details: { requestHash: string } }).details.requestHash)
    assert.equal(refused?.decision.bid, true)
    assert.deepEqual(refused?.ack, { v: 1, ok: false, code: 'GOSSIP_BID_PRICE_ABOVE_MAX' })

    // free again: p2 bids, alone; trust 3 needs two agreeing workers, so no deal is made
    p2Provider.settings.busyTasks = () => 0
    const [balanceBefore] = await requester.market!.hub.accountOf(requester.address)
    const lonely = await api(requester, 'POST', '/v1/tasks', { app: APP.name, trust: 3, maxPrice: (3n * RLC).toString(), biddingWindowMs: 3_000 })
    assert.equal(lonely.status, 422, JSON.stringify(lonely.body))
    const err2 = lonely.body.error as { code: string, details: { bids: number, needed: number, reasons: Reason[] } }
    assert.equal(err2.code, 'NOT_ENOUGH_BIDS')
    assert.equal(err2.details.bids, 1)
    assert.equal(err2.details.needed, 2)
    assert.deepEqual(new Set(err2.details.reasons.map((r) => r.code)), new Set(['BID_RECEIVED', 'BID_REFUSED', 'RESOURCES_TOO_SMALL']))
    // every line names its peer: the one bidder too
    assert.ok(err2.details.reasons.every((r) => typeof r.peerId === 'string' && r.peerId.length > 0), JSON.stringify(err2.details.reasons))
    assert.equal(err2.details.reasons.find((r) => r.code === 'BID_RECEIVED')?.peerId, p2.peerId)
    const [balanceAfter, frozen] = await requester.market!.hub.accountOf(requester.address)
    assert.equal(balanceAfter, balanceBefore, 'nothing was locked: no deal')
    assert.equal(frozen, 0n)

    // trust 1: p2's bid alone makes the deal
    const deal = await ok(requester, 'POST', '/v1/tasks', { app: APP.name, maxPrice: (3n * RLC).toString() })
    assert.deepEqual(deal.workers, [p2.address])

    // a bid that comes after the window closed is answered BID_TOO_LATE without being checked
    const requestHash = p2Provider.decisions[p2Provider.decisions.length - 1].requestHash
    const market = requester.market!
    assert.equal(market.requester.windowClosed(requestHash), true)
    assert.equal(market.requester.windowClosed('0x' + '00'.repeat(32)), false, 'not a request of ours')
    const signed = await signOrder(p2.wallet, market.domain, 'Bid', { requestHash, worker: p2.address, price: RLC, volume: 1n, salt: saltWithExpiry(Math.floor(Date.now() / 1000) + 60) })
    const { sign, ...order } = signed
    const validatedBefore = market.stats.get('bid', 'accept') + market.stats.get('bid', 'ignore') + market.stats.get('bid', 'reject')
    const stream = await p2.network.dialProtocol(requester.peerId, bidStreamProtocol('mkt'))
    const lp = lpStream(stream)
    await lp.write(encodeBidStreamMessage(orderMessage('bid', market.domain, order, sign)))
    assert.deepEqual(decodeBidStreamAck((await lp.read()).subarray()), { v: 1, ok: false, code: 'BID_TOO_LATE' })
    await stream.close()
    assert.equal(market.stats.get('bid', 'accept') + market.stats.get('bid', 'ignore') + market.stats.get('bid', 'reject'), validatedBefore, 'the late bid never reached the validators')
  })

  it('a request without a max price offers the configured defaultMaxPrice, not the balance: a lone expensive provider is not paid its price', async () => {
    const cap = 2n * RLC
    const s = await startSwarm({
      providers: 2,
      // p0 asks 5 RLC a task, above the cap; p1 is cheap but busy at first
      provider: (i) => ({ priceFloor: i === 0 ? 5n * RLC : RLC / 2n }),
      config: { defaultMaxPrice: cap.toString() },
      market: { biddingWindowMs: 2_000 }
    }, cleanup)
    const [p0, p1] = s.providers
    const requester = s.requesters[0]
    assert.equal((await ok(requester, 'GET', '/v1/status')).defaultMaxPrice, cap.toString(), 'the status says the cap before anything is signed')
    await ok(p0, 'POST', '/v1/apps', APP)
    await waitFor(async () => ((await ok(requester, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 1, 15_000, 'app order at the requester')
    const hub = requester.market!.hub
    const money = async (): Promise<bigint[]> => (await Promise.all([requester, p0, p1].map(async (n) => [...await hub.accountOf(n.address)]))).flat()
    const before = await money()

    p1.market!.provider!.settings.busyTasks = () => 2
    const lone = await api(requester, 'POST', '/v1/tasks', { app: APP.name })
    assert.equal(lone.status, 422, JSON.stringify(lone.body))
    const err = lone.body.error as { code: string, details: { reasons: Reason[] } }
    assert.equal(err.code, 'NO_BIDS')
    assert.equal(err.details.reasons.find((r) => r.peerId === p0.peerId)?.code, 'PRICE_TOO_LOW', 'the request offered the cap, below the expensive provider\'s floor')
    const seen = p0.market!.provider!.decisions.at(-1)
    assert.match(seen?.decision.reason ?? '', new RegExp(`max ${cap} <`))
    assert.deepEqual(await money(), before, 'no deal: every balance and frozen amount as before')

    // the cheap provider free again: the deal is made at its price, the requester pays no more than app + cap
    p1.market!.provider!.settings.busyTasks = () => 0
    const deal = await ok(requester, 'POST', '/v1/tasks', { app: APP.name })
    assert.equal(deal.maxPrice, cap.toString(), 'the signed cap is reported')
    assert.deepEqual(deal.workers, [p1.address])
    const [balance, frozen] = await hub.accountOf(requester.address)
    assert.equal(before[0] - balance - frozen, 0n, 'the requester\'s hub balance and frozen amount hold what it had')
    assert.ok(frozen <= BigInt(APP.price) + cap, `at most app + cap locked for the task (${frozen})`)
    assert.equal(frozen, BigInt(APP.price) + RLC / 2n, 'the task is locked at the bid\'s price')
  })

  it('a valid bid whose window closes while it is being checked is answered BID_TOO_LATE, not ok', async () => {
    const s = await startSwarm({ providers: 1, market: { biddingWindowMs: 20_000 } }, cleanup)
    const [p0] = s.providers
    const requester = s.requesters[0]
    const market = requester.market!
    await ok(p0, 'POST', '/v1/apps', APP)
    await waitFor(async () => ((await ok(requester, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 1, 15_000, 'app order at the requester')
    // p0 declines (both slots busy): the only bid is the one this test sends
    const provider = p0.market?.provider
    assert.ok(provider !== undefined)
    provider.settings.busyTasks = () => 2
    const submitted = market.requester.submit({ app: APP.name, maxPrice: 3n * RLC })
    const outcome = submitted.then(() => 'deal', (err: { code?: string }) => err.code ?? String(err))
    await waitFor(() => provider.decisions.length === 1 && provider.decisions[0].sent !== 'pending', 15_000, 'p0 declined')
    const requestHash = provider.decisions[0].requestHash
    assert.equal(market.requester.windowOpen(requestHash), true)

    // the validators' request lookup is held until the window has closed
    const lookup = market.ctx.requests
    let release: () => void = () => {}
    const held = new Promise<void>((resolve) => { release = resolve })
    let reached: () => void = () => {}
    const atLookup = new Promise<void>((resolve) => { reached = resolve })
    market.ctx.requests = {
      ...lookup,
      requestOrder: async (hash) => {
        if (hash.toLowerCase() === requestHash) { reached(); await held }
        return await lookup.requestOrder(hash)
      }
    }
    const signed = await signOrder(p0.wallet, market.domain, 'Bid', { requestHash, worker: p0.address, price: RLC, volume: 1n, salt: saltWithExpiry(Math.floor(Date.now() / 1000) + 60) })
    const { sign, ...order } = signed
    const stream = await p0.network.dialProtocol(requester.peerId, bidStreamProtocol('mkt'))
    const lp = lpStream(stream)
    await lp.write(encodeBidStreamMessage(orderMessage('bid', market.domain, order, sign)))
    await atLookup
    market.requester.abortAll()
    await waitFor(() => market.requester.windowClosed(requestHash), 5_000, 'window closed')
    release()
    // the bid was valid, but it came too late to count: the ack says so, and no deal was made of it
    assert.deepEqual(decodeBidStreamAck((await lp.read()).subarray()), { v: 1, ok: false, code: 'BID_TOO_LATE' })
    await stream.close()
    market.ctx.requests = lookup
    assert.equal(await outcome, 'NO_BIDS')
  })
})
