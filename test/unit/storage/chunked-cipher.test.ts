import assert from 'node:assert/strict'
import { randomBytes, createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile, access } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  CIPHER_HEADER_BYTES, CIPHER_TAG_BYTES, ciphertextSize, decryptFile, decryptStream, encryptFile,
  encryptStream, generateContentKey, hashingTap
} from '../../../node/storage/chunked-cipher.js'
import { isIexecError } from '../../../node/common/errors.js'

async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of source) parts.push(c)
  return Buffer.concat(parts)
}

async function * once (bytes: Uint8Array): AsyncGenerator<Uint8Array> { yield bytes }

/** Splits bytes into irregular pieces so framing does not depend on source chunk sizes. */
async function * jagged (bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  let at = 0
  let step = 1
  while (at < bytes.byteLength) {
    yield bytes.subarray(at, at + step)
    at += step
    step = (step * 7 + 3) % 5000 + 1
  }
}

async function encrypt (plain: Uint8Array, key: Uint8Array, chunkSize = 1024): Promise<Buffer> {
  return await collect(encryptStream(once(plain), key, { chunkSize }))
}

async function expectCode (p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isIexecError(err, code), `expected ${code}, got ${String(err)} ${isIexecError(err) ? err.code : ''}`)
    return true
  })
}

describe('storage: chunked AES-256-GCM cipher', () => {
  const key = generateContentKey()

  it('round-trips empty, sub-chunk, exact-multiple and multi-chunk plaintexts with any source framing', async () => {
    for (const size of [0, 1, 1023, 1024, 2048, 5000, 100_003]) {
      const plain = randomBytes(size)
      const ct = await encrypt(plain, key)
      assert.equal(ct.byteLength, ciphertextSize(size, 1024), `ciphertext size for ${size}`)
      assert.deepEqual(await collect(decryptStream(once(ct), key)), plain, `whole-buffer round trip of ${size} bytes`)
      assert.deepEqual(await collect(decryptStream(jagged(ct), key)), plain, `jagged round trip of ${size} bytes`)
      const ct2 = await collect(encryptStream(jagged(plain), key, { chunkSize: 1024 }))
      assert.deepEqual(await collect(decryptStream(once(ct2), key)), plain, `jagged encryption of ${size} bytes`)
    }
  })

  it('never repeats a ciphertext for the same key and plaintext (fresh nonce prefix)', async () => {
    const plain = Buffer.from('same plaintext')
    assert.notDeepEqual(await encrypt(plain, key), await encrypt(plain, key))
  })

  it('the ciphertext does not contain the plaintext marker', async () => {
    const marker = Buffer.from('SECRET-MARKER-8b1f9c')
    const plain = Buffer.concat([randomBytes(3000), marker, randomBytes(3000), marker])
    const ct = await encrypt(plain, key)
    assert.equal(plain.indexOf(marker) >= 0, true)
    assert.equal(ct.indexOf(marker), -1)
  })

  it('a wrong key is STORAGE_WRONG_KEY', async () => {
    const ct = await encrypt(randomBytes(5000), key)
    await expectCode(collect(decryptStream(once(ct), generateContentKey())), 'STORAGE_WRONG_KEY')
  })

  it('a flipped byte in any chunk is DATASET_DECRYPT_FAILED', async () => {
    const ct = await encrypt(randomBytes(5000), key)
    for (const at of [CIPHER_HEADER_BYTES, CIPHER_HEADER_BYTES + 1500, ct.byteLength - 1]) {
      const bad = Buffer.from(ct)
      bad[at] ^= 0x01
      await expectCode(collect(decryptStream(once(bad), key)), 'DATASET_DECRYPT_FAILED')
    }
  })

  it('a changed header is refused (bad magic, version, chunk size, nonce prefix)', async () => {
    const ct = await encrypt(randomBytes(5000), key)
    const magic = Buffer.from(ct); magic[0] ^= 1
    await expectCode(collect(decryptStream(once(magic), key)), 'STORAGE_BAD_HEADER')
    const version = Buffer.from(ct); version[8] = 9
    await expectCode(collect(decryptStream(once(version), key)), 'STORAGE_BAD_HEADER')
    const huge = Buffer.from(ct); huge.writeUInt32BE(0x7fffffff, 12)
    await expectCode(collect(decryptStream(once(huge), key)), 'STORAGE_BAD_HEADER')
    const size = Buffer.from(ct); size.writeUInt32BE(2048, 12)
    await expectCode(collect(decryptStream(once(size), key)), 'STORAGE_WRONG_KEY')
    const prefix = Buffer.from(ct); prefix[20] ^= 1
    await expectCode(collect(decryptStream(once(prefix), key)), 'STORAGE_WRONG_KEY')
    await expectCode(collect(decryptStream(once(ct.subarray(0, 10)), key)), 'STORAGE_BAD_HEADER')
  })

  it('truncation at a chunk boundary or inside a chunk is STORAGE_TRUNCATED or a failed tag', async () => {
    const ct = await encrypt(randomBytes(5000), key)
    const record = 1024 + CIPHER_TAG_BYTES
    await expectCode(collect(decryptStream(once(ct.subarray(0, CIPHER_HEADER_BYTES + 2 * record)), key)), 'STORAGE_TRUNCATED')
    await expectCode(collect(decryptStream(once(ct.subarray(0, CIPHER_HEADER_BYTES)), key)), 'STORAGE_TRUNCATED')
    await expectCode(collect(decryptStream(once(ct.subarray(0, CIPHER_HEADER_BYTES + record + 5)), key)), 'STORAGE_TRUNCATED')
    await expectCode(collect(decryptStream(once(ct.subarray(0, ct.byteLength - 7)), key)), 'DATASET_DECRYPT_FAILED')
  })

  it('reordered or duplicated chunks are DATASET_DECRYPT_FAILED; appended bytes are STORAGE_TRAILING_DATA', async () => {
    const ct = await encrypt(randomBytes(5000), key)
    const record = 1024 + CIPHER_TAG_BYTES
    const h = ct.subarray(0, CIPHER_HEADER_BYTES)
    const c0 = ct.subarray(CIPHER_HEADER_BYTES, CIPHER_HEADER_BYTES + record)
    const c1 = ct.subarray(CIPHER_HEADER_BYTES + record, CIPHER_HEADER_BYTES + 2 * record)
    const rest = ct.subarray(CIPHER_HEADER_BYTES + 2 * record)
    await expectCode(collect(decryptStream(once(Buffer.concat([h, c1, c0, rest])), key)), 'DATASET_DECRYPT_FAILED')
    await expectCode(collect(decryptStream(once(Buffer.concat([h, c0, c0, rest])), key)), 'DATASET_DECRYPT_FAILED')
    // after a short final chunk, appended bytes become part of that chunk and break its tag
    await expectCode(collect(decryptStream(once(Buffer.concat([ct, Buffer.from([0])])), key)), 'DATASET_DECRYPT_FAILED')
    // after a full final chunk, they are recognized as trailing data
    const full = await encrypt(randomBytes(4096), key)
    await expectCode(collect(decryptStream(once(Buffer.concat([full, Buffer.from([0])])), key)), 'STORAGE_TRAILING_DATA')
    // a chunk spliced in from another stream under the same key
    const other = await encrypt(randomBytes(5000), key)
    const o0 = other.subarray(CIPHER_HEADER_BYTES, CIPHER_HEADER_BYTES + record)
    await expectCode(collect(decryptStream(once(Buffer.concat([h, o0, c1, rest])), key)), 'DATASET_DECRYPT_FAILED')
  })

  it('bad arguments are STORAGE_INVALID_ARGUMENT', async () => {
    await expectCode(collect(encryptStream(once(new Uint8Array(1)), new Uint8Array(16))), 'STORAGE_INVALID_ARGUMENT')
    await expectCode(collect(encryptStream(once(new Uint8Array(1)), key, { chunkSize: 3 })), 'STORAGE_INVALID_ARGUMENT')
  })

  it('hashingTap gives the sha256 of what flowed through', async () => {
    const plain = randomBytes(70_000)
    const tap = hashingTap(jagged(plain))
    assert.throws(() => tap.digest(), (err: unknown) => isIexecError(err, 'STORAGE_INVALID_ARGUMENT'))
    await collect(tap.stream)
    assert.equal(tap.digest(), '0x' + createHash('sha256').update(plain).digest('hex'))
    assert.equal(tap.bytes(), plain.byteLength)
  })

  describe('files', () => {
    let dir: string
    beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'iexec-cipher-')) })
    afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

    it('encryptFile/decryptFile round trip with the plaintext checksum and progress', async () => {
      const plain = randomBytes(300_000)
      await writeFile(join(dir, 'in'), plain)
      const seen: number[] = []
      const res = await encryptFile(join(dir, 'in'), join(dir, 'ct'), key, { onProgress: (n) => seen.push(n) })
      const sha = '0x' + createHash('sha256').update(plain).digest('hex')
      assert.equal(res.checksum, sha)
      assert.equal(res.plaintextBytes, plain.byteLength)
      assert.equal(res.ciphertextBytes, (await readFile(join(dir, 'ct'))).byteLength)
      assert.equal(seen.at(-1), plain.byteLength)
      const out = await decryptFile(join(dir, 'ct'), join(dir, 'out'), key)
      assert.equal(out.checksum, sha)
      assert.deepEqual(await readFile(join(dir, 'out')), plain)
    })

    it('decryptFile leaves no output (not even a partial one) when the ciphertext is truncated', async () => {
      await writeFile(join(dir, 'in'), randomBytes(300_000))
      await encryptFile(join(dir, 'in'), join(dir, 'ct'), key)
      const ct = await readFile(join(dir, 'ct'))
      await writeFile(join(dir, 'ct-cut'), ct.subarray(0, CIPHER_HEADER_BYTES + 2 * (64 * 1024 + CIPHER_TAG_BYTES)))
      await expectCode(decryptFile(join(dir, 'ct-cut'), join(dir, 'out'), key), 'STORAGE_TRUNCATED')
      await assert.rejects(access(join(dir, 'out')))
      await assert.rejects(access(join(dir, 'out.partial')))
    })
  })
})
