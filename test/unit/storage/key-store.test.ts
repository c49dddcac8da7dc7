import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { Wallet } from 'ethers'
import { generateContentKey } from '../../../node/storage/chunked-cipher.js'
import { DatasetKey, FileKeyStore, MemoryKeyStore } from '../../../node/storage/key-store.js'
import { isIexecError } from '../../../node/common/errors.js'

describe('storage: dataset key store', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'iexec-keys-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('a DatasetKey never prints or serializes its bytes', () => {
    const raw = generateContentKey()
    const key = new DatasetKey(raw)
    const hex = Buffer.from(raw).toString('hex')
    for (const text of [String(key), `${key.toString()}`, JSON.stringify({ key }), inspect(key), inspect({ nested: { key } })]) {
      assert.equal(text.includes(hex), false, text)
      assert.match(text, /redacted/)
    }
    assert.deepEqual(key.bytes(), raw)
    assert.throws(() => new DatasetKey(new Uint8Array(31)), (e: unknown) => isIexecError(e, 'STORAGE_INVALID_ARGUMENT'))
  })

  it('files keys 0600 in a 0700 folder, by address (any casing) or CID, and survives a new instance', async () => {
    const keysDir = join(dir, 'dataset-keys')
    const store = new FileKeyStore(keysDir)
    const dataset = Wallet.createRandom().address
    const cid = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
    const k1 = new DatasetKey(generateContentKey())
    const k2 = new DatasetKey(generateContentKey())
    assert.equal(await store.get(dataset), undefined)
    assert.deepEqual(await store.list(), [])
    await store.put(dataset, k1)
    await store.put(cid, k2)
    assert.equal((await stat(keysDir)).mode & 0o777, 0o700)
    for (const f of await readdir(keysDir)) assert.equal((await stat(join(keysDir, f))).mode & 0o777, 0o600, f)
    const again = new FileKeyStore(keysDir)
    assert.deepEqual((await again.get(dataset.toLowerCase()))?.bytes(), k1.bytes())
    assert.deepEqual((await again.get(dataset.toUpperCase().replace('0X', '0x')))?.bytes(), k1.bytes())
    assert.deepEqual((await again.get(cid))?.bytes(), k2.bytes())
    assert.deepEqual(await again.list(), [cid, dataset.toLowerCase()].sort())
    assert.equal(await again.delete(dataset), true)
    assert.equal(await again.delete(dataset), false)
    assert.equal(await again.get(dataset), undefined)
  })

  it('refuses bad ids (path tricks) and reports corrupt files', async () => {
    const store = new FileKeyStore(dir)
    for (const id of ['../x', '/etc/passwd', '0x12', 'a/b', '']) {
      await assert.rejects(store.get(id), (e: unknown) => isIexecError(e, 'STORAGE_INVALID_ARGUMENT'), id)
    }
    const dataset = Wallet.createRandom().address
    await writeFile(join(dir, `${dataset.toLowerCase()}.key`), 'not hex')
    await assert.rejects(store.get(dataset), (e: unknown) => isIexecError(e, 'STORAGE_KEY_CORRUPT'))
    // the file holds hex, nothing else
    await store.put(dataset, new DatasetKey(generateContentKey()))
    assert.match(await readFile(join(dir, `${dataset.toLowerCase()}.key`), 'utf8'), /^[0-9a-f]{64}\n$/)
  })

  it('MemoryKeyStore behaves the same', async () => {
    const store = new MemoryKeyStore()
    const dataset = Wallet.createRandom().address
    const k = new DatasetKey(generateContentKey())
    await store.put(dataset, k)
    assert.deepEqual((await store.get(dataset.toLowerCase()))?.bytes(), k.bytes())
    assert.equal(await store.delete(dataset), true)
    assert.equal(await store.get(dataset), undefined)
  })
})
