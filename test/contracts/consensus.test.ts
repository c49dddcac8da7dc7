// iExec's weighted-majority consensus, case by case for trust 1..5, with fresh
// and scored workers, against the formula:
//   w = max(floor(score / 3), 3) - 1; group = product of its members' w;
//   total starts at 1 and grows by each group's increase;
//   consensus when group * trust > total * (trust - 1).
import assert from 'node:assert/strict'
import { AbiCoder, keccak256, toBeHex, toUtf8Bytes, zeroPadValue } from 'ethers'
import { TaskStatus, workerWeight } from '../../contracts-abi/index.js'
import { resultHash, resultSeal, taskId } from '../../protocols/eip712.js'
import { setupFixture, snapshot, revertTo, send, registerAssets, makeOrders, match, authorize, type Fixture, type AppSetup } from './fixture.js'

interface Case { trust: bigint, contributions: Array<{ score: bigint, result: string }>, consensusAt: number | null }

/** the formula, independently of the contract: index (1-based) of the contribution that reaches consensus */
function model (trust: bigint, contributions: Array<{ score: bigint, result: string }>): { at: number | null, totals: bigint[] } {
  const groups = new Map<string, bigint>()
  let total = 1n
  const totals: bigint[] = []
  for (const [i, c] of contributions.entries()) {
    const w = workerWeight(c.score)
    const before = groups.get(c.result) ?? 0n
    const after = (before > 1n ? before : 1n) * w
    groups.set(c.result, after)
    total += after - before
    totals.push(total)
    if (after * trust > total * (trust - 1n)) return { at: i + 1, totals }
  }
  return { at: null, totals }
}

const fresh = (result: string): { score: bigint, result: string } => ({ score: 0n, result })
const scored = (score: bigint, result: string): { score: bigint, result: string } => ({ score, result })

// consensusAt is written out by hand from the formula, and also checked against model()
const CASES: Case[] = [
  { trust: 1n, contributions: [fresh('A')], consensusAt: 1 },
  { trust: 2n, contributions: [fresh('A')], consensusAt: 1 }, // 2*2 > 3*1
  { trust: 3n, contributions: [fresh('A'), fresh('A')], consensusAt: 2 }, // 2*3 = 3*2 no; 4*3 > 5*2
  { trust: 3n, contributions: [fresh('A'), fresh('B'), fresh('A'), fresh('A')], consensusAt: 4 }, // 12 > 14 no; 24 > 22
  { trust: 4n, contributions: [fresh('A'), fresh('A')], consensusAt: 2 }, // 16 > 15
  { trust: 5n, contributions: [fresh('A'), fresh('A'), fresh('A')], consensusAt: 3 }, // 20 = 20 no; 40 > 36
  { trust: 5n, contributions: [fresh('A'), fresh('B'), fresh('B')], consensusAt: null }, // 20 > 28 no
  { trust: 3n, contributions: [scored(12n, 'A')], consensusAt: 1 }, // w 3: 9 > 8
  { trust: 4n, contributions: [scored(12n, 'A'), fresh('A')], consensusAt: 2 }, // 12 = 12 no; 24 > 21
  { trust: 5n, contributions: [scored(30n, 'A')], consensusAt: 1 }, // w 9: 45 > 40
  { trust: 5n, contributions: [scored(15n, 'A'), fresh('B'), fresh('A'), fresh('A')], consensusAt: 4 }, // 20=20; 10>28; 40>44 no; 80>76
  { trust: 2n, contributions: [scored(11n, 'A')], consensusAt: 1 } // score 11: w still 2
]

describe('hub: consensus table (trust 1..5, fresh and scored workers)', function () {
  let f: Fixture
  let assets: AppSetup
  let snap: string
  let scoresSlot: bigint

  before(async () => {
    f = await setupFixture()
    assets = await registerAssets(f)
    scoresSlot = await findScoresSlot()
  })
  after(async () => { await f?.chain.stop() })
  beforeEach(async () => { snap = await snapshot(f) })
  afterEach(async () => { await revertTo(f, snap) })

  function scoreKey (worker: string, slot: bigint): string {
    return keccak256(AbiCoder.defaultAbiCoder().encode(['address', 'uint256'], [worker, slot]))
  }

  async function setScore (worker: string, score: bigint): Promise<void> {
    await f.provider.send('anvil_setStorageAt', [f.hubAddress, scoreKey(worker, scoresSlot), zeroPadValue(toBeHex(score), 32)])
  }

  /** the storage slot of the hub's score mapping, found by probing (reverted after each probe) */
  async function findScoresSlot (): Promise<bigint> {
    const probe = f.outsider.address
    for (let slot = 0n; slot < 64n; slot++) {
      const id = await snapshot(f)
      await f.provider.send('anvil_setStorageAt', [f.hubAddress, scoreKey(probe, slot), zeroPadValue(toBeHex(777n), 32)])
      const got = await f.hub.scoreOf(probe)
      await revertTo(f, id)
      if (got === 777n) return slot
    }
    throw new Error('score mapping slot not found')
  }

  it('the hand-written expectations agree with the formula', () => {
    for (const c of CASES) assert.equal(model(c.trust, c.contributions).at, c.consensusAt, `trust ${c.trust}: ${JSON.stringify(c.contributions.map((x) => `${x.score}:${x.result}`))}`)
  })

  for (const c of CASES) {
    const label = c.contributions.map((x) => `${x.score === 0n ? 'fresh' : `score ${x.score}`}:${x.result}`).join(', ')
    it(`trust ${c.trust}: [${label}] -> consensus ${c.consensusAt === null ? 'never' : `at contribution ${c.consensusAt}`}`, async () => {
      const workers = f.nodes.slice(0, c.contributions.length)
      // the hub takes at least the bids the trust's consensus needs (2^n >= trust): extra bidders that never contribute
      let need = 1
      while (2n ** BigInt(need) < c.trust) need++
      const bidders = f.nodes.slice(0, Math.max(workers.length, need))
      const d = await match(f, await makeOrders(f, assets, { workers: bidders, trust: c.trust }))
      const taskid = taskId(d.dealid, 0)
      await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
      const expected = model(c.trust, c.contributions)
      for (const [i, w] of workers.entries()) await setScore(w.address, c.contributions[i].score)
      for (const [i, w] of workers.entries()) {
        const digest = keccak256(toUtf8Bytes(c.contributions[i].result))
        const { sign } = await authorize(f, d.scheduler, w.address, d.dealid, 0)
        await send(f.hub.connect(w).contribute(taskid, resultHash(taskid, digest), resultSeal(w.address, taskid, digest), sign))
        const task = await f.hub.taskOf(taskid)
        const contribution = await f.hub.contributionOf(taskid, w.address)
        assert.equal(contribution.weight, workerWeight(c.contributions[i].score), 'stored weight')
        assert.equal(task.total, expected.totals[i], `total after contribution ${i + 1}`)
        const reached = task.status === BigInt(TaskStatus.REVEALING)
        assert.equal(reached, expected.at === i + 1 || (expected.at !== null && i + 1 > expected.at), `consensus state after contribution ${i + 1}`)
        if (reached) {
          assert.equal(task.consensus, resultHash(taskid, digest))
          break
        }
      }
      const final = await f.hub.taskOf(taskid)
      assert.equal(final.status, BigInt(c.consensusAt === null ? TaskStatus.ACTIVE : TaskStatus.REVEALING))
    })
  }

  it('winners share the pot in proportion to their weights (score 12 -> w 3, fresh -> w 2)', async () => {
    const [a, b] = f.nodes
    const d = await match(f, await makeOrders(f, assets, { workers: [a, b], trust: 4n }))
    const taskid = taskId(d.dealid, 0)
    await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0))
    await setScore(a.address, 12n)
    const digest = keccak256(toUtf8Bytes('same'))
    for (const w of [a, b]) {
      const { sign } = await authorize(f, d.scheduler, w.address, d.dealid, 0)
      await send(f.hub.connect(w).contribute(taskid, resultHash(taskid, digest), resultSeal(w.address, taskid, digest), sign))
    }
    for (const w of [a, b]) await send(f.hub.connect(w).reveal(taskid, digest))
    const before = await Promise.all([a, b, d.scheduler].map(async (w) => (await f.hub.accountOf(w.address))[0]))
    await send(f.hub.connect(d.scheduler).finalize(taskid, 'cid', '0x'))
    const after = await Promise.all([a, b, d.scheduler].map(async (w) => (await f.hub.accountOf(w.address))[0]))
    const delta = after.map((x, i) => x - before[i])
    // pot 10 RLC, 90% to workers split 3:2, the rest to the scheduler (who may also be a or b)
    const shareA = 9_000_000_000n * 3n / 5n
    const shareB = 9_000_000_000n * 2n / 5n
    const sched = 10_000_000_000n - shareA - shareB
    const isA = d.scheduler.address === a.address
    const isB = d.scheduler.address === b.address
    assert.equal(delta[0], shareA + (isA ? sched : 0n))
    assert.equal(delta[1], shareB + (isB ? sched : 0n))
    assert.equal(delta[2], sched + (isA ? shareA : 0n) + (isB ? shareB : 0n))
    assert.equal(await f.hub.scoreOf(a.address), 13n)
    assert.equal(await f.hub.scoreOf(b.address), 1n)
  })
})
