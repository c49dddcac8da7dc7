import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { Wallet, hexlify, randomBytes } from 'ethers'
import { createNetwork } from '../../node/network/index.js'
import type { Network } from '../../node/network/index.js'
import { addStream, encryptResultFolder, packFolder } from '../../node/storage/index.js'
import { retrieveResult } from '../../node/storage/results.js'
import { computeResultDigest } from '../../node/storage/digest.js'
import { resultHash } from '../../protocols/eip712.js'
import { isIexecError } from '../../node/common/errors.js'

describe('results: retrieve a finalized result and check it against the chain', function () {
  let dir: string
  let net: Network
  const taskId = hexlify(randomBytes(32))
  const requester = new Wallet(hexlify(randomBytes(32)))

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-results-'))
    net = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], swarmId: 'results-test' })
    await net.start()
    // what a worker leaves in IEXEC_OUT
    await mkdir(join(dir, 'out'))
    await writeFile(join(dir, 'out', 'stdout.txt'), 'count=168 last=997\n')
    await writeFile(join(dir, 'out', 'primes.txt'), '2\n3\n5\n')
  })
  after(async () => {
    await net.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('unpacks a plain result whose digest gives the on-chain result hash, and prints its stdout', async () => {
    const { digest } = await computeResultDigest(join(dir, 'out'))
    const { cid } = await addStream(net.helia, packFolder(join(dir, 'out')))
    const r = await retrieveResult({ helia: net.helia, taskId, finalized: { resultsCid: cid.toString(), resultHash: resultHash(taskId, digest) }, dest: join(dir, 'plain'), privateKey: requester.signingKey, timeoutMs: 10_000 })
    assert.equal(r.stdout, 'count=168 last=997\n')
    assert.equal(r.encrypted, false)
    assert.equal(r.digest, digest)
  })

  it('refuses a result that does not match the chain (RESULT_DIGEST_MISMATCH) and keeps nothing', async () => {
    const { cid } = await addStream(net.helia, packFolder(join(dir, 'out')))
    const wrong = resultHash(taskId, hexlify(randomBytes(32)))
    await assert.rejects(
      retrieveResult({ helia: net.helia, taskId, finalized: { resultsCid: cid.toString(), resultHash: wrong }, dest: join(dir, 'wrong'), privateKey: requester.signingKey, timeoutMs: 10_000 }),
      (e: unknown) => isIexecError(e, 'RESULT_DIGEST_MISMATCH'))
    assert.equal(existsSync(join(dir, 'wrong')), false)
  })

  it('decrypts a result encrypted to the requester; another key cannot read it', async () => {
    const { digest } = await computeResultDigest(join(dir, 'out'))
    const { cid } = await addStream(net.helia, encryptResultFolder(join(dir, 'out'), requester.signingKey.compressedPublicKey, { taskid: taskId }))
    const finalized = { resultsCid: cid.toString(), resultHash: resultHash(taskId, digest) }
    const r = await retrieveResult({ helia: net.helia, taskId, finalized, dest: join(dir, 'enc'), privateKey: requester.signingKey, timeoutMs: 10_000 })
    assert.equal(r.encrypted, true)
    assert.equal(r.stdout, 'count=168 last=997\n')
    const other = new Wallet(hexlify(randomBytes(32)))
    await assert.rejects(retrieveResult({ helia: net.helia, taskId, finalized, dest: join(dir, 'enc-other'), privateKey: other.signingKey, timeoutMs: 10_000 }),
      (e: unknown) => isIexecError(e))
    assert.equal(existsSync(join(dir, 'enc-other')), false)
  })
})
