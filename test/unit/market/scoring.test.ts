/**
 * The market's score params, run through gossipsub's own PeerScore with the
 * verdicts of our adapter mapped the way gossipsub maps them.
 */
import assert from 'node:assert/strict'
import { PeerScore, createPeerScoreParams, validatePeerScoreThresholds } from '@libp2p/gossipsub/score'
import { rejectReasonFromAcceptance } from '@libp2p/gossipsub/types'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { ComponentLogger, Logger } from '@libp2p/interface'
import { swarmTopics } from '../../../protocols/topics.js'
import { marketScoring } from '../../../node/market/scoring.js'
import { PeerRejectTracker, runGossipValidation } from '../../../node/market/gossip-adapter.js'
import { FakeChain, appOrder, mallory, signedAppOrderBytes } from './fixture.js'

function silentLogger (): ComponentLogger {
  const log = Object.assign(() => {}, { enabled: false, error: () => {}, trace: () => {}, newScope: (): Logger => log }) as unknown as Logger
  return { forComponent: () => log }
}

describe('market: gossipsub peer scoring', function () {
  const topics = swarmTopics('test-swarm')
  const topic = topics.apporder

  function peerScore (): PeerScore {
    const { scoreParams, scoreThresholds } = marketScoring(topics)
    validatePeerScoreThresholds(scoreThresholds)
    // the constructor validates the params like gossipsub does at start
    return new PeerScore(createPeerScoreParams(scoreParams), null, silentLogger(), { scoreCacheValidityMs: 0 })
  }

  /** Feeds one message's verdict to the score the way gossipsub does after its topic validator. */
  function deliver (ps: PeerScore, from: string, msgId: string, verdict: TopicValidatorResult): void {
    ps.validateMessage(msgId)
    if (verdict === TopicValidatorResult.Accept) ps.deliverMessage(from, msgId, topic)
    else ps.rejectMessage(from, msgId, topic, rejectReasonFromAcceptance(verdict))
  }

  it('scores every market topic and passes gossipsub validation', () => {
    const { scoreParams } = marketScoring(topics)
    assert.deepEqual(Object.keys(scoreParams.topics ?? {}).sort(), Object.values(topics).sort())
    for (const t of Object.values(scoreParams.topics ?? {})) {
      assert.ok(t.invalidMessageDeliveriesWeight < 0)
      assert.equal(t.firstMessageDeliveriesWeight, 0, 'no reward for first deliveries')
    }
    peerScore()
  })

  it('graylists a peer after three forged orders, keeps a peer that sends stale ones, and forgives slowly', async () => {
    const { scoreThresholds: th } = marketScoring(topics)
    const ps = peerScore()
    ps.addPeer('forger')
    ps.addPeer('stale')
    const chain = new FakeChain()
    const rejects = new PeerRejectTracker(3)
    const scores: number[] = []
    for (let i = 0; i < 3; i++) {
      const verdict = await runGossipValidation({ type: 'apporder', ctx: chain.context(), rejects }, await signedAppOrderBytes(appOrder(), mallory), 'forger')
      assert.equal(verdict, TopicValidatorResult.Reject)
      deliver(ps, 'forger', `forged-${i}`, verdict)
      scores.push(ps.score('forger'))
    }
    assert.deepEqual(scores, [-10, -40, -90])
    assert.ok(scores[0]! >= th.gossipThreshold, 'one invalid message does not cut a peer off')
    assert.ok(scores[1]! < th.gossipThreshold && scores[1]! >= th.publishThreshold)
    assert.ok(scores[2]! < th.graylistThreshold, 'three forged orders graylist the sender')
    assert.equal(rejects.isBanned('forger'), true)

    // a duplicate, then the same order again: IGNORE, no penalty
    const ctx = chain.context()
    const bytes = await signedAppOrderBytes()
    deliver(ps, 'stale', 'm1', await runGossipValidation({ type: 'apporder', ctx, rejects }, bytes, 'stale'))
    for (let i = 0; i < 10; i++) {
      const verdict = await runGossipValidation({ type: 'apporder', ctx, rejects }, bytes, 'stale')
      assert.equal(verdict, TopicValidatorResult.Ignore)
      deliver(ps, 'stale', `dup-${i}`, verdict)
    }
    assert.equal(ps.score('stale'), 0)
    assert.equal(rejects.count('stale'), 0)

    // 600 decay intervals (10 minutes) halve the counter: 1.5^2 x -10 = -22.5, back above graylist
    for (let i = 0; i < 600; i++) ps.refreshScores()
    const after = ps.score('forger')
    assert.ok(Math.abs(after - -22.5) < 0.1, `score after 10 minutes: ${after}`)
    assert.ok(after > th.graylistThreshold)
  })

  it('does not penalize many peers on loopback (local swarms), but does on one other IP', () => {
    const ps = peerScore()
    for (let i = 0; i < 30; i++) {
      ps.addPeer(`local-${i}`)
      ps.addIP(`local-${i}`, '127.0.0.1')
      ps.addPeer(`remote-${i}`)
      ps.addIP(`remote-${i}`, '192.0.2.1')
    }
    assert.equal(ps.score('local-0'), 0)
    assert.ok(ps.score('remote-0') < 0, 'Sybils crowding one non-loopback IP still pay')
  })
})
