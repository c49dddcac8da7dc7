// Scheduler election by stake: the Fenwick draw is exact at every boundary,
// and over many real deals each node's frequency follows its stake.
import assert from 'node:assert/strict'
import { signOrder } from '../../protocols/eip712.js'
import { setupFixture, send, registerAssets, makeOrders, drawnScheduler, salt, RLC_UNIT, type Fixture } from './fixture.js'

const STAKES = [1000n, 2000n, 3000n, 4000n, 0n, 10_000n].map((x) => x * RLC_UNIT)
/** deals drawn; the chi-square bound below is for this many */
const DEALS = 300
/** chi-square critical value, 4 degrees of freedom (5 staked nodes), p = 0.001: a false failure once in 1000 runs */
const CHI2_CRITICAL_DF4_P001 = 18.467

describe('hub: scheduler election', function () {
  this.timeout(180_000)
  let f: Fixture

  before(async () => { f = await setupFixture({ nodes: STAKES.length, stake: (i) => STAKES[i] }) })
  after(async () => { await f?.chain.stop() })

  it('drawAt: every cumulative boundary maps to the right staker; no-stake nodes have no range', async () => {
    const total = await f.hub.totalStake()
    assert.equal(total, STAKES.reduce((a, b) => a + b, 0n))
    let cum = 0n
    for (const [i, s] of STAKES.entries()) {
      if (s === 0n) continue
      assert.equal(await f.hub.drawAt(cum), f.nodes[i].address, `first unit of node ${i}`)
      assert.equal(await f.hub.drawAt(cum + s - 1n), f.nodes[i].address, `last unit of node ${i}`)
      cum += s
    }
    await assert.rejects(f.hub.drawAt(total))
  })

  it(`over ${DEALS} deals the scheduler frequency is proportional to stake (chi-square, p = 0.001); stake 0 is never drawn`, async () => {
    const assets = await registerAssets(f)
    // one request of DEALS tasks; each match consumes one task with a fresh one-task bid,
    // so every deal id (keccak(requestHash, consumed)) differs. Price 0: the worker needs no stake.
    const base = await makeOrders(f, assets, { volume: BigInt(DEALS), workers: [f.outsider], prices: [0n], withDataset: false })
    const counts = new Map<string, number>()
    for (let i = 0; i < DEALS; i++) {
      const bid = await signOrder(f.outsider, f.domain, 'Bid', { requestHash: base.requestHash, worker: f.outsider.address, price: 0n, volume: 1n, salt: salt() })
      const r = await send(f.hub.connect(f.requester).matchOrders(base.appOrder, base.datasetOrder, base.request, [bid]))
      const ev = r.logs.map((l) => f.hub.interface.parseLog(l)).find((e) => e?.name === 'DealCreated')
      // the hub draws from the hash of the deal's block: read at the next (pending) block
      const s = await drawnScheduler(f, ev?.args.dealid as string)
      counts.set(s, (counts.get(s) ?? 0) + 1)
    }
    const total = STAKES.reduce((a, b) => a + b, 0n)
    let chi2 = 0
    const rows: string[] = []
    for (const [i, s] of STAKES.entries()) {
      const got = counts.get(f.nodes[i].address) ?? 0
      if (s === 0n) {
        assert.equal(got, 0, 'a node without stake was elected')
        continue
      }
      const expected = DEALS * Number(s) / Number(total)
      chi2 += (got - expected) ** 2 / expected
      rows.push(`${i}: ${got} vs ${expected.toFixed(1)}`)
    }
    const others = [...counts.keys()].filter((a) => !f.nodes.some((n) => n.address === a))
    assert.deepEqual(others, [], 'only stakers are elected')
    assert.ok(chi2 < CHI2_CRITICAL_DF4_P001, `chi-square ${chi2.toFixed(2)} >= ${CHI2_CRITICAL_DF4_P001} (${rows.join(', ')})`)
  })
})
