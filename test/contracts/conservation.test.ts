// Conservation of RLC as a property: random sequences of deposits, stakes,
// matches, honest and dishonest contributions, reveals, finalizes, claims,
// reelections and releases. After every sequence:
//   RLC.balanceOf(hub) == sum(balance + frozen + stake) + kitty,
//   wallets + hub == totalSupply, locked <= staked, draw weights == stakes;
// no call ever fails with a Panic (an underflow would): only custom errors.
// Then every deal is closed (deadline, claims, releases) and nothing may stay
// frozen or locked.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { keccak256, toUtf8Bytes } from 'ethers'
import { resultHash, resultSeal, taskId } from '../../protocols/eip712.js'
import {
  setupFixture, snapshot, revertTo, send, increaseTime, registerAssets, makeOrders, match, authorize, revertName, totalRlc,
  RLC_UNIT, type Fixture, type AppSetup
} from './fixture.js'

type Cmd =
  | { k: 'deposit' | 'withdraw' | 'stake' | 'requestUnstake', who: number, amount: number }
  | { k: 'unstake', who: number }
  | { k: 'match', trust: number, volume: number, workers: number[], price: number, withDataset: boolean }
  | { k: 'contributeAndFinalize' | 'initialize' | 'finalize' | 'claim' | 'reelectForTask', deal: number, task: number, worker: number }
  | { k: 'contribute', deal: number, task: number, worker: number, honest: boolean }
  | { k: 'reveal', deal: number, task: number, worker: number, honest: boolean }
  | { k: 'reelect', deal: number }
  | { k: 'release', deal: number, who: number }
  | { k: 'warp', seconds: number }
  /** the treasury (the hub owner) takes the kitty into its hub balance */
  | { k: 'payKitty' }
  /** a whole task as the honest roles would drive it, with chosen dishonest workers */
  | { k: 'runTask', deal: number, task: number, honesty: boolean[], reveal: boolean, finalize: boolean }

const POOL = 4 // nodes 0..3 bid as workers
const who = fc.nat({ max: 15 })
const amount = fc.integer({ min: 1, max: 3000 })
/** true three times in four: enough honest majorities and complete flows to reach finalize often */
const mostly = fc.constantFrom(true, true, true, false)
const ref = { deal: fc.nat({ max: 20 }), task: fc.nat({ max: 4 }), worker: fc.nat({ max: 4 }) }
function matchArb (): fc.Arbitrary<Cmd> {
  return fc.record({ k: fc.constant('match' as const), trust: fc.integer({ min: 1, max: 3 }), volume: fc.integer({ min: 1, max: 3 }), workers: fc.uniqueArray(fc.nat({ max: POOL - 1 }), { minLength: 1, maxLength: 3 }), price: fc.integer({ min: 0, max: 20 }), withDataset: fc.boolean() })
}
const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ k: fc.constantFrom('deposit' as const, 'withdraw' as const, 'stake' as const, 'requestUnstake' as const), who, amount }),
  fc.record({ k: fc.constant('unstake' as const), who }),
  { arbitrary: matchArb(), weight: 2 },
  { arbitrary: fc.record({ k: fc.constantFrom('contributeAndFinalize' as const, 'initialize' as const, 'finalize' as const, 'claim' as const, 'reelectForTask' as const), ...ref }), weight: 4 },
  { arbitrary: fc.record({ k: fc.constantFrom('contribute' as const, 'reveal' as const), ...ref, honest: fc.boolean() }), weight: 5 },
  { arbitrary: fc.record({ k: fc.constant('runTask' as const), deal: ref.deal, task: ref.task, honesty: fc.array(mostly, { minLength: 3, maxLength: 3 }), reveal: mostly, finalize: mostly }), weight: 4 },
  fc.record({ k: fc.constant('reelect' as const), deal: ref.deal }),
  fc.record({ k: fc.constant('release' as const), deal: ref.deal, who }),
  fc.record({ k: fc.constant('warp' as const), seconds: fc.integer({ min: 1, max: 150 }) }),
  fc.record({ k: fc.constant('payKitty' as const) })
)

interface DealRef { dealid: string, volume: number, trust: number, workers: string[] }

describe('hub: conservation of RLC (property, fast-check)', function () {
  this.timeout(240_000)
  let f: Fixture
  let assets: AppSetup
  let supply: bigint

  before(async () => {
    f = await setupFixture()
    assets = await registerAssets(f)
    supply = await f.rlc.totalSupply()
  })
  after(async () => { await f?.chain.stop() })

  /** successful calls by kind over all runs: the sequences must reach the paths they claim to test */
  const done = new Map<string, number>()
  const count = (k: string): void => { done.set(k, (done.get(k) ?? 0) + 1) }

  async function attempt (p: Promise<unknown>, failures: string[], kind?: string): Promise<void> {
    try {
      await p
      if (kind !== undefined) count(kind)
    } catch (err) {
      const name = revertName(err)
      // a revert is fine when the action is not allowed in this state, but it must be a declared error
      if (name === undefined || name === 'Panic' || name === 'Error') failures.push(`${name ?? 'undecoded'}: ${String(err).slice(0, 300)}`)
    }
  }

  async function exec (c: Cmd, deals: DealRef[], failures: string[]): Promise<void> {
    const w = (i: number): typeof f.wallets[number] => f.wallets[i % f.wallets.length]
    const node = (i: number): typeof f.wallets[number] => f.nodes[i % f.nodes.length]
    const rlc = (n: number): bigint => BigInt(n) * RLC_UNIT
    if (c.k === 'deposit') return await attempt(send(f.hub.connect(w(c.who)).deposit(rlc(c.amount))), failures)
    if (c.k === 'withdraw') return await attempt(send(f.hub.connect(w(c.who)).withdraw(rlc(c.amount))), failures)
    if (c.k === 'stake') return await attempt(send(f.hub.connect(node(c.who)).stake(rlc(c.amount))), failures)
    if (c.k === 'requestUnstake') return await attempt(send(f.hub.connect(node(c.who)).requestUnstake(rlc(c.amount))), failures)
    if (c.k === 'unstake') return await attempt(send(f.hub.connect(node(c.who)).unstake()), failures)
    if (c.k === 'warp') return await increaseTime(f, c.seconds)
    if (c.k === 'payKitty') return await attempt(send(f.hub.connect(f.admin).payKitty()), failures, c.k)
    if (c.k === 'match') {
      try {
        const d = await match(f, await makeOrders(f, assets, {
          trust: BigInt(c.trust), volume: BigInt(c.volume), workers: c.workers.map((i) => f.nodes[i]), prices: c.workers.map(() => rlc(c.price)), withDataset: c.withDataset
        }))
        deals.push({ dealid: d.dealid, volume: Number(d.info.volume), trust: Number(d.info.trust), workers: d.workers })
        count('match')
      } catch (err) {
        const name = revertName(err)
        if (name === undefined || name === 'Panic') failures.push(`match: ${name ?? String(err).slice(0, 300)}`)
      }
      return
    }
    if (deals.length === 0 || !('deal' in c)) return
    const d = deals[c.deal % deals.length]
    const scheduler = f.byAddress((await f.hub.dealOf(d.dealid, { blockTag: 'pending' })).scheduler)
    if (c.k === 'reelect') return await attempt(send(f.hub.reelect(d.dealid)), failures, c.k)
    if (c.k === 'release') return await attempt(send(f.hub.release(d.dealid, w(c.who).address)), failures, c.k)
    if (!('task' in c)) return
    const idx = c.task % d.volume
    const taskid = taskId(d.dealid, idx)
    if (c.k === 'runTask') return await runTask(d, idx, scheduler, c, failures)
    const worker = f.byAddress(d.workers[c.worker % d.workers.length])
    const digest = (honest: boolean): string => keccak256(toUtf8Bytes(honest ? `good ${taskid}` : `bad ${worker.address}`))
    switch (c.k) {
      case 'initialize': return await attempt(send(f.hub.connect(scheduler).initialize(d.dealid, idx)), failures, c.k)
      case 'finalize': return await attempt(send(f.hub.connect(scheduler).finalize(taskid, 'cid', '0x')), failures, c.k)
      case 'claim': return await attempt(send(f.hub.claim(d.dealid, idx)), failures, c.k)
      case 'reelectForTask': return await attempt(send(f.hub.reelectForTask(taskid)), failures, c.k)
      case 'contributeAndFinalize': {
        const { sign } = await authorize(f, scheduler, worker.address, d.dealid, idx)
        return await attempt(send(f.hub.connect(worker).contributeAndFinalize(d.dealid, idx, digest(true), 'cid', sign, '0x')), failures, c.k)
      }
      case 'contribute': {
        // the scheduler opens the task first when it has not yet (its duty, done in the same step)
        if ((await f.hub.taskStatus(d.dealid, idx)) === 0n) await attempt(send(f.hub.connect(scheduler).initialize(d.dealid, idx)), failures, 'initialize')
        const { sign } = await authorize(f, scheduler, worker.address, d.dealid, idx)
        const dg = digest(c.honest)
        return await attempt(send(f.hub.connect(worker).contribute(taskid, resultHash(taskid, dg), resultSeal(worker.address, taskid, dg), sign)), failures, c.honest ? 'contribute' : 'contribute (dishonest)')
      }
      case 'reveal': return await attempt(send(f.hub.connect(worker).reveal(taskid, digest(c.honest))), failures, c.k)
    }
  }

  async function runTask (d: DealRef, idx: number, scheduler: typeof f.wallets[number], c: { honesty: boolean[], reveal: boolean, finalize: boolean }, failures: string[]): Promise<void> {
    const taskid = taskId(d.dealid, idx)
    const digest = (honest: boolean, worker: string): string => keccak256(toUtf8Bytes(honest ? `good ${taskid}` : `bad ${worker}`))
    const status = await f.hub.taskStatus(d.dealid, idx)
    const workers = d.workers.map((a) => f.byAddress(a))
    if (d.trust === 1 && status === 0n && c.honesty[0]) {
      const { sign } = await authorize(f, scheduler, workers[0].address, d.dealid, idx)
      return await attempt(send(f.hub.connect(workers[0]).contributeAndFinalize(d.dealid, idx, digest(true, ''), 'cid', sign, '0x')), failures, 'contributeAndFinalize')
    }
    if (status === 0n) await attempt(send(f.hub.connect(scheduler).initialize(d.dealid, idx)), failures, 'initialize')
    for (const [i, w] of workers.entries()) {
      if ((await f.hub.taskStatus(d.dealid, idx)) !== 1n) break
      const honest = c.honesty[i % c.honesty.length]
      const dg = digest(honest, w.address)
      const { sign } = await authorize(f, scheduler, w.address, d.dealid, idx)
      await attempt(send(f.hub.connect(w).contribute(taskid, resultHash(taskid, dg), resultSeal(w.address, taskid, dg), sign)), failures, honest ? 'contribute' : 'contribute (dishonest)')
    }
    if (c.reveal) {
      for (const [i, w] of workers.entries()) await attempt(send(f.hub.connect(w).reveal(taskid, digest(c.honesty[i % c.honesty.length], w.address))), failures, 'reveal')
    }
    if (c.finalize) await attempt(send(f.hub.connect(scheduler).finalize(taskid, 'cid', '0x')), failures, 'finalize')
  }

  async function checkInvariants (label: string): Promise<void> {
    const t = await totalRlc(f)
    assert.equal(t.hubHeld, t.accounted, `${label}: hub RLC != balances + frozen + stakes + kitty`)
    assert.equal(t.wallets + t.hubHeld, supply, `${label}: wallets + hub != total supply`)
    let weights = 0n
    const stakes = await Promise.all(f.wallets.map(async (w) => await f.hub.stakeOf(w.address)))
    for (const [i, s] of stakes.entries()) {
      assert.ok(s.locked + s.pending <= s.amount, `${label}: ${f.wallets[i].address} has more locked+pending than staked`)
      weights += s.amount - s.pending
    }
    assert.equal(await f.hub.totalStake(), weights, `${label}: draw weights != stakes`)
  }

  it('sum of wallets, balances, frozen, stakes and kitty never changes; nothing stays frozen or locked', async () => {
    let runs = 0
    // every sequence starts with one to three matches so that later steps have deals to act on
    await fc.assert(fc.asyncProperty(fc.array(matchArb(), { minLength: 1, maxLength: 3 }), fc.array(cmdArb, { minLength: 5, maxLength: 28 }), async (first, rest) => {
      const cmds = [...first, ...rest]
      runs++
      const snap = await snapshot(f)
      try {
        const deals: DealRef[] = []
        const failures: string[] = []
        for (const c of cmds) await exec(c, deals, failures)
        assert.deepEqual(failures, [], 'calls failed with something else than a declared custom error')
        await checkInvariants('after the sequence')
        // close everything: past every final deadline (10T, T = 60 s), claim what is open, release every stake
        await increaseTime(f, 10 * 60 + 1)
        for (const d of deals) {
          for (let i = 0; i < d.volume; i++) await attempt(send(f.hub.claim(d.dealid, i)), failures, 'claim (closing)')
          const deal = await f.hub.dealOf(d.dealid)
          for (const a of new Set([...d.workers, deal.scheduler])) await attempt(send(f.hub.release(d.dealid, a)), failures)
        }
        assert.deepEqual(failures, [])
        await checkInvariants('after closing every deal')
        // the claims' seized stakes go to the treasury: the kitty empties into the owner's balance
        await attempt(send(f.hub.connect(f.admin).payKitty()), failures, 'payKitty (closing)')
        assert.deepEqual(failures, [])
        assert.equal(await f.hub.kitty(), 0n)
        await checkInvariants('after the kitty was paid')
        for (const w of f.wallets) {
          assert.equal((await f.hub.accountOf(w.address))[1], 0n, `${w.address} still has frozen funds`)
          assert.equal((await f.hub.stakeOf(w.address)).locked, 0n, `${w.address} still has locked stake`)
        }
      } finally {
        await revertTo(f, snap)
      }
    }), { numRuns: 10, endOnFailure: true })
    assert.equal(runs, 10)
    // the random sequences did reach the money paths
    for (const k of ['match', 'contribute', 'contribute (dishonest)', 'reveal', 'claim (closing)']) assert.ok((done.get(k) ?? 0) > 0, `no successful ${k} in any run: ${JSON.stringify([...done])}`)
    assert.ok((done.get('contributeAndFinalize') ?? 0) + (done.get('finalize') ?? 0) > 0, `no task was finalized: ${JSON.stringify([...done])}`)
  })
})
