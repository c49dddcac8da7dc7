import assert from 'node:assert/strict'
import { taskTimes, type TaskEventView } from '../../../node/market/task-status.js'

describe('market: task show\'s phase times', () => {
  it('each time is the first event of its step, null for steps not taken', () => {
    const events: TaskEventView[] = [
      { name: 'requested', at: 1_000 },
      { name: 'first-bid', at: 1_060 },
      { name: 'deal', at: 2_000, block: 5 },
      { name: 'initialized', at: 3_000, block: 6 },
      { name: 'contributed', at: 4_000, block: 7, worker: '0x1' },
      { name: 'contributed', at: 5_000, block: 8, worker: '0x2' },
      { name: 'consensus', at: 5_000, block: 8 },
      { name: 'revealed', at: 6_000, block: 9, worker: '0x1' },
      { name: 'finalized', at: 7_000, block: 10 }
    ]
    assert.deepEqual(taskTimes(events), {
      requested: 1_000, firstBid: 1_060, deal: 2_000, initialized: 3_000,
      firstContribution: 4_000, consensus: 5_000, finalized: 7_000, claimed: null
    })
  })

  it('a trust-1 contribute-and-finalize seen from another node: only the deal and the result', () => {
    const t = taskTimes([{ name: 'deal', at: 2_000, block: 5 }, { name: 'finalized', at: 3_000, block: 6 }])
    assert.deepEqual(t, { requested: null, firstBid: null, deal: 2_000, initialized: null, firstContribution: null, consensus: null, finalized: 3_000, claimed: null })
  })

  it('a claimed task has a claim time and no result time', () => {
    const t = taskTimes([{ name: 'deal', at: 2_000, block: 5 }, { name: 'reelected', at: 2_500, block: 6 }, { name: 'claimed', at: 9_000, block: 20 }])
    assert.equal(t.claimed, 9_000)
    assert.equal(t.finalized, null)
    assert.equal(t.deal, 2_000, 'a re-election does not move the deal time')
  })
})
