import assert from 'node:assert/strict'
import { mkdtemp, rm, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initDataDir, loadDataDir, dataDirPaths, validateConfig, loadConfig, defaultNodeConfig } from '../../../node/config/index.js'
import { isIexecError } from '../../../node/common/errors.js'

const code = (c: string) => (e: unknown): boolean => isIexecError(e, c)

describe('config: data dir', function () {
  const cleanup: Array<() => Promise<void>> = []
  let root: string

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-cfg-'))
    cleanup.push(async () => { await rm(root, { recursive: true, force: true }) })
  })
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  it('creates keys, wallet, token and config with private modes, and is idempotent', async () => {
    const dataDir = join(root, 'd')
    const first = await initDataDir({ dataDir, password: 'pw', config: { cpus: 3, tags: ['region:eu'] } })
    assert.equal(first.created, true)
    assert.equal(first.unprotected, false)
    assert.match(first.peerId, /^12D3KooW/)
    assert.match(first.address, /^0x[0-9a-fA-F]{40}$/)
    const p = dataDirPaths(dataDir)
    assert.equal((await stat(dataDir)).mode & 0o777, 0o700)
    for (const f of [p.peerKey, p.wallet, p.apiToken]) assert.equal((await stat(f)).mode & 0o777, 0o600, f)
    const before = await Promise.all([p.peerKey, p.wallet, p.apiToken, p.config].map(async (f) => await readFile(f)))

    const second = await initDataDir({ dataDir, password: 'other', config: { cpus: 9 } })
    assert.equal(second.created, false)
    assert.equal(second.peerId, first.peerId)
    assert.equal(second.address, first.address)
    const after = await Promise.all([p.peerKey, p.wallet, p.apiToken, p.config].map(async (f) => await readFile(f)))
    assert.deepEqual(after, before, 'nothing was overwritten')

    const loaded = await loadDataDir(dataDir, 'pw')
    assert.equal(loaded.peerId, first.peerId)
    assert.equal(loaded.wallet.address, first.address)
    assert.equal(loaded.config.cpus, 3)
    assert.deepEqual(loaded.config.tags, ['region:eu'])
    assert.match(loaded.apiToken, /^[0-9a-f]{64}$/)
  })

  it('round-trips the encrypted keystore and reports a locked or wrong-password wallet', async () => {
    const dataDir = join(root, 'k')
    const init = await initDataDir({ dataDir, password: 'correct horse' })
    const keystore = JSON.parse(await readFile(dataDirPaths(dataDir).wallet, 'utf8')) as { crypto?: unknown, Crypto?: unknown }
    assert.ok(keystore.crypto !== undefined || keystore.Crypto !== undefined, 'wallet.json is an encrypted keystore')
    const loaded = await loadDataDir(dataDir, 'correct horse')
    assert.equal(loaded.address, init.address)
    const sig = await loaded.wallet.signMessage('x')
    assert.match(sig, /^0x[0-9a-f]{130}$/)
    await assert.rejects(loadDataDir(dataDir), code('WALLET_LOCKED'))
    await assert.rejects(loadDataDir(dataDir, 'wrong'), code('WALLET_BAD_PASSWORD'))
  })

  it('writes a flagged plain key for a dev swarm, and needs a password otherwise', async () => {
    const dev = await initDataDir({ dataDir: join(root, 'dev'), devUnprotectedKey: true })
    assert.equal(dev.unprotected, true)
    const loaded = await loadDataDir(join(root, 'dev'))
    assert.equal(loaded.unprotected, true)
    assert.equal(loaded.address, dev.address)
    await assert.rejects(initDataDir({ dataDir: join(root, 'nopw') }), code('PASSWORD_REQUIRED'))
  })

  it('refuses an uninitialised dir, a bad config.json and bad settings with typed codes', async () => {
    await assert.rejects(loadDataDir(join(root, 'missing')), code('DATA_DIR_NOT_INITIALIZED'))
    await assert.rejects(initDataDir({ dataDir: join(root, 'bad'), devUnprotectedKey: true, config: { swarmId: 'Has Spaces' } }), code('CONFIG_INVALID'))

    const dataDir = join(root, 'c')
    await initDataDir({ dataDir, devUnprotectedKey: true })
    await writeFile(dataDirPaths(dataDir).config, '{ not json')
    await assert.rejects(loadDataDir(dataDir), code('CONFIG_INVALID'))
    await writeFile(dataDirPaths(dataDir).config, JSON.stringify({ cpus: 'many' }))
    await assert.rejects(loadConfig(dataDirPaths(dataDir).config), (e: unknown) => isIexecError(e, 'CONFIG_INVALID') && e.details?.field === 'cpus')
  })

  it('keeps the chain section, deploy block included', () => {
    const chain = { rpc: 'http://127.0.0.1:8545', hub: '0x' + '11'.repeat(20), chainId: 31337, fromBlock: 7 }
    assert.deepEqual(validateConfig({ chain }).chain, chain)
  })

  it('validates each field', () => {
    const ok = validateConfig({})
    assert.deepEqual(ok, { ...defaultNodeConfig(), cpus: ok.cpus, memoryMb: ok.memoryMb })
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ listen: [] }, 'listen'],
      [{ listen: 'x' }, 'listen'],
      [{ apiPort: 70000 }, 'apiPort'],
      [{ role: 'boss' }, 'role'],
      [{ priceFloor: '-1' }, 'priceFloor'],
      [{ priceFloor: 5 }, 'priceFloor'],
      [{ defaultMaxPrice: '-1' }, 'defaultMaxPrice'],
      [{ defaultMaxPrice: 1000 }, 'defaultMaxPrice'],
      [{ defaultMaxPrice: (1n << 48n).toString() }, 'defaultMaxPrice'],
      [{ tags: Array.from({ length: 17 }, (_, i) => `t${i}`) }, 'tags'],
      [{ advertIntervalMs: 10 }, 'advertIntervalMs'],
      [{ chain: { hub: '0x12' } }, 'chain.hub'],
      [{ chain: { fromBlock: -1 } }, 'chain.fromBlock'],
      [{ chain: { confirmations: -1 } }, 'chain.confirmations'],
      [{ chain: { confirmations: 1.5 } }, 'chain.confirmations'],
      [{ chain: { pollIntervalMs: 1 } }, 'chain.pollIntervalMs'],
      [{ bidTransport: 'carrier-pigeon' }, 'bidTransport'],
      [{ unknownSetting: 1 }, 'unknownSetting']
    ]
    for (const [input, field] of bad) {
      assert.throws(() => validateConfig(input), (e: unknown) => isIexecError(e, 'CONFIG_INVALID') && e.details?.field === field, field)
    }
    assert.equal(validateConfig({ priceFloor: '123456789012345678901234567890' }).priceFloor, '123456789012345678901234567890')
    assert.equal(ok.defaultMaxPrice, '1000000000', 'a request without --max-price offers 1 RLC a task unless told')
    assert.equal(validateConfig({ defaultMaxPrice: '0' }).defaultMaxPrice, '0')
    assert.equal(ok.bidTransport, 'stream', 'bids go by direct stream unless told')
    assert.equal(validateConfig({ bidTransport: 'gossip' }).bidTransport, 'gossip')
    assert.deepEqual(validateConfig({ chain: { confirmations: 12, pollIntervalMs: 3000 } }).chain, { confirmations: 12, pollIntervalMs: 3000 })
  })
})
