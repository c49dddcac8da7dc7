import assert from 'node:assert/strict'
import { chainProfile } from '../../../node/chain/profile.js'
import { isChainError } from '../../../node/chain/errors.js'

describe('chain profile', () => {
  it('a dev chain follows at once and fast; any other chain waits for confirmations and polls gently; config overrides either', () => {
    const dev = chainProfile(31337)
    assert.equal(dev.confirmations, 0)
    assert.ok(dev.eventPollIntervalMs <= 100)
    const remote = chainProfile(134)
    assert.ok(remote.confirmations >= 1)
    assert.ok(remote.eventPollIntervalMs >= 1000)
    assert.deepEqual(chainProfile(134, { confirmations: 12, eventPollIntervalMs: undefined }), { ...remote, confirmations: 12 })
    assert.equal(chainProfile(31337, { eventPollIntervalMs: 20 }).eventPollIntervalMs, 20)
    assert.throws(() => chainProfile(1, { confirmations: -1 }), (e: unknown) => isChainError(e, 'INVALID_ARGUMENT'))
  })
})
