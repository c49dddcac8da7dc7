/**
 * Datasets end to end (issue 6): real IexecNodes (libp2p on 127.0.0.1, Helia,
 * level), a real anvil with the hub, the WASI wordcount app.
 *
 * - owner lookup over the real DHT, with a decoy that answers for the
 *   owner's address with a wrong key; block retention on a real Helia;
 * - a requester-role node (no resource advert) publishes an encrypted
 *   dataset through its API; a trust-3 task of wordcount over it gives the
 *   right count; the blocks hold no plaintext; the owner's node refuses the
 *   key to a non-worker and to an authorized worker of a deal that does not
 *   use the dataset; the workers provide the dataset afterwards; unpublish
 *   cancels the order everywhere and no new deal can use the dataset.
 */
import assert from 'node:assert/strict'
import { ZERO_ADDRESS, ZERO_BYTES32 } from '../../protocols/eip712.js'
import { createHash } from 'node:crypto'
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { Wallet, hexlify, randomBytes } from 'ethers'
import { createNetwork } from '../../node/network/index.js'
import type { Network } from '../../node/network/index.js'
import { DbController } from '../../node/db/index.js'
import { dataDirPaths } from '../../node/config/index.js'
import {
  BlockRetention, DatasetKey, DatasetOwnerAnnouncer, KEY_RELEASE_PROTOCOL, MemoryKeyStore, MemoryNonceRegistry, addBytes, addFile, catContent,
  ciphertextHeader, createKeyReleaseHandler, encryptFile, fetchDatasetKey, fetchKeyFromOwner, generateContentKey, ownerCandidates, parseCid
} from '../../node/storage/index.js'
import type { KeyReleaseChainView } from '../../node/storage/index.js'
import { hubDomain, signAuthorization, taskId } from '../../protocols/eip712.js'
import { datasetOwnerCid } from '../../protocols/topics.js'
import { isIexecError } from '../../node/common/errors.js'
import { RLC, api, ok, startSwarm, waitFor } from './market-helpers.js'

const WORDCOUNT = new URL('../../examples/apps/wordcount/wordcount.wasm', import.meta.url)
const MARKER = 'PLAINTEXT-MARKER-7c1e'

async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const p of source) parts.push(p)
  return Buffer.concat(parts)
}

describe('datasets: owner lookup over the DHT (decoy peers) and block retention, real networks', function () {
  this.timeout(120_000)
  const cleanup: Array<() => Promise<void>> = []
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-datasets-net-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
  })
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  async function startNode (swarmId: string, bootstrap: string[] = []): Promise<Network> {
    const net = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, swarmId })
    cleanup.push(async () => { await net.stop() })
    await net.start()
    await net.bootstrapSettled()
    return net
  }

  it('finds the owner by its owner CID, skips a decoy whose key does not open the dataset, and says why when none does', async () => {
    const swarm = 'ds-owner'
    const owner = await startNode(swarm)
    const decoy = await startNode(swarm, [owner.multiaddrs()[0]])
    const worker = await startNode(swarm, [owner.multiaddrs()[0], decoy.multiaddrs()[0]])
    await worker.waitForDhtPeers(2, 10_000)
    await owner.waitForDhtPeers(2, 10_000)

    const domain = hubDomain(31337, Wallet.createRandom().address)
    const ownerWallet = Wallet.createRandom()
    const workerWallet = new Wallet(hexlify(randomBytes(32)))
    const dataset = Wallet.createRandom().address
    const dealid = hexlify(randomBytes(32))
    // the chain is the attacker's to lie about: both handlers here approve every request
    const chain: KeyReleaseChainView = {
      deal: async () => ({ dataset, scheduler: workerWallet.address, volume: 1n, app: ZERO_ADDRESS, requester: ZERO_ADDRESS, tag: ZERO_BYTES32 }),
      isDealWorker: async () => true
    }
    const authorization = await signAuthorization(workerWallet, domain, { worker: workerWallet.address, taskid: taskId(dealid, 0) })

    // the owner's dataset, encrypted; the decoy holds another key for the same address
    const plain = join(dir, 'plain.txt')
    await writeFile(plain, `${MARKER} some data\n`)
    const key = generateContentKey()
    await encryptFile(plain, join(dir, 'plain.enc'), key)
    const { cid } = await addFile(owner.helia, join(dir, 'plain.enc'))
    const serve = async (net: Network, k: Uint8Array): Promise<void> => {
      const keyStore = new MemoryKeyStore()
      await keyStore.put(dataset, new DatasetKey(k))
      await net.handle(KEY_RELEASE_PROTOCOL, createKeyReleaseHandler({ domain, now: Date.now, seenNonces: new MemoryNonceRegistry(), chain, datasetOrders: async () => [{ apprestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, tag: ZERO_BYTES32 }], keyStore }))
    }
    await serve(owner, key)
    await serve(decoy, generateContentKey())

    // both announce themselves for the owner's address: the real owner through its announcer
    const announcer = new DatasetOwnerAnnouncer({ network: owner, swarmId: swarm, address: ownerWallet.address, ownsDatasets: async () => true, intervalMs: 3_600_000 })
    cleanup.push(async () => { await announcer.stop() })
    assert.equal(await announcer.announceNow(), true, 'the owner CID reached a DHT peer')
    await decoy.provide(await datasetOwnerCid(swarm, ownerWallet.address), { signal: AbortSignal.timeout(10_000) })

    const fetchFrom = async (peer: string): Promise<Uint8Array> =>
      await fetchDatasetKey(async (p, o) => await worker.dialProtocol(peer, p, o), workerWallet, domain, { dataset, dealid, idx: 0, authorization })
    const header = async (): Promise<Uint8Array> => await ciphertextHeader(worker.helia, cid.toString(), 20_000)
    const log: Array<Record<string, unknown>> = []

    // the decoy is tried first (as if an advert named it): its key fails the header check, the owner's fits
    const got = await fetchKeyFromOwner({
      owner: ownerWallet.address,
      candidates: ownerCandidates({ network: worker, swarmId: swarm, owner: ownerWallet.address, selfPeerId: worker.peerId, known: async () => decoy.peerId }),
      fetchFrom,
      header,
      log: (msg, c) => { log.push({ msg, ...c }) }
    })
    assert.deepEqual(got, key)
    assert.ok(log.some((l) => l.msg === 'dataset key does not fit the ciphertext' && l.peer === decoy.peerId), 'the decoy was tried and skipped')

    // the providers of the owner CID are exactly the two announcers
    const found: string[] = []
    for await (const p of ownerCandidates({ network: worker, swarmId: swarm, owner: ownerWallet.address, selfPeerId: worker.peerId })) found.push(p)
    assert.deepEqual(found.sort(), [owner.peerId, decoy.peerId].sort())

    // only the decoy answers: a clear code, not a garbled dataset
    await assert.rejects(fetchKeyFromOwner({
      owner: ownerWallet.address,
      candidates: (async function * () { yield decoy.peerId })(),
      fetchFrom,
      header
    }), (e: unknown) => isIexecError(e, 'DATASET_KEY_MISMATCH'))
    // nobody answers for an address: DATASET_OWNER_UNREACHABLE
    const nobody = Wallet.createRandom().address
    await assert.rejects(fetchKeyFromOwner({
      owner: nobody,
      candidates: ownerCandidates({ network: worker, swarmId: swarm, owner: nobody, selfPeerId: worker.peerId, timeoutMs: 5_000 }),
      fetchFrom,
      header
    }), (e: unknown) => isIexecError(e, 'DATASET_OWNER_UNREACHABLE'))
  })

  it('retains fetched content for its period (pinned, provided), then drops its blocks; content held before is never dropped', async () => {
    const swarm = 'ds-retention'
    const source = await startNode(swarm)
    const worker = await startNode(swarm, [source.multiaddrs()[0]])
    const observer = await startNode(swarm, [source.multiaddrs()[0], worker.multiaddrs()[0]])
    await worker.waitForDhtPeers(2, 10_000)
    const db = new DbController({ path: join(dir, 'worker-db') })
    await db.open()
    cleanup.push(async () => { await db.close() })
    let now = 1_000_000
    const retention = new BlockRetention({
      helia: worker.helia,
      db,
      provide: async (c) => { await worker.provide(c, { signal: AbortSignal.timeout(10_000) }) },
      retentionMs: 60_000,
      now: () => now
    })

    // 3 MiB of distinct chunks: several blocks (unixfs chunks of 1 MiB), as an encrypted dataset has
    const big = Buffer.from(randomBytes(3 * 1024 * 1024 + 17))
    const { cid } = await addBytes(source.helia, big)
    const own = (await addBytes(worker.helia, Buffer.from('the worker\'s own app module'))).cid

    const keep = await retention.prepare([cid.toString(), own.toString()])
    assert.equal((await collect(catContent(worker.helia, cid, { timeoutMs: 20_000 }))).byteLength, big.byteLength)
    await keep()
    const [record] = await retention.list()
    assert.equal(record.cid, cid.toString(), 'only the fetched content is retained')
    assert.equal(record.until, now + 60_000)
    assert.ok(record.blocks.length >= 4, `the whole DAG is recorded (${record.blocks.length} blocks)`)
    assert.equal(await worker.helia.pins.isPinned(cid), true)

    // the worker now serves it: the observer finds it among the providers
    await waitFor(async () => {
      for await (const p of observer.findProviders(cid, { signal: AbortSignal.timeout(3_000) })) if (p.peerId === worker.peerId) return true
      return false
    }, 20_000, 'the worker provides the dataset CID')

    assert.equal(await retention.sweep(), 0, 'nothing expires before its time')
    now += 60_001
    assert.equal(await retention.sweep(), 1)
    assert.deepEqual(await retention.list(), [])
    for (const b of record.blocks) assert.equal(await worker.helia.blockstore.has(parseCid(b)), false, `block ${b} dropped`)
    assert.equal(await worker.helia.blockstore.has(own), true, 'content the worker held before is kept')
    assert.equal(await source.helia.blockstore.has(cid), true, 'the source keeps its copy')
  })
})

describe('datasets through the node: publish, key release by a requester-role owner, trust-3 task, unpublish (anvil, WASI)', function () {
  this.timeout(300_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('an encrypted dataset gives the right word count at trust 3; only its deal\'s authorized workers get the key; unpublished, it is used no more', async () => {
    const s = await startSwarm({ providers: 3, requesters: 1, market: { biddingWindowMs: 5_000 } }, cleanup)
    const owner = s.requesters[0]
    assert.equal(owner.config.role, 'requester')
    const [p0] = s.providers

    // the app, published by a provider
    const module = await readFile(WORDCOUNT)
    const added = await ok(p0, 'POST', '/v1/content', { data: module.toString('base64') })
    await ok(p0, 'POST', '/v1/apps', { name: 'wordcount', cid: added.cid, checksum: added.checksum, price: '0' })

    // two datasets of the owner: the one the task uses, and one no deal uses
    const text = `${MARKER} alpha beta\ngamma delta ${MARKER}\n`
    const path = join(s.root, 'corpus.txt')
    await writeFile(path, text)
    await writeFile(join(s.root, 'other.txt'), 'other data\n')
    const pub = await ok(owner, 'POST', '/v1/datasets', { path, name: 'corpus', price: (1n * RLC).toString(), apps: ['wordcount'] })
    const other = await ok(owner, 'POST', '/v1/datasets', { path: join(s.root, 'other.txt'), name: 'other', anyApp: true })
    const dataset = String(pub.address)
    assert.match(dataset, /^0x[0-9a-fA-F]{40}$/)
    assert.equal(pub.checksum, '0x' + createHash('sha256').update(text).digest('hex'), 'the hub records the plaintext sha256')
    assert.equal(pub.encrypted, true)

    // what the swarm can read: ciphertext only; the key is in the owner's key store and nowhere in its log
    const ciphertext = await collect(catContent(p0.network.helia, String(pub.cid), { timeoutMs: 20_000 }))
    assert.ok(ciphertext.byteLength > text.length)
    assert.equal(ciphertext.indexOf(MARKER), -1, 'the ciphertext does not contain the plaintext')
    const keyHex = (await readFile(join(dataDirPaths(owner.dataDir).datasetKeys, `${dataset.toLowerCase()}.key`), 'utf8')).trim()
    assert.match(keyHex, /^[0-9a-f]{64}$/)

    // the owner is a requester: no advert names it, yet its dataset order reached every book
    const adverts = await p0.adverts.findResources({ category: p0.config.category })
    assert.equal(adverts.some((r) => r.address === owner.address), false, 'a requester publishes no resource advert')
    for (const n of s.all) {
      await waitFor(async () => ((await ok(n, 'GET', `/v1/orderbook?type=dataset&dataset=${dataset}`)).orders as unknown[]).length === 1, 15_000, 'dataset order in every book')
    }
    const listed = (await ok(owner, 'GET', '/v1/datasets')).datasets as Array<Record<string, unknown>>
    assert.deepEqual(listed.map((d) => d.address), [dataset, other.address])
    assert.deepEqual(listed[0].orders, [pub.orderHash])

    // trust 3 over the dataset, asked by the owner's own requester node
    const deal = await ok(owner, 'POST', '/v1/tasks', { app: 'wordcount', dataset, trust: 3, maxPrice: (20n * RLC).toString() })
    const dealId = String(deal.dealId)
    const tid = taskId(dealId, 0)
    await waitFor(async () => {
      const d = await ok(owner, 'GET', `/v1/deals/${dealId}`)
      return (d.tasks as Array<{ status: string }>)[0].status === 'COMPLETED'
    }, 150_000, 'the task COMPLETED')
    const result = await ok(owner, 'GET', `/v1/results/${tid}`)
    assert.equal(result.stdout, `dataset lines=2 words=6 bytes=${Buffer.byteLength(text)}\n`)

    // the owner released keys and logged the decisions, never the key
    const log = await readFile(dataDirPaths(owner.dataDir).logs, 'utf8')
    assert.match(log, /"msg":"key released"/)
    assert.equal(log.includes(keyHex), false, 'the key is in no log line')

    // a worker of the deal that holds a scheduler authorization for the task
    let w: (typeof s.providers)[number] | undefined
    let authorization: string | undefined
    for (const p of s.providers) {
      const rec = await p.execution?.worker.task(tid)
      if (rec !== undefined) { w = p; authorization = rec.authorization; break }
    }
    assert.ok(w !== undefined && authorization !== undefined, 'a provider ran the task')
    const worker = w
    const domain = owner.market!.domain
    const ask = async (wallet: Wallet, ds: string): Promise<Uint8Array> =>
      await fetchDatasetKey(async (p, o) => await worker.network.dialProtocol(owner.peerId, p, o), wallet, domain, { dataset: ds, dealid: dealId, idx: 0, authorization })
    // the authorized worker gets it (the control)...
    assert.equal(Buffer.from(await ask(worker.wallet, dataset)).toString('hex'), keyHex)
    // ...a node that is not a worker of the deal does not, even with the worker's authorization in hand
    await assert.rejects(ask(new Wallet(hexlify(randomBytes(32))), dataset),
      (e: unknown) => isIexecError(e, 'KEY_RELEASE_REFUSED') && e.details?.code === 'NOT_A_WORKER')
    // ...nor does the authorized worker for a dataset its deal does not use
    await assert.rejects(ask(worker.wallet, String(other.address)),
      (e: unknown) => isIexecError(e, 'KEY_RELEASE_REFUSED') && e.details?.code === 'WRONG_DATASET')

    // the workers keep and provide what they fetched: the dataset is no longer served by its owner alone
    await waitFor(async () => {
      for await (const p of owner.network.findProviders(parseCid(String(pub.cid)), { signal: AbortSignal.timeout(3_000) })) {
        if (s.providers.some((x) => x.peerId === p.peerId)) return true
      }
      return false
    }, 30_000, 'a worker provides the dataset CID')

    // unpublish: the order is cancelled on chain and in every book; the key is gone
    const un = await ok(owner, 'POST', `/v1/datasets/${dataset}/unpublish`)
    assert.deepEqual((un.cancelled as Array<{ orderHash: string }>).map((c) => c.orderHash), [pub.orderHash])
    assert.equal(un.keyRemoved, true)
    for (const n of s.all) {
      await waitFor(async () => ((await ok(n, 'GET', `/v1/orderbook?type=dataset&dataset=${dataset}`)).orders as unknown[]).length === 0, 15_000, 'the dataset order gone from every book')
    }
    const again = await api(owner, 'POST', '/v1/tasks', { app: 'wordcount', dataset, trust: 1, maxPrice: (20n * RLC).toString() })
    assert.equal(again.status, 422)
    assert.equal((again.body.error as { code: string }).code, 'NO_DATASET_ORDER')
    await assert.rejects(ask(worker.wallet, dataset), (e: unknown) => isIexecError(e, 'KEY_RELEASE_REFUSED') && e.details?.code === 'UNKNOWN_DATASET')
    const shown = await ok(p0, 'GET', `/v1/datasets/${dataset}`)
    assert.deepEqual(shown.orders, [])
    assert.equal(shown.owner, owner.address)
    const after = (await ok(owner, 'GET', '/v1/datasets')).datasets as Array<Record<string, unknown>>
    assert.equal(after[0].published, false)

    // bad input: clear codes
    const missing = await api(owner, 'POST', '/v1/datasets', { path: join(s.root, 'nope.txt'), anyApp: true })
    assert.equal(missing.status, 400)
    assert.equal((missing.body.error as { code: string }).code, 'DATASET_PATH_INVALID')
    const relative = await api(owner, 'POST', '/v1/datasets', { path: 'corpus.txt', anyApp: true })
    assert.equal((relative.body.error as { code: string }).code, 'API_BAD_REQUEST')
    const badPrice = await api(owner, 'POST', '/v1/datasets', { path, price: '-1', anyApp: true })
    assert.equal((badPrice.body.error as { code: string }).code, 'API_BAD_REQUEST')
    const notMine = await api(p0, 'POST', `/v1/datasets/${String(other.address)}/unpublish`)
    assert.equal(notMine.status, 403)
    assert.equal((notMine.body.error as { code: string }).code, 'DATASET_NOT_OWNED')

    // a restart keeps the list (level store) and announces the owner again (it still owns 'other')
    const announced = async (): Promise<number> => (await readFile(dataDirPaths(owner.dataDir).logs, 'utf8')).split('\n').filter((l) => l.includes('"msg":"dataset owner announced"')).length
    const before = await announced()
    assert.ok(before >= 2, 'the owner announced itself on each publish')
    await owner.stop()
    const restarted = await s.restart(owner.dataDir, { bootstrap: [p0.multiaddrs()[0]] })
    const kept = (await ok(restarted, 'GET', '/v1/datasets')).datasets as Array<Record<string, unknown>>
    assert.deepEqual(kept.map((d) => [d.address, d.published]), [[dataset, false], [other.address, true]])
    await waitFor(async () => await announced() > before, 30_000, 'the restarted owner announced itself again')
    const ownerCid = await datasetOwnerCid('mkt', owner.address)
    const providers: string[] = []
    for await (const p of p0.network.findProviders(ownerCid, { signal: AbortSignal.timeout(5_000) })) providers.push(p.peerId)
    assert.ok(providers.includes(restarted.peerId), 'the owner CID leads to the owner\'s peer')
  })
})
