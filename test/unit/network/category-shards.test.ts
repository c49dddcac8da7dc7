import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Wallet } from 'ethers'
import type { CID } from 'multiformats/cid'
import {
  CATEGORY_SHARDS, categoryShardCid, categoryShardOf, walkCategoryProviders, ResourceAdverts
} from '../../../node/network/index.js'
import type { AdvertsNetwork } from '../../../node/network/index.js'
import { categoryCid, resourceKey } from '../../../protocols/topics.js'
import { signResourceRecord } from '../../../protocols/resource-record.js'

const SWARM = 'shards'

/**
 * A DHT of lists: a walk of a CID yields at most `cap` of its providers (as
 * kad-dht's findProviders does), then ends, or, for a CID in `hang`, waits
 * for its signal like a query that never converges.
 */
function fakeDht (lists: Map<string, string[]>, cap: number, hang = new Set<string>()): {
  findProviders: (cid: CID, options: { signal?: AbortSignal }) => AsyncIterable<{ peerId: string, multiaddrs: string[] }>
  walked: string[]
} {
  const walked: string[] = []
  async function * findProviders (cid: CID, options: { signal?: AbortSignal }): AsyncIterable<{ peerId: string, multiaddrs: string[] }> {
    const signal = options.signal
    walked.push(cid.toString())
    for (const peerId of (lists.get(cid.toString()) ?? []).slice(0, cap)) {
      await new Promise((resolve) => setImmediate(resolve))
      signal?.throwIfAborted()
      yield { peerId, multiaddrs: [] }
    }
    if (hang.has(cid.toString())) {
      await new Promise((_resolve, reject) => {
        if (signal === undefined) return
        if (signal.aborted) reject(signal.reason)
        signal.addEventListener('abort', () => { reject(signal.reason) }, { once: true })
      })
    }
  }
  return { findProviders, walked }
}

const peers = (n: number, prefix = 'p'): string[] => Array.from({ length: n }, (_, i) => `12D3KooW${prefix}${i}`)

/** lists of a category: every peer under the main CID and under its own shard's */
async function categoryLists (ids: string[], category = 0): Promise<{ lists: Map<string, string[]>, main: CID, shards: CID[] }> {
  const main = await categoryCid(SWARM, category)
  const shards = await Promise.all(Array.from({ length: CATEGORY_SHARDS }, async (_, s) => await categoryShardCid(SWARM, category, s)))
  const lists = new Map<string, string[]>([[main.toString(), [...ids]]])
  for (const id of ids) {
    const key = shards[categoryShardOf(id)].toString()
    lists.set(key, [...(lists.get(key) ?? []), id])
  }
  return { lists, main, shards }
}

describe('network: category shards', () => {
  describe('shard key derivation', () => {
    it('is stable, in range, and spreads peers over every shard', () => {
      const ids = peers(1600)
      const counts = new Array<number>(CATEGORY_SHARDS).fill(0)
      for (const id of ids) {
        const s = categoryShardOf(id)
        assert.equal(categoryShardOf(id), s, 'the same peer, the same shard')
        assert.ok(Number.isInteger(s) && s >= 0 && s < CATEGORY_SHARDS)
        counts[s]++
      }
      // 100 expected per shard, standard deviation about 10
      for (const [s, c] of counts.entries()) assert.ok(c > 50 && c < 150, `shard ${s} holds ${c} of 1600`)
      assert.equal(categoryShardOf('12D3KooWfixed'), categoryShardOf('12D3KooWfixed'))
      assert.equal(categoryShardOf('12D3KooWfixed', 1), 0)
    })

    it('gives each (swarm, category, shard) its own CID, apart from the category CID', async () => {
      const cids = new Set<string>([(await categoryCid(SWARM, 0)).toString()])
      for (let s = 0; s < CATEGORY_SHARDS; s++) {
        const cid = await categoryShardCid(SWARM, 0, s)
        assert.equal(cid.toString(), (await categoryShardCid(SWARM, 0, s)).toString(), 'stable')
        cids.add(cid.toString())
      }
      cids.add((await categoryShardCid(SWARM, 1, 0)).toString())
      cids.add((await categoryShardCid('other', 0, 0)).toString())
      assert.equal(cids.size, CATEGORY_SHARDS + 3)
    })
  })

  describe('walkCategoryProviders', () => {
    const never = (): AbortSignal => new AbortController().signal

    it('below the cap the category walk alone answers: no shard is walked', async () => {
      const { lists, main, shards } = await categoryLists(peers(7))
      const dht = fakeDht(lists, 20)
      const found: string[] = []
      const r = await walkCategoryProviders({ findProviders: dht.findProviders, main, shards, cap: 20, maxProviders: 200, signal: never(), shardSignal: never, onProvider: (p) => found.push(p) })
      assert.equal(r.sharded, false)
      assert.deepEqual(r.providers.sort(), peers(7).sort())
      assert.deepEqual(found.sort(), peers(7).sort())
      assert.deepEqual(dht.walked, [main.toString()])
    })

    it('a category walk that returns the cap walks every shard, and each provider counts once', async () => {
      const ids = peers(49)
      const { lists, main, shards } = await categoryLists(ids)
      const dht = fakeDht(lists, 20)
      const found: string[] = []
      const r = await walkCategoryProviders({ findProviders: dht.findProviders, main, shards, cap: 20, maxProviders: 200, signal: never(), shardSignal: never, onProvider: (p) => found.push(p) })
      assert.equal(r.sharded, true)
      assert.deepEqual(r.providers.sort(), [...ids].sort(), 'all 49, not 20')
      assert.equal(found.length, 49, 'the 20 of the category walk are not reported again by their shards')
      assert.equal(dht.walked.length, 1 + CATEGORY_SHARDS)
      assert.equal(dht.walked[0], main.toString(), 'the category CID first')
    })

    it('stops at maxProviders and ends the shard walks still running', async () => {
      const ids = peers(60)
      const { lists, main, shards } = await categoryLists(ids)
      // every shard walk would otherwise wait forever after its last provider
      const dht = fakeDht(lists, 20, new Set(shards.map((c) => c.toString())))
      const found: string[] = []
      const r = await walkCategoryProviders({ findProviders: dht.findProviders, main, shards, cap: 20, maxProviders: 30, signal: never(), shardSignal: never, onProvider: (p) => found.push(p) })
      assert.equal(r.sharded, true)
      assert.equal(r.providers.length, 30)
      assert.equal(found.length, 30)
      assert.equal(new Set(r.providers).size, 30)
    })

    it('maxProviders below the cap ends the category walk without shards', async () => {
      const { lists, main, shards } = await categoryLists(peers(40))
      const dht = fakeDht(lists, 20)
      const r = await walkCategoryProviders({ findProviders: dht.findProviders, main, shards, cap: 20, maxProviders: 5, signal: never(), shardSignal: never })
      assert.equal(r.providers.length, 5)
      assert.equal(r.sharded, false)
    })

    it('shard walks cut by their timeout return what was found', async () => {
      const ids = peers(40)
      const { lists, main, shards } = await categoryLists(ids)
      const dht = fakeDht(lists, 20, new Set(shards.map((c) => c.toString())))
      const t0 = Date.now()
      const r = await walkCategoryProviders({ findProviders: dht.findProviders, main, shards, cap: 20, maxProviders: 200, signal: never(), shardSignal: () => AbortSignal.timeout(100) })
      assert.ok(Date.now() - t0 < 10_000, 'bounded by the shard timeout')
      assert.equal(r.sharded, true)
      assert.deepEqual(r.providers.sort(), [...ids].sort(), 'everything listed before the walks hung')
    })

    it('a category walk cut by the lookup signal returns what it found and walks no shard', async () => {
      const { lists, main, shards } = await categoryLists(peers(8))
      const dht = fakeDht(lists, 20, new Set([main.toString()]))
      const r = await walkCategoryProviders({ findProviders: dht.findProviders, main, shards, cap: 20, maxProviders: 200, signal: AbortSignal.timeout(100), shardSignal: never })
      assert.equal(r.sharded, false)
      assert.equal(r.providers.length, 8)
      assert.deepEqual(dht.walked, [main.toString()])
    })

    it('a failing shard walk is reported; the others still count', async () => {
      const ids = peers(30)
      const { lists, main, shards } = await categoryLists(ids)
      const dht = fakeDht(lists, 10)
      const broken = shards[0].toString()
      const errors: unknown[] = []
      const r = await walkCategoryProviders({
        findProviders: (cid, opts) => {
          if (cid.toString() === broken) return (async function * () { yield * []; throw new Error('stream reset') })()
          return dht.findProviders(cid, opts)
        },
        main, shards, cap: 10, maxProviders: 200, signal: never(), shardSignal: never, onShardError: (e) => errors.push(e)
      })
      assert.equal(errors.length, 1)
      const lost = (lists.get(broken) ?? []).filter((id) => !(lists.get(main.toString()) ?? []).slice(0, 10).includes(id))
      assert.equal(r.providers.length, 30 - lost.length)
    })
  })

  describe('ResourceAdverts over a capped DHT', () => {
    async function provider (category: number): Promise<{ peerId: string, bytes: Uint8Array }> {
      const key = await generateKeyPair('Ed25519')
      const wallet = Wallet.createRandom() as unknown as Wallet
      const peerId = peerIdFromPrivateKey(key).toString()
      const record = { peerId, address: wallet.address, cpus: 1, memoryMb: 512, gpus: 0, executors: ['wasi'], category, priceFloor: '0', version: '0.1.0', tags: [], timestamp: Date.now(), seq: Date.now() }
      return { peerId, bytes: await signResourceRecord(record, key, wallet) }
    }

    function fakeNetwork (peerId: string, cap: number, lists: Map<string, string[]>, records: Map<string, Uint8Array>, provided: string[] = []): AdvertsNetwork & { walked: string[], gets: string[] } {
      const dht = fakeDht(lists, cap)
      const gets: string[] = []
      const network = {
        peerId,
        kBucketSize: cap,
        dhtPut: async () => {},
        dhtGet: async (key: Uint8Array) => {
          gets.push(new TextDecoder().decode(key))
          const bytes = records.get(new TextDecoder().decode(key))
          if (bytes === undefined) throw new Error('not found')
          return bytes
        },
        provide: async (cid: CID) => { provided.push(cid.toString()) },
        findProviders: dht.findProviders,
        dhtPeerCount: () => 1,
        connectionCount: () => 1,
        waitForDhtPeers: async () => true,
        bootstrapSettled: async () => [],
        walked: dht.walked,
        gets
      }
      return network as unknown as AdvertsNetwork & { walked: string[], gets: string[] }
    }

    it('findResources lists more providers than the cap, each verified once', async () => {
      const ps = await Promise.all(Array.from({ length: 12 }, async () => await provider(3)))
      const { lists } = await categoryLists(ps.map((p) => p.peerId), 3)
      const records = new Map(ps.map((p) => [new TextDecoder().decode(resourceKey(p.peerId)), p.bytes]))
      const network = fakeNetwork('12D3KooWreader', 4, lists, records)
      const reader = new ResourceAdverts({
        network, swarmId: SWARM, privateKey: await generateKeyPair('Ed25519'), wallet: Wallet.createRandom(), publish: false, intervalMs: 60_000,
        resources: { cpus: 1, memoryMb: 512, gpus: 0, executors: ['wasi'], category: 3, priceFloor: '0', tags: [], version: '0.1.0' }
      })
      const found = await reader.findResources({ category: 3 })
      assert.deepEqual(found.map((r) => r.peerId).sort(), ps.map((p) => p.peerId).sort())
      assert.equal(network.walked.length, 1 + CATEGORY_SHARDS)
      assert.equal(network.gets.length, 12, 'one record get per provider')
      assert.equal(new Set(network.gets).size, 12)
    })

    it('publishNow provides the category CID and the shard CID of its peer id', async () => {
      const key = await generateKeyPair('Ed25519')
      const peerId = peerIdFromPrivateKey(key).toString()
      const provided: string[] = []
      const adverts = new ResourceAdverts({
        network: fakeNetwork(peerId, 20, new Map(), new Map(), provided), swarmId: SWARM, privateKey: key, wallet: Wallet.createRandom(), publish: true, intervalMs: 60_000,
        resources: { cpus: 1, memoryMb: 512, gpus: 0, executors: ['wasi'], category: 2, priceFloor: '0', tags: [], version: '0.1.0' }
      })
      await adverts.publishNow()
      assert.ok(provided.includes((await categoryCid(SWARM, 2)).toString()), 'the category CID, as before')
      assert.ok(provided.includes((await categoryShardCid(SWARM, 2, categoryShardOf(peerId))).toString()), 'its own shard')
      assert.equal(provided.length, 3, 'category, shard and address CIDs')
    })
  })
})
