// Every revert the hub promises, asserted by custom error name (not text).
import assert from 'node:assert/strict'
import { keccak256, toUtf8Bytes } from 'ethers'
import { hubInterface } from '../../contracts-abi/index.js'
import { resultHash, resultSeal, signOrder, hashOrder, taskId, ZERO_BYTES32 } from '../../protocols/eip712.js'
import {
  setupFixture, snapshot, revertTo, send, increaseTime, registerAssets, makeOrders, match, authorize, expectRevert, revertName, salt,
  RLC_UNIT, type Fixture, type AppSetup, type Orders
} from './fixture.js'

const T = 60n
const digestOf = (s: string): string => keccak256(toUtf8Bytes(s))

/** The arguments of a hub custom error, from the revert data wherever ethers put it. */
function revertArgs (err: unknown): unknown[] | undefined {
  const e = err as { revert?: { args?: unknown[] } | null, data?: unknown, info?: { error?: { data?: unknown } } }
  if (e.revert?.args !== undefined) return [...e.revert.args]
  const data = typeof e.data === 'string' ? e.data : e.info?.error?.data
  if (typeof data !== 'string') return undefined
  const parsed = hubInterface().parseError(data)
  return parsed === null ? undefined : [...parsed.args]
}

describe('hub: reverts', function () {
  let f: Fixture
  let assets: AppSetup
  let snap: string

  before(async () => {
    f = await setupFixture()
    assets = await registerAssets(f)
  })
  after(async () => { await f?.chain.stop() })
  beforeEach(async () => { snap = await snapshot(f) })
  afterEach(async () => { await revertTo(f, snap) })

  const tryMatch = async (o: Orders): Promise<unknown> => await f.hub.connect(f.requester).matchOrders(o.appOrder, o.datasetOrder, o.request, o.bids)

  describe('escrow and stake', () => {
    it('withdraw more than the balance: InsufficientBalance; zero amounts: ZeroAmount', async () => {
      await expectRevert(f.hub.connect(f.outsider).withdraw(1n), 'InsufficientBalance')
      await expectRevert(f.hub.connect(f.outsider).deposit(0n), 'ZeroAmount')
      await expectRevert(f.hub.connect(f.outsider).stake(1n), 'InsufficientBalance')
    })

    it('unstake while locked: StakeLocked; nothing requested: NothingToUnstake', async () => {
      const w = f.nodes[0]
      await match(f, await makeOrders(f, assets, { workers: [w], volume: 10n }))
      const s = await f.hub.stakeOf(w.address)
      assert.ok(s.locked > 0n)
      await expectRevert(f.hub.connect(w).requestUnstake(s.amount), 'StakeLocked')
      await expectRevert(f.hub.connect(w).unstake(), 'NothingToUnstake')
      // the free part can leave
      await send(f.hub.connect(w).requestUnstake(s.amount - s.locked))
    })

    it('a worker without enough free stake cannot bid: InsufficientStake', async () => {
      await send(f.hub.connect(f.outsider).deposit(10n * RLC_UNIT))
      await send(f.hub.connect(f.outsider).stake(1n * RLC_UNIT))
      // 30% of 10 RLC for each of 1 task = 3 RLC > 1 RLC staked
      await expectRevert(tryMatch(await makeOrders(f, assets, { workers: [f.outsider] })), 'InsufficientStake')
    })

    it('a requester without the deposit: InsufficientBalance', async () => {
      // 200k tasks at 5 RLC each: twice the requester's deposit
      const o = await makeOrders(f, assets, { volume: 200_000n })
      await expectRevert(tryMatch({ ...o, appOrder: await signOrder(f.appOwner, f.domain, 'AppOrder', { ...o.appOrder, volume: 10n ** 6n }), datasetOrder: await signOrder(f.datasetOwner, f.domain, 'DatasetOrder', { ...o.datasetOrder, volume: 10n ** 6n }), bids: [await signOrder(f.nodes[0], f.domain, 'Bid', { ...o.bids[0], price: 0n, volume: 10n ** 6n })] }), 'InsufficientBalance')
    })

    it('only the owner creates categories; only owners presign or cancel', async () => {
      await expectRevert(f.hub.connect(f.outsider).createCategory('x', 10, 1, 1), 'OwnableUnauthorizedAccount')
      await expectRevert(f.hub.connect(f.admin).createCategory('x', 0, 1, 1), 'BadTimeRef')
      await expectRevert(f.hub.connect(f.outsider).payKitty(), 'OwnableUnauthorizedAccount')
      const o = await makeOrders(f, assets)
      await expectRevert(f.hub.connect(f.outsider).presignAppOrder(o.appOrder), 'NotOwner')
      await expectRevert(f.hub.connect(f.outsider).cancelRequestOrder(o.request), 'NotOwner')
      await expectRevert(f.hub.connect(f.outsider).cancelBid(o.bids[0]), 'NotOwner')
    })
  })

  describe('matchOrders', () => {
    it('bad signature on each order: BadSignature', async () => {
      const o = await makeOrders(f, assets)
      const forged = await signOrder(f.outsider, f.domain, 'AppOrder', o.appOrder)
      await expectRevert(tryMatch({ ...o, appOrder: forged }), 'BadSignature')
      await expectRevert(tryMatch({ ...o, datasetOrder: { ...o.datasetOrder, sign: (await signOrder(f.outsider, f.domain, 'DatasetOrder', o.datasetOrder)).sign } }), 'BadSignature')
      await expectRevert(tryMatch({ ...o, request: { ...o.request, sign: (await signOrder(f.outsider, f.domain, 'RequestOrder', o.request)).sign } }), 'BadSignature')
      await expectRevert(tryMatch({ ...o, bids: [{ ...o.bids[0], sign: (await signOrder(f.outsider, f.domain, 'Bid', o.bids[0])).sign }] }), 'BadSignature')
      // a signed field changed after signing
      await expectRevert(tryMatch({ ...o, appOrder: { ...o.appOrder, appprice: 1n } }), 'BadSignature')
      await expectRevert(tryMatch({ ...o, appOrder: { ...o.appOrder, sign: '0x1234' } }), 'BadSignature')
    })

    it('price above max: PriceAboveMax (app, dataset, bid)', async () => {
      const o = await makeOrders(f, assets, { appprice: 101n * RLC_UNIT })
      await expectRevert(tryMatch(o), 'PriceAboveMax')
      await expectRevert(tryMatch(await makeOrders(f, assets, { datasetprice: 101n * RLC_UNIT })), 'PriceAboveMax')
      await expectRevert(tryMatch(await makeOrders(f, assets, { prices: [101n * RLC_UNIT] })), 'PriceAboveMax')
    })

    it('tag not a subset of the request\'s: TagNotSubset', async () => {
      const o = await makeOrders(f, assets)
      const tag = '0x' + '00'.repeat(31) + '03'
      const appOrder = await signOrder(f.appOwner, f.domain, 'AppOrder', { ...o.appOrder, tag })
      await expectRevert(tryMatch({ ...o, appOrder }), 'TagNotSubset')
    })

    it('restricted party: Restricted (requester, dataset, worker)', async () => {
      const o = await makeOrders(f, assets)
      const a1 = await signOrder(f.appOwner, f.domain, 'AppOrder', { ...o.appOrder, requesterrestrict: f.outsider.address })
      await expectRevert(tryMatch({ ...o, appOrder: a1 }), 'Restricted')
      const a2 = await signOrder(f.appOwner, f.domain, 'AppOrder', { ...o.appOrder, datasetrestrict: f.outsider.address })
      await expectRevert(tryMatch({ ...o, appOrder: a2 }), 'Restricted')
      const d1 = await signOrder(f.datasetOwner, f.domain, 'DatasetOrder', { ...o.datasetOrder, workerpoolrestrict: f.outsider.address })
      await expectRevert(tryMatch({ ...o, datasetOrder: d1 }), 'Restricted')
    })

    it('exhausted volume and replayed orders: VolumeExhausted', async () => {
      const o = await makeOrders(f, assets, { volume: 2n })
      await match(f, o)
      // the same orders again: the request is fully consumed
      await expectRevert(tryMatch(o), 'VolumeExhausted')
      // a cancelled app order cannot be matched
      const o2 = await makeOrders(f, assets)
      await send(f.hub.connect(f.appOwner).cancelAppOrder(o2.appOrder))
      await expectRevert(tryMatch(o2), 'VolumeExhausted')
    })

    it('a cancelled dataset order cannot be matched: VolumeExhausted naming that order; only its owner cancels it', async () => {
      const o = await makeOrders(f, assets)
      const h = hashOrder(f.domain, 'DatasetOrder', o.datasetOrder)
      await expectRevert(f.hub.connect(f.outsider).cancelDatasetOrder(o.datasetOrder), 'NotOwner')
      await send(f.hub.connect(f.datasetOwner).cancelDatasetOrder(o.datasetOrder))
      assert.equal(await f.hub.consumedOf(h), o.datasetOrder.volume, 'cancelling consumes the whole volume')
      const err = await tryMatch(o).then(() => undefined, (e: unknown) => e)
      assert.equal(revertName(err), 'VolumeExhausted')
      // the error names the dataset order, not the app order or the request
      assert.equal(revertArgs(err)?.[0], h)
      // the control: the same app order, request and bids with a live dataset order match
      const fresh = await signOrder(f.datasetOwner, f.domain, 'DatasetOrder', { ...o.datasetOrder, salt: salt() })
      await match(f, { ...o, datasetOrder: fresh })
    })

    it('bids: none, duplicate worker, for another request', async () => {
      const o = await makeOrders(f, assets)
      await expectRevert(tryMatch({ ...o, bids: [] }), 'NotEnoughBids')
      await expectRevert(tryMatch({ ...o, bids: [o.bids[0], o.bids[0]] }), 'DuplicateWorker')
      const other = await makeOrders(f, assets)
      await expectRevert(tryMatch({ ...o, bids: other.bids }), 'BidMismatch')
    })

    it('unknown category, bad trust, app/dataset mismatch', async () => {
      await expectRevert(tryMatch(await makeOrders(f, assets, { category: 9n })), 'UnknownCategory')
      await expectRevert(tryMatch(await makeOrders(f, assets, { trust: 0n })), 'BadTrust')
      await expectRevert(tryMatch(await makeOrders(f, assets, { trust: 256n })), 'BadTrust')
      const o = await makeOrders(f, assets)
      const other = await makeOrders(f, { ...assets, app: f.outsider.address })
      await expectRevert(tryMatch({ ...o, appOrder: other.appOrder }), 'AppMismatch')
      await expectRevert(tryMatch({ ...other, bids: other.bids }), 'UnknownApp')
    })
  })

  describe('tasks', () => {
    it('non-worker contributing: NotDealWorker; wrong scheduler signature: BadAuthorization; double contribution: AlreadyContributed', async () => {
      const [w0, w1, w2] = f.nodes
      const d = await match(f, await makeOrders(f, assets, { workers: [w0, w1, w2], trust: 5n }))
      const taskid = taskId(d.dealid, 0)
      await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
      const dg = digestOf('r')
      const forOut = await authorize(f, d.scheduler, f.outsider.address, d.dealid, 0)
      await expectRevert(f.hub.connect(f.outsider).contribute(taskid, resultHash(taskid, dg), resultSeal(f.outsider.address, taskid, dg), forOut.sign), 'NotDealWorker')
      const notScheduler = f.nodes.find((n) => n.address !== d.scheduler.address) ?? f.outsider
      const wrong = await authorize(f, notScheduler, w0.address, d.dealid, 0)
      await expectRevert(f.hub.connect(w0).contribute(taskid, resultHash(taskid, dg), resultSeal(w0.address, taskid, dg), wrong.sign), 'BadAuthorization')
      // an authorization for another worker or task does not transfer
      const other = await authorize(f, d.scheduler, w1.address, d.dealid, 0)
      await expectRevert(f.hub.connect(w0).contribute(taskid, resultHash(taskid, dg), resultSeal(w0.address, taskid, dg), other.sign), 'BadAuthorization')
      const ok = await authorize(f, d.scheduler, w0.address, d.dealid, 0)
      await send(f.hub.connect(w0).contribute(taskid, resultHash(taskid, dg), resultSeal(w0.address, taskid, dg), ok.sign))
      await expectRevert(f.hub.connect(w0).contribute(taskid, resultHash(taskid, dg), resultSeal(w0.address, taskid, dg), ok.sign), 'AlreadyContributed')
    })

    it('reveal that does not match: BadReveal; finalize before consensus or by a non-scheduler', async () => {
      const [w0, w1, w2] = f.nodes
      const d = await match(f, await makeOrders(f, assets, { workers: [w0, w1, w2], trust: 3n }))
      const taskid = taskId(d.dealid, 0)
      await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
      const dg = digestOf('r')
      const a0 = await authorize(f, d.scheduler, w0.address, d.dealid, 0)
      await send(f.hub.connect(w0).contribute(taskid, resultHash(taskid, dg), resultSeal(w0.address, taskid, dg), a0.sign))
      // one fresh worker is not a consensus at trust 3
      await expectRevert(f.hub.connect(d.scheduler).finalize(taskid, 'cid', '0x'), 'BadTaskStatus')
      await expectRevert(f.hub.connect(w0).reveal(taskid, dg), 'BadTaskStatus')
      const a1 = await authorize(f, d.scheduler, w1.address, d.dealid, 0)
      await send(f.hub.connect(w1).contribute(taskid, resultHash(taskid, dg), resultSeal(w1.address, taskid, dg), a1.sign))
      await expectRevert(f.hub.connect(w0).reveal(taskid, digestOf('other')), 'BadReveal')
      await expectRevert(f.hub.connect(w2).reveal(taskid, dg), 'BadReveal') // never contributed
      await send(f.hub.connect(w0).reveal(taskid, dg))
      await expectRevert(f.hub.connect(w0).reveal(taskid, dg), 'BadReveal') // twice
      // one winner has not revealed yet
      await expectRevert(f.hub.connect(d.scheduler).finalize(taskid, 'cid', '0x'), 'RevealsPending')
      const stranger = f.nodes.find((n) => n.address !== d.scheduler.address) ?? f.outsider
      await send(f.hub.connect(w1).reveal(taskid, dg))
      await expectRevert(f.hub.connect(stranger).finalize(taskid, 'cid', '0x'), 'NotScheduler')
      await send(f.hub.connect(d.scheduler).finalize(taskid, 'cid', '0x'))
    })

    it('a seal made for another worker does not reveal', async () => {
      const [w0] = f.nodes
      const d = await match(f, await makeOrders(f, assets, { workers: [w0] }))
      const taskid = taskId(d.dealid, 0)
      await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
      const dg = digestOf('copied')
      const a0 = await authorize(f, d.scheduler, w0.address, d.dealid, 0)
      // w0 copies someone's commit: the seal binds another address
      await send(f.hub.connect(w0).contribute(taskid, resultHash(taskid, dg), resultSeal(f.outsider.address, taskid, dg), a0.sign))
      await expectRevert(f.hub.connect(w0).reveal(taskid, dg), 'BadReveal')
    })

    it('deadlines: contribution, reveal, final; claim before the deadline: DeadlineNotReached', async () => {
      const [w0] = f.nodes
      const d = await match(f, await makeOrders(f, assets, { workers: [w0], volume: 2n }))
      await expectRevert(f.hub.claim(d.dealid, 0), 'DeadlineNotReached')
      const taskid = taskId(d.dealid, 0)
      await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
      const dg = digestOf('r')
      const a0 = await authorize(f, d.scheduler, w0.address, d.dealid, 0)
      await send(f.hub.connect(w0).contribute(taskid, resultHash(taskid, dg), resultSeal(w0.address, taskid, dg), a0.sign))
      await increaseTime(f, 2n * T)
      await expectRevert(f.hub.connect(w0).reveal(taskid, dg), 'RevealDeadlinePassed')
      await increaseTime(f, 5n * T)
      const a1 = await authorize(f, d.scheduler, w0.address, d.dealid, 1)
      await expectRevert(f.hub.connect(w0).contributeAndFinalize(d.dealid, 1, dg, 'c', a1.sign, '0x'), 'ContributionDeadlinePassed')
      await increaseTime(f, 3n * T)
      await expectRevert(f.hub.connect(d.scheduler).finalize(taskid, 'cid', '0x'), 'FinalDeadlinePassed')
      await send(f.hub.claim(d.dealid, 0))
      await expectRevert(f.hub.claim(d.dealid, 0), 'BadTaskStatus')
      await expectRevert(f.hub.claim(d.dealid, 2), 'BadTaskIndex')
    })

    it('initialize: only the scheduler, once, within the volume; contributeAndFinalize: trust 1 only, once', async () => {
      const [w0, w1] = f.nodes
      const d = await match(f, await makeOrders(f, assets, { workers: [w0], volume: 2n }))
      const stranger = f.nodes.find((n) => n.address !== d.scheduler.address) ?? f.outsider
      await expectRevert(f.hub.connect(stranger).initialize(d.dealid, 0), 'NotScheduler')
      await expectRevert(f.hub.connect(d.scheduler).initialize(d.dealid, 2), 'BadTaskIndex')
      await expectRevert(f.hub.connect(d.scheduler).initialize(ZERO_BYTES32, 0), 'UnknownDeal')
      await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
      await expectRevert(f.hub.connect(d.scheduler).initialize(d.dealid, 0), 'BadTaskStatus')
      const a = await authorize(f, d.scheduler, w0.address, d.dealid, 1)
      await send(f.hub.connect(w0).contributeAndFinalize(d.dealid, 1, digestOf('x'), 'c', a.sign, '0x'))
      await expectRevert(f.hub.connect(w0).contributeAndFinalize(d.dealid, 1, digestOf('x'), 'c', a.sign, '0x'), 'BadTaskStatus')
      await expectRevert(f.hub.connect(d.scheduler).initialize(d.dealid, 1), 'BadTaskStatus')
      const d3 = await match(f, await makeOrders(f, assets, { workers: [w0, w1], trust: 3n }))
      const a3 = await authorize(f, d3.scheduler, w0.address, d3.dealid, 0)
      await expectRevert(f.hub.connect(w0).contributeAndFinalize(d3.dealid, 0, digestOf('x'), 'c', a3.sign, '0x'), 'TrustNotOne')
    })

    it('release: nothing to release before the deadline; reelect after the final deadline: FinalDeadlinePassed', async () => {
      const [w0] = f.nodes
      const d = await match(f, await makeOrders(f, assets, { workers: [w0], volume: 2n }))
      await expectRevert(f.hub.release(d.dealid, w0.address === d.scheduler.address ? f.outsider.address : w0.address), 'NothingToRelease')
      await increaseTime(f, 10n * T)
      await expectRevert(f.hub.reelect(d.dealid), 'FinalDeadlinePassed')
      const h = hashOrder(f.domain, 'AppOrder', (await makeOrders(f, assets)).appOrder)
      assert.equal(await f.hub.consumedOf(h), 0n)
    })
  })
})
