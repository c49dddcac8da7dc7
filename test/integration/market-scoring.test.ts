/**
 * Peer scoring end to end: two real libp2p nodes on 127.0.0.1 whose
 * gossipsub is built with the market's score params (what node/network
 * must pass; see node/market/scoring.ts) and the market's validator. A peer
 * that sends forged orders is graylisted after three; a peer that sends only
 * stale ones (replays, expired) is not punished; orders for another hub and
 * oversized ones cost their sender; the receiver keeps working throughout.
 */
import assert from 'node:assert/strict'
import { createLibp2p } from 'libp2p'
import type { Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { gossipsub, multicodec as gossipsubProtocol } from '@libp2p/gossipsub'
import type { GossipSub } from '@libp2p/gossipsub'
import { swarmTopics } from '../../protocols/topics.js'
import { GossipValidationStats, PeerRejectTracker, createTopicValidator, marketScoring } from '../../node/market/index.js'
import { MAX_MESSAGE_BYTES } from '../../protocols/market.js'
import { hubDomain } from '../../protocols/eip712.js'
import { CHAIN_ID, FakeChain, NOW, OTHER_HUB, appOrder, appOwner, mallory, salt, signedAppOrderBytes } from '../unit/market/fixture.js'
import { waitFor } from '../helpers/wait.js'

type Node = Libp2p<{ identify: ReturnType<ReturnType<typeof identify>>, pubsub: GossipSub }>

/** GossipSub's type does not declare getScore; the implementation has it. */
type ScoredGossipSub = GossipSub & { getScore: (peerId: string) => number }

/** A valid message padded with JSON whitespace before its closing brace: the same order, `size` bytes long. */
function padded (bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size).fill(0x20)
  out.set(bytes.subarray(0, bytes.length - 1))
  out[size - 1] = bytes[bytes.length - 1]!
  return out
}

/** An unsigned LEB128 varint, as gossipsub's length prefix. */
function varint (n: number): Uint8Array {
  const out: number[] = []
  for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80)
  out.push(n)
  return Uint8Array.from(out)
}

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
    const rejects = new PeerRejectTracker()
    const delivered: string[] = []
    receiver.services.pubsub.topicValidators.set(topics.apporder, createTopicValidator({ type: 'apporder', ctx: chain.context(), stats, rejects }))
    receiver.services.pubsub.addEventListener('message', (evt) => { if (evt.detail.topic === topics.apporder) delivered.push(evt.detail.topic) })
    for (const n of [receiver, forger, stale]) n.services.pubsub.subscribe(topics.apporder)
    await forger.dial(receiver.getMultiaddrs()[0]!)
    await stale.dial(receiver.getMultiaddrs()[0]!)
    // the GossipSub interface does not declare getScore; the implementation has it
    const ps = receiver.services.pubsub as ScoredGossipSub
    await waitFor(() => ps.getSubscribers(topics.apporder).length === 2, 20_000, 'both peers subscribed')
    // and both see the receiver subscribed, or a publish may go to nobody (allowPublishToZeroTopicPeers)
    await waitFor(() => [forger, stale].every((n) => n.services.pubsub.getSubscribers(topics.apporder).length === 1), 20_000, 'the receiver subscribed, as both peers see it')
    const forgerId = forger.peerId.toString()
    const staleId = stale.peerId.toString()

    // stale traffic: one valid order, then the same order again (a replay: a
    // new gossip message, so gossipsub's own seen cache lets it through to
    // the validator) and an expired one, from the same peer
    const order = await signedAppOrderBytes(appOrder())
    await stale.services.pubsub.publish(topics.apporder, order)
    await waitFor(() => stats.get('apporder', 'accept') === 1, 20_000, 'the valid order accepted')
    await waitFor(() => delivered.length === 1, 20_000, 'the valid order delivered')
    await stale.services.pubsub.publish(topics.apporder, order)
    await waitFor(() => stats.get('apporder', 'ignore', 'GOSSIP_DUPLICATE') === 1, 20_000, 'the replay ignored')
    await stale.services.pubsub.publish(topics.apporder, await signedAppOrderBytes(appOrder({ salt: salt(NOW - 1) })))
    await waitFor(() => stats.get('apporder', 'ignore', 'GOSSIP_EXPIRED') === 1, 20_000, 'the expired order ignored')
    // IGNORE by design (stale, not forged): neither accepted nor delivered, and the sender is not penalized
    assert.equal(stats.get('apporder', 'accept'), 1, 'the replay and the expired order are not accepted')
    assert.equal(delivered.length, 1, 'nor delivered')
    assert.equal(stats.get('apporder', 'reject'), 0, 'nor rejected')
    assert.equal(rejects.count(staleId), 0, 'no REJECT counted against the stale peer')
    // a REJECT would cost 10 at once (P4); time in mesh only ever adds (P1)
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
    assert.equal(rejects.count(forgerId), 3, 'the forger\'s REJECTs counted against it')

    // the receiver still works: a new valid order from the good peer is accepted and delivered
    await stale.services.pubsub.publish(topics.apporder, await signedAppOrderBytes(appOrder()))
    await waitFor(() => stats.get('apporder', 'accept') === 2, 20_000, 'a later valid order accepted')
    await waitFor(() => delivered.length === 2, 20_000, 'delivered to the subscriber')
  })

  it('rejects orders for another hub and oversized ones, each lowering the sender\'s score; gossipsub drops frames over 4 MiB itself', async () => {
    const chain = new FakeChain()
    const receiver = await node()
    const forger = await node()
    const honest = await node()
    const hostile = await node()
    const stats = new GossipValidationStats()
    const rejects = new PeerRejectTracker()
    const delivered: number[] = []
    receiver.services.pubsub.topicValidators.set(topics.apporder, createTopicValidator({ type: 'apporder', ctx: chain.context(), stats, rejects }))
    receiver.services.pubsub.addEventListener('message', (evt) => { if (evt.detail.topic === topics.apporder) delivered.push(evt.detail.data.length) })
    for (const n of [receiver, forger, honest, hostile]) n.services.pubsub.subscribe(topics.apporder)
    for (const n of [forger, honest, hostile]) await n.dial(receiver.getMultiaddrs()[0]!)
    const ps = receiver.services.pubsub as ScoredGossipSub
    await waitFor(() => ps.getSubscribers(topics.apporder).length === 3, 20_000, 'the three peers subscribed')
    await waitFor(() => [forger, honest].every((n) => n.services.pubsub.getSubscribers(topics.apporder).length === 1), 20_000, 'the receiver subscribed, as the senders see it')
    const forgerId = forger.peerId.toString()
    const outcomes = (): number => Object.values(stats.snapshot()).reduce((a, b) => a + b, 0)

    // an app order rightly signed by the app's owner, but under another hub's domain
    const s0 = ps.getScore(forgerId)
    await forger.services.pubsub.publish(topics.apporder, await signedAppOrderBytes(appOrder(), appOwner, hubDomain(CHAIN_ID, OTHER_HUB)))
    await waitFor(() => stats.get('apporder', 'reject', 'GOSSIP_WRONG_HUB') === 1, 20_000, 'the wrong-hub order rejected')
    // gossipsub caches a score for one heartbeat (1 s): poll for the drop (P4: -10 x 1^2)
    await waitFor(() => ps.getScore(forgerId) < s0 - 5, 20_000, `the score drops after the wrong hub (from ${s0}, now ${ps.getScore(forgerId)})`)
    const s1 = ps.getScore(forgerId)

    // oversized: a valid order padded to MAX_MESSAGE_BYTES is accepted (from
    // the honest peer), one byte more is rejected for its size alone
    const max = MAX_MESSAGE_BYTES.apporder
    await honest.services.pubsub.publish(topics.apporder, padded(await signedAppOrderBytes(appOrder()), max))
    await waitFor(() => stats.get('apporder', 'accept') === 1 && delivered.length === 1, 20_000, 'the order of exactly the bound accepted')
    await forger.services.pubsub.publish(topics.apporder, padded(await signedAppOrderBytes(appOrder()), max + 1))
    await waitFor(() => stats.get('apporder', 'reject', 'GOSSIP_TOO_LARGE') === 1, 20_000, 'the oversized order rejected')
    // P4: -10 x 2^2
    await waitFor(() => ps.getScore(forgerId) < s1 - 5, 20_000, `the score drops after the oversized order (from ${s1}, now ${ps.getScore(forgerId)})`)
    assert.equal(rejects.count(forgerId), 2, 'both REJECTs counted against the forger')
    assert.equal(rejects.count(honest.peerId.toString()), 0)
    assert.ok(ps.getScore(honest.peerId.toString()) >= 0, 'the honest peer is not penalized')

    // Past 4 MiB our validator never runs: gossipsub's RPC frames are
    // it-length-prefixed with its default bound of 4 MiB on both ends. A
    // stock gossipsub refuses to encode such a message and sends it to no one.
    const outcomesBefore = outcomes()
    const huge = await forger.services.pubsub.publish(topics.apporder, padded(await signedAppOrderBytes(appOrder()), 4 * 1024 * 1024 + 1))
    assert.equal(huge.recipients.length, 0, 'a message over 4 MiB leaves no stock sender')
    // A hostile sender writing the frame itself: the receiver's decoder fails
    // on the length prefix, and gossipsub drops the sender's streams and
    // forgets it as a peer (no validation, no REJECT, no score: it is simply
    // out of this receiver's gossip until it reconnects).
    const raw = await hostile.dialProtocol(receiver.peerId, gossipsubProtocol)
    raw.send(varint(5 * 1024 * 1024))
    raw.send(new Uint8Array(1024))
    const hostileId = hostile.peerId.toString()
    await waitFor(() => !ps.getPeers().some((p) => p.toString() === hostileId), 20_000, 'the receiver drops the hostile sender from gossipsub')
    assert.ok(!ps.getSubscribers(topics.apporder).some((p) => p.toString() === hostileId), 'nor counts it a subscriber')
    assert.equal(outcomes(), outcomesBefore, 'neither oversized frame reached the validator')
    assert.equal(rejects.count(hostileId), 0)

    // the receiver keeps working: a new valid order from the honest peer is accepted and delivered
    await honest.services.pubsub.publish(topics.apporder, await signedAppOrderBytes(appOrder()))
    await waitFor(() => stats.get('apporder', 'accept') === 2 && delivered.length === 2, 20_000, 'a later valid order accepted and delivered')
  })
})
