import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DbController } from '../../../node/db/index.js'
import { Orderbook, bookFirstOrderState, marketEventFromHubLog } from '../../../node/market/orderbook.js'
import { validateMarketGossip } from '../../../node/market/validation.js'
import type { ValidatedOrder } from '../../../node/market/validation.js'
import { isIexecError } from '../../../node/common/errors.js'
import { decodeMarketMessage } from '../../../protocols/market.js'
import { ZERO_ADDRESS, hashOrder } from '../../../protocols/eip712.js'
import {
  APP, DATASET, FakeChain, NOW, appOrder, appOwner, bid, datasetOrder, domain, mallory, requestOrder, requester, salt,
  signedAppOrderBytes, signedBidBytes, signedDatasetOrderBytes, signedRequestBytes
} from './fixture.js'

const OTHER_APP = '0x3333333333333333333333333333333333333333'

describe('market: orderbook', function () {
  const cleanup: Array<() => Promise<void>> = []
  let dir: string
  let chain: FakeChain

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-orderbook-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
    chain = new FakeChain()
    chain.owners.set(`app:${OTHER_APP}`, appOwner.address)
  })
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function open (): Promise<{ db: DbController, book: Orderbook }> {
    const db = new DbController({ path: join(dir, 'db') })
    await db.open()
    cleanup.push(async () => { await db.close() })
    return { db, book: new Orderbook(db, { clock: { nowSeconds: () => chain.now } }) }
  }

  async function valid (type: 'apporder' | 'datasetorder' | 'requestorder' | 'bid', bytes: Uint8Array): Promise<ValidatedOrder> {
    return await validateMarketGossip(type, bytes, chain.context()) as ValidatedOrder
  }

  /** A small market: 2 app orders (2 apps), 1 dataset order, 3 requests (2 requesters, 2 categories), 2 bids on the first request. */
  async function fill (book: Orderbook): Promise<Record<string, ValidatedOrder>> {
    const r1o = requestOrder({ category: 0n })
    const r1 = await valid('requestorder', await signedRequestBytes(r1o))
    chain.holdRequest(r1o)
    const v: Record<string, ValidatedOrder> = {
      a1: await valid('apporder', await signedAppOrderBytes(appOrder())),
      a2: await valid('apporder', await signedAppOrderBytes(appOrder({ app: OTHER_APP }))),
      d1: await valid('datasetorder', await signedDatasetOrderBytes(datasetOrder())),
      r1,
      r2: await valid('requestorder', await signedRequestBytes(requestOrder({ category: 1n, dataset: DATASET }))),
      r3: await valid('requestorder', await signedRequestBytes(requestOrder({ requester: mallory.address, beneficiary: mallory.address, app: OTHER_APP }), mallory)),
      b1: await valid('bid', await signedBidBytes(bid(r1.hash))),
      b2: await valid('bid', await signedBidBytes(bid(r1.hash, { worker: mallory.address }), mallory))
    }
    for (const x of Object.values(v)) assert.equal(await book.add(x), true)
    return v
  }

  const hashes = (es: Array<{ hash: string }>): string[] => es.map((e) => e.hash).sort()

  it('indexes by type, app, dataset, category, requester and request, and combines filters', async () => {
    const { book } = await open()
    const v = await fill(book)
    assert.deepEqual(hashes(await book.query({ type: 'apporder' })), hashes([v.a1!, v.a2!]))
    assert.deepEqual(hashes(await book.query({ type: 'apporder', app: APP })), [v.a1!.hash])
    assert.deepEqual(hashes(await book.query({ app: APP.toUpperCase().replace('0X', '0x') })), hashes([v.a1!, v.r1!, v.r2!]), 'app matches app orders and requests, in any case')
    assert.deepEqual(hashes(await book.query({ dataset: DATASET })), hashes([v.d1!, v.r2!]))
    assert.deepEqual(hashes(await book.query({ category: 1 })), [v.r2!.hash])
    assert.deepEqual(hashes(await book.query({ type: 'requestorder', category: 0n })), hashes([v.r1!, v.r3!]))
    assert.deepEqual(hashes(await book.query({ requester: requester.address })), hashes([v.r1!, v.r2!]))
    assert.deepEqual(hashes(await book.query({ requester: mallory.address, app: OTHER_APP })), [v.r3!.hash])
    assert.deepEqual(hashes(await book.query({ requestHash: v.r1!.hash })), hashes([v.b1!, v.b2!]))
    assert.equal((await book.query()).length, 8)
    assert.equal((await book.query({ limit: 3 })).length, 3)
    const e = await book.get(v.r2!.hash)
    assert.equal(e?.message.type, 'requestorder')
    assert.equal(e?.signer, requester.address)
    assert.equal(e?.remaining, 1n)
    assert.deepEqual(decodeMarketMessage(e!.wire, 'requestorder'), e?.message, 'the stored wire decodes to the same order')
    await assert.rejects(book.query({ limit: 0 }), (err: unknown) => isIexecError(err, 'MARKET_BAD_QUERY'))
    await assert.rejects(book.query({ category: -1 }), (err: unknown) => isIexecError(err, 'MARKET_BAD_QUERY'))
  })

  it('does not take an order twice, nor back after it was dropped', async () => {
    const { book } = await open()
    const v = await fill(book)
    assert.equal(await book.add(v.a1!), false)
    assert.equal(await book.drop(v.a1!.hash, 'cancelled'), true)
    assert.equal(await book.add(v.a1!), false, 'a tombstone keeps late gossip out')
    assert.equal(await book.dropped(v.a1!.hash), 'cancelled')
    assert.deepEqual(await book.knownState(v.a1!.hash), { cancelled: true })
  })

  it('drops cancelled orders from hub events and gossip cancels; a dead request takes its bids along', async () => {
    const { book } = await open()
    const v = await fill(book)
    await book.applyHubEvent({ name: 'OrderCancelled', orderHash: v.d1!.hash })
    assert.equal(await book.get(v.d1!.hash), undefined)
    await book.applyCancel({ message: { v: 1, type: 'cancel', chainId: 31337n, hub: ZERO_ADDRESS, proof: { kind: 'onchain', orderHash: v.r1!.hash } }, orderHash: v.r1!.hash })
    assert.equal(await book.get(v.r1!.hash), undefined)
    assert.deepEqual(await book.query({ requestHash: v.r1!.hash }), [], 'its bids are gone')
    assert.equal(await book.dropped(v.b1!.hash), 'cancelled')
    assert.equal(await book.requestOrder(v.r1!.hash), undefined)
    assert.equal((await book.requestOrder(v.r2!.hash))?.category, 1n)
  })

  it('shrinks and drops orders consumed by deals (DealCreated)', async () => {
    const { book } = await open()
    const big = await valid('requestorder', await signedRequestBytes(requestOrder({ volume: 5n })))
    await book.add(big)
    const a = await valid('apporder', await signedAppOrderBytes(appOrder({ volume: 2n })))
    await book.add(a)
    // without consumedOf: the request's consumption grows by the deal's volume
    await book.applyHubEvent({ name: 'DealCreated', dealid: '0x' + '01'.repeat(32), requestHash: big.hash, app: APP, dataset: ZERO_ADDRESS, volume: 2n, workers: [] })
    assert.equal((await book.get(big.hash))?.remaining, 3n)
    assert.deepEqual(await book.knownState(big.hash), { consumed: 2n })
    // with consumedOf: the hub's numbers, for the request and every app order of the deal's app
    const consumed = new Map([[big.hash, 5n], [a.hash, 2n]])
    await book.applyHubEvent({ name: 'DealCreated', dealid: '0x' + '02'.repeat(32), requestHash: big.hash, app: APP, dataset: ZERO_ADDRESS, volume: 3n, workers: [] },
      async (h) => consumed.get(h) ?? 0n)
    assert.equal(await book.get(big.hash), undefined)
    assert.equal(await book.dropped(big.hash), 'consumed')
    assert.equal(await book.get(a.hash), undefined)
    assert.equal(await book.setConsumed(a.hash, 1n), false, 'a dropped order is not revived')
  })

  it('takes back a deal a reorg removed: consumption follows the hub down, a consumed request\'s tombstone goes when nothing of it is consumed', async () => {
    const { book } = await open()
    const big = await valid('requestorder', await signedRequestBytes(requestOrder({ volume: 5n })))
    const app = await valid('apporder', await signedAppOrderBytes(appOrder({ volume: 4n })))
    await book.add(big)
    await book.add(app)
    const unheld = '0x' + 'ef'.repeat(32)
    const hub = new Map<string, bigint>([[big.hash, 5n], [app.hash, 3n], [unheld, 1n]])
    const consumedOf = async (h: string): Promise<bigint> => hub.get(h) ?? 0n
    const deal = { name: 'DealCreated' as const, dealid: '0x' + '01'.repeat(32), requestHash: big.hash, app: APP, dataset: ZERO_ADDRESS, volume: 5n, workers: [] }
    const other = { ...deal, dealid: '0x' + '02'.repeat(32), requestHash: unheld, volume: 1n }
    await book.applyHubEvent(deal, consumedOf)
    await book.applyHubEvent(other, consumedOf)
    assert.equal(await book.dropped(big.hash), 'consumed')
    assert.equal((await book.get(app.hash))?.remaining, 1n)
    assert.equal(await book.consumedByDeals(unheld), 1n)
    // the reorg: on the new chain neither deal exists
    hub.clear()
    await book.takeBackHubEvent(deal, consumedOf)
    await book.takeBackHubEvent(other, consumedOf)
    assert.equal((await book.get(app.hash))?.remaining, 4n, 'the app order is whole again')
    assert.equal(await book.dropped(big.hash), undefined, 'the request\'s consumed tombstone is gone')
    assert.equal(await book.add(big), true, 'so a copy of it (gossip, sync) enters the book again')
    assert.equal(await book.consumedByDeals(unheld), 0n, 'the record of a request the book never held follows the hub')
    // a tombstone of a request the hub still has partly consumed stays (the book no longer knows its volume)
    hub.set(big.hash, 5n)
    await book.applyHubEvent(deal, consumedOf)
    hub.set(big.hash, 2n)
    await book.takeBackHubEvent(deal, consumedOf)
    assert.equal(await book.dropped(big.hash), 'consumed')
  })

  it('starts an order at the consumption the validator saw', async () => {
    const { book } = await open()
    const order = appOrder({ volume: 5n })
    chain.states.set(hashOrder(domain, 'AppOrder', order), { consumed: 3n, cancelled: false, presigned: false })
    const v = await valid('apporder', await signedAppOrderBytes(order))
    await book.add(v)
    assert.equal((await book.get(v.hash))?.remaining, 2n)
    assert.equal(await book.add({ ...v, hash: '0x' + 'ee'.repeat(32), consumed: 5n }), false, 'a fully consumed order is not added')
  })

  it('hides expired orders from queries and prunes them', async () => {
    const { book } = await open()
    const soon = await valid('apporder', await signedAppOrderBytes(appOrder({ salt: salt(NOW + 10) })))
    const later = await valid('apporder', await signedAppOrderBytes(appOrder({ salt: salt(NOW + 100) })))
    const never = await valid('apporder', await signedAppOrderBytes(appOrder({ salt: salt(0) })))
    for (const x of [soon, later, never]) await book.add(x)
    assert.equal((await book.query({ type: 'apporder' })).length, 3)
    chain.now = NOW + 50
    assert.deepEqual(hashes(await book.query({ type: 'apporder' })), hashes([later, never]))
    assert.equal(await book.pruneExpired(), 1)
    assert.equal(await book.dropped(soon.hash), 'expired')
    chain.now = NOW + 1000
    assert.equal(await book.pruneExpired(), 1)
    assert.deepEqual(hashes(await book.query({ type: 'apporder' })), [never.hash])
    assert.equal(await book.add(soon), false, 'an expired order is not added')
  })

  it('survives a restart: orders, indexes, consumption and tombstones', async () => {
    const first = await open()
    const v = await fill(first.book)
    await first.book.setConsumed(v.a1!.hash, 4n)
    await first.book.drop(v.r3!.hash, 'cancelled')
    await first.db.close()
    const second = await open()
    assert.equal((await second.book.query()).length, 7)
    assert.deepEqual(hashes(await second.book.query({ requestHash: v.r1!.hash })), hashes([v.b1!, v.b2!]))
    assert.equal((await second.book.get(v.a1!.hash))?.remaining, 6n)
    assert.equal(await second.book.dropped(v.r3!.hash), 'cancelled')
    assert.equal(await second.book.add(v.r3!), false)
  })

  it('pages every live order to a late joiner exactly once, with a cursor', async () => {
    const { book } = await open()
    const v = await fill(book)
    const seen: string[] = []
    let cursor: string | undefined
    for (let pages = 0; pages < 10; pages++) {
      const page = await book.syncPage(['apporder', 'datasetorder', 'requestorder'], 2, cursor)
      for (const m of page.messages) seen.push(JSON.stringify(decodeMarketMessage(m), (_k, x: unknown) => typeof x === 'bigint' ? x.toString() : x))
      assert.ok(page.messages.length <= 2)
      if (page.next === undefined) break
      cursor = page.next
    }
    assert.equal(seen.length, 6, 'two app orders, one dataset order, three requests')
    assert.equal(new Set(seen).size, 6)
    const bidsOnly = await book.syncPage(['bid'], 10)
    assert.equal(bidsOnly.messages.length, 2)
    assert.equal(bidsOnly.next, undefined)
    await assert.rejects(book.syncPage(['apporder'], 2, 'apporder:nothex'), (err: unknown) => isIexecError(err, 'MARKET_BAD_QUERY'))
    void v
  })

  it('forgets old tombstones', async () => {
    const { book } = await open()
    const v = await fill(book)
    await book.drop(v.a1!.hash, 'cancelled')
    // a deal's consumption of a request this book never held ages out with the tombstones
    const unheld = '0x' + 'ef'.repeat(32)
    await book.applyHubEvent({ name: 'DealCreated', dealid: '0x' + 'cc'.repeat(32), requestHash: unheld, app: APP, dataset: ZERO_ADDRESS, volume: 1n, workers: [] })
    assert.equal(await book.consumedByDeals(unheld), 1n)
    assert.equal(await book.pruneTombstones(60_000, Date.now() + 1000), 0)
    assert.equal(await book.pruneTombstones(60_000, Date.now() + 120_000), 2)
    assert.equal(await book.dropped(v.a1!.hash), undefined)
    assert.equal(await book.consumedByDeals(unheld), 0n)
  })

  describe('the validators\' order state (bookFirstOrderState)', () => {
    const ONE_HOUR_MS = 3_600_000
    /** A chain view that counts its reads. */
    function countingChain (consumed = 0n, presigned = false): { consumedOf: (h: string) => Promise<bigint>, presignedOf: (h: string) => Promise<boolean>, reads: string[] } {
      const reads: string[] = []
      return {
        reads,
        consumedOf: async (h) => { reads.push(`consumedOf:${h}`); return consumed },
        presignedOf: async (h) => { reads.push(`presignedOf:${h}`); return presigned }
      }
    }

    it('answers from tombstones before asking the chain', async () => {
      const { book } = await open()
      const chain_ = countingChain(1n, true)
      const state = bookFirstOrderState(book, chain_, { retentionMs: ONE_HOUR_MS, clock: { nowSeconds: () => chain.now } })
      const h = '0x' + 'dd'.repeat(32)
      assert.deepEqual(await state.orderState(h), { consumed: 1n, cancelled: false, presigned: true }, 'no hint: both chain reads')
      assert.equal(chain_.reads.length, 2)
      await book.drop(h, 'cancelled')
      assert.equal((await state.orderState(h)).cancelled, true)
      const c = '0x' + 'de'.repeat(32)
      await book.drop(c, 'consumed')
      assert.equal((await state.orderState(c)).consumed, (1n << 256n) - 1n)
      assert.equal(chain_.reads.length, 2, 'tombstones cost no chain read')
    })

    it('a signed request expiring within the retention: consumed from the deals the book followed, no chain read', async () => {
      const { book } = await open()
      const chain_ = countingChain(7n)
      const state = bookFirstOrderState(book, chain_, { retentionMs: ONE_HOUR_MS, clock: { nowSeconds: () => chain.now } })
      const order = requestOrder({ volume: 3n })
      const h = hashOrder(domain, 'RequestOrder', order).toLowerCase()
      const hint = { kind: 'RequestOrder' as const, order, signed: true, expiresAt: BigInt(NOW + 600) }
      assert.deepEqual(await state.orderState(h, hint), { consumed: 0n, cancelled: false, presigned: false })
      // a deal on a request this book never held: the book remembers what it consumed
      await book.applyHubEvent({ name: 'DealCreated', dealid: '0x' + 'cc'.repeat(32), requestHash: h, app: APP, dataset: ZERO_ADDRESS, volume: 2n, workers: [] })
      assert.equal(await book.consumedByDeals(h), 2n)
      assert.equal((await state.orderState(h, hint)).consumed, 2n)
      assert.deepEqual(chain_.reads, [], 'answered without the chain')
      // an expiry past the retention: the book's record may have been pruned, so the chain answers
      const far = { ...hint, expiresAt: BigInt(NOW + 2 * 3600) }
      assert.equal((await state.orderState(h, far)).consumed, 7n)
      assert.deepEqual(chain_.reads, [`consumedOf:${h}`], 'a signed order never needs its presign read')
      // and a request without expiry goes to the chain as well
      const { expiresAt: _e, ...noExpiry } = hint
      await state.orderState(h, noExpiry)
      assert.equal(chain_.reads.length, 2)
    })

    it('a signed bid on a request in the book with nothing consumed is unconsumed without a chain read; otherwise the chain answers', async () => {
      const { book } = await open()
      const v = await fill(book)
      const chain_ = countingChain(1n)
      let pending = ''
      const state = bookFirstOrderState(book, chain_, { retentionMs: ONE_HOUR_MS, clock: { nowSeconds: () => chain.now }, ownPending: (h) => h === pending })
      const onR1 = bid(v.r1!.hash)
      const hint = { kind: 'Bid' as const, order: onR1, signed: true }
      assert.equal((await state.orderState(hashOrder(domain, 'Bid', onR1), hint)).consumed, 0n)
      assert.deepEqual(chain_.reads, [])
      // a bid on a request the book does not hold: the chain
      const unknown = bid('0x' + 'ab'.repeat(32))
      const uh = hashOrder(domain, 'Bid', unknown)
      assert.equal((await state.orderState(uh, { kind: 'Bid', order: unknown, signed: true })).consumed, 1n)
      assert.deepEqual(chain_.reads, [`consumedOf:${uh}`])
      // unless that request is our own, still on its way into the book
      pending = '0x' + 'ab'.repeat(32)
      assert.equal((await state.orderState(uh, { kind: 'Bid', order: unknown, signed: true })).consumed, 0n)
      assert.equal(chain_.reads.length, 1)
      // a request partly consumed: its bids may be too, so the chain answers
      const partial = await valid('requestorder', await signedRequestBytes(requestOrder({ volume: 4n })))
      assert.equal(await book.add(partial), true)
      assert.equal(await book.setConsumed(partial.hash, 1n), true)
      const onPartial = bid(partial.hash)
      const ph = hashOrder(domain, 'Bid', onPartial)
      assert.equal((await state.orderState(ph, { kind: 'Bid', order: onPartial, signed: true })).consumed, 1n)
      assert.deepEqual(chain_.reads, [`consumedOf:${uh}`, `consumedOf:${ph}`])
    })

    it('a presigned order (no signature) reads both its consumed volume and its presign', async () => {
      const { book } = await open()
      const chain_ = countingChain(0n, true)
      const state = bookFirstOrderState(book, chain_, { retentionMs: ONE_HOUR_MS, clock: { nowSeconds: () => chain.now } })
      const order = appOrder()
      const h = hashOrder(domain, 'AppOrder', order)
      assert.deepEqual(await state.orderState(h, { kind: 'AppOrder', order, signed: false }), { consumed: 0n, cancelled: false, presigned: true })
      assert.deepEqual(chain_.reads.sort(), [`consumedOf:${h}`, `presignedOf:${h}`])
    })
  })
})

describe('market: hub events for the orderbook', function () {
  it('turns real Hub logs (DealCreated, OrderCancelled) into book events, ignores others, refuses broken ones', async () => {
    const { hubInterface } = await import('../../../contracts-abi/index.js')
    const iface = hubInterface()
    const parse = (name: string, values: unknown[]): { name: string, args: unknown } => {
      const frag = iface.getEvent(name)!
      const { data, topics } = iface.encodeEventLog(frag, values)
      const parsed = iface.parseLog({ data, topics })!
      return { name: parsed.name, args: parsed.args }
    }
    const h = '0x' + 'aa'.repeat(32)
    assert.deepEqual(marketEventFromHubLog(parse('OrderCancelled', [h])), { name: 'OrderCancelled', orderHash: h })
    const info = {
      requestHash: '0x' + 'bb'.repeat(32), app: APP, dataset: ZERO_ADDRESS, workers: [requester.address, mallory.address], beneficiary: requester.address,
      callback: ZERO_ADDRESS, params: '', tag: '0x' + '00'.repeat(32), volume: 3n, trust: 1n, category: 0n, appPrice: 1n, datasetPrice: 0n,
      workerPrice: 2n, startTime: 5n, contributionDeadline: 6n, finalDeadline: 7n
    }
    const deal = marketEventFromHubLog(parse('DealCreated', ['0x' + 'cc'.repeat(32), requester.address, requester.address, info]))
    assert.deepEqual(deal, { name: 'DealCreated', dealid: '0x' + 'cc'.repeat(32), requestHash: '0x' + 'bb'.repeat(32), app: APP, dataset: ZERO_ADDRESS, volume: 3n, workers: [requester.address, mallory.address] })
    assert.equal(marketEventFromHubLog(parse('Deposit', [requester.address, 5n])), undefined)
    assert.throws(() => marketEventFromHubLog({ name: 'OrderCancelled', args: { orderHash: 'nope' } }), (err: unknown) => isIexecError(err, 'MARKET_BAD_EVENT'))
    assert.throws(() => marketEventFromHubLog({ name: 'DealCreated', args: {} }), (err: unknown) => isIexecError(err, 'MARKET_BAD_EVENT'))
  })

})
