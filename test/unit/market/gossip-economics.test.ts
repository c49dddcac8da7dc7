// Gossip economics, module by module: requesters' balances from the hub's
// events (no read for an account no event named, one rare read for a known
// one), the per-peer rate limit, offence counters, bans kept in level by peer
// id and address, the funded-request and banned-signer rules, and the
// orderbook's size cap with its eviction rule.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet, hexlify, randomBytes } from 'ethers'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { DbController } from '../../../node/db/index.js'
import type { ChainEvent } from '../../../node/chain/index.js'
import { HubBalances } from '../../../node/market/balances.js'
import { BanList, OffenceCounter, PeerRateLimiter } from '../../../node/market/bans.js'
import { Orderbook } from '../../../node/market/orderbook.js'
import { GossipValidationStats, runGossipValidation } from '../../../node/market/gossip-adapter.js'
import { validateMarketGossip } from '../../../node/market/validation.js'
import type { ValidatedOrder } from '../../../node/market/validation.js'
import { isGossipValidationError } from '../../../node/market/errors.js'
import { FakeChain, appOrder, bid, requestOrder, requester, signedAppOrderBytes, signedBidBytes, signedRequestBytes, worker } from './fixture.js'

const ev = (name: string, args: Record<string, unknown>): ChainEvent => ({ name, args } as unknown as ChainEvent)

describe('market: gossip economics', function () {
  const cleanup: Array<() => Promise<void>> = []
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-economics-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
  })
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function openDb (): Promise<DbController> {
    const db = new DbController({ path: join(dir, 'db') })
    await db.open()
    cleanup.push(async () => { await db.close() })
    return db
  }

  describe('balances from the hub\'s events', () => {
    it('deposit, withdraw, stake, unstake and a deal\'s frozen payment move the estimate; persisted across a reopen', async () => {
      const db = await openDb()
      let reads = 0
      const b = new HubBalances(db, { read: async () => { reads++; return 0n } })
      const a = requester.address
      await b.apply(ev('Deposit', { account: a, amount: 1000n }))
      await b.apply(ev('Withdraw', { account: a, amount: 100n }))
      await b.apply(ev('Staked', { account: a, amount: 200n }))
      await b.apply(ev('Unstaked', { account: a, amount: 50n }))
      await b.apply(ev('DealCreated', { requester: a, info: { volume: 2n, appPrice: 10n, datasetPrice: 20n, workerPrice: 70n } }))
      assert.equal(b.estimate(a), 1000n - 100n - 200n + 50n - 200n)
      assert.equal(await b.covers(a, 550n), true)
      assert.equal(reads, 0, 'covered by the events alone')
      await db.close()
      cleanup.pop()
      const db2 = await openDb()
      const b2 = new HubBalances(db2, { read: async () => { reads++; return 0n } })
      await b2.load()
      assert.equal(b2.estimate(a), 550n)
    })

    it('fresh keys cost at most readsPerSecond reads a second, all together; an empty balance covers nothing, not even a free request', async () => {
      const db = await openDb()
      let now = 5_000_000
      let reads = 0
      const b = new HubBalances(db, { read: async () => { reads++; return 0n }, readsPerSecond: 5, now: () => now })
      for (let i = 0; i < 200; i++) assert.equal(await b.covers(new Wallet(hexlify(randomBytes(32))).address, 0n), false)
      assert.equal(reads, 5, 'one second\'s budget')
      now += 1000
      for (let i = 0; i < 200; i++) await b.covers(new Wallet(hexlify(randomBytes(32))).address, 0n)
      assert.equal(reads, 10)
    })

    it('a request right after a deposit the follower has not applied yet: one read finds it', async () => {
      const db = await openDb()
      let reads = 0
      const b = new HubBalances(db, { read: async () => { reads++; return 100n } })
      assert.equal(await b.covers(requester.address, 60n), true)
      assert.equal(reads, 1)
      assert.equal(await b.covers(requester.address, 60n), true, 'now from the estimate')
      assert.equal(reads, 1)
    })

    it('a known account short by the events is read once per refresh period (an asset owner earns without depositing)', async () => {
      const db = await openDb()
      let now = 1_000_000
      let reads = 0
      const owner = worker.address
      const b = new HubBalances(db, { read: async () => { reads++; return 500n }, refreshMs: 30_000, now: () => now })
      await b.apply(ev('AppRegistered', { owner, app: owner }))
      assert.equal(b.estimate(owner), 0n)
      assert.equal(await b.covers(owner, 400n), true, 'the read shows its earnings')
      assert.equal(reads, 1)
      assert.equal(await b.covers(owner, 600n), false)
      assert.equal(reads, 1, 'not read again within the refresh period')
      now += 30_000
      assert.equal(await b.covers(owner, 600n), false)
      assert.equal(reads, 2)
    })
  })

  describe('rate limit and offences', () => {
    it('a peer gets its burst, then its rate; another peer has its own bucket', () => {
      let now = 0
      const l = new PeerRateLimiter(10, 5, 100, () => now)
      for (let i = 0; i < 5; i++) assert.equal(l.take('a'), true)
      assert.equal(l.take('a'), false)
      assert.equal(l.take('b'), true)
      now += 100 // one token back at 10/s
      assert.equal(l.take('a'), true)
      assert.equal(l.take('a'), false)
    })

    it('an offence counter calls its handler once, at the limit', () => {
      const hits: string[] = []
      const c = new OffenceCounter(3, (k) => { hits.push(k) })
      for (let i = 0; i < 10; i++) c.record('x')
      c.record('y')
      assert.deepEqual(hits, ['x'])
      assert.equal(c.count('x'), 10)
    })

    it('bans by peer id and by address survive a reopen of the store', async () => {
      const db = await openDb()
      const bans = new BanList(db)
      await bans.load()
      await bans.banPeer('12D3KooWflooder', 'spam')
      await bans.banAddress(requester.address, 'signer')
      assert.equal(bans.isPeerBanned('12D3KooWflooder'), true)
      assert.equal(bans.isAddressBanned(requester.address.toLowerCase()), true)
      await db.close()
      cleanup.pop()
      const again = new BanList(await openDb())
      assert.equal(again.isPeerBanned('12D3KooWflooder'), false, 'not before load')
      await again.load()
      assert.equal(again.isPeerBanned('12D3KooWflooder'), true)
      assert.equal(again.isAddressBanned(requester.address), true)
      assert.equal(again.isPeerBanned('12D3KooWother'), false)
    })
  })

  describe('validation rules', () => {
    it('an unfunded request is GOSSIP_UNFUNDED (IGNORE), counted against the relaying peer and its signer; a funded one passes', async () => {
      const chain = new FakeChain()
      const funded = new Map<string, bigint>()
      const ctx = { ...chain.context(), balances: { covers: async (a: string, cost: bigint) => (funded.get(a.toLowerCase()) ?? 0n) >= cost && (funded.get(a.toLowerCase()) ?? 0n) > 0n } }
      const spam = new OffenceCounter(100, () => {})
      const signers = new OffenceCounter(100, () => {})
      const stats = new GossipValidationStats()
      const order = requestOrder({ volume: 3n, appmaxprice: 1n, workerpoolmaxprice: 5n })
      const bytes = await signedRequestBytes(order)
      const verdict = await runGossipValidation({ type: 'requestorder', ctx, stats, spam, signerOffences: signers }, bytes, 'relay')
      assert.equal(verdict, TopicValidatorResult.Ignore)
      assert.equal(stats.get('requestorder', 'ignore', 'GOSSIP_UNFUNDED'), 1)
      assert.equal(spam.count('relay'), 1)
      assert.equal(signers.count(requester.address.toLowerCase()), 1)
      // 3 tasks x (1 + 0 + 5): one nRLC short, then enough
      funded.set(requester.address.toLowerCase(), 17n)
      await assert.rejects(validateMarketGossip('requestorder', bytes, ctx), (e) => isGossipValidationError(e, 'GOSSIP_UNFUNDED'))
      funded.set(requester.address.toLowerCase(), 18n)
      const v = await validateMarketGossip('requestorder', bytes, ctx)
      assert.equal(v.signer.toLowerCase(), requester.address.toLowerCase())
    })

    it('an order signed by a banned address is GOSSIP_BANNED_SIGNER, whoever relays it; others pass', async () => {
      const chain = new FakeChain()
      const ctx = { ...chain.context(), bannedSigner: (a: string) => a.toLowerCase() === worker.address.toLowerCase() }
      const r = requestOrder()
      const h = chain.holdRequest(r)
      await assert.rejects(validateMarketGossip('bid', await signedBidBytes(bid(h)), ctx), (e) => isGossipValidationError(e, 'GOSSIP_BANNED_SIGNER'))
      await validateMarketGossip('apporder', await signedAppOrderBytes(appOrder()), ctx)
    })
  })

  describe('orderbook size cap', () => {
    async function validated (bytes: Uint8Array, chain: FakeChain, type: 'requestorder' | 'apporder'): Promise<ValidatedOrder> {
      return await validateMarketGossip(type, bytes, chain.context()) as ValidatedOrder
    }

    it('a full book evicts the oldest-received request, never an app order nor our own; evicted copies stay out', async () => {
      const chain = new FakeChain()
      const db = await openDb()
      const own = new Wallet(hexlify(randomBytes(32)))
      const book = new Orderbook(db, { maxOrders: 3, ownSigner: own.address })
      const app = await validated(await signedAppOrderBytes(appOrder()), chain, 'apporder')
      const mine = await validated(await signedRequestBytes(requestOrder({ requester: own.address }), own), chain, 'requestorder')
      const first = await validated(await signedRequestBytes(requestOrder()), chain, 'requestorder')
      assert.equal(await book.add(app, 1), true)
      assert.equal(await book.add(mine, 2), true)
      assert.equal(await book.add(first, 3), true)
      const second = await validated(await signedRequestBytes(requestOrder()), chain, 'requestorder')
      assert.equal(await book.add(second, 4), true)
      assert.equal(await book.size(), 3)
      assert.equal(await book.get(first.hash), undefined, 'the oldest request not ours went')
      assert.equal(await book.dropped(first.hash), 'evicted')
      assert.ok(await book.get(app.hash) !== undefined, 'the app order stays')
      assert.ok(await book.get(mine.hash) !== undefined, 'our own request stays')
      assert.equal(book.evictions, 1)
      assert.equal(await book.add(first, 5), false, 'an evicted order is not taken back in')
      // only an app order and our own left to evict: a new request is refused
      const book2 = new Orderbook(await (async () => { const d = new DbController({ path: join(dir, 'db2') }); await d.open(); cleanup.push(async () => { await d.close() }); return d })(), { maxOrders: 2, ownSigner: own.address })
      assert.equal(await book2.add(app, 1), true)
      assert.equal(await book2.add(mine, 2), true)
      assert.equal(await book2.add(second, 3), false)
    })
  })
})
