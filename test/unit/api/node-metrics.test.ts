import assert from 'node:assert/strict'
import { meteredExecutor, openDealRoles } from '../../../node/api/node-metrics.js'
import type { Executor } from '../../../node/worker/executor.js'

const ME = '0x00000000000000000000000000000000000000Aa'
const OTHER = '0x00000000000000000000000000000000000000bb'

describe('api: the node\'s metric sources (deal roles, metered executor)', () => {
  it('counts each open deal once per role this node holds in it', () => {
    const roles = openDealRoles([
      { deal: { requester: ME.toLowerCase(), workers: [OTHER], scheduler: OTHER } },
      { deal: { requester: OTHER, workers: [ME, OTHER], scheduler: ME } },
      // a reelected scheduler replaces the deal's first one
      { scheduler: OTHER, deal: { requester: OTHER, workers: [OTHER], scheduler: ME } }
    ], ME)
    assert.deepEqual(roles, { requester: 1, worker: 1, scheduler: 1 })
  })

  it('observes each run\'s status and duration, and an error as ERROR', async () => {
    const seen: Array<[string, number]> = []
    let fail = false
    let closed = false
    const inner = {
      name: 'wasi',
      run: async () => { if (fail) throw new Error('closed'); return { status: 'COMPLETED', durationMs: 1500 } },
      close: async () => { closed = true }
    } as unknown as Executor
    const e = meteredExecutor(inner, { observeRun: (s, secs) => { seen.push([s, secs]) } })
    assert.equal(e.name, 'wasi')
    await e.run({} as never)
    fail = true
    await assert.rejects(e.run({} as never), /closed/)
    await e.close()
    assert.deepEqual(seen[0], ['COMPLETED', 1.5])
    assert.equal(seen[1][0], 'ERROR')
    assert.ok(closed)
  })
})
