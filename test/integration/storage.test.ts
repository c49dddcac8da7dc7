import assert from 'node:assert/strict'
import { ZERO_ADDRESS, ZERO_BYTES32 } from '../../protocols/eip712.js'
import { createCipheriv, createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import { Wallet, hexlify, randomBytes } from 'ethers'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { createNetwork } from '../../node/network/index.js'
import type { Network } from '../../node/network/index.js'
import { hubDomain, signAuthorization, taskId } from '../../protocols/eip712.js'
import { KEY_RELEASE_PROTOCOL, decodeKeyReleaseResponse } from '../../protocols/key-release.js'
import {
  DatasetKey, FileKeyStore, MemoryNonceRegistry, addFile, createKeyReleaseHandler, decryptFile, encryptFile,
  fetchDatasetKey, fetchToFile, generateContentKey, provideContent
} from '../../node/storage/index.js'
import type { KeyReleaseChainView, KeyReleaseDialer } from '../../node/storage/index.js'
import { isIexecError } from '../../node/common/errors.js'

const MiB = 1024 * 1024
const SWARM = 'storage-itest'
const MARKER = Buffer.from('DATASET-PLAINTEXT-MARKER-2f6a')

describe('storage over two real nodes: encrypted dataset by bitswap, key release by stream', function () {
  this.timeout(120_000)
  const cleanup: Array<() => Promise<void>> = []
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-storage-it-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
  })
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function startNode (bootstrap: string[] = []): Promise<Network> {
    const net = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, swarmId: SWARM })
    cleanup.push(async () => { await net.stop() })
    await net.start()
    await net.bootstrapSettled()
    return net
  }

  const domain = hubDomain(31337, Wallet.createRandom().address)
  const scheduler = new Wallet(hexlify(randomBytes(32)))
  const worker = new Wallet(hexlify(randomBytes(32)))
  const outsider = new Wallet(hexlify(randomBytes(32)))
  const dataset = Wallet.createRandom().address
  const dealid = hexlify(randomBytes(32))
  const taskid = taskId(dealid, 0)
  // the chain view is injected; test/integration/storage-chain.test.ts runs the same exchange against the real hub
  const chain: KeyReleaseChainView = {
    deal: async (d) => d === dealid ? { dataset, scheduler: scheduler.address, volume: 1n, app: ZERO_ADDRESS, requester: ZERO_ADDRESS, tag: ZERO_BYTES32 } : undefined,
    isDealWorker: async (d, w) => d === dealid && w === worker.address
  }

  async function writeDataset (path: string, bytes: number): Promise<string> {
    const prng = createCipheriv('aes-128-ctr', Buffer.alloc(16, 3), Buffer.alloc(16, 0))
    const data = prng.update(Buffer.alloc(bytes))
    for (let at = 0; at + MARKER.byteLength < bytes; at += MiB) MARKER.copy(data, at)
    await writeFile(path, data)
    return '0x' + createHash('sha256').update(data).digest('hex')
  }

  it('a 10 MiB encrypted dataset moves by bitswap, an authorized worker gets the key and decrypts it, an outsider is refused', async () => {
    const owner = await startNode()
    const workerNode = await startNode([owner.multiaddrs()[0]])

    // owner: encrypt, add, provide, keep the key, serve key release
    const plainPath = join(dir, 'dataset.bin')
    const checksum = await writeDataset(plainPath, 10 * MiB)
    const key = generateContentKey()
    const t0 = Date.now()
    const enc = await encryptFile(plainPath, join(dir, 'dataset.enc'), key)
    const tEncrypt = Date.now() - t0
    assert.equal(enc.checksum, checksum, 'the registry checksum is the plaintext sha256, computed while encrypting')
    let addProgress = 0
    const t1 = Date.now()
    const added = await addFile(owner.helia, join(dir, 'dataset.enc'), { onProgress: (n) => { addProgress = n } })
    const tAdd = Date.now() - t1
    assert.equal(added.bytes, enc.ciphertextBytes)
    assert.equal(addProgress, enc.ciphertextBytes)
    assert.equal(await provideContent(owner.helia, added.cid, { signal: AbortSignal.timeout(30_000) }), true)
    const keyStore = new FileKeyStore(join(dir, 'owner-keys'))
    await keyStore.put(dataset, new DatasetKey(key))
    const decisions: Array<string | undefined> = []
    await owner.handle(KEY_RELEASE_PROTOCOL, createKeyReleaseHandler({
      domain, now: Date.now, seenNonces: new MemoryNonceRegistry(), chain, datasetOrders: async () => [{ apprestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, tag: ZERO_BYTES32 }], keyStore, onDecision: (d) => decisions.push(d.refused)
    }))

    // the ciphertext Helia holds and serves never shows the plaintext marker
    let scanned = 0
    for await (const block of owner.helia.blockstore.getAll()) {
      const parts: Uint8Array[] = []
      for await (const piece of block.bytes) parts.push(piece)
      const bytes = Buffer.concat(parts)
      scanned += bytes.byteLength
      assert.equal(bytes.indexOf(MARKER), -1, `block ${block.cid.toString()} holds plaintext`)
    }
    assert.ok(scanned >= enc.ciphertextBytes, `scanned ${scanned} bytes of blocks, the whole ciphertext at least`)

    // worker: fetch over bitswap with progress
    let fetchProgress = 0
    const t2 = Date.now()
    const fetched = await fetchToFile(workerNode.helia, added.cid.toString(), join(dir, 'fetched.enc'), { timeoutMs: 60_000, onProgress: (n) => { fetchProgress = n } })
    const tFetch = Date.now() - t2
    assert.equal(fetched.bytes, enc.ciphertextBytes)
    assert.equal(fetchProgress, enc.ciphertextBytes)
    const fetchedBytes = await readFile(join(dir, 'fetched.enc'))
    assert.equal(fetchedBytes.indexOf(MARKER), -1, 'the fetched ciphertext does not contain the plaintext')

    // worker: key release over a direct stream, authorized by the deal's scheduler
    const dial: KeyReleaseDialer = async (protocol, opts) => await workerNode.dialProtocol(owner.peerId, protocol, opts)
    const authorization = await signAuthorization(scheduler, domain, { worker: worker.address, taskid })
    const t3 = Date.now()
    const released = await fetchDatasetKey(dial, worker, domain, { dataset, dealid, idx: 0, authorization })
    const tKey = Date.now() - t3
    assert.deepEqual(released, key)
    const dec = await decryptFile(join(dir, 'fetched.enc'), join(dir, 'decrypted.bin'), released)
    assert.equal(dec.checksum, checksum, 'the decrypted dataset matches the registered checksum')
    assert.equal((await stat(join(dir, 'decrypted.bin'))).size, 10 * MiB)

    // an outsider on the same connection is refused with a code, and learns nothing
    await assert.rejects(fetchDatasetKey(dial, outsider, domain, { dataset, dealid, idx: 0, authorization }),
      (e: unknown) => isIexecError(e, 'KEY_RELEASE_REFUSED') && e.details?.code === 'NOT_A_WORKER')
    // the worker itself without any authorization is refused too (no contribution view)
    await assert.rejects(fetchDatasetKey(dial, worker, domain, { dataset, dealid, idx: 0 }),
      (e: unknown) => isIexecError(e, 'KEY_RELEASE_REFUSED') && e.details?.code === 'NOT_A_WORKER')
    assert.deepEqual(decisions, [undefined, 'NOT_A_WORKER', 'NOT_A_WORKER'])

    // a malformed request gets BAD_REQUEST; an oversized one is cut off
    const s1 = await workerNode.dialProtocol(owner.peerId, KEY_RELEASE_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
    const lp1 = lpStream(s1)
    await lp1.write(new TextEncoder().encode('{"dataset": 1}'))
    const answer = decodeKeyReleaseResponse((await lp1.read({ signal: AbortSignal.timeout(10_000) })).subarray())
    assert.equal(answer.ok, false)
    if (!answer.ok) assert.equal(answer.code, 'BAD_REQUEST')
    const s2 = await workerNode.dialProtocol(owner.peerId, KEY_RELEASE_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
    const lp2 = lpStream(s2)
    await lp2.write(new Uint8Array(64 * 1024).fill(0x20))
    await assert.rejects(lp2.read({ signal: AbortSignal.timeout(10_000) }))
    assert.equal(decisions.length, 4, 'the oversized request reached no decision')

    process.stdout.write(`      10 MiB: encrypt ${tEncrypt} ms, add ${tAdd} ms, bitswap fetch ${tFetch} ms, key release ${tKey} ms\n`)
  })

  it('an owner drops a peer that opens a key-release stream and never writes, within its bound', async () => {
    const owner = await startNode()
    const other = await startNode([owner.multiaddrs()[0]])
    const decisions: Array<string | undefined> = []
    await owner.handle(KEY_RELEASE_PROTOCOL, createKeyReleaseHandler({
      domain, now: Date.now, seenNonces: new MemoryNonceRegistry(), chain, datasetOrders: async () => [{ apprestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, tag: ZERO_BYTES32 }], keyStore: new FileKeyStore(join(dir, 'k')), timeoutMs: 500, onDecision: (d) => decisions.push(d.refused)
    }))
    const stream = await other.dialProtocol(owner.peerId, KEY_RELEASE_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
    const started = Date.now()
    await assert.rejects(lpStream(stream).read({ signal: AbortSignal.timeout(10_000) }))
    const waited = Date.now() - started
    assert.ok(waited < 5_000, `the owner gave up after ${waited} ms`)
    assert.deepEqual(decisions, [])
  })

  it('content helpers: a size bound and offline mode are enforced', async () => {
    const a = await startNode()
    await writeFile(join(dir, 'small'), Buffer.alloc(300_000, 9))
    const { cid } = await addFile(a.helia, join(dir, 'small'))
    await assert.rejects(fetchToFile(a.helia, cid, join(dir, 'capped'), { maxBytes: 100_000 }),
      (e: unknown) => isIexecError(e, 'STORAGE_CONTENT_TOO_LARGE') && e.details?.maxBytes === 100_000 && e.details?.size === 300_000)
    await assert.rejects(stat(join(dir, 'capped.partial')))
    assert.equal((await fetchToFile(a.helia, cid.toString(), join(dir, 'whole'), { offline: true })).bytes, 300_000)
    const missing = CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(`absent ${Date.now()}`)))
    // offline, a missing block fails at once: neither bound fired
    await assert.rejects(fetchToFile(a.helia, missing, join(dir, 'off'), { offline: true, timeoutMs: 10_000 }),
      (e: unknown) => isIexecError(e, 'STORAGE_FETCH_FAILED'))
    await assert.rejects(fetchToFile(a.helia, 'not-a-cid', join(dir, 'x')), (e: unknown) => isIexecError(e, 'STORAGE_INVALID_ARGUMENT'))
  })

  it('fetching a CID nobody provides ends within its bounds: STORAGE_FETCH_STALLED, or STORAGE_FETCH_TIMEOUT when that comes first', async () => {
    const a = await startNode()
    const b = await startNode([a.multiaddrs()[0]])
    const missing = CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(`nobody has this ${Date.now()}`)))
    const started = Date.now()
    await assert.rejects(fetchToFile(a.helia, missing, join(dir, 'never'), { stallTimeoutMs: 1500, timeoutMs: 60_000 }),
      (e: unknown) => isIexecError(e, 'STORAGE_FETCH_STALLED') && e.details?.bytes === 0)
    assert.ok(Date.now() - started < 15_000, 'the fetch stopped near its stall bound')
    await assert.rejects(fetchToFile(a.helia, missing, join(dir, 'never'), { stallTimeoutMs: 60_000, timeoutMs: 1500 }),
      (e: unknown) => isIexecError(e, 'STORAGE_FETCH_TIMEOUT'))
    await assert.rejects(stat(join(dir, 'never')))
    await assert.rejects(stat(join(dir, 'never.partial')))
    // a key release to a node that does not serve the protocol is a protocol error, not a hang
    const dial: KeyReleaseDialer = async (protocol, opts) => await a.dialProtocol(b.peerId, protocol, opts)
    await assert.rejects(fetchDatasetKey(dial, worker, domain, { dataset, dealid, idx: 0 }, { timeoutMs: 5_000 }),
      (e: unknown) => isIexecError(e, 'KEY_RELEASE_PROTOCOL_ERROR'))
  })

  it('a fetch over bitswap whose only source went away mid-content is stopped by the stall bound, with what it had received', async () => {
    const source = await startNode()
    const workerNode = await startNode([source.multiaddrs()[0]])
    // 4 MiB and a bit: five raw 1 MiB leaves under one root
    const path = join(dir, 'content.bin')
    await writeDataset(path, 4 * MiB + 1000)
    const bytes = await readFile(path)
    const { cid } = await addFile(source.helia, path)
    assert.equal((await fetchToFile(workerNode.helia, cid, join(dir, 'first'), { stallTimeoutMs: 10_000 })).bytes, bytes.byteLength)
    // the worker loses its copy of the third leaf, then the only peer that had it goes away:
    // what a worker meets when the peers it was fetching from leave mid-content
    const leaf = CID.createV1(raw.code, await sha256.digest(bytes.subarray(2 * MiB, 3 * MiB)))
    assert.equal(await workerNode.helia.blockstore.has(leaf), true, 'the third leaf is a block of its own')
    await workerNode.helia.blockstore.delete(leaf)
    await source.stop()
    const started = Date.now()
    await assert.rejects(fetchToFile(workerNode.helia, cid, join(dir, 'second'), { stallTimeoutMs: 1_000, timeoutMs: 60_000 }),
      (e: unknown) => isIexecError(e, 'STORAGE_FETCH_STALLED') && e.details?.bytes === 2 * MiB)
    const took = Date.now() - started
    assert.ok(took >= 900 && took < 10_000, `stopped ${took} ms after it started, by the 1 s stall bound, not the 60 s whole-fetch bound`)
    await assert.rejects(stat(join(dir, 'second.partial')), 'no partial file is left')
  })
})
