// Success paths of every hub function on a real anvil.
import assert from 'node:assert/strict'
import { keccak256, toUtf8Bytes } from 'ethers'
import { HUB_RATIOS, TaskStatus, ContributionStatus, TaskReader__factory, taskReaderAddress } from '../../contracts-abi/index.js'
import { hashOrder, resultHash, resultSeal, taskId, typeString, ZERO_ADDRESS } from '../../protocols/eip712.js'
import {
  setupFixture, snapshot, revertTo, send, increaseTime, registerAssets, makeOrders, match, authorize, totalRlc, expectRevert, drawnScheduler,
  RLC_UNIT, type Fixture, type AppSetup
} from './fixture.js'

const T = 60n // category 0
const digestOf = (s: string): string => keccak256(toUtf8Bytes(s))

describe('hub: success paths', function () {
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

  /** balance deltas of a set of addresses around `fn` */
  async function deltas (addrs: string[], fn: () => Promise<void>): Promise<Map<string, bigint>> {
    const before = new Map<string, bigint>()
    for (const a of addrs) before.set(a, (await f.hub.accountOf(a))[0])
    await fn()
    const out = new Map<string, bigint>()
    for (const a of addrs) out.set(a, (await f.hub.accountOf(a))[0] - (before.get(a) ?? 0n))
    return out
  }

  it('escrow: deposit, withdraw and the RLC token (9 decimals, mint only by the local deployer)', async () => {
    assert.equal(await f.rlc.decimals(), 9n)
    const [b0] = await f.hub.accountOf(f.outsider.address)
    await send(f.hub.connect(f.outsider).deposit(5n * RLC_UNIT))
    assert.equal((await f.hub.accountOf(f.outsider.address))[0], b0 + 5n * RLC_UNIT)
    await send(f.hub.connect(f.outsider).withdraw(2n * RLC_UNIT))
    assert.equal((await f.hub.accountOf(f.outsider.address))[0], b0 + 3n * RLC_UNIT)
    await expectRevert(f.rlc.connect(f.outsider).mint(f.outsider.address, 1n), 'NotMinter')
    const t = await totalRlc(f)
    assert.equal(t.hubHeld, t.accounted)
  })

  it('registries: apps, datasets and categories', async () => {
    const app = await f.hub.appOf(assets.app)
    assert.equal(app.owner, f.appOwner.address)
    assert.equal(app.cid, 'bafyapp')
    assert.equal(app.name, 'wordcount')
    assert.equal(app.checksum, '0x' + '11'.repeat(32))
    const ds = await f.hub.datasetOf(assets.dataset)
    assert.equal(ds.owner, f.datasetOwner.address)
    assert.equal(await f.hub.categoryCount(), 4n)
    const [timeRef, memoryMiB, diskMiB, name] = await f.hub.categoryOf(0)
    assert.equal(name, 'XS')
    assert.equal(timeRef, T)
    assert.equal(memoryMiB, 256n)
    assert.equal(diskMiB, 64n)
    await send(f.hub.connect(f.admin).createCategory('XXL', 86400, 16384, 65536))
    assert.equal(await f.hub.categoryCount(), 5n)
    const xxl = await f.hub.categoryOf(4)
    assert.deepEqual([xxl.name, xxl.timeRef, xxl.memoryMiB, xxl.diskMiB], ['XXL', 86400n, 16384n, 65536n])
  })

  it('EIP-712: the TypeScript hashes equal the hub\'s for every kind', async () => {
    const o = await makeOrders(f, assets)
    assert.equal(await f.hub.hashAppOrder(o.appOrder), hashOrder(f.domain, 'AppOrder', o.appOrder))
    assert.equal(await f.hub.hashDatasetOrder(o.datasetOrder), hashOrder(f.domain, 'DatasetOrder', o.datasetOrder))
    assert.equal(await f.hub.hashRequestOrder(o.request), o.requestHash)
    assert.equal(await f.hub.hashBid(o.bids[0]), hashOrder(f.domain, 'Bid', o.bids[0]))
    assert.equal(await f.hub.APPORDER_TYPEHASH(), keccak256(toUtf8Bytes(typeString('AppOrder'))))
    assert.equal(await f.hub.DATASETORDER_TYPEHASH(), keccak256(toUtf8Bytes(typeString('DatasetOrder'))))
    assert.equal(await f.hub.REQUESTORDER_TYPEHASH(), keccak256(toUtf8Bytes(typeString('RequestOrder'))))
    assert.equal(await f.hub.BID_TYPEHASH(), keccak256(toUtf8Bytes(typeString('Bid'))))
    assert.equal(await f.hub.AUTHORIZATION_TYPEHASH(), keccak256(toUtf8Bytes(typeString('Authorization'))))
    const tid = taskId('0x' + 'ab'.repeat(32), 3)
    assert.equal(await f.hub.taskId('0x' + 'ab'.repeat(32), 3), tid)
  })

  it('stake: stake, request unstake (out of the draw), cooldown, unstake', async () => {
    const n = f.outsider
    await send(f.hub.connect(n).deposit(100n * RLC_UNIT))
    const total0 = await f.hub.totalStake()
    await send(f.hub.connect(n).stake(40n * RLC_UNIT))
    assert.equal(await f.hub.totalStake(), total0 + 40n * RLC_UNIT)
    await send(f.hub.connect(n).requestUnstake(15n * RLC_UNIT))
    assert.equal(await f.hub.totalStake(), total0 + 25n * RLC_UNIT)
    await expectRevert(f.hub.connect(n).unstake(), 'CooldownNotOver')
    await increaseTime(f, 61)
    const [b0] = await f.hub.accountOf(n.address)
    await send(f.hub.connect(n).unstake())
    assert.equal((await f.hub.accountOf(n.address))[0], b0 + 15n * RLC_UNIT)
    const s = await f.hub.stakeOf(n.address)
    assert.equal(s.amount, 25n * RLC_UNIT)
    assert.equal(s.pending, 0n)
  })

  it('presign and cancel orders', async () => {
    const o = await makeOrders(f, assets)
    const appHash = hashOrder(f.domain, 'AppOrder', o.appOrder)
    await send(f.hub.connect(f.appOwner).presignAppOrder(o.appOrder))
    assert.equal(await f.hub.presignedOf(appHash), true)
    // a presigned order needs no signature
    const d = await match(f, { ...o, appOrder: { ...o.appOrder, sign: '0x' } })
    assert.equal(d.info.volume, 1n)
    await send(f.hub.connect(f.appOwner).cancelAppOrder(o.appOrder))
    assert.equal(await f.hub.consumedOf(appHash), o.appOrder.volume)
    await send(f.hub.connect(f.requester).presignRequestOrder(o.request))
    await send(f.hub.connect(f.datasetOwner).presignDatasetOrder(o.datasetOrder))
    await send(f.hub.connect(f.nodes[0]).presignBid(o.bids[0]))
    await send(f.hub.connect(f.nodes[0]).cancelBid(o.bids[0]))
    await send(f.hub.connect(f.requester).cancelRequestOrder(o.request))
    await send(f.hub.connect(f.datasetOwner).cancelDatasetOrder(o.datasetOrder))
    assert.equal(await f.hub.consumedOf(o.requestHash), o.request.volume)
  })

  it('matchOrders: locks payment and stakes, records workers, elects a staked scheduler, emits DealCreated', async () => {
    const workers = [f.nodes[0], f.nodes[1]]
    const o = await makeOrders(f, assets, { volume: 4n, trust: 3n, workers, prices: [8n * RLC_UNIT, 10n * RLC_UNIT] })
    const [bal0] = await f.hub.accountOf(f.requester.address)
    const stake0 = await f.hub.stakeOf(f.nodes[0].address)
    const d = await match(f, o)
    assert.equal(d.info.volume, 4n)
    assert.equal(d.info.trust, 3n)
    assert.equal(d.info.workerPrice, 10n * RLC_UNIT, 'task price = highest accepted bid')
    // the hub's ratios have no getters (it is at its size limit): HUB_RATIOS mirrors them, checked here
    assert.equal(d.info.contributionDeadline, d.info.startTime + BigInt(HUB_RATIOS.contributionDeadline) * T)
    assert.equal(d.info.finalDeadline, d.info.startTime + BigInt(HUB_RATIOS.finalDeadline) * T)
    assert.deepEqual(d.workers, workers.map((w) => w.address))
    const cost = 4n * (2n + 3n + 10n) * RLC_UNIT
    const [bal1, frozen1] = await f.hub.accountOf(f.requester.address)
    assert.equal(bal0 - bal1, cost)
    assert.equal(frozen1, cost)
    const stake1 = await f.hub.stakeOf(f.nodes[0].address)
    assert.equal(stake1.locked - stake0.locked, 4n * 3n * RLC_UNIT, 'worker stake: 30% of the price per task (the scheduler is not drawn yet)')
    assert.equal(BigInt(HUB_RATIOS.workerStakePercent) * 10n * RLC_UNIT / 100n, 3n * RLC_UNIT, 'HUB_RATIOS.workerStakePercent is the hub\'s')
    assert.ok(f.nodes.some((n) => n.address === d.scheduler.address), 'scheduler is a staker')
    assert.equal(await f.hub.isDealWorker(d.dealid, f.nodes[1].address), true)
    assert.equal(await f.hub.isDealWorker(d.dealid, f.nodes[2].address), false)
    assert.equal(await f.hub.consumedOf(o.requestHash), 4n)
    // pending draw: dealOf shows who the draw elects and nothing locked yet
    const pending = await f.hub.dealOf(d.dealid, { blockTag: 'pending' })
    assert.equal(pending.scheduler, d.scheduler.address)
    assert.equal(pending.schedulerLocked, 0n)
    // its first duty writes the draw and locks its stake: 30% of the price per task
    const sched0 = await f.hub.stakeOf(d.scheduler.address)
    const r = await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
    const drawn = r.logs.map((l) => f.hub.interface.parseLog(l)).find((e) => e?.name === 'SchedulerDrawn')
    assert.equal(drawn?.args.scheduler, d.scheduler.address)
    const deal = await f.hub.dealOf(d.dealid)
    assert.equal(deal.scheduler, d.scheduler.address)
    assert.equal(deal.schedulerLocked, 4n * 3n * RLC_UNIT)
    assert.equal((await f.hub.stakeOf(d.scheduler.address)).locked - sched0.locked, 4n * 3n * RLC_UNIT)
  })

  it('trust 1: contributeAndFinalize settles a task in one transaction (no initialize)', async () => {
    const worker = f.nodes[0]
    const o = await makeOrders(f, assets, { workers: [worker] })
    const d = await match(f, o)
    const { taskid, sign } = await authorize(f, d.scheduler, worker.address, d.dealid, 0)
    const addrs = [...new Set([f.requester.address, f.appOwner.address, f.datasetOwner.address, worker.address, d.scheduler.address])]
    const digest = digestOf('hello world')
    const got = await deltas(addrs, async () => {
      const r = await send(f.hub.connect(worker).contributeAndFinalize(d.dealid, 0, digest, 'bafyresult', sign, '0x'))
      const ev = r.logs.map((l) => f.hub.interface.parseLog(l)).find((e) => e?.name === 'TaskFinalized')
      assert.equal(ev?.args.taskid, taskid)
      assert.equal(ev?.args.resultsCid, 'bafyresult')
      assert.equal(ev?.args.resultHash, resultHash(taskid, digest))
    })
    const want = new Map<string, bigint>(addrs.map((a) => [a, 0n]))
    const add = (a: string, v: bigint): void => { want.set(a, (want.get(a) ?? 0n) + v) }
    add(f.appOwner.address, 2n * RLC_UNIT)
    add(f.datasetOwner.address, 3n * RLC_UNIT)
    add(worker.address, 9n * RLC_UNIT)
    add(d.scheduler.address, 1n * RLC_UNIT)
    assert.deepEqual(got, want)
    assert.equal((await f.hub.accountOf(f.requester.address))[1], 0n, 'nothing stays frozen')
    assert.equal(await f.hub.taskStatus(d.dealid, 0), BigInt(TaskStatus.COMPLETED))
    // stakes come back: the scheduler's at once (all tasks done), the worker's after the final deadline
    const locked0 = (await f.hub.stakeOf(d.scheduler.address)).locked
    await send(f.hub.release(d.dealid, d.scheduler.address))
    assert.equal((await f.hub.stakeOf(d.scheduler.address)).locked, locked0 - 3n * RLC_UNIT)
    await increaseTime(f, 10n * T)
    await send(f.hub.release(d.dealid, worker.address))
    assert.equal((await f.hub.stakeOf(worker.address)).locked, 0n)
    const t = await totalRlc(f)
    assert.equal(t.hubHeld, t.accounted)
  })

  it('a bag of tasks: every task of a deal finalized by contributeAndFinalize', async () => {
    const worker = f.nodes[1]
    const d = await match(f, await makeOrders(f, assets, { workers: [worker], volume: 5n }))
    for (let i = 0; i < 5; i++) {
      const { sign } = await authorize(f, d.scheduler, worker.address, d.dealid, i)
      await send(f.hub.connect(worker).contributeAndFinalize(d.dealid, i, digestOf(`r${i}`), `cid${i}`, sign, '0x'))
    }
    const deal = await f.hub.dealOf(d.dealid)
    assert.equal(deal.done, 5n)
    assert.equal(deal.initialized, 5n)
    assert.equal((await f.hub.accountOf(f.requester.address))[1], 0n)
  })

  it('multicall: a worker closes several tasks of a bag in one transaction, paid as by one call each', async () => {
    const worker = f.nodes[1]
    const d = await match(f, await makeOrders(f, assets, { workers: [worker], volume: 3n }))
    const calls: string[] = []
    for (let i = 0; i < 3; i++) {
      const { sign } = await authorize(f, d.scheduler, worker.address, d.dealid, i)
      calls.push(f.hub.interface.encodeFunctionData('contributeAndFinalize', [d.dealid, i, digestOf(`r${i}`), `cid${i}`, sign, '0x']))
    }
    const addrs = [...new Set([f.requester.address, f.appOwner.address, f.datasetOwner.address, worker.address, d.scheduler.address])]
    const got = await deltas(addrs, async () => {
      const r = await send(f.hub.connect(worker).multicall(calls))
      const finalized = r.logs.map((l) => f.hub.interface.parseLog(l)).filter((e) => e?.name === 'TaskFinalized')
      assert.deepEqual(finalized.map((e) => e?.args.taskid), [0, 1, 2].map((i) => taskId(d.dealid, i)), 'one TaskFinalized per call, in order')
      assert.deepEqual(finalized.map((e) => e?.args.resultsCid), ['cid0', 'cid1', 'cid2'])
    })
    const want = new Map<string, bigint>(addrs.map((a) => [a, 0n]))
    const add = (a: string, v: bigint): void => { want.set(a, (want.get(a) ?? 0n) + v) }
    add(f.appOwner.address, 3n * 2n * RLC_UNIT)
    add(f.datasetOwner.address, 3n * 3n * RLC_UNIT)
    add(worker.address, 3n * 9n * RLC_UNIT)
    add(d.scheduler.address, 3n * 1n * RLC_UNIT)
    assert.deepEqual(got, want, 'each call paid its task: the caller is the worker (msg.sender kept)')
    const deal = await f.hub.dealOf(d.dealid)
    assert.equal(deal.done, 3n)
    assert.equal((await f.hub.accountOf(f.requester.address))[1], 0n)
    const t = await totalRlc(f)
    assert.equal(t.hubHeld, t.accounted)
  })

  it('multicall: all or nothing, with the failing call\'s own error; the caller stays the sender', async () => {
    const worker = f.nodes[1]
    const d = await match(f, await makeOrders(f, assets, { workers: [worker], volume: 3n }))
    const call = async (i: number): Promise<string> => {
      const { sign } = await authorize(f, d.scheduler, worker.address, d.dealid, i)
      return f.hub.interface.encodeFunctionData('contributeAndFinalize', [d.dealid, i, digestOf(`r${i}`), `cid${i}`, sign, '0x'])
    }
    await send(f.hub.connect(worker).contributeAndFinalize(d.dealid, 1, digestOf('r1'), 'cid1', (await authorize(f, d.scheduler, worker.address, d.dealid, 1)).sign, '0x'))
    // task 1 is already closed: the batch reverts with BadTaskStatus and task 0 stays open
    await expectRevert(f.hub.connect(worker).multicall([await call(0), await call(1)]), 'BadTaskStatus')
    assert.equal(await f.hub.taskStatus(d.dealid, 0), BigInt(TaskStatus.UNSET))
    assert.equal((await f.hub.dealOf(d.dealid)).done, 1n)
    // someone else sending the worker's calls is not the worker
    await expectRevert(f.hub.connect(f.outsider).multicall([await call(0)]), 'NotDealWorker')
    await send(f.hub.connect(worker).multicall([await call(0), await call(2)]))
    assert.equal((await f.hub.dealOf(d.dealid)).done, 3n)
  })

  it('TaskReader (created by the hub) answers for every task: a trust-1 task closed by contributeAndFinalize reads COMPLETED there, UNSET in the hub\'s taskOf', async () => {
    const reader = TaskReader__factory.connect(taskReaderAddress(await f.hub.getAddress()), f.hub.runner)
    assert.equal(await reader.hub(), await f.hub.getAddress(), 'at the hub\'s first CREATE address, pointing back at it')
    const worker = f.nodes[0]
    const d = await match(f, await makeOrders(f, assets, { workers: [worker], volume: 2n }))
    const { taskid, sign } = await authorize(f, d.scheduler, worker.address, d.dealid, 1)
    const open = await reader.taskOf(d.dealid, 1)
    assert.equal(open.status, BigInt(TaskStatus.UNSET))
    assert.equal(open.taskid, taskid)
    assert.equal(open.dealid, d.dealid)
    await send(f.hub.connect(worker).contributeAndFinalize(d.dealid, 1, digestOf('r'), 'bafyr', sign, '0x'))
    // the hub's own view knows nothing of it (no initialize): the reader does
    assert.equal((await f.hub.taskOf(taskid)).status, BigInt(TaskStatus.UNSET))
    const v = await reader.taskOf(d.dealid, 1)
    assert.equal(v.status, BigInt(TaskStatus.COMPLETED))
    assert.deepEqual([v.taskid, v.dealid, v.idx], [taskid, d.dealid, 1n])
    // the other task stays open; a task the deal does not have reads all zeros
    assert.equal((await reader.taskOf(d.dealid, 0)).status, BigInt(TaskStatus.UNSET))
    const none = await reader.taskOf(d.dealid, 2)
    assert.equal(BigInt(none.taskid), 0n)
    assert.equal(BigInt(none.dealid), 0n)
    assert.equal(BigInt((await reader.taskOf('0x' + '11'.repeat(32), 0)).taskid), 0n)
    const t = await totalRlc(f)
    assert.equal(t.hubHeld, t.accounted)
  })

  it('TaskReader mirrors the hub\'s record of an initialized task (trust 3)', async () => {
    const reader = TaskReader__factory.connect(taskReaderAddress(await f.hub.getAddress()), f.hub.runner)
    const workers = [f.nodes[0], f.nodes[1], f.nodes[2]]
    const d = await match(f, await makeOrders(f, assets, { workers, trust: 3n }))
    const taskid = taskId(d.dealid, 0)
    await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
    const digest = digestOf('x')
    for (const w of workers.slice(0, 2)) {
      const { sign } = await authorize(f, d.scheduler, w.address, d.dealid, 0)
      await send(f.hub.connect(w).contribute(taskid, resultHash(taskid, digest), resultSeal(w.address, taskid, digest), sign))
    }
    const hubView = await f.hub.taskOf(taskid)
    const v = await reader.taskOf(d.dealid, 0)
    assert.equal(v.status, hubView.status)
    assert.equal(v.status, BigInt(TaskStatus.REVEALING))
    assert.deepEqual([v.winners, v.reveals, v.revealDeadline, v.total, v.consensus], [hubView.winners, hubView.reveals, hubView.revealDeadline, hubView.total, hubView.consensus])
  })

  it('trust 3: initialize, contribute, consensus, reveal, finalize; rewards by weight; scores', async () => {
    const workers = [f.nodes[0], f.nodes[1], f.nodes[2]]
    const d = await match(f, await makeOrders(f, assets, { workers, trust: 3n }))
    const taskid = taskId(d.dealid, 0)
    await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
    assert.equal((await f.hub.taskOf(taskid)).status, BigInt(TaskStatus.ACTIVE))
    const digest = digestOf('the answer')
    // two fresh workers (weight 2 each): group 4, total 1 + 4 = 5, 4 * 3 > 5 * 2: consensus
    for (const w of workers.slice(0, 2)) {
      const { sign } = await authorize(f, d.scheduler, w.address, d.dealid, 0)
      await send(f.hub.connect(w).contribute(taskid, resultHash(taskid, digest), resultSeal(w.address, taskid, digest), sign))
    }
    const task = await f.hub.taskOf(taskid)
    assert.equal(task.status, BigInt(TaskStatus.REVEALING))
    assert.equal(task.consensus, resultHash(taskid, digest))
    assert.equal(task.winners, 2n)
    // the third worker arrives after consensus: too late
    const late = await authorize(f, d.scheduler, workers[2].address, d.dealid, 0)
    await expectRevert(f.hub.connect(workers[2]).contribute(taskid, resultHash(taskid, digest), resultSeal(workers[2].address, taskid, digest), late.sign), 'BadTaskStatus')
    for (const w of workers.slice(0, 2)) await send(f.hub.connect(w).reveal(taskid, digest))
    assert.equal((await f.hub.contributionOf(taskid, workers[0].address)).status, BigInt(ContributionStatus.PROVED))
    const addrs = [...new Set([workers[0].address, workers[1].address, d.scheduler.address])]
    const got = await deltas(addrs, async () => { await send(f.hub.connect(d.scheduler).finalize(taskid, 'bafyresult3', '0x')) })
    const want = new Map<string, bigint>(addrs.map((a) => [a, 0n]))
    const add = (a: string, v: bigint): void => { want.set(a, (want.get(a) ?? 0n) + v) }
    add(workers[0].address, 4_500_000_000n) // 90% of 10 RLC, equal weights
    add(workers[1].address, 4_500_000_000n)
    add(d.scheduler.address, 1n * RLC_UNIT)
    assert.deepEqual(got, want)
    assert.equal(await f.hub.scoreOf(workers[0].address), 1n, 'winners +1 when replicated')
    assert.equal((await f.hub.taskOf(taskid)).status, BigInt(TaskStatus.COMPLETED))
  })

  it('trust 3 with a dishonest worker: the loser\'s stake joins the pot, its score drops to 2/3', async () => {
    const workers = f.nodes.slice(0, 4)
    const liar = workers[1]
    const d = await match(f, await makeOrders(f, assets, { workers, trust: 3n }))
    const taskid = taskId(d.dealid, 0)
    await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
    const good = digestOf('good')
    const bad = digestOf('bad')
    // A(2, t3) B(2, t5) A(4, t7) A(8, t11): 8 * 3 > 11 * 2 at the fourth contribution
    for (const w of [workers[0], liar, workers[2], workers[3]]) {
      const dg = w === liar ? bad : good
      const { sign } = await authorize(f, d.scheduler, w.address, d.dealid, 0)
      await send(f.hub.connect(w).contribute(taskid, resultHash(taskid, dg), resultSeal(w.address, taskid, dg), sign))
    }
    assert.equal((await f.hub.taskOf(taskid)).status, BigInt(TaskStatus.REVEALING))
    await expectRevert(f.hub.connect(liar).reveal(taskid, bad), 'BadReveal')
    for (const w of [workers[0], workers[2], workers[3]]) await send(f.hub.connect(w).reveal(taskid, good))
    const liarStake0 = await f.hub.stakeOf(liar.address)
    const addrs = [...new Set([...workers.map((w) => w.address), d.scheduler.address])]
    const got = await deltas(addrs, async () => { await send(f.hub.connect(d.scheduler).finalize(taskid, 'cid', '0x')) })
    // pot = 10 + 3 (seized) = 13 RLC; winners share 90% = 11.7 RLC equally (weights 2, 2, 2)
    const share = 11_700_000_000n / 3n
    const want = new Map<string, bigint>(addrs.map((a) => [a, 0n]))
    const add = (a: string, v: bigint): void => { want.set(a, (want.get(a) ?? 0n) + v) }
    for (const w of [workers[0], workers[2], workers[3]]) add(w.address, share)
    add(d.scheduler.address, 13n * RLC_UNIT - 3n * share)
    assert.deepEqual(got, want)
    const liarStake1 = await f.hub.stakeOf(liar.address)
    assert.equal(liarStake0.amount - liarStake1.amount, 3n * RLC_UNIT)
    assert.equal(await f.hub.scoreOf(liar.address), 0n)
    const t = await totalRlc(f)
    assert.equal(t.hubHeld, t.accounted)
  })

  it('claim after the final deadline refunds the requester and sends the scheduler\'s task stake to the kitty', async () => {
    const d = await match(f, await makeOrders(f, assets, { volume: 2n }))
    // its first duty draws it and locks its stake for both tasks; then it stops
    await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
    await increaseTime(f, 10n * T)
    const [b0, fr0] = await f.hub.accountOf(f.requester.address)
    const sStake0 = await f.hub.stakeOf(d.scheduler.address)
    await send(f.hub.claim(d.dealid, 0))
    const [b1, fr1] = await f.hub.accountOf(f.requester.address)
    assert.equal(b1 - b0, 15n * RLC_UNIT)
    assert.equal(fr0 - fr1, 15n * RLC_UNIT)
    assert.equal(await f.hub.kitty(), 3n * RLC_UNIT)
    assert.equal(sStake0.amount - (await f.hub.stakeOf(d.scheduler.address)).amount, 3n * RLC_UNIT)
    assert.equal(await f.hub.taskStatus(d.dealid, 0), BigInt(TaskStatus.FAILED))
    await send(f.hub.claim(d.dealid, 1))
    // all tasks closed: every locked stake can leave
    await send(f.hub.release(d.dealid, f.nodes[0].address))
    const t = await totalRlc(f)
    assert.equal(t.hubHeld, t.accounted)
    // the treasury (the hub owner) takes the kitty into its hub balance and out of the hub: no RLC made or lost
    const kitty = await f.hub.kitty()
    assert.ok(kitty >= 6n * RLC_UNIT)
    const [ownerBal0] = await f.hub.accountOf(f.admin.address)
    const wallet0 = await f.rlc.balanceOf(f.admin.address)
    await send(f.hub.connect(f.admin).payKitty())
    assert.equal(await f.hub.kitty(), 0n)
    const [ownerBal1] = await f.hub.accountOf(f.admin.address)
    assert.equal(ownerBal1 - ownerBal0, kitty)
    const t1 = await totalRlc(f)
    assert.equal(t1.hubHeld, t1.accounted)
    await send(f.hub.connect(f.admin).withdraw(kitty))
    assert.equal(await f.rlc.balanceOf(f.admin.address) - wallet0, kitty)
    const t2 = await totalRlc(f)
    assert.equal(t2.hubHeld, t2.accounted)
    assert.equal(t.hubHeld - t2.hubHeld, kitty)
  })

  it('claim unlocks the contributors\' stake for the task, before or after release', async () => {
    const [w0, w1] = [f.nodes[0], f.nodes[1]]
    const deals = []
    for (let k = 0; k < 2; k++) {
      const d = await match(f, await makeOrders(f, assets, { workers: [w0, w1], trust: 3n, volume: 2n }))
      const taskid = taskId(d.dealid, 0)
      await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
      const dg = digestOf(`alone ${k}`)
      const { sign } = await authorize(f, d.scheduler, w0.address, d.dealid, 0)
      await send(f.hub.connect(w0).contribute(taskid, resultHash(taskid, dg), resultSeal(w0.address, taskid, dg), sign))
      deals.push(d)
    }
    await increaseTime(f, 10n * T)
    const locked = async (): Promise<bigint> => (await f.hub.stakeOf(w0.address)).locked
    const schedulerPart = async (d: { dealid: string }): Promise<bigint> => (await f.hub.dealOf(d.dealid)).scheduler === w0.address ? (await f.hub.dealOf(d.dealid)).schedulerLocked : 0n
    // claim first: this task's 3 RLC come back at once, the other task's with release
    let l0 = await locked()
    const sp0 = await schedulerPart(deals[0])
    await send(f.hub.claim(deals[0].dealid, 0))
    const seized0 = sp0 > 0n ? 3n * RLC_UNIT : 0n // the scheduler's stake for the task goes to the kitty
    assert.equal(l0 - await locked(), 3n * RLC_UNIT + seized0)
    // release first, then claim: nothing is unlocked twice
    l0 = await locked()
    await send(f.hub.release(deals[1].dealid, w0.address))
    assert.equal(l0 - await locked(), 6n * RLC_UNIT)
    const sp1 = await schedulerPart(deals[1])
    const l1 = await locked()
    await send(f.hub.claim(deals[1].dealid, 0))
    assert.equal(l1 - await locked(), sp1 > 0n ? 3n * RLC_UNIT : 0n)
    assert.equal(await f.hub.isDealWorker(deals[1].dealid, w0.address), true)
    const t = await totalRlc(f)
    assert.equal(t.hubHeld, t.accounted)
  })

  it('reelect: a scheduler that does not initialize within T is slashed and replaced; the new one authorizes', async () => {
    const worker = f.nodes[0]
    const d = await match(f, await makeOrders(f, assets, { volume: 3n, workers: [worker] }))
    await expectRevert(f.hub.reelect(d.dealid), 'SchedulerNotLate')
    await increaseTime(f, T)
    const old = d.scheduler.address
    const oldStake = await f.hub.stakeOf(old)
    const r = await send(f.hub.connect(f.outsider).reelect(d.dealid))
    const ev = r.logs.map((l) => f.hub.interface.parseLog(l)).find((e) => e?.name === 'SchedulerReelected')
    assert.equal(ev?.args.previous, old)
    // the successor is drawn lazily from the reelecting block's hash
    assert.equal(ev?.args.scheduler, ZERO_ADDRESS)
    // never drawn before: reelect draws the late one first, locks its stake for the 3 tasks, and seizes it
    assert.equal(ev?.args.slashed, 9n * RLC_UNIT)
    assert.equal(await f.hub.kitty(), 9n * RLC_UNIT)
    assert.equal(oldStake.amount - (await f.hub.stakeOf(old)).amount, 9n * RLC_UNIT)
    const next = f.byAddress(await drawnScheduler(f, d.dealid))
    assert.notEqual(next.address, old)
    // the old scheduler's authorization no longer counts, the new one's does
    const stale = await authorize(f, d.scheduler, worker.address, d.dealid, 0)
    await expectRevert(f.hub.connect(worker).contributeAndFinalize(d.dealid, 0, digestOf('x'), 'c', stale.sign, '0x'), 'BadAuthorization')
    const fresh = await authorize(f, next, worker.address, d.dealid, 0)
    await send(f.hub.connect(worker).contributeAndFinalize(d.dealid, 0, digestOf('x'), 'c', fresh.sign, '0x'))
    const t = await totalRlc(f)
    assert.equal(t.hubHeld, t.accounted)
  })

  it('reelect: a bag run by contributeAndFinalize keeps its scheduler while tasks keep closing within T', async () => {
    const worker = f.nodes[0]
    const d = await match(f, await makeOrders(f, assets, { volume: 3n, workers: [worker] }))
    await increaseTime(f, T - 10n)
    const a0 = await authorize(f, d.scheduler, worker.address, d.dealid, 0)
    await send(f.hub.connect(worker).contributeAndFinalize(d.dealid, 0, digestOf('0'), 'c0', a0.sign, '0x'))
    await increaseTime(f, T - 10n)
    // more than T since the election, less than T since the last task closed with the scheduler's authorization
    await expectRevert(f.hub.reelect(d.dealid), 'SchedulerNotLate')
    await increaseTime(f, 20n)
    await send(f.hub.reelect(d.dealid))
  })

  it('reelectForTask: a scheduler that does not finalize after the reveals is replaced', async () => {
    const w = f.nodes[0]
    const d = await match(f, await makeOrders(f, assets, { trust: 1n, workers: [w] }))
    const taskid = taskId(d.dealid, 0)
    await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
    const dg = digestOf('v')
    const { sign } = await authorize(f, d.scheduler, w.address, d.dealid, 0)
    await send(f.hub.connect(w).contribute(taskid, resultHash(taskid, dg), resultSeal(w.address, taskid, dg), sign))
    await send(f.hub.connect(w).reveal(taskid, dg))
    await expectRevert(f.hub.reelectForTask(taskid), 'SchedulerNotLate')
    await increaseTime(f, 3n * T)
    await send(f.hub.reelectForTask(taskid))
    const next = f.byAddress(await drawnScheduler(f, d.dealid))
    assert.notEqual(next.address, d.scheduler.address)
    // the new scheduler has its own time reference: it cannot be slashed at once
    await expectRevert(f.hub.reelectForTask(taskid), 'SchedulerNotLate')
    assert.equal((await f.hub.dealOf(d.dealid, { blockTag: 'pending' })).scheduler, next.address)
    await send(f.hub.connect(next).finalize(taskid, 'cid', '0x'))
    assert.equal((await f.hub.taskOf(taskid)).status, BigInt(TaskStatus.COMPLETED))
  })
})
