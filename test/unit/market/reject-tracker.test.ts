/**
 * PeerRejectTracker's ban hook: the node hangs up on a peer when it crosses
 * the REJECT limit (service.ts) and its gater refuses it afterwards.
 */
import assert from 'node:assert/strict'
import { DEFAULT_REJECT_LIMIT, PeerRejectTracker } from '../../../node/market/gossip-adapter.js'

describe('market: PeerRejectTracker', function () {
  it('bans at the limit and tells its listeners once, at the crossing', () => {
    const rejects = new PeerRejectTracker(3)
    const banned: string[] = []
    rejects.onBanned((p) => { banned.push(p) })
    rejects.record('forger')
    rejects.record('forger')
    assert.equal(rejects.isBanned('forger'), false)
    assert.deepEqual(banned, [])
    rejects.record('forger')
    assert.equal(rejects.isBanned('forger'), true)
    assert.deepEqual(banned, ['forger'])
    // messages already in flight when it was banned change nothing
    rejects.record('forger')
    assert.deepEqual(banned, ['forger'])
    assert.equal(rejects.isBanned('honest'), false)
  })

  it('a throwing listener reaches neither the recorder nor the other listeners; unsubscribed ones are not called', () => {
    const rejects = new PeerRejectTracker(1)
    const seen: string[] = []
    rejects.onBanned(() => { throw new Error('listener bug') })
    const off = rejects.onBanned((p) => { seen.push(`off:${p}`) })
    rejects.onBanned((p) => { seen.push(p) })
    off()
    assert.doesNotThrow(() => { rejects.record('forger') })
    assert.deepEqual(seen, ['forger'])
  })

  it('defaults to DEFAULT_REJECT_LIMIT', () => {
    const rejects = new PeerRejectTracker()
    assert.equal(rejects.limit, DEFAULT_REJECT_LIMIT)
    for (let i = 0; i < DEFAULT_REJECT_LIMIT - 1; i++) rejects.record('p')
    assert.equal(rejects.isBanned('p'), false)
    rejects.record('p')
    assert.equal(rejects.isBanned('p'), true)
  })
})
