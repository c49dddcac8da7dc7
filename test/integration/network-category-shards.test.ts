import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Wallet } from 'ethers'
import { ResourceAdverts } from '../../node/network/index.js'
import type { Network, NetworkLogger } from '../../node/network/index.js'
import { categoryCid } from '../../protocols/topics.js'
import { startLoopbackNetwork } from '../helpers/loopback-network.js'
import { waitFor } from '../helpers/wait.js'

const SWARM = 'shards-itest'
// kad k lowered so a dozen providers are past findProviders' cap (20 by default)
const K = 5
const PROVIDERS = 12

/** kad-dht's distance key: sha256 of the bytes (a peer id's multihash, a CID's multihash) */
const kadKey = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest()
function closer (a: Buffer, b: Buffer, target: Buffer): number {
  for (let i = 0; i < target.length; i++) {
    const d = (a[i] ^ target[i]) - (b[i] ^ target[i])
    if (d !== 0) return d
  }
  return 0
}

/**
 * Real libp2p nodes on loopback, kad k = 5: the reader is the node closest
 * to the category CID, so it holds the category's provider records itself
 * and a plain findProviders of the category CID stops at k. The sharded
 * lookup must still list every provider.
 */
describe('network: a category lookup past kad\'s k-provider cap (12 providers, k = 5)', function () {
  this.timeout(240_000)
  const cleanup: Array<() => Promise<void>> = []
  after(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  async function startNetwork (privateKey: PrivateKey, bootstrap: string[]): Promise<Network> {
    return await startLoopbackNetwork({ privateKey, bootstrap, swarmId: SWARM, kBucketSize: K }, cleanup)
  }

  function adverts (network: Network, privateKey: PrivateKey, publish: boolean, logger?: NetworkLogger): ResourceAdverts {
    const a = new ResourceAdverts({
      network, swarmId: SWARM, privateKey, wallet: Wallet.createRandom(), publish, intervalMs: 10 * 60_000, logger,
      // 13 nodes in one process on a shared, loaded machine: 16 shard walks
      // and 12 record gets may take longer than a lookup's default 10 s
      lookupTimeoutMs: 60_000,
      resources: { cpus: 1, memoryMb: 512, gpus: 0, executors: ['wasi'], category: 0, priceFloor: '0', tags: [], version: '0.1.0' }
    })
    cleanup.push(async () => { await a.stop() })
    return a
  }

  it('the reader lists all 12 providers through the shard CIDs', async () => {
    const target = kadKey((await categoryCid(SWARM, 0)).multihash.bytes)
    const keys = await Promise.all(Array.from({ length: PROVIDERS + 1 }, async () => await generateKeyPair('Ed25519')))
    const dist = (k: PrivateKey): Buffer => kadKey(peerIdFromPrivateKey(k).toMultihash().bytes)
    keys.sort((a, b) => closer(dist(a), dist(b), target))
    const [readerKey, ...providerKeys] = keys

    const reader = await startNetwork(readerKey, [])
    const providers: Network[] = []
    for (const key of providerKeys) {
      const prev = providers.at(-1)
      providers.push(await startNetwork(key, [reader.multiaddrs()[0], ...(prev !== undefined ? [prev.multiaddrs()[0]] : [])]))
    }
    for (const net of [reader, ...providers]) {
      await net.bootstrapSettled()
      // its bootstrap peers; the DHT walks find the rest
      assert.ok(await net.waitForDhtPeers(net === reader ? 1 : Math.min(2, providers.indexOf(net) + 1), 60_000), `${net.peerId} has DHT peers`)
    }

    const published = providers.map((net, i) => adverts(net, providerKeys[i], true))
    await Promise.all(published.map(async (a) => { await a.start() }))
    await waitFor(() => published.every((a) => a.lastPublished() !== undefined), 120_000, 'every provider published')

    // the cap this test is about: the category CID alone lists k of the 12
    let plain = 0
    for await (const _ of reader.findProviders(await categoryCid(SWARM, 0), { signal: AbortSignal.timeout(30_000) })) plain++
    assert.ok(plain < PROVIDERS, `a plain category walk stops at the cap (found ${plain})`)

    const logs: string[] = []
    const lookup = adverts(reader, readerKey, false, { info: (msg) => logs.push(msg), warn: (msg) => logs.push(msg) })
    const all = providers.map((n) => n.peerId).sort()
    let last: string[] = []
    await waitFor(async () => {
      last = (await lookup.findResources({ category: 0 })).map((r) => r.peerId).sort()
      return last.length === PROVIDERS
    }, 120_000, `the reader lists all ${PROVIDERS} providers`, 500).catch(() => {})
    assert.deepEqual(last, all, `the reader lists all ${PROVIDERS} providers (logs: ${logs.join('; ')})`)
    assert.ok(logs.includes('category lookup walked its shards'), 'found through the shard CIDs')
  })
})
