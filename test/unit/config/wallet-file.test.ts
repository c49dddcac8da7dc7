import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet, decryptKeystoreJson, encryptKeystoreJson } from 'ethers'
import {
  createWallet, importWallet, exportWallet, initDataDir, loadDataDir, dataDirPaths, DEFAULT_SCRYPT_N
} from '../../../node/config/index.js'
import { isIexecError } from '../../../node/common/errors.js'

const code = (c: string) => (e: unknown): boolean => isIexecError(e, c)
// tests that are not about the cost itself keep scrypt cheap
const FAST = { scryptN: 1 << 10 }

async function keystoreOf (w: { address: string, privateKey: string }, password: string): Promise<string> {
  return await encryptKeystoreJson({ address: w.address, privateKey: w.privateKey }, password, { scrypt: { N: 1 << 10 } })
}

describe('config: wallet create, import, export (issue 24)', function () {
  this.timeout(60_000)
  let root: string

  beforeEach(async () => { root = await mkdtemp(join(tmpdir(), 'iexec-wallet-')) })
  afterEach(async () => { await rm(root, { recursive: true, force: true }) })

  it('create: a keystore at scrypt 2^17 by default, mode 0600, kept by init and opened by loadDataDir', async () => {
    assert.equal(DEFAULT_SCRYPT_N, 1 << 17)
    const dataDir = join(root, 'd')
    const r = await createWallet({ dataDir, password: 'node-pw' })
    const file = dataDirPaths(dataDir).wallet
    assert.equal(r.file, file)
    assert.equal(r.unprotected, false)
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    // ethers writes `Crypto`, geth `crypto`: both are standard
    const ks = JSON.parse(await readFile(file, 'utf8')) as Record<string, { kdf: string, kdfparams: { n: number } }>
    const crypto = ks.Crypto ?? ks.crypto
    assert.equal(crypto.kdf, 'scrypt')
    assert.equal(crypto.kdfparams.n, 131072)
    const init = await initDataDir({ dataDir, password: 'node-pw' })
    assert.equal(init.address, r.address, 'init keeps the wallet it finds')
    const loaded = await loadDataDir(dataDir, 'node-pw')
    assert.equal(loaded.address, r.address)
  })

  it('create: refuses to replace a wallet (WALLET_EXISTS) and needs a password (PASSWORD_REQUIRED); both change nothing', async () => {
    const dataDir = join(root, 'd')
    await createWallet({ dataDir, password: 'pw', ...FAST })
    const file = dataDirPaths(dataDir).wallet
    const before = await readFile(file, 'utf8')
    await assert.rejects(createWallet({ dataDir, password: 'pw', ...FAST }), code('WALLET_EXISTS'))
    await assert.rejects(createWallet({ dataDir, devUnprotectedKey: true }), code('WALLET_EXISTS'))
    assert.equal(await readFile(file, 'utf8'), before)
    const other = join(root, 'none')
    await assert.rejects(createWallet({ dataDir: other }), code('PASSWORD_REQUIRED'))
    await assert.rejects(createWallet({ dataDir: other, password: '' }), code('PASSWORD_REQUIRED'))
    assert.equal(existsSync(other), false, 'no data dir is left behind')
  })

  it('import --private-key-file: with or without 0x, trailing newline; stored encrypted with the node password', async () => {
    const w = Wallet.createRandom()
    for (const [i, text] of [`${w.privateKey}\n`, `${w.privateKey.slice(2).toUpperCase()}\r\nsecond line\n`, `  ${w.privateKey}  `].entries()) {
      const dataDir = join(root, `pk-${i}`)
      const r = await importWallet({ kind: 'privateKey', privateKey: text }, { dataDir, password: 'node-pw', ...FAST })
      assert.equal(r.address, w.address)
      const json = await readFile(dataDirPaths(dataDir).wallet, 'utf8')
      assert.ok(!json.includes(w.privateKey.slice(2)), 'the key is not stored in clear')
      assert.equal((await decryptKeystoreJson(json, 'node-pw')).privateKey, w.privateKey)
    }
    const dev = join(root, 'pk-dev')
    const r = await importWallet({ kind: 'privateKey', privateKey: w.privateKey }, { dataDir: dev, devUnprotectedKey: true })
    assert.equal(r.unprotected, true)
    await initDataDir({ dataDir: dev, devUnprotectedKey: true })
    assert.equal((await loadDataDir(dev)).address, w.address)
  })

  it('import --private-key-file: malformed keys get PRIVATE_KEY_MALFORMED and write nothing', async () => {
    const order = 'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141'
    const bad = ['', 'not a key', '0x1234', `0x${'g'.repeat(64)}`, `0x${'0'.repeat(64)}`, `0x${order}`, `0x${'1'.repeat(65)}`, `\n0x${'1'.repeat(64)}`]
    for (const [i, text] of bad.entries()) {
      const dataDir = join(root, `bad-${i}`)
      await assert.rejects(importWallet({ kind: 'privateKey', privateKey: text }, { dataDir, password: 'pw', ...FAST }), (e: unknown) => {
        assert.ok(isIexecError(e, 'PRIVATE_KEY_MALFORMED'), `case ${i}: ${String(e)}`)
        assert.ok(!(e as Error).message.includes(order), 'the key is not echoed')
        return true
      })
      assert.equal(existsSync(dataDir), false, `case ${i}: nothing written`)
    }
  })

  it('import --keystore: opens with its password, re-encrypted with the node password (or its own when none is given)', async () => {
    const w = Wallet.createRandom()
    const json = await keystoreOf(w, 'keystore-pw')
    const a = join(root, 'ks-a')
    const r = await importWallet({ kind: 'keystore', json, password: 'keystore-pw' }, { dataDir: a, password: 'node-pw', ...FAST })
    assert.equal(r.address, w.address)
    const stored = await readFile(dataDirPaths(a).wallet, 'utf8')
    assert.equal((await decryptKeystoreJson(stored, 'node-pw')).privateKey, w.privateKey)
    await assert.rejects(decryptKeystoreJson(stored, 'keystore-pw'))
    await initDataDir({ dataDir: a, password: 'node-pw' })
    await assert.rejects(loadDataDir(a, 'keystore-pw'), code('WALLET_BAD_PASSWORD'))
    assert.equal((await loadDataDir(a, 'node-pw')).address, w.address)
  })

  it('import --keystore: a wrong password gets KEYSTORE_BAD_PASSWORD, a malformed keystore KEYSTORE_MALFORMED; nothing is written', async () => {
    const w = Wallet.createRandom()
    const json = await keystoreOf(w, 'keystore-pw')
    // geth's spelling, so the tampered copies below stay standard but for one field
    const raw = JSON.parse(json) as Record<string, unknown>
    const parsed = { ...raw, crypto: (raw.Crypto ?? raw.crypto) } as { crypto: Record<string, unknown> & { kdfparams: Record<string, unknown>, cipherparams: Record<string, unknown> } }
    delete (parsed as Record<string, unknown>).Crypto
    assert.equal((await importWallet({ kind: 'keystore', json: JSON.stringify(parsed), password: 'keystore-pw' }, { dataDir: join(root, 'geth-spelling'), password: 'pw', ...FAST })).address, w.address)
    const dataDir = join(root, 'ks-bad')
    await assert.rejects(importWallet({ kind: 'keystore', json, password: 'wrong' }, { dataDir, password: 'pw', ...FAST }), code('KEYSTORE_BAD_PASSWORD'))
    const malformed: string[] = [
      '',
      'not json',
      '{"version":3}',
      JSON.stringify({ address: w.address }),
      '[1,2,3]',
      JSON.stringify({ ...parsed, crypto: { ...parsed.crypto, kdf: 'argon9' } }),
      JSON.stringify({ ...parsed, crypto: { ...parsed.crypto, cipher: 'rot13' } }),
      JSON.stringify({ ...parsed, crypto: { ...parsed.crypto, kdfparams: { ...parsed.crypto.kdfparams, n: 3 } } }),
      JSON.stringify({ ...parsed, crypto: { ...parsed.crypto, cipherparams: { iv: 'zz' } } })
    ]
    for (const [i, text] of malformed.entries()) {
      await assert.rejects(importWallet({ kind: 'keystore', json: text, password: 'keystore-pw' }, { dataDir, password: 'pw', ...FAST }), (e: unknown) => {
        assert.ok(isIexecError(e, 'KEYSTORE_MALFORMED'), `case ${i}: ${String(e)}`)
        return true
      })
    }
    assert.equal(existsSync(dataDir), false, 'no data dir is left behind')
  })

  it('import into a data dir that has a wallet: WALLET_EXISTS, the old wallet unchanged', async () => {
    const dataDir = join(root, 'd')
    const first = await initDataDir({ dataDir, password: 'pw', ...FAST })
    const file = dataDirPaths(dataDir).wallet
    const before = await readFile(file, 'utf8')
    const w = Wallet.createRandom()
    await assert.rejects(importWallet({ kind: 'privateKey', privateKey: w.privateKey }, { dataDir, password: 'pw', ...FAST }), code('WALLET_EXISTS'))
    await assert.rejects(importWallet({ kind: 'keystore', json: await keystoreOf(w, 'k'), password: 'k' }, { dataDir, password: 'pw', ...FAST }), code('WALLET_EXISTS'))
    assert.equal(await readFile(file, 'utf8'), before)
    assert.equal((await loadDataDir(dataDir, 'pw')).address, first.address)
  })

  it('export: the stored keystore, checked with the password; a dev key is encrypted; an export imports back to the same address', async () => {
    const a = join(root, 'a')
    const made = await createWallet({ dataDir: a, password: 'pw', ...FAST })
    const out = await exportWallet({ dataDir: a, password: 'pw' })
    assert.equal(out.address, made.address)
    assert.equal(out.json, await readFile(dataDirPaths(a).wallet, 'utf8'))
    await assert.rejects(exportWallet({ dataDir: a, password: 'wrong' }), code('WALLET_BAD_PASSWORD'))
    await assert.rejects(exportWallet({ dataDir: a }), code('PASSWORD_REQUIRED'))

    const dev = join(root, 'dev')
    const devMade = await createWallet({ dataDir: dev, devUnprotectedKey: true })
    await assert.rejects(exportWallet({ dataDir: dev }), code('PASSWORD_REQUIRED'))
    const devOut = await exportWallet({ dataDir: dev, password: 'export-pw', ...FAST })
    assert.equal((await decryptKeystoreJson(devOut.json, 'export-pw')).address, devMade.address)

    const b = join(root, 'b')
    const back = await importWallet({ kind: 'keystore', json: out.json, password: 'pw' }, { dataDir: b, password: 'pw2', ...FAST })
    assert.equal(back.address, made.address)

    await assert.rejects(exportWallet({ dataDir: join(root, 'nowhere'), password: 'pw' }), code('DATA_DIR_NOT_INITIALIZED'))
    const corrupt = join(root, 'corrupt')
    await mkdir(corrupt)
    await writeFile(dataDirPaths(corrupt).wallet, '{"half":')
    await assert.rejects(exportWallet({ dataDir: corrupt, password: 'pw' }), code('DATA_DIR_CORRUPT'))
  })
})
