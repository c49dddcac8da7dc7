/**
 * Peer scoring end to end: two real libp2p nodes on 127.0.0.1 whose
 * gossipsub is built with the market's score params (what node/network
 * must pass; see node/market/scoring.ts) and the market's validator. A peer
 * that sends forged orders is graylisted after three; a peer that sends only
 * stale ones (duplicates, expired) is not punished; the receiver keeps
 * working throughout.
 */
import assert from 'node:assert/strict'
import { createLibp2p } from 'libp2p'
import type { Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import type { GossipSub } from '@libp2p/gossipsub'
import { swarmTopics } from '../../protocols/topics.js'
import { GossipValidationStats, createTopicValidator, marketScoring } from '../../node/market/index.js'
import { FakeChain, NOW, appOrder, mallory, salt, signedAppOrderBytes } from '../unit/market/fixture.js'
import { waitFor } from '../helpers/wait.js'

type Node = Libp2p<{ identify: ReturnType<ReturnType<typeof identify>>, pubsub: GossipSub }>

describe('market: gossipsub peer scoring on real nodes', function () {
  this.timeout(60_000)
  const cleanup: Array<() => Promise<void>> = []
  const topics = swarmTopics('scoring-itest')
  const scoring = marketScoring(topics)

  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function node (): Promise<Node> {
    const n = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: {
        identify: identify(),
        pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false, fallbackToFloodsub: false, ...scoring })
      }
    }) as unknown as Node
    cleanup.push(async () => { await n.stop() })
    return n
  }

  it('graylists a forger after three forged orders; stale messages cost nothing; the receiver keeps working', async () => {
    const chain = new FakeChain()
    const receiver = await node()
    const forger = await node()
    const stale = await node()
    const stats = new GossipValidationStats()
    const delivered: string[] = []
    receiver.services.pubsub.topicValidators.set(topics.apporder, createTopicValidator({ type: 'apporder', ctx: chain.context(), stats }))
    receiver.services.pubsub.addEventListener('message', (evt) => { if (evt.detail.topic === topics.apporder) delivered.push(evt.detail.topic) })
    for (const n of [receiver, forger, stale]) n.services.pubsub.subscribe(topics.apporder)
    await forger.dial(receiver.getMultiaddrs()[0]!)
    await stale.dial(receiver.getMultiaddrs()[0]!)
    // the GossipSub interface does not declare getScore; the implementation has it
    const ps = receiver.services.pubsub as GossipSub & { getScore: (peerId: string) => number }
    await waitFor(() => ps.getSubscribers(topics.apporder).length === 2, 20_000, 'both peers subscribed')
    const forgerId = forger.peerId.toString()
    const staleId = stale.peerId.toString()

    // stale traffic: one valid order, then the same order again and an expired one, from the same peer
    const order = await signedAppOrderBytes(appOrder())
    await stale.services.pubsub.publish(topics.apporder, order)
    await waitFor(() => stats.get('apporder', 'accept') === 1, 20_000, 'the valid order accepted')
    await stale.services.pubsub.publish(topics.apporder, await signedAppOrderBytes(appOrder({ salt: salt(NOW - 1) })))
    await waitFor(() => stats.get('apporder', 'ignore', 'GOSSIP_EXPIRED') === 1, 20_000, 'the expired order ignored')
    assert.ok(ps.getScore(staleId) >= 0, `stale peer score ${ps.getScore(staleId)}`)

    // forged orders, one at a time, watching the score fall. gossipsub caches
    // a score for one heartbeat (1 s), so each expected value is polled for.
    // P4 = -10 x n^2, plus at most a few hundredths of P1 (time in mesh)
    const expected = [-10, -40, -90]
    const scores: number[] = []
    for (let i = 0; i < 3; i++) {
      await forger.services.pubsub.publish(topics.apporder, await signedAppOrderBytes(appOrder(), mallory))
      await waitFor(() => stats.get('apporder', 'reject', 'GOSSIP_BAD_SIGNATURE') === i + 1, 20_000, `forged order ${i + 1} rejected`)
      await waitFor(() => ps.getScore(forgerId) < expected[i]! + 1, 20_000, `score near ${expected[i]} (now ${ps.getScore(forgerId)})`)
      scores.push(ps.getScore(forgerId))
    }
    assert.ok(scores[0]! >= scoring.scoreThresholds.gossipThreshold, `one forged order does not cut the peer off: ${scores[0]}`)
    assert.ok(scores[1]! < scoring.scoreThresholds.gossipThreshold, `after 2: ${scores[1]}`)
    assert.ok(scores[2]! < scoring.scoreThresholds.graylistThreshold, `after 3 the forger is graylisted: ${scores[2]}`)
    assert.ok(ps.getScore(staleId) >= 0, 'the stale peer is still in good standing')

    // the receiver still works: a new valid order from the good peer is accepted and delivered
    await stale.services.pubsub.publish(topics.apporder, await signedAppOrderBytes(appOrder()))
    await waitFor(() => stats.get('apporder', 'accept') === 2, 20_000, 'a later valid order accepted')
    await waitFor(() => delivered.length === 2, 20_000, 'delivered to the subscriber')
  })
})
