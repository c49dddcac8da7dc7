import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { packFolder } from '../../../node/storage/archive.js'
import { generateContentKey } from '../../../node/storage/chunked-cipher.js'
import { decryptDataset, encryptDataset, isEncryptedContent, placePlainDataset } from '../../../node/storage/dataset-cipher.js'
import { isIexecError } from '../../../node/common/errors.js'

const isCode = (code: string) => (e: unknown): boolean => {
  assert.ok(isIexecError(e, code), `expected ${code}, got ${String(e)}`)
  return true
}

describe('storage: datasets (file or folder) encrypted and back', () => {
  let dir: string
  const key = generateContentKey()
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'iexec-dataset-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('a file round-trips as raw content with the plaintext checksum', async () => {
    const data = randomBytes(150_000)
    await writeFile(join(dir, 'data.csv'), data)
    const enc = await encryptDataset(join(dir, 'data.csv'), join(dir, 'data.enc'), key)
    assert.equal(enc.kind, 'raw')
    assert.equal(enc.checksum, '0x' + createHash('sha256').update(data).digest('hex'))
    const dec = await decryptDataset(join(dir, 'data.enc'), join(dir, 'out.csv'), key)
    assert.equal(dec.kind, 'raw')
    assert.equal(dec.checksum, enc.checksum)
    assert.deepEqual(await readFile(join(dir, 'out.csv')), data)
  })

  it('a folder round-trips as an archive; its checksum is the archive sha256', async () => {
    await mkdir(join(dir, 'src', 'part'), { recursive: true })
    await writeFile(join(dir, 'src', 'a.txt'), 'alpha\n')
    await writeFile(join(dir, 'src', 'part', 'b.bin'), randomBytes(90_000))
    const enc = await encryptDataset(join(dir, 'src'), join(dir, 'src.enc'), key)
    assert.equal(enc.kind, 'archive')
    const archive: Uint8Array[] = []
    for await (const c of packFolder(join(dir, 'src'))) archive.push(c)
    assert.equal(enc.checksum, '0x' + createHash('sha256').update(Buffer.concat(archive)).digest('hex'))
    const dec = await decryptDataset(join(dir, 'src.enc'), join(dir, 'out'), key)
    assert.equal(dec.kind, 'archive')
    assert.equal(dec.checksum, enc.checksum)
    assert.equal(await readFile(join(dir, 'out', 'a.txt'), 'utf8'), 'alpha\n')
    assert.deepEqual(await readFile(join(dir, 'out', 'part', 'b.bin')), await readFile(join(dir, 'src', 'part', 'b.bin')))
  })

  it('a dataset published in clear is told apart from an encrypted one and placed with its checksum', async () => {
    const data = randomBytes(70_000)
    await writeFile(join(dir, 'data.bin'), data)
    await encryptDataset(join(dir, 'data.bin'), join(dir, 'data.enc'), key)
    assert.equal(await isEncryptedContent(join(dir, 'data.enc')), true)
    assert.equal(await isEncryptedContent(join(dir, 'data.bin')), false)
    // a file: moved to the target, its sha256 returned
    assert.equal(await placePlainDataset(join(dir, 'data.bin'), join(dir, 'placed.bin')), '0x' + createHash('sha256').update(data).digest('hex'))
    assert.deepEqual(await readFile(join(dir, 'placed.bin')), data)
    // a folder's archive: unpacked, the archive's sha256 returned
    await mkdir(join(dir, 'src', 'part'), { recursive: true })
    await writeFile(join(dir, 'src', 'a.txt'), 'alpha\n')
    await writeFile(join(dir, 'src', 'part', 'b.txt'), 'beta\n')
    const archive: Uint8Array[] = []
    for await (const c of packFolder(join(dir, 'src'))) archive.push(c)
    await writeFile(join(dir, 'src.tar'), Buffer.concat(archive))
    assert.equal(await isEncryptedContent(join(dir, 'src.tar')), false)
    assert.equal(await placePlainDataset(join(dir, 'src.tar'), join(dir, 'out')), '0x' + createHash('sha256').update(Buffer.concat(archive)).digest('hex'))
    assert.equal(await readFile(join(dir, 'out', 'part', 'b.txt'), 'utf8'), 'beta\n')
  })

  it('a tampered folder dataset, a flipped content kind, or a wrong key leaves nothing at the target', async () => {
    await mkdir(join(dir, 'src'))
    await writeFile(join(dir, 'src', 'a.txt'), randomBytes(200_000))
    await encryptDataset(join(dir, 'src'), join(dir, 'src.enc'), key)
    const ct = await readFile(join(dir, 'src.enc'))
    const bad = Buffer.from(ct); bad[bad.byteLength - 20] ^= 1
    await writeFile(join(dir, 'bad.enc'), bad)
    await assert.rejects(decryptDataset(join(dir, 'bad.enc'), join(dir, 'out1'), key), isCode('DATASET_DECRYPT_FAILED'))
    await assert.rejects(access(join(dir, 'out1')))
    const kind = Buffer.from(ct); kind[9] = 0
    await writeFile(join(dir, 'kind.enc'), kind)
    await assert.rejects(decryptDataset(join(dir, 'kind.enc'), join(dir, 'out2'), key), isCode('STORAGE_WRONG_KEY'))
    await assert.rejects(access(join(dir, 'out2')))
    await assert.rejects(decryptDataset(join(dir, 'src.enc'), join(dir, 'out3'), generateContentKey()), isCode('STORAGE_WRONG_KEY'))
    await assert.rejects(access(join(dir, 'out3')))
    await assert.rejects(encryptDataset(join(dir, 'missing'), join(dir, 'x.enc'), key), isCode('STORAGE_INVALID_ARGUMENT'))
  })
})
