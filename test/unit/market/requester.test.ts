import assert from 'node:assert/strict'
import { consensusWeight, pickBids, workersForTrust } from '../../../node/market/requester.js'
import { HUB_RATIOS } from '../../../contracts-abi/index.js'

describe('market: the requester\'s choice of bids', () => {
  it('workersForTrust: the smallest group of agreeing fresh workers whose weight 2^n reaches the trust', () => {
    assert.equal(workersForTrust(1), 1)
    assert.equal(workersForTrust(2), 1)
    assert.equal(workersForTrust(3), 2)
    assert.equal(workersForTrust(4), 2)
    assert.equal(workersForTrust(5), 3)
    assert.equal(workersForTrust(8), 3)
    assert.equal(workersForTrust(9), 4)
    // the rule, checked for every trust the hub accepts: 2^n * trust > (2^n + 1) * (trust - 1), and n is the least such
    for (let trust = 1; trust <= HUB_RATIOS.maxTrust; trust++) {
      const n = workersForTrust(trust)
      assert.ok(n <= HUB_RATIOS.maxWorkers)
      if (n < HUB_RATIOS.maxWorkers) {
        assert.ok(2 ** n * trust > (2 ** n + 1) * (trust - 1), `trust ${trust}: ${n} workers reach consensus`)
        if (n > 1) assert.ok(!(2 ** (n - 1) * trust > (2 ** (n - 1) + 1) * (trust - 1)), `trust ${trust}: ${n - 1} workers do not`)
      }
    }
  })

  it('pickBids: cheapest first, the earliest among equal prices, at most the count', () => {
    const bid = (worker: string, price: bigint, at: number): { worker: string, message: { order: { price: bigint, worker: string } }, at: number } => ({ worker, message: { order: { price, worker } }, at })
    const bids = [bid('late-cheap', 1n, 30), bid('early-dear', 9n, 1), bid('mid', 5n, 10), bid('early-mid', 5n, 5), bid('cheap', 1n, 20)]
    assert.deepEqual(pickBids(bids, 3).map((b) => b.worker), ['cheap', 'late-cheap', 'early-mid'])
    assert.deepEqual(pickBids(bids, 10).map((b) => b.worker), ['cheap', 'late-cheap', 'early-mid', 'mid', 'early-dear'])
    assert.deepEqual(pickBids(bids, 0), [])
    assert.equal(bids[0].worker, 'late-cheap', 'the input is left as it was')
  })

  it('consensusWeight: the hub\'s weight of a contribution, max(floor(score / 3), 3) - 1', () => {
    assert.equal(consensusWeight(0n), 2n)
    assert.equal(consensusWeight(11n), 2n)
    assert.equal(consensusWeight(12n), 3n)
    assert.equal(consensusWeight(30n), 9n)
  })

  it('pickBids weighs the score: the lowest price per unit of consensus weight, then the lower price, then the earliest', () => {
    const bid = (worker: string, price: bigint, at: number): { message: { order: { price: bigint, worker: string } }, at: number } => ({ message: { order: { price, worker } }, at })
    // weights: fresh 2, veteran (score 30) 9, good (score 12) 3
    const scores = new Map([['veteran', 30n], ['good', 12n], ['fresh', 0n]])
    const bids = [bid('fresh', 10n, 1), bid('veteran', 40n, 2), bid('good', 15n, 3)]
    // per unit of weight: fresh 5, veteran 4.44, good 5: veteran first; fresh and good tie at 5, the lower price wins
    assert.deepEqual(pickBids(bids, 3, scores).map((b) => b.message.order.worker), ['veteran', 'fresh', 'good'])
    // without scores, the cheapest first (every weight is 2)
    assert.deepEqual(pickBids(bids, 3).map((b) => b.message.order.worker), ['fresh', 'good', 'veteran'])
    // worker addresses are looked up lowercase
    assert.deepEqual(pickBids([bid('Fresh', 10n, 1), bid('VETERAN', 50n, 2)], 1, scores).map((b) => b.message.order.worker), ['Fresh'])
    assert.deepEqual(pickBids([bid('fresh', 10n, 1), bid('VETERAN', 44n, 2)], 1, new Map([['veteran', 30n]])).map((b) => b.message.order.worker), ['VETERAN'])
  })
})
