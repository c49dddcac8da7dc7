import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DbController } from '../../../node/db/index.js'
import { Orderbook } from '../../../node/market/orderbook.js'
import { searchOrderbook } from '../../../node/market/order-search.js'
import { validateMarketGossip } from '../../../node/market/validation.js'
import type { ValidatedOrder } from '../../../node/market/validation.js'
import { encodeTags } from '../../../protocols/market.js'
import {
  APP, DATASET, FakeChain, NOW, appOrder, appOwner, bid, datasetOrder, mallory, requestOrder, requester,
  signedAppOrderBytes, signedBidBytes, signedDatasetOrderBytes, signedRequestBytes
} from './fixture.js'

const OTHER_APP = '0x3333333333333333333333333333333333333333'
const OTHER_DATASET = '0x4444444444444444444444444444444444444444'

describe('market: orderbook search by party (orderbook --app/--dataset/--requester)', function () {
  let dir: string
  let db: DbController
  let book: Orderbook
  let chain: FakeChain
  const v: Record<string, ValidatedOrder> = {}

  const valid = async (type: 'apporder' | 'datasetorder' | 'requestorder' | 'bid', bytes: Uint8Array): Promise<ValidatedOrder> =>
    await validateMarketGossip(type, bytes, chain.context()) as ValidatedOrder

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-order-search-'))
    chain = new FakeChain()
    chain.owners.set(`app:${OTHER_APP}`, appOwner.address)
    db = new DbController({ path: join(dir, 'db') })
    await db.open()
    book = new Orderbook(db, { clock: { nowSeconds: () => chain.now } })
    const eu = encodeTags(['region:eu'])
    const r1o = requestOrder()
    const r1 = await valid('requestorder', await signedRequestBytes(r1o))
    chain.holdRequest(r1o)
    Object.assign(v, {
      // app orders of APP: open, for DATASET only, for mallory only, tagged region:eu
      aOpen: await valid('apporder', await signedAppOrderBytes(appOrder())),
      aForD: await valid('apporder', await signedAppOrderBytes(appOrder({ datasetrestrict: DATASET }))),
      aForMallory: await valid('apporder', await signedAppOrderBytes(appOrder({ requesterrestrict: mallory.address }))),
      aEu: await valid('apporder', await signedAppOrderBytes(appOrder({ tag: eu }))),
      aOther: await valid('apporder', await signedAppOrderBytes(appOrder({ app: OTHER_APP }))),
      // dataset orders of DATASET: any app, APP only, OTHER_APP for the requester only
      dAny: await valid('datasetorder', await signedDatasetOrderBytes(datasetOrder())),
      dForApp: await valid('datasetorder', await signedDatasetOrderBytes(datasetOrder({ apprestrict: APP }))),
      dForOtherAndRequester: await valid('datasetorder', await signedDatasetOrderBytes(datasetOrder({ apprestrict: OTHER_APP, requesterrestrict: requester.address }))),
      r1,
      rOther: await valid('requestorder', await signedRequestBytes(requestOrder({ app: OTHER_APP, dataset: DATASET }))),
      b1: await valid('bid', await signedBidBytes(bid(r1.hash)))
    })
    for (const x of Object.values(v)) assert.equal(await book.add(x), true)
  })
  after(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })

  const names = (es: Array<{ hash: string }>): string[] => es.map((e) => Object.keys(v).find((k) => v[k]!.hash === e.hash) ?? e.hash).sort()

  it('--app: the app\'s own orders and requests, and the dataset orders it may use (restricted to it, or to no app unless strict)', async () => {
    assert.deepEqual(names(await searchOrderbook(book, { app: APP })), ['aEu', 'aForD', 'aForMallory', 'aOpen', 'dAny', 'dForApp', 'r1'].sort())
    assert.deepEqual(names(await searchOrderbook(book, { app: APP, strict: true })), ['aEu', 'aForD', 'aForMallory', 'aOpen', 'dForApp', 'r1'].sort())
    assert.deepEqual(names(await searchOrderbook(book, { type: 'datasetorder', app: OTHER_APP, strict: true })), ['dForOtherAndRequester'])
    assert.deepEqual(names(await searchOrderbook(book, { type: 'datasetorder', app: '0x' + '99'.repeat(20), strict: true })), [])
  })

  it('--dataset: its orders and requests, and the app orders restricted to it (or to no dataset unless strict)', async () => {
    assert.deepEqual(names(await searchOrderbook(book, { dataset: DATASET, strict: true })), ['aForD', 'dAny', 'dForApp', 'dForOtherAndRequester', 'rOther'].sort())
    assert.deepEqual(names(await searchOrderbook(book, { type: 'apporder', dataset: OTHER_DATASET })), ['aEu', 'aForMallory', 'aOpen', 'aOther'].sort(), 'the one for DATASET is not usable with another dataset')
  })

  it('--requester: requests it signed, and the app and dataset orders it may use', async () => {
    assert.deepEqual(names(await searchOrderbook(book, { requester: mallory.address, strict: true })), ['aForMallory'])
    assert.deepEqual(names(await searchOrderbook(book, { requester: requester.address, strict: true })), ['dForOtherAndRequester', 'r1', 'rOther'].sort())
    // combined: app orders of APP that mallory may use with no dataset restriction asked
    assert.deepEqual(names(await searchOrderbook(book, { type: 'apporder', app: APP, requester: mallory.address })), ['aEu', 'aForD', 'aForMallory', 'aOpen'].sort())
    assert.deepEqual(names(await searchOrderbook(book, { type: 'datasetorder', app: APP, requester: requester.address })), ['dAny', 'dForApp'].sort(), 'dForOtherAndRequester is for another app')
  })

  it('tags, categories, bids, expiry', async () => {
    assert.deepEqual(names(await searchOrderbook(book, { tagBits: BigInt(encodeTags(['region:eu'])) })), ['aEu'])
    assert.deepEqual(names(await searchOrderbook(book, { category: 0 })), ['r1', 'rOther'].sort(), 'only requests have a category')
    assert.deepEqual(names(await searchOrderbook(book, { type: 'bid' })), ['b1'])
    assert.equal((await searchOrderbook(book, {})).length, Object.keys(v).length)
    // every order of the fixture expires an hour after NOW: past it, none is listed
    chain.now = NOW + 3600
    try {
      assert.deepEqual(await searchOrderbook(book, { app: APP }), [])
    } finally {
      chain.now = NOW
    }
  })
})
