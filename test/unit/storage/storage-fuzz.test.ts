/**
 * The storage decoders a peer's bytes reach, against hostile bytes
 * (test/helpers/fuzz.ts, fixed seed): ECIES envelopes (a released dataset
 * key), the chunked cipher's header and stream (a dataset), encrypted
 * results, and the tar reader (result and dataset archives, app images).
 * Each answers the plaintext or files that were sealed, or a coded
 * StorageError; never a crash, never a file outside its target.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve, sep } from 'node:path'
import fc from 'fast-check'
import { Wallet } from 'ethers'
import { isIexecError } from '../../../node/common/errors.js'
import { eciesDecrypt, eciesEncrypt } from '../../../node/storage/ecies.js'
import { contentKindOf, decryptStream, encryptStream, CIPHER_HEADER_BYTES } from '../../../node/storage/chunked-cipher.js'
import { decryptResult, encryptResult } from '../../../node/storage/result-cipher.js'
import { packTree, unpackArchive } from '../../../node/storage/archive.js'
import type { UnpackResult } from '../../../node/storage/archive.js'
import { FUZZ_SEED, fuzzDecoder } from '../../helpers/fuzz.js'

const iexecCode = (err: unknown): string | undefined => isIexecError(err) ? err.code : undefined
const RUNS = { random: 4_000, json: 0, mutated: 6_000 }

async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of source) parts.push(c)
  return Buffer.concat(parts)
}
/** The bytes in pieces of `size` (the readers must frame across pieces). */
async function * pieces (bytes: Uint8Array, size = 97): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += size) yield bytes.subarray(i, i + size)
}

describe('storage: decoder fuzzing (fast-check, fixed seed)', function () {
  this.timeout(300_000)
  const owner = Wallet.createRandom()
  let scratch: string

  // in memory where the host has it: thousands of small unpacks
  before(async () => { scratch = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'iexec-fuzz-')) })
  after(async () => { await rm(scratch, { recursive: true, force: true }) })

  it('ECIES envelopes (4,400 cases: an ECDH each): the sealed key, or STORAGE_NOT_RECIPIENT', async () => {
    const secret = randomBytes(32)
    const valid = [eciesEncrypt(owner.signingKey.publicKey, secret, 'ctx'), eciesEncrypt(owner.signingKey.publicKey, new Uint8Array(0), 'ctx')]
    const s = await fuzzDecoder({
      decode: (b) => eciesDecrypt(owner.signingKey, b, 'ctx'),
      codes: new Set(['STORAGE_NOT_RECIPIENT']),
      codeOf: iexecCode,
      valid,
      maxBytes: 200,
      accepted: (plain, b) => { assert.ok(valid.some((v) => Buffer.from(v).equals(b)), 'only an unaltered envelope opens'); assert.ok(plain.byteLength === 32 || plain.byteLength === 0) }
    }, { random: 4_000, json: 0, mutated: 400 })
    assert.ok(s.refused > 4_000)
  })

  it('cipher headers and streams (10,000 cases each): the plaintext, or a coded refusal', async () => {
    const key = new Uint8Array(randomBytes(32))
    const plain = randomBytes(300)
    const sealed = await collect(encryptStream(pieces(plain), key, { chunkSize: 64, kind: 'archive' }))
    const headers = await fuzzDecoder({
      decode: (b) => contentKindOf(b),
      codes: new Set(['STORAGE_BAD_HEADER']),
      codeOf: iexecCode,
      valid: [sealed.subarray(0, CIPHER_HEADER_BYTES)],
      maxBytes: 64
    }, RUNS)
    assert.ok(headers.refused > 5_000)
    const CODES = new Set(['STORAGE_BAD_HEADER', 'STORAGE_WRONG_KEY', 'DATASET_DECRYPT_FAILED', 'STORAGE_TRUNCATED', 'STORAGE_TRAILING_DATA'])
    const streams = await fuzzDecoder({
      decode: async (b) => await collect(decryptStream(pieces(b), key)),
      codes: CODES,
      codeOf: iexecCode,
      valid: [sealed],
      maxBytes: 1024,
      accepted: (out) => { assert.ok(out.equals(plain), 'what decrypts is the sealed plaintext') }
    }, RUNS)
    assert.ok(streams.refused > 9_000)
  })

  it('encrypted results (1,000 cases: an ECDH each; their parts have 10,000 above): the sealed archive, or a coded refusal', async () => {
    const taskid = '0x' + 'ab'.repeat(32)
    const plain = randomBytes(200)
    const sealed = await collect(encryptResult(pieces(plain), owner.signingKey.publicKey, { taskid, chunkSize: 64 }))
    const s = await fuzzDecoder({
      decode: async (b) => await collect(decryptResult(pieces(b), owner.signingKey, { taskid })),
      codes: new Set(['STORAGE_BAD_HEADER', 'STORAGE_TRUNCATED', 'STORAGE_NOT_RECIPIENT', 'STORAGE_WRONG_KEY', 'DATASET_DECRYPT_FAILED', 'STORAGE_TRAILING_DATA']),
      codeOf: iexecCode,
      valid: [sealed],
      maxBytes: 1200,
      accepted: (out) => { assert.ok(out.equals(plain), 'what decrypts is the sealed result') }
    }, { random: 600, json: 0, mutated: 400 })
    assert.ok(s.refused > 800)
  })

  describe('the tar reader (result, dataset and image archives)', () => {
    const ARCHIVE_CODES = new Set(['STORAGE_ARCHIVE_CORRUPT', 'STORAGE_ARCHIVE_PATH_ESCAPE', 'STORAGE_ARCHIVE_UNSUPPORTED_ENTRY', 'STORAGE_ARCHIVE_TOO_LARGE', 'STORAGE_ARCHIVE_TARGET_EXISTS'])
    const LIMITS = { maxBytes: 64 * 1024, maxEntries: 32 }
    let n = 0

    /** Everything under `dir` is a plain file or folder inside it; returns the bytes of its files. */
    async function inside (dir: string): Promise<number> {
      let bytes = 0
      const root = resolve(dir)
      for (const e of await readdir(dir, { recursive: true })) {
        const p = resolve(dir, e)
        assert.ok(p.startsWith(root + sep), `${p} is inside the target`)
        const st = await lstat(p)
        assert.ok(st.isFile() || st.isDirectory(), `${p} is a file or folder`)
        if (st.isFile()) bytes += st.size
      }
      return bytes
    }

    async function unpack (b: Uint8Array): Promise<UnpackResult> {
      const dest = join(scratch, `t${n++}`)
      try {
        const r = await unpackArchive(pieces(b, 211), dest, LIMITS)
        assert.equal(await inside(dest), r.bytes, 'the files hold the bytes it reports')
        assert.ok(r.bytes <= LIMITS.maxBytes && r.files + r.dirs <= LIMITS.maxEntries, 'within its caps')
        return r
      } catch (err) {
        // a refused archive leaves nothing outside its target either
        await inside(dest).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e })
        throw err
      } finally {
        await rm(dest, { recursive: true, force: true })
      }
    }

    const seed = packTree([
      { path: 'a', kind: 'dir', size: 0 },
      { path: 'a/b.txt', kind: 'file', size: 5, content: new TextEncoder().encode('hello') },
      { path: 'c', kind: 'file', size: 700, content: new Uint8Array(randomBytes(700)) },
      { path: 'd/e/f', kind: 'file', size: 0, content: new Uint8Array(0) }
    ])

    it('random and mutated archives (3,000 cases, each on disk): files inside the target, or a coded refusal', async () => {
      const s = await fuzzDecoder({ decode: unpack, codes: ARCHIVE_CODES, codeOf: iexecCode, valid: [seed], maxBytes: 2048 }, { random: 1_000, json: 0, mutated: 2_000 })
      assert.ok(s.refused > 2_000 && s.accepted > 0, `accepted ${s.accepted}, refused ${s.refused}`)
    })

    it('headers rewritten field by field with a valid checksum (1,500 cases): the same', async () => {
      // byte flips mostly stop at the checksum: these reach the fields behind it
      const FIELDS = [[0, 100], [100, 8], [124, 12], [156, 1], [157, 100], [257, 8], [345, 155]] as const
      const headerAt = [0, 512, 1024, 1024 + 512 + 1024, 1024 + 512 + 1024 + 512 + 512]
      const fieldValue = fc.oneof(
        fc.uint8Array({ maxLength: 155 }),
        fc.constantFrom('../x', '/etc/passwd', 'a/../../x', 'a/b.txt', 'a', '.', './', '..', 'c/x', 'x\\..\\..\\y', '0', '5', '2', 'L', 'x', '77777777777', '00000001750', ' ', '-1', '1e3')
          .map((t) => new TextEncoder().encode(t))
      )
      await fc.assert(fc.asyncProperty(fc.record({ h: fc.constantFrom(...headerAt), f: fc.nat({ max: FIELDS.length - 1 }), v: fieldValue }), async ({ h, f, v }) => {
        const b = new Uint8Array(seed)
        const [off, len] = FIELDS[f]
        b.fill(0, h + off, h + off + len)
        b.set(v.subarray(0, len), h + off)
        // the checksum field: six octal digits, NUL, space, over the header with the field as spaces
        let sum = 0
        for (let i = 0; i < 512; i++) sum += (i >= 148 && i < 156) ? 0x20 : b[h + i]
        b.set(new TextEncoder().encode(sum.toString(8).padStart(6, '0') + '\0 '), h + 148)
        try {
          await unpack(b)
        } catch (err) {
          const code = iexecCode(err)
          assert.ok(code !== undefined && ARCHIVE_CODES.has(code), `a coded refusal, got ${String(err)}`)
        }
      }), { numRuns: 1_500, seed: FUZZ_SEED + 3 })
    })
  })
})
