import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile, access } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet, hashMessage } from 'ethers'
import { compressPublicKey, eciesDecrypt, eciesEncrypt, recoverPublicKey } from '../../../node/storage/ecies.js'
import { decryptResult, decryptResultToFolder, encryptResult, encryptResultFolder } from '../../../node/storage/result-cipher.js'
import { isIexecError } from '../../../node/common/errors.js'

async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of source) parts.push(c)
  return Buffer.concat(parts)
}
async function * once (bytes: Uint8Array): AsyncGenerator<Uint8Array> { yield bytes }
function isCode (code: string) {
  return (err: unknown): boolean => {
    assert.ok(isIexecError(err, code), `expected ${code}, got ${String(err)}`)
    return true
  }
}

describe('storage: ECIES over secp256k1 with Ethereum keys', () => {
  const alice = Wallet.createRandom()
  const bob = Wallet.createRandom()

  it('round-trips to the recipient, compressed or uncompressed public key', () => {
    const secret = randomBytes(32)
    for (const pub of [alice.signingKey.publicKey, alice.signingKey.compressedPublicKey]) {
      const env = eciesEncrypt(pub, secret, 'ctx')
      assert.deepEqual(Buffer.from(eciesDecrypt(alice.signingKey, env, 'ctx')), secret)
    }
  })

  it('another key, another context or an altered envelope is STORAGE_NOT_RECIPIENT', () => {
    const env = eciesEncrypt(alice.signingKey.publicKey, randomBytes(32), 'dataset-A')
    assert.throws(() => eciesDecrypt(bob.signingKey, env, 'dataset-A'), isCode('STORAGE_NOT_RECIPIENT'))
    assert.throws(() => eciesDecrypt(alice.signingKey, env, 'dataset-B'), isCode('STORAGE_NOT_RECIPIENT'))
    for (const at of [0, 5, 40, env.byteLength - 1]) {
      const bad = Uint8Array.from(env); bad[at] ^= 1
      assert.throws(() => eciesDecrypt(alice.signingKey, bad, 'dataset-A'), isCode('STORAGE_NOT_RECIPIENT'))
    }
    assert.throws(() => eciesDecrypt(alice.signingKey, env.subarray(0, 20), 'dataset-A'), isCode('STORAGE_NOT_RECIPIENT'))
  })

  it('the public key recovered from a signature seals to the signer', async () => {
    const msg = 'hello'
    const sig = await alice.signMessage(msg)
    const pub = recoverPublicKey(hashMessage(msg), sig)
    assert.deepEqual(compressPublicKey(pub), compressPublicKey(alice.signingKey.publicKey))
    const env = eciesEncrypt(pub, Buffer.from('k'))
    assert.equal(Buffer.from(eciesDecrypt(alice.signingKey, env)).toString(), 'k')
  })

  it('a bad public key is STORAGE_INVALID_ARGUMENT', () => {
    assert.throws(() => eciesEncrypt('0x1234', new Uint8Array(1)), isCode('STORAGE_INVALID_ARGUMENT'))
    assert.throws(() => eciesEncrypt('0x04' + '00'.repeat(64), new Uint8Array(1)), isCode('STORAGE_INVALID_ARGUMENT'))
  })
})

describe('storage: results encrypted to the requester', () => {
  const requester = Wallet.createRandom()
  const other = Wallet.createRandom()
  const taskid = '0x' + 'ab'.repeat(32)
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'iexec-result-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('only the requester decrypts; the ciphertext hides the output', async () => {
    const marker = Buffer.from('RESULT-MARKER-51c2')
    const plain = Buffer.concat([randomBytes(100_000), marker])
    const ct = await collect(encryptResult(once(plain), requester.signingKey.publicKey, { taskid }))
    assert.equal(ct.indexOf(marker), -1)
    assert.deepEqual(await collect(decryptResult(once(ct), requester.signingKey, { taskid })), plain)
    await assert.rejects(collect(decryptResult(once(ct), other.signingKey, { taskid })), isCode('STORAGE_NOT_RECIPIENT'))
    await assert.rejects(collect(decryptResult(once(ct), requester.signingKey, { taskid: '0x' + 'cd'.repeat(32) })), isCode('STORAGE_NOT_RECIPIENT'))
    const bad = Buffer.from(ct); bad[ct.byteLength - 100] ^= 1
    await assert.rejects(collect(decryptResult(once(bad), requester.signingKey, { taskid })), isCode('DATASET_DECRYPT_FAILED'))
    await assert.rejects(collect(decryptResult(once(ct.subarray(0, 50)), requester.signingKey, { taskid })), isCode('STORAGE_TRUNCATED'))
    await assert.rejects(collect(decryptResult(once(Buffer.from('not a result at all')), requester.signingKey)), isCode('STORAGE_BAD_HEADER'))
  })

  it('a result folder round-trips; a tampered one leaves no files', async () => {
    await mkdir(join(dir, 'out', 'sub'), { recursive: true })
    await writeFile(join(dir, 'out', 'stdout.txt'), 'hello world\n')
    await writeFile(join(dir, 'out', 'sub', 'data.bin'), randomBytes(200_000))
    const ct = await collect(encryptResultFolder(join(dir, 'out'), requester.signingKey.compressedPublicKey, { taskid }))
    const res = await decryptResultToFolder(once(ct), requester.signingKey, join(dir, 'back'), { taskid })
    assert.equal(res.files, 2)
    assert.equal(await readFile(join(dir, 'back', 'stdout.txt'), 'utf8'), 'hello world\n')
    assert.deepEqual(await readFile(join(dir, 'back', 'sub', 'data.bin')), await readFile(join(dir, 'out', 'sub', 'data.bin')))
    const bad = Buffer.from(ct); bad[ct.byteLength - 10] ^= 1
    await assert.rejects(decryptResultToFolder(once(bad), requester.signingKey, join(dir, 'tampered'), { taskid }), isCode('DATASET_DECRYPT_FAILED'))
    await assert.rejects(access(join(dir, 'tampered')))
    await assert.rejects(decryptResultToFolder(once(ct), other.signingKey, join(dir, 'other'), { taskid }), isCode('STORAGE_NOT_RECIPIENT'))
    await assert.rejects(access(join(dir, 'other')))
  })
})
