/**
 * Corrupt or truncated data-dir files: each one stops the node's start with
 * a coded error that names the file, never a node that runs on a silently
 * wrong state (a new key, a default config, an empty store). The node's own
 * create/start on a prepared data dir, one CLI start for the printed error.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initDataDir, dataDirPaths } from '../../node/config/index.js'
import { DbController, Repository, bytesCodec, jsonCodec } from '../../node/db/index.js'
import { LevelCursorStore } from '../../node/chain/level-cursor-store.js'
import { IexecNode } from '../../node/node.js'
import { createChainClient, deployLocalSwarmChain, hubInterface, startLocalChain } from '../../node/chain/index.js'
import { waitFor } from '../helpers/wait.js'
import { isIexecError, type IexecError } from '../../node/common/errors.js'
import { assertBuilt, jsonError, runCli } from '../e2e/cli-helpers.js'

describe('faults: corrupt or truncated data-dir files give a coded error at start', function () {
  this.timeout(120_000)
  let root = ''
  const nodes: IexecNode[] = []

  before(async () => { root = await mkdtemp(join(tmpdir(), 'iexec-corrupt-')) })
  afterEach(async () => {
    while (nodes.length > 0) await nodes.pop()?.stop().catch(() => {})
  })
  after(async () => { await rm(root, { recursive: true, force: true }) })

  let n = 0
  /** A fresh, valid data dir (dev key: no scrypt cost). */
  const fresh = async (): Promise<string> => {
    const dataDir = join(root, `d${n++}`)
    await initDataDir({ dataDir, devUnprotectedKey: true, config: { swarmId: 'corrupt', listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0 } })
    return dataDir
  }
  /** Creates and starts a node on the data dir: the error it stops with. */
  const startError = async (dataDir: string): Promise<IexecError> => {
    try {
      const node = await IexecNode.create({ dataDir })
      nodes.push(node)
      await node.start()
    } catch (err) {
      assert.ok(isIexecError(err), `a coded error, got ${String(err)}`)
      return err
    }
    assert.fail('the node started on a damaged data dir')
  }
  const half = async (file: string): Promise<void> => {
    const size = (await readFile(file)).length
    await truncate(file, Math.floor(size / 2))
  }

  it('each damaged file is refused with its code and its path; a sound data dir still starts', async () => {
    const cases: Array<{ what: string, damage: (paths: ReturnType<typeof dataDirPaths>) => Promise<void>, code: string, file: (paths: ReturnType<typeof dataDirPaths>) => string }> = [
      { what: 'config.json truncated', damage: async (p) => { await half(p.config) }, code: 'CONFIG_INVALID', file: (p) => p.config },
      { what: 'config.json emptied', damage: async (p) => { await truncate(p.config, 0) }, code: 'CONFIG_INVALID', file: (p) => p.config },
      {
        what: 'config.json with a bad value',
        damage: async (p) => { await writeFile(p.config, JSON.stringify({ ...JSON.parse(await readFile(p.config, 'utf8')) as object, apiPort: -1 })) },
        code: 'CONFIG_INVALID',
        file: (p) => p.config
      },
      { what: 'peer.key truncated', damage: async (p) => { await half(p.peerKey) }, code: 'DATA_DIR_CORRUPT', file: (p) => p.peerKey },
      { what: 'peer.key emptied', damage: async (p) => { await truncate(p.peerKey, 0) }, code: 'DATA_DIR_CORRUPT', file: (p) => p.peerKey },
      { what: 'wallet.json truncated', damage: async (p) => { await half(p.wallet) }, code: 'DATA_DIR_CORRUPT', file: (p) => p.wallet },
      { what: 'wallet.json emptied', damage: async (p) => { await truncate(p.wallet, 0) }, code: 'DATA_DIR_CORRUPT', file: (p) => p.wallet },
      { what: 'api-token truncated', damage: async (p) => { await half(p.apiToken) }, code: 'DATA_DIR_CORRUPT', file: (p) => p.apiToken },
      // leveldb's CURRENT names the live manifest: cut, it names nothing
      { what: 'level store CURRENT truncated', damage: async (p) => { await half(join(p.db, 'CURRENT')) }, code: 'DB_CORRUPT', file: (p) => p.db },
      { what: 'level store CURRENT pointing nowhere', damage: async (p) => { await writeFile(join(p.db, 'CURRENT'), 'MANIFEST-999999\n') }, code: 'DB_CORRUPT', file: (p) => p.db }
    ]
    for (const c of cases) {
      const dataDir = await fresh()
      const paths = dataDirPaths(dataDir)
      if (c.code === 'DB_CORRUPT') {
        // a store that exists (the node wrote it once)
        const db = new DbController({ path: paths.db })
        await db.open()
        await new Repository(db, 'note', jsonCodec<{ n: number }>()).put('k', { n: 1 })
        await db.close()
      }
      await c.damage(paths)
      const err = await startError(dataDir)
      assert.equal(err.code, c.code, `${c.what}: ${err.message}`)
      const named = (err.details as { file?: string, path?: string } | undefined)
      assert.equal(named?.file ?? named?.path, c.file(paths), `${c.what}: the error names the file`)
      assert.ok(err.message.includes(c.file(paths)), `${c.what}: the message names the file: ${err.message}`)
    }
    // the same steps on an undamaged data dir start a node: the refusals above come from the damage
    const sound = await fresh()
    const node = await IexecNode.create({ dataDir: sound })
    nodes.push(node)
    await node.start()
    assert.ok(node.peerId.length > 0)
  })

  it('an encrypted keystore whose ciphertext is damaged is refused, naming the file (it fails the password check)', async () => {
    const dataDir = join(root, `d${n++}`)
    await initDataDir({ dataDir, password: 'pw', scryptN: 1 << 10, config: { swarmId: 'corrupt', listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0 } })
    const file = dataDirPaths(dataDir).wallet
    const ks = JSON.parse(await readFile(file, 'utf8')) as Record<string, { ciphertext: string }>
    const crypto = ks.Crypto ?? ks.crypto
    // one hex digit of the ciphertext changed: still a well-formed keystore, its MAC no longer matches
    crypto.ciphertext = (crypto.ciphertext[0] === '0' ? '1' : '0') + crypto.ciphertext.slice(1)
    await writeFile(file, JSON.stringify(ks))
    await assert.rejects(IexecNode.create({ dataDir, password: 'pw' }), (e: unknown) => isIexecError(e, 'WALLET_BAD_PASSWORD') && (e.details as { file?: string }).file === file)
  })

  it('a record of the level store that does not decode is DB_BAD_VALUE naming the store', async () => {
    const dataDir = await fresh()
    const db = new DbController({ path: dataDirPaths(dataDir).db })
    await db.open()
    try {
      await new Repository(db, 'worker-task', bytesCodec).put('0x01', new Uint8Array([0x7b, 0x22]))
      await assert.rejects(new Repository(db, 'worker-task', jsonCodec()).get('0x01'), (e: unknown) =>
        isIexecError(e, 'DB_BAD_VALUE') && (e.details as { path?: string }).path === dataDirPaths(dataDir).db)
    } finally {
      await db.close()
    }
  })

  it('a damaged event cursor names the store; clearing it (start --resync-events) starts the follower from the first block', async () => {
    const dataDir = await fresh()
    const db = new DbController({ path: dataDirPaths(dataDir).db })
    await db.open()
    try {
      const store = new LevelCursorStore(db, 'hub:31337:0x11')
      await new Repository(db, 'chain-cursor', bytesCodec).put('hub:31337:0x11', new TextEncoder().encode('{"blockNumber":12,"logI'))
      await assert.rejects(store.load(), (e: unknown) => isIexecError(e, 'CURSOR_STORE_FAILED') && (e.details as { path?: string }).path === dataDirPaths(dataDir).db)
      await store.clear()
      assert.equal(await store.load(), undefined, 'no cursor: the follower starts from its fromBlock')
    } finally {
      await db.close()
    }
  })

  it('a node on a chain: a damaged event cursor stops its start; start --resync-events reads the hub\'s events again', async () => {
    const anvil = await startLocalChain({ accounts: 2 })
    try {
      const chain = await deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0] })
      const owner = await createChainClient({ rpcUrl: anvil.rpcUrl, privateKey: anvil.privateKeys[1], hub: chain.hub })
      try {
        const register = async (name: string): Promise<string> => {
          const tx = await owner.sender.send(owner.hub!.registerApp.populateTransaction(name, `bafy-${name}`, '0x' + '11'.repeat(32)))
          return tx.receipt.logs.map((l) => hubInterface().parseLog(l)).find((p) => p?.name === 'AppRegistered')?.args.app as string
        }
        const dataDir = join(root, `d${n++}`)
        await initDataDir({ dataDir, devUnprotectedKey: true, config: { swarmId: 'cursor', advertIntervalMs: 3_600_000, role: 'requester', listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0, chain: { rpc: chain.rpc, hub: chain.hub, chainId: chain.chainId } } })
        const first = await IexecNode.create({ dataDir, chainFromBlock: chain.blockNumber })
        nodes.push(first)
        await first.start()
        const app = await register('before-damage')
        await waitFor(async () => (await first.market!.knownApp(app)) !== undefined, 20_000, 'the node to learn the app')
        await first.stop()
        // the cursor record, cut in the middle as a torn write would leave it
        const path = dataDirPaths(dataDir).db
        const db = new DbController({ path })
        await db.open()
        const key = `hub:${chain.chainId}:${chain.hub.toLowerCase()}`
        const raw = new Repository(db, 'chain-cursor', bytesCodec)
        const stored = await raw.get(key)
        assert.ok(stored !== undefined, 'the node saved its cursor')
        await raw.put(key, stored.slice(0, Math.floor(stored.length / 2)))
        await db.close()
        const damaged = await IexecNode.create({ dataDir, chainFromBlock: chain.blockNumber })
        nodes.push(damaged)
        await assert.rejects(damaged.start(), (e: unknown) => isIexecError(e, 'CURSOR_STORE_FAILED') && (e.details as { path?: string }).path === path)
        // --resync-events: the cursor goes, the follower reads from the first block again and follows on
        const resynced = await IexecNode.create({ dataDir, chainFromBlock: chain.blockNumber, resyncEvents: true })
        nodes.push(resynced)
        await resynced.start()
        assert.ok(resynced.hubEvents!.follower.following)
        const later = await register('after-resync')
        await waitFor(async () => (await resynced.market!.knownApp(later)) !== undefined, 20_000, 'the resynced node to learn a new app')
        const log = await readFile(dataDirPaths(dataDir).logs, 'utf8')
        assert.ok(log.includes('event cursor cleared (--resync-events)'), 'the node logs that it read the events again')
      } finally {
        await owner.close()
      }
    } finally {
      await anvil.stop()
    }
  })

  it('the CLI\'s start prints the code and the file, and exits non-zero', async () => {
    assertBuilt()
    const dataDir = await fresh()
    await half(dataDirPaths(dataDir).wallet)
    const r = await runCli(['start', '--data-dir', dataDir, '--json'], 60_000)
    assert.notEqual(r.code, 0)
    const err = jsonError(r)
    assert.equal(err.code, 'DATA_DIR_CORRUPT')
    assert.ok(err.message.includes(dataDirPaths(dataDir).wallet), err.message)
  })
})
