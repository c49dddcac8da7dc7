/**
 * Gossip economics in real nodes: 2 providers and 1 requester (IexecNodes,
 * anvil, Helia, WASI) and a flooder, a bare network of the same swarm that
 * publishes 10,000 request orders signed by keys with no hub deposit straight
 * to one provider while a real deal runs. The provider neither relays nor
 * bids on any of them (GOSSIP_UNFUNDED, judged from the hub's events with no
 * chain read), drops the excess over the flooder's rate, bans the flooder (by
 * peer id) and the key that signed most of them (by address), and the deal
 * completes. The bans are in level: the provider restarted on its data dir
 * still refuses both.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { Wallet, hexlify, randomBytes } from 'ethers'
import { ApiClient } from '../../node/api/client.js'
import { WorkClient } from '../../node/api/work-client.js'
import { dataDirPaths } from '../../node/config/index.js'
import { createNetwork } from '../../node/network/index.js'
import type { Network } from '../../node/network/index.js'
import type { IexecNode } from '../../node/node.js'
import { swarmTopics } from '../../protocols/topics.js'
import { requestOrder, signedRequestBytes } from '../unit/market/fixture.js'
import { startSwarm, waitFor } from '../integration/market-helpers.js'

const PRIMES = new URL('../../examples/apps/primes/primes.wasm', import.meta.url)
const FLOOD = 10_000
/** requests signed by one key before the others: enough to reach the address's offence limit */
const ONE_KEY = 60
const SIGNER_LIMIT = 50

async function clientOf (node: IexecNode): Promise<ApiClient> {
  return new ApiClient(node.apiUrl(), (await readFile(dataDirPaths(node.dataDir).apiToken, 'utf8')).trim(), { timeoutMs: 30_000 })
}

describe('market: 10,000 unfunded requests flood a provider while a real deal runs (3 nodes + a flooder, anvil)', function () {
  this.timeout(300_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('drops and throttles the flood, bans the flooder and its key (kept in level across a restart); the deal completes', async () => {
    const s = await startSwarm({ providers: 2, market: { signerOffenceLimit: SIGNER_LIMIT } }, cleanup)
    const [victim] = s.providers
    const requester = s.requesters[0]
    const market = victim.market
    assert.ok(market !== undefined)
    const topics = swarmTopics('mkt')

    // the app, published through the nodes' own API
    const owner = await clientOf(s.providers[1])
    const added = await owner.addContent(new Uint8Array(await readFile(PRIMES)))
    const app = await owner.registerApp({ name: 'primes', cid: added.cid, checksum: added.checksum, price: 0n })
    const api = await clientOf(requester)
    await waitFor(async () => (await api.orderbook({ type: 'app', app: app.address })).some((o) => o.orderHash === app.orderHash), 20_000, 'the app order at the requester')

    // the flood, signed before it starts (the keys have no deposit on the hub)
    const heavy = new Wallet(hexlify(randomBytes(32)))
    const keys = Array.from({ length: 100 }, () => new Wallet(hexlify(randomBytes(32))))
    const flood: Uint8Array[] = []
    for (let i = 0; i < FLOOD; i++) {
      const signer = i < ONE_KEY ? heavy : keys[i % keys.length]
      const order = requestOrder({ app: app.address, requester: signer.address, beneficiary: signer.address, workerpoolmaxprice: 10n ** 9n })
      flood.push(await signedRequestBytes(order, signer, market.domain))
    }

    const flooder: Network = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], swarmId: 'mkt' })
    cleanup.push(async () => { await flooder.stop() })
    await flooder.start()
    const flooderId = flooder.peerId
    await flooder.dial(victim.multiaddrs()[0])
    await waitFor(() => flooder.topicPeers(topics.requestorder).includes(victim.peerId), 20_000, 'the flooder sees the victim subscribed')

    // RLC of every party, to the nRLC: wallets, hub balances, frozen, stakes, and the kitty
    const hub = market.hub
    const rlc = market.chain.rlc
    assert.ok(rlc !== undefined)
    const totalRlc = async (): Promise<bigint> => {
      let t = await hub.kitty()
      for (const n of s.all) {
        const [balance, frozen] = await hub.accountOf(n.address)
        const [stake] = await hub.stakeOf(n.address)
        t += balance + frozen + stake + await rlc.balanceOf(n.address)
      }
      return t
    }
    const rlcBefore = await totalRlc()

    // the real deal starts, then the flood
    const works = new WorkClient(api, { pollIntervalMs: 100 })
    const deal = works.submitAndWait('primes', '1000', 'primes.txt', { timeoutMs: 200_000 })
    let published = 0
    for (const bytes of flood) {
      await flooder.publish(topics.requestorder, bytes).catch(() => {})
      published++
    }
    assert.equal(published, FLOOD)

    // the deal completes with the right result
    const primes = (await readFile(await deal, 'utf8')).trim().split('\n').map(Number)
    assert.equal(primes.length, 168)
    // the requester paid, the worker and the scheduler were paid; nothing made or lost (the flood's keys had nothing)
    assert.equal(await totalRlc(), rlcBefore, 'RLC conserved')
    assert.equal((await hub.accountOf(requester.address))[1], 0n, 'nothing left frozen')

    // the flooder is banned and cut off
    await waitFor(() => market.isPeerBanned(flooderId), 30_000, 'the flooder banned')
    await waitFor(() => victim.network.helia.libp2p.getConnections(peerIdFromString(flooderId)).length === 0, 20_000, 'the victim hung up on the flooder')
    const unfunded = market.stats.get('requestorder', 'ignore', 'GOSSIP_UNFUNDED')
    const limited = market.stats.get('requestorder', 'ignore', 'GOSSIP_RATE_LIMITED')
    assert.ok(unfunded >= 1, 'unfunded requests refused')
    assert.ok(unfunded + limited < FLOOD, `most of the flood never reached a validator (${unfunded} unfunded, ${limited} over the rate)`)
    assert.equal(market.stats.get('requestorder', 'accept', 'OK'), 1, 'the one request accepted is the real one')
    assert.ok(market.spam.count(flooderId) >= market.options.spamLimit)
    // nothing of the flood in any book, nothing bid on it, nothing relayed to the other nodes
    for (const n of s.all) {
      const requests = (await n.market?.book.query({ type: 'requestorder' })) ?? []
      assert.ok(requests.every((r) => r.message.type === 'requestorder' && r.message.order.requester.toLowerCase() === requester.address.toLowerCase()), 'only the real request in the books')
      assert.ok((n.market?.provider?.decisions ?? []).every((d) => d.requester.toLowerCase() === requester.address.toLowerCase()), 'only the real request bid on')
      if (n !== victim) assert.equal(n.market?.stats.get('requestorder', 'ignore', 'GOSSIP_UNFUNDED'), 0, 'the flood was not relayed')
    }
    // the key that signed the first requests is banned by address
    await waitFor(() => market.bans.isAddressBanned(heavy.address), 10_000, 'the heavy key banned')
    for (const m of s.all) assert.equal(market.rejects.count(m.peerId), 0, 'no honest peer counted against')

    // the bans are in level: the victim restarted on its data dir refuses both
    const dataDir = victim.dataDir
    await victim.stop()
    const again = await s.restart(dataDir, { bootstrap: [s.providers[1].multiaddrs()[0]] })
    assert.equal(again.market?.isPeerBanned(flooderId), true, 'the flooder still banned')
    assert.equal(again.market?.bans.isAddressBanned(heavy.address), true, 'the heavy key still banned')
    const conns = (): number => flooder.helia.libp2p.getConnections(peerIdFromString(again.peerId)).length
    await flooder.dial(again.multiaddrs()[0], { signal: AbortSignal.timeout(10_000) }).catch(() => {})
    await waitFor(() => conns() === 0, 10_000, 'the restarted victim refuses the flooder')
    assert.equal(again.network.helia.libp2p.getConnections(peerIdFromString(flooderId)).length, 0)
  })
})
