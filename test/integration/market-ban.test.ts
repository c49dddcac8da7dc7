/**
 * The REJECT limit in real nodes: 2 providers and 1 requester (IexecNodes,
 * anvil, scored gossipsub) and a forger, a bare network of the same swarm
 * that publishes forged request orders straight to one provider. gossipsub
 * graylists the forger after three, and forgets it when it reconnects
 * (@libp2p/gossipsub 17.1.1, node/market/scoring.ts), so the forger
 * reconnects whenever it is graylisted, as a real one would. At the market's
 * limit the provider hangs up on it, refuses its dials and its inbound
 * connections, and the honest nodes keep their connections and their gossip.
 */
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import type { GossipSub } from '@libp2p/gossipsub'
import type { Connection } from '@libp2p/interface'
import { createNetwork } from '../../node/network/index.js'
import type { Network } from '../../node/network/index.js'
import type { IexecNode } from '../../node/node.js'
import { DEFAULT_REJECT_LIMIT } from '../../node/market/gossip-adapter.js'
import { marketScoring } from '../../node/market/index.js'
import { swarmTopics } from '../../protocols/topics.js'
import { mallory, requestOrder, signedRequestBytes } from '../unit/market/fixture.js'
import { RLC, ok, startSwarm, waitFor } from './market-helpers.js'

const APP = { name: 'ban-check', cid: 'bafy-ban-check', checksum: '0x' + '22'.repeat(32), price: RLC.toString() }

/** The node's gossipsub score of a peer (GossipSub's type does not declare getScore; the implementation has it). */
function scoreOf (node: IexecNode, peer: string): number {
  return (node.network.helia.libp2p.services.pubsub as GossipSub & { getScore: (peerId: string) => number }).getScore(peer)
}

function connectionsTo (node: IexecNode, peer: string): number {
  return node.network.helia.libp2p.getConnections(peerIdFromString(peer)).length
}

describe('market: a peer past the REJECT limit is disconnected and refused (3 nodes + a forger, anvil)', function () {
  this.timeout(180_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('bans a forger that washes its gossipsub score by reconnecting; honest peers stay connected and gossip', async () => {
    const s = await startSwarm({ providers: 2 }, cleanup)
    const [victim, other] = s.providers
    const requester = s.requesters[0]
    const market = victim.market
    assert.ok(market !== undefined, 'the victim runs a market')
    const topics = swarmTopics('mkt')
    const graylist = marketScoring(topics).scoreThresholds.graylistThreshold
    const victimAddr = victim.multiaddrs()[0]

    const forger: Network = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], swarmId: 'mkt' })
    cleanup.push(async () => { await forger.stop() })
    await forger.start()
    const forgerId = forger.peerId
    await forger.dial(victimAddr)
    await waitFor(() => forger.topicPeers(topics.requestorder).includes(victim.peerId) && victim.network.topicPeers(topics.requestorder).includes(forgerId), 20_000, 'forger and victim subscribed to each other')

    // a request claiming the real requester, signed by mallory under the swarm's own domain
    const forged = async (): Promise<Uint8Array> => await signedRequestBytes(requestOrder({ requester: requester.address, beneficiary: requester.address }), mallory, market.domain)

    // rounds of three: gossipsub graylists the forger after each, and the
    // forger reconnects to come back with a clean score
    let reconnects = 0
    for (let round = 0; !market.rejects.isBanned(forgerId); round++) {
      assert.ok(round < Math.ceil(DEFAULT_REJECT_LIMIT / 3), `banned within ${Math.ceil(DEFAULT_REJECT_LIMIT / 3)} rounds (${market.rejects.count(forgerId)} REJECTs so far)`)
      if (round > 0) {
        // (the DHT of either side may redial at once: the score below shows the reconnect took)
        await forger.hangUp(victim.peerId)
        // gossipsub drops whole RPCs from a graylisted peer, and the victim
        // may still cache the old score for up to 1 s: the forger's hello (its
        // subscriptions) can be lost, so only the forger's side is waited for
        // (a message needs no subscription to be validated)
        await forger.dial(victimAddr)
        await waitFor(() => forger.topicPeers(topics.requestorder).includes(victim.peerId), 20_000, 'the forger sees the victim subscribed')
        reconnects++
        // gossipsub 17.1.1 starts a reconnected peer from a clean score; it shows once the 1 s score cache expires
        await waitFor(() => scoreOf(victim, forgerId) >= graylist, 5_000, `the score washed by the reconnect (now ${scoreOf(victim, forgerId)})`)
      }
      for (let i = 0; i < 3 && !market.rejects.isBanned(forgerId); i++) {
        const before = market.rejects.count(forgerId)
        await forger.publish(topics.requestorder, await forged())
        await waitFor(() => market.rejects.count(forgerId) > before, 20_000, `forged request ${before + 1} rejected`)
      }
      if (!market.rejects.isBanned(forgerId)) await waitFor(() => scoreOf(victim, forgerId) < graylist, 5_000, 'gossipsub graylists the forger after three')
    }
    assert.equal(market.rejects.count(forgerId), DEFAULT_REJECT_LIMIT)
    assert.equal(reconnects, Math.ceil(DEFAULT_REJECT_LIMIT / 3) - 1, 'the REJECTs of every connection add up, unlike gossipsub\'s score')
    assert.equal(market.stats.get('requestorder', 'reject', 'GOSSIP_BAD_SIGNATURE'), DEFAULT_REJECT_LIMIT, 'every REJECT counted under its code')

    // hung up at the limit
    await waitFor(() => connectionsTo(victim, forgerId) === 0 && !victim.network.topicPeers(topics.requestorder).includes(forgerId), 20_000, 'the victim hung up on the forger')
    const forgerConns = (): number => forger.helia.libp2p.getConnections(peerIdFromString(victim.peerId)).length
    // the forger's end of the hung-up connections closes a moment later
    await waitFor(() => forgerConns() === 0, 10_000, 'the forger sees the hang-up')
    const letIn: string[] = []
    const onOpen = (evt: CustomEvent<Connection>): void => { letIn.push(evt.detail.remotePeer.toString()) }
    victim.network.helia.libp2p.addEventListener('connection:open', onOpen)
    cleanup.push(async () => { victim.network.helia.libp2p.removeEventListener('connection:open', onOpen) })
    // the victim's gater refuses it once the handshake names the forger. noise
    // negotiates the muxer inside its handshake, so the dialler's side may
    // finish its upgrade before the victim closes the socket: the dial may
    // resolve, and what counts is that the connection does not live
    await forger.dial(victimAddr, { signal: AbortSignal.timeout(10_000) }).catch(() => {})
    await waitFor(() => forgerConns() === 0, 10_000, 'the refused connection torn down on the forger\'s side')
    assert.deepEqual(letIn.filter((p) => p === forgerId), [], 'the victim let no connection from the forger in')
    assert.equal(connectionsTo(victim, forgerId), 0, 'and none is open')
    // nor does the victim dial it (libp2p's dial queue asks the gater before any socket opens)
    await assert.rejects(victim.network.dial(forger.multiaddrs()[0]), (err: Error) => err.name === 'DialDeniedError')

    // honest peers: nobody else is counted against, they stay connected and gossip still flows
    for (const n of s.all) for (const m of s.all) assert.equal(n.market?.rejects.count(m.peerId), 0, 'no honest peer rejected')
    await waitFor(() => [other, requester].every((n) => victim.network.topicPeers(topics.requestorder).includes(n.peerId)), 20_000, 'the victim still meshes with the honest nodes')
    const app = await ok(other, 'POST', '/v1/apps', APP)
    for (const n of s.all) {
      await waitFor(async () => ((await ok(n, 'GET', '/v1/orderbook?type=app')).orders as Array<Record<string, unknown>>).some((o) => o.orderHash === app.orderHash), 15_000, 'the new app order in every book')
    }
    assert.ok(victim.network.started && victim.market?.started === true, 'the victim keeps running')
  })
})
