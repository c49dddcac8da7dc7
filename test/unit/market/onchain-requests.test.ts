// OnchainRequests (market/onchain-requests.ts) alone, its market mocked: which
// requests published on chain a provider matches, at what price, with which
// app order, and which it leaves alone.
import assert from 'node:assert/strict'
import { Wallet, getAddress, hexlify, randomBytes } from 'ethers'
import type { Result } from 'ethers'
import { OnchainRequests } from '../../../node/market/onchain-requests.js'
import type { MarketService } from '../../../node/market/service.js'
import type { BidDecision } from '../../../node/market/bid-strategy.js'
import { hubDomain, signOrder, ZERO_ADDRESS, ZERO_BYTES32, type AppOrder, type Bid, type RequestOrder } from '../../../protocols/eip712.js'
import type { ChainEvent } from '../../../node/chain/index.js'

const HUB = getAddress('0x' + '42'.repeat(20))
const domain = hubDomain(31337, HUB)
const DAPP = getAddress('0x' + 'da'.repeat(20))
const APP = getAddress('0x' + 'a0'.repeat(20))
const FEE = 10_000_000n

interface Sent { appOrder: AppOrder, request: RequestOrder, bids: Bid[] }

async function setup (opts: { decision?: BidDecision, consumed?: bigint, appOrders?: Array<Partial<AppOrder>> } = {}): Promise<{ on: OnchainRequests, sent: Sent[], presigned: Bid[], wait: () => Promise<void>, me: string }> {
  const signer = Wallet.createRandom()
  const appOwner = Wallet.createRandom()
  const sent: Sent[] = []
  const presigned: Bid[] = []
  const tracked: Array<Promise<unknown>> = []
  const entries = await Promise.all((opts.appOrders ?? [{}]).map(async (o) => {
    const order = await signOrder(appOwner, domain, 'AppOrder', {
      app: APP, appprice: 0n, volume: 100n, tag: ZERO_BYTES32, datasetrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: hexlify(randomBytes(32)), ...o
    })
    const { sign, ...rest } = order
    return { type: 'apporder', hash: hexlify(randomBytes(32)), message: { order: rest, sign }, remaining: 100n }
  }))
  const market = {
    started: true,
    address: signer.address,
    signer,
    domain,
    options: { onchainMatchFee: FEE, onchainMatchJitterMs: 1, bidTtlSeconds: 3600 },
    provider: { decide: async () => opts.decision ?? { bid: true, code: 'OK', reason: 'ok', price: 50_000_000n, volume: 1n } },
    book: { query: async (q: { type: string }) => q.type === 'apporder' ? entries : [] },
    hub: {
      consumedOf: async () => opts.consumed ?? 0n,
      presignBid: { populateTransaction: async (b: Bid) => { presigned.push(b); return { to: HUB, data: '0x' } } },
      matchOrders: { populateTransaction: async (appOrder: AppOrder, _d: unknown, request: RequestOrder, bids: Bid[]) => { sent.push({ appOrder, request, bids }); return { to: HUB, data: '0x' } } }
    },
    chain: { sender: { estimateGas: async () => 300_000n, send: async () => ({ hash: '0x' + '77'.repeat(32) }) } },
    track: (p: Promise<unknown>) => { tracked.push(p) }
  } as unknown as MarketService
  const on = new OnchainRequests(market, () => {})
  // tracked work may track more (a gathered match): wait until nothing new comes
  const wait = async (): Promise<void> => {
    for (let done = 0; done < tracked.length;) {
      const n = tracked.length
      await Promise.all(tracked.slice(done))
      done = n
    }
  }
  return { on, sent, presigned, me: signer.address, wait }
}

function request (over: Partial<RequestOrder> = {}): RequestOrder {
  return {
    app: APP, appmaxprice: 0n, dataset: ZERO_ADDRESS, datasetmaxprice: 0n, workerpool: ZERO_ADDRESS, workerpoolmaxprice: 100_000_000n,
    requester: DAPP, volume: 1n, tag: ZERO_BYTES32, category: 0n, trust: 1n, beneficiary: DAPP, callback: DAPP, params: '{"iexec_args":"10"}', salt: ZERO_BYTES32, ...over
  }
}

function event (r: RequestOrder, hash = hexlify(randomBytes(32))): ChainEvent {
  return { name: 'RequestOrderPublished', args: { requestHash: hash, requester: r.requester, order: r as unknown as Result } as unknown as Result, address: HUB, blockNumber: 1, blockHash: ZERO_BYTES32, logIndex: 0, transactionHash: ZERO_BYTES32, topics: [], data: '0x' }
}

describe('market: on-chain requests (a provider matches them itself)', () => {
  it('matches a trust-1 request with its own bid at its price plus the match fee, the request as published, unsigned', async () => {
    const t = await setup()
    const r = request()
    t.on.onHubEvent(event(r))
    await t.wait()
    assert.equal(t.sent.length, 1)
    assert.deepEqual({ ...t.sent[0].request }, { ...r, sign: '0x' })
    assert.equal(t.sent[0].bids.length, 1)
    assert.equal(t.sent[0].bids[0].worker, t.me)
    assert.equal(t.sent[0].bids[0].price, 50_000_000n + FEE)
    assert.equal(t.on.records.at(-1)?.outcome, 'matched')
  })

  it('the fee never takes the price over the request\'s max; a price over the max is a decline', async () => {
    const capped = await setup({ decision: { bid: true, code: 'OK', reason: 'ok', price: 95_000_000n, volume: 1n } })
    capped.on.onHubEvent(event(request()))
    await capped.wait()
    assert.equal(capped.sent[0].bids[0].price, 100_000_000n)
    const over = await setup({ decision: { bid: true, code: 'OK', reason: 'ok', price: 150_000_000n, volume: 1n } })
    over.on.onHubEvent(event(request()))
    await over.wait()
    assert.equal(over.sent.length, 0)
    assert.equal(over.on.records.at(-1)?.outcome, 'declined')
  })

  it('leaves alone: trust 0, a request restricted to another worker, a strategy\'s no, a consumed request, an event seen before', async () => {
    const t = await setup({ decision: { bid: false, code: 'NO_CAPACITY', reason: 'busy' } })
    t.on.onHubEvent(event(request({ trust: 0n })))
    t.on.onHubEvent(event(request({ workerpool: getAddress('0x' + '99'.repeat(20)) })))
    t.on.onHubEvent(event(request()))
    await t.wait()
    assert.equal(t.sent.length, 0)
    assert.deepEqual(t.on.records.map((r) => r.outcome), ['skipped', 'skipped', 'declined'])
    const consumed = await setup({ consumed: 1n })
    consumed.on.onHubEvent(event(request()))
    await consumed.wait()
    assert.equal(consumed.sent.length, 0)
    const twice = await setup()
    const e = event(request())
    twice.on.onHubEvent(e)
    twice.on.onHubEvent(e)
    await twice.wait()
    assert.equal(twice.sent.length, 1)
  })

  it('trust 3: presigns its bid on chain, gathers the published bids, matches the cheapest n + 1 once 2 are in', async () => {
    const t = await setup()
    const r = request({ trust: 3n })
    const hash = hexlify(randomBytes(32))
    t.on.onHubEvent(event(r, hash))
    await t.wait()
    assert.equal(t.sent.length, 0, 'no match on one bid')
    assert.equal(t.presigned.length, 1)
    assert.equal(t.presigned[0].price, 50_000_000n + FEE)
    assert.equal(t.on.records.at(-1)?.outcome, 'bid')
    const published = (b: Bid): ChainEvent => ({ ...event(r), name: 'BidPublished', args: { requestHash: hash, bidHash: hexlify(randomBytes(32)), bid: b as unknown as Result } as unknown as Result })
    const other = (price: bigint, worker = Wallet.createRandom().address): Bid => ({ requestHash: hash, worker, price, volume: 1n, salt: hexlify(randomBytes(32)) })
    // not counted: a price over the request's max, a bid for another request, a second bid of one worker
    t.on.onHubEvent(published(other(200_000_000n)))
    t.on.onHubEvent(published({ ...other(1n), requestHash: hexlify(randomBytes(32)) }))
    t.on.onHubEvent(published(t.presigned[0]))
    t.on.onHubEvent(published({ ...t.presigned[0], salt: hexlify(randomBytes(32)) }))
    await t.wait()
    assert.equal(t.sent.length, 0, 'still one counted bid')
    const cheap = other(20_000_000n)
    t.on.onHubEvent(published(cheap))
    t.on.onHubEvent(published(other(90_000_000n)))
    t.on.onHubEvent(published(other(80_000_000n)))
    await t.wait()
    assert.equal(t.sent.length, 1, 'one match')
    // two bids were in when the match started; the cheapest need + 1 of those gathered by then
    assert.deepEqual(t.sent[0].bids.map((b) => b.price), [20_000_000n, 60_000_000n])
    assert.equal(t.sent[0].bids[0].worker, cheap.worker)
    assert.equal(t.on.records.at(-1)?.outcome, 'matched')
  })

  it('picks the cheapest app order the hub would accept for this requester and max price', async () => {
    const other = getAddress('0x' + '33'.repeat(20))
    const t = await setup({
      appOrders: [
        { appprice: 0n, requesterrestrict: other }, // not for this DApp
        { appprice: 5n }, // over the request's app max price
        { appprice: 2n, salt: '0x' + '01'.repeat(32) },
        { appprice: 1n, requesterrestrict: DAPP, salt: '0x' + '02'.repeat(32) }
      ]
    })
    t.on.onHubEvent(event(request({ appmaxprice: 3n })))
    await t.wait()
    assert.equal(t.sent.length, 1)
    assert.equal(t.sent[0].appOrder.appprice, 1n)
    const none = await setup({ appOrders: [{ appprice: 5n }] })
    none.on.onHubEvent(event(request({ appmaxprice: 3n })))
    await none.wait()
    assert.equal(none.sent.length, 0)
    assert.equal(none.on.records.at(-1)?.outcome, 'skipped')
  })

  it('ignores other events and an order that does not decode, without throwing', async () => {
    const t = await setup()
    t.on.onHubEvent({ ...event(request()), name: 'DealCreated' })
    t.on.onHubEvent({ ...event(request()), args: { requestHash: '0x' + '01'.repeat(32), order: { app: 'not an address' } } as unknown as Result })
    await t.wait()
    assert.equal(t.sent.length, 0)
    assert.deepEqual(t.on.records.map((r) => r.outcome), ['skipped'])
  })
})
