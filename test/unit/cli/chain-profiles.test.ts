import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chainFlagsFromProfile, profileBootstrap, readChainsFile, resolveChainProfile, saveChainProfile } from '../../../node/cli/chain-profiles.js'
import { isIexecError } from '../../../node/common/errors.js'

const code = (c: string) => (e: unknown): boolean => isIexecError(e, c)
const HUB = '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512'
const RLC = '0x5FbDB2315678afecb367f032d93F642f64180aa3'

describe('cli: chain profiles (chains file)', () => {
  let root: string
  let file: string
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-chains-'))
    file = join(root, 'sub', 'chains.json')
  })
  afterEach(async () => { await rm(root, { recursive: true, force: true }) })

  it('saves profiles (mode 0600, never replacing one) and reads them back as init flags', async () => {
    assert.deepEqual(await readChainsFile(file), { chains: {} }, 'a missing file has no chains')
    await saveChainProfile(file, 'testnet', { rpc: 'https://rpc.example/v1', chainId: 11155111, hub: HUB, rlc: RLC, fromBlock: 7, confirmations: 2, blockTime: 12 })
    await saveChainProfile(file, 'other', { rpc: 'http://127.0.0.1:8545', chainId: 31337, hub: HUB })
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    const before = await readFile(file, 'utf8')
    await assert.rejects(saveChainProfile(file, 'testnet', { rpc: 'http://x.example', chainId: 1, hub: HUB }), code('CHAIN_PROFILE_EXISTS'))
    await assert.rejects(saveChainProfile(file, 'local', { rpc: 'http://x.example', chainId: 1, hub: HUB }), code('CHAIN_PROFILE_EXISTS'))
    await assert.rejects(saveChainProfile(file, 'Bad Name', { rpc: 'http://x.example', chainId: 1, hub: HUB }), code('CLI_BAD_OPTION'))
    assert.equal(await readFile(file, 'utf8'), before)
    const p = await resolveChainProfile('testnet', file)
    assert.deepEqual(p, { rpc: 'https://rpc.example/v1', chainId: 11155111, hub: HUB, rlc: RLC, fromBlock: 7, confirmations: 2, blockTime: 12 })
    assert.deepEqual(await chainFlagsFromProfile({ chain: 'other', chainsFile: file }), { rpc: 'http://127.0.0.1:8545', hub: HUB, chainId: '31337' })
    await assert.rejects(resolveChainProfile('missing', file), code('CHAIN_PROFILE_NOT_FOUND'))
    await assert.rejects(chainFlagsFromProfile({ chain: 'other', chainsFile: file, hub: HUB }), code('CLI_USAGE'))
  })

  it('a profile carries its swarm\'s bootstrap list (/p2p/ or /dnsaddr/ entries); a bad entry is CHAINS_FILE_INVALID', async () => {
    const peer = '12D3KooWGDB4jYhmcKjJs6Kv13stX28RYcjRUWxZjFmKiCcwnQnp'
    const bootstrap = [`/ip4/45.0.0.1/tcp/4001/p2p/${peer}`, '/dnsaddr/bootstrap.example.org']
    await saveChainProfile(file, 'withpeers', { rpc: 'http://127.0.0.1:8545', chainId: 31337, hub: HUB, bootstrap })
    assert.deepEqual((await resolveChainProfile('withpeers', file)).bootstrap, bootstrap)
    assert.deepEqual(await profileBootstrap({ chain: 'withpeers', chainsFile: file }), bootstrap)
    assert.equal(await profileBootstrap({}), undefined, 'no --chain, no profile list')
    // the four chain flags do not carry it: start and init take it apart
    assert.deepEqual(await chainFlagsFromProfile({ chain: 'withpeers', chainsFile: file }), { rpc: 'http://127.0.0.1:8545', hub: HUB, chainId: '31337' })
    for (const b of [['/ip4/1.2.3.4/tcp/1'], ['not a multiaddr'], 'x', [7], Array.from({ length: 65 }, () => `/dnsaddr/a.example`)]) {
      await writeFile(file, JSON.stringify({ chains: { bad: { rpc: 'http://a.example', chainId: 1, hub: HUB, bootstrap: b } } }))
      await assert.rejects(readChainsFile(file), code('CHAINS_FILE_INVALID'), JSON.stringify(b).slice(0, 80))
    }
  })

  it('a broken chains file is CHAINS_FILE_INVALID, naming the chain; nothing is written over it', async () => {
    const bad: unknown[] = [
      [],
      { chains: [] },
      { chains: { x: 'nope' } },
      { chains: { x: { rpc: 'ftp://a', chainId: 1, hub: HUB } } },
      { chains: { x: { rpc: 'http://a.example', chainId: 0, hub: HUB } } },
      { chains: { x: { rpc: 'http://a.example', chainId: 1, hub: '0x12' } } },
      { chains: { x: { rpc: 'http://a.example', chainId: 1 } } },
      { chains: { x: { rpc: 'http://a.example', chainId: 1, hub: HUB, rlc: 'z' } } },
      { chains: { x: { rpc: 'http://a.example', chainId: 1, hub: HUB, blockTime: -1 } } },
      { chains: { x: { rpc: 'http://a.example', chainId: 1, hub: HUB, confirmations: 1.5 } } },
      { chains: { local: { rpc: 'http://a.example', chainId: 1, hub: HUB } } },
      { chains: { 'BAD NAME': { rpc: 'http://a.example', chainId: 1, hub: HUB } } }
    ]
    const f = join(root, 'bad.json')
    for (const [i, content] of bad.entries()) {
      await writeFile(f, JSON.stringify(content))
      await assert.rejects(resolveChainProfile('x', f), (e: unknown) => {
        assert.ok(isIexecError(e, 'CHAINS_FILE_INVALID'), `case ${i}: ${String(e)}`)
        return true
      })
      await assert.rejects(saveChainProfile(f, 'y', { rpc: 'http://b.example', chainId: 2, hub: HUB }), code('CHAINS_FILE_INVALID'))
      assert.equal(await readFile(f, 'utf8'), JSON.stringify(content), `case ${i}: not overwritten`)
    }
    await writeFile(f, '{"chains":')
    await assert.rejects(readChainsFile(f), code('CHAINS_FILE_INVALID'))
    if (process.getuid?.() !== 0) {
      await chmod(f, 0o000)
      await assert.rejects(readChainsFile(f), code('CLI_FILE_UNREADABLE'))
    }
    assert.equal(existsSync(join(root, 'sub')), false)
  })
})
