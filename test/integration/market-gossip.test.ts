/**
 * The market's validators on real gossipsub: three libp2p nodes on
 * 127.0.0.1, each with its own level orderbook fed by the adapter. Valid
 * orders reach every orderbook; forged, wrong-domain (chain or hub),
 * oversized and garbage messages are rejected by the first receiver, never
 * stored, never relayed, and the nodes keep working.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createNetwork } from '../../node/network/index.js'
import type { Network } from '../../node/network/index.js'
import { DbController } from '../../node/db/index.js'
import { swarmTopics } from '../../protocols/topics.js'
import { hubDomain } from '../../protocols/eip712.js'
import { MAX_MESSAGE_BYTES } from '../../protocols/market.js'
import {
  GossipValidationStats, Orderbook, createTopicValidator
} from '../../node/market/index.js'
import type { MarketValidationContext } from '../../node/market/index.js'
import {
  FakeChain, OTHER_HUB, appOrder, mallory, requestOrder, signedAppOrderBytes, signedRequestBytes, appOwner
} from '../unit/market/fixture.js'
import { waitFor } from '../helpers/wait.js'

const SWARM = 'market-itest'

interface MarketPeer {
  net: Network
  book: Orderbook
  stats: GossipValidationStats
  ctx: MarketValidationContext
}

describe('market: validators on real gossipsub (3 nodes)', function () {
  this.timeout(60_000)
  const cleanup: Array<() => Promise<void>> = []
  let root: string
  const topics = swarmTopics(SWARM)

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-market-'))
    cleanup.push(async () => { await rm(root, { recursive: true, force: true }) })
  })
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function startPeer (name: string, chain: FakeChain, bootstrap: string[]): Promise<MarketPeer> {
    const net = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, swarmId: SWARM })
    cleanup.push(async () => { await net.stop() })
    const db = new DbController({ path: join(root, name) })
    await db.open()
    cleanup.push(async () => { await db.close() })
    const book = new Orderbook(db, { clock: { nowSeconds: () => chain.now } })
    const ctx = { ...chain.context(), requests: book }
    const stats = new GossipValidationStats()
    await net.start()
    // as early as NET allows (after start; see the report: NET subscribes the market topics at start)
    net.setTopicValidator(topics.apporder, createTopicValidator({ type: 'apporder', ctx, stats, onAccept: async (v) => { await book.add(v) } }))
    net.setTopicValidator(topics.requestorder, createTopicValidator({ type: 'requestorder', ctx, stats, onAccept: async (v) => { await book.add(v) } }))
    net.subscribe(topics.apporder, () => {})
    net.subscribe(topics.requestorder, () => {})
    return { net, book, stats, ctx }
  }

  it('spreads valid orders to every orderbook and rejects forged, wrong-domain, oversized and garbage ones at the first hop', async () => {
    const chain = new FakeChain()
    const a = await startPeer('a', chain, [])
    const b = await startPeer('b', chain, [a.net.multiaddrs()[0]!])
    const c = await startPeer('c', chain, [a.net.multiaddrs()[0]!, b.net.multiaddrs()[0]!])
    const peers = [a, b, c]
    for (const p of peers) {
      await p.net.bootstrapSettled()
      await waitFor(() => p.net.topicPeers(topics.apporder).length >= 2 && p.net.topicPeers(topics.requestorder).length >= 2, 20_000, 'subscriptions exchanged')
    }

    // c is the attacker: a forged app order, one for another chain, one for
    // another hub, one over the size bound, garbage bytes
    const forged = await signedAppOrderBytes(appOrder(), mallory)
    const otherChain = await signedAppOrderBytes(appOrder(), appOwner, hubDomain(1n, chain.context().domain.verifyingContract))
    const otherHub = await signedAppOrderBytes(appOrder(), appOwner, hubDomain(chain.context().domain.chainId, OTHER_HUB))
    // a rightly signed order, padded with JSON whitespace one byte past the bound: rejected for its size alone
    const valid = await signedAppOrderBytes(appOrder())
    const oversized = new Uint8Array(MAX_MESSAGE_BYTES.apporder + 1).fill(0x20)
    oversized.set(valid.subarray(0, valid.length - 1))
    oversized[oversized.length - 1] = valid[valid.length - 1]!
    await c.net.publish(topics.apporder, forged)
    await c.net.publish(topics.apporder, otherChain)
    await c.net.publish(topics.apporder, otherHub)
    await c.net.publish(topics.apporder, oversized)
    await c.net.publish(topics.apporder, new TextEncoder().encode('{"v":1,"type":"apporder"}'))
    await waitFor(() => a.stats.get('apporder', 'reject') >= 5 && b.stats.get('apporder', 'reject') >= 5, 20_000, 'a and b reject the five bad messages')
    for (const p of [a, b]) {
      assert.equal(p.stats.get('apporder', 'reject', 'GOSSIP_BAD_SIGNATURE'), 1)
      assert.equal(p.stats.get('apporder', 'reject', 'GOSSIP_WRONG_CHAIN'), 1)
      assert.equal(p.stats.get('apporder', 'reject', 'GOSSIP_WRONG_HUB'), 1)
      assert.equal(p.stats.get('apporder', 'reject', 'GOSSIP_TOO_LARGE'), 1)
      assert.equal(p.stats.get('apporder', 'reject', 'GOSSIP_INVALID_FIELD'), 1)
      assert.equal(p.stats.get('apporder', 'accept'), 0, 'nothing bad accepted')
    }

    // then a real app order from a and a request from b: every other orderbook gets them
    const order = appOrder()
    await a.net.publish(topics.apporder, await signedAppOrderBytes(order))
    const request = requestOrder()
    await b.net.publish(topics.requestorder, await signedRequestBytes(request))
    await waitFor(async () => (await b.book.query({ type: 'apporder' })).length === 1 && (await c.book.query({ type: 'apporder' })).length === 1, 20_000, 'the app order in b and c')
    await waitFor(async () => (await a.book.query({ type: 'requestorder' })).length === 1 && (await c.book.query({ type: 'requestorder' })).length === 1, 20_000, 'the request in a and c')
    const inC = (await c.book.query({ type: 'apporder' }))[0]!
    assert.equal(inC.message.type === 'apporder' ? inC.message.order.salt : '', order.salt.toLowerCase())
    assert.equal(inC.signer, appOwner.address)
    // the forged orders never reached a book
    for (const p of peers) assert.equal((await p.book.query({ type: 'apporder' })).filter((e) => e.signer !== appOwner.address).length, 0)

    // a replay of the valid order by the attacker is ignored, not stored twice
    const replay = await signedAppOrderBytes(order)
    const before = b.stats.get('apporder', 'ignore', 'GOSSIP_DUPLICATE')
    await c.net.publish(topics.apporder, replay)
    await waitFor(() => b.stats.get('apporder', 'ignore', 'GOSSIP_DUPLICATE') > before, 20_000, 'the replay ignored by b')
    assert.equal((await b.book.query({ type: 'apporder' })).length, 1)
  })
})
