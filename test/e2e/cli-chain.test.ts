import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JsonRpcProvider, Wallet, getAddress } from 'ethers'
import { RLC__factory } from '../../contracts-abi/index.js'
import { startLocalChain, freePort, type LocalChain } from '../../node/chain/local-chain.js'
import { isAlive } from '../../node/cli/processes.js'
import type { ContractsDeployJson, SwarmFundJson } from '../../node/cli/chain-commands.js'
import type { SwarmFile } from '../../node/cli/index.js'
import type { StartReadyJson } from '../../node/cli/start-command.js'
import type { WalletView } from '../../node/api/client.js'
import { assertBuilt, CliProcess, jsonError, processesMentioning, runCli } from './cli-helpers.js'

interface ConfigJson { chain: { rpc?: string, hub?: string, chainId?: number, fromBlock?: number } }

async function readConfig (dataDir: string): Promise<ConfigJson> {
  return JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8')) as ConfigJson
}

async function codeAt (rpc: string, address: string): Promise<string> {
  const res = await fetch(rpc, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_getCode', params: [address, 'latest'] })
  })
  return ((await res.json()) as { result: string }).result
}

/**
 * Joining a chain from the CLI, against a real anvil the test starts: the
 * compiled CLI deploys the contracts, writes chain settings with `init`,
 * overrides them for one `start`, makes swarm keys and funds a hand-started
 * node from a `swarm up` chain; bad input gets its code, never a hang.
 */
describe('e2e: joining a chain from the CLI (init/start chain flags, contracts deploy, swarm key, swarm fund)', function () {
  this.timeout(180_000)
  let chain: LocalChain
  let dir: string
  let keyFile: string
  let deployed: ContractsDeployJson
  const procs: CliProcess[] = []
  const swarmDirs: string[] = []

  before(async () => {
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-chain-'))
    chain = await startLocalChain({ accounts: 2 })
    keyFile = join(dir, 'deployer.key')
    await writeFile(keyFile, `${chain.privateKeys[0]}\n`, { mode: 0o600 })
    const r = await runCli(['contracts', 'deploy', '--rpc', chain.rpcUrl, '--key-file', keyFile, '--local', '--json'])
    assert.equal(r.code, 0, r.stderr)
    deployed = JSON.parse(r.stdout) as ContractsDeployJson
  })

  afterEach(async () => {
    for (const p of procs.splice(0)) await p.stop()
    for (const d of swarmDirs.splice(0)) {
      await runCli(['swarm', 'down', '--dir', d], 60_000).catch(() => {})
      const left = processesMentioning(d)
      for (const pid of left) if (await isAlive(pid)) { try { process.kill(pid, 'SIGKILL') } catch {} }
    }
  })

  after(async () => {
    await chain?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  describe('contracts deploy', () => {
    it('--local --json: a hub and a mintable RLC with code, the deployment block and the init line for nodes', async () => {
      assert.equal(deployed.rpc, chain.rpcUrl)
      assert.equal(deployed.chainId, chain.chainId)
      assert.equal(deployed.local, true)
      assert.equal(deployed.deployer, new Wallet(chain.privateKeys[0]).address)
      assert.equal(deployed.hub, getAddress(deployed.hub), 'checksummed hub address')
      assert.notEqual(await codeAt(chain.rpcUrl, deployed.hub), '0x', 'code at the hub')
      assert.notEqual(await codeAt(chain.rpcUrl, deployed.rlc), '0x', 'code at RLC')
      assert.ok(deployed.blockNumber > 0)
      assert.equal(deployed.init, `iexec-p2p init --rpc ${chain.rpcUrl} --hub ${deployed.hub} --chain-id ${chain.chainId} --from-block ${deployed.blockNumber}`)
      // the dev variant: the deployer is RLC's minter
      const provider = new JsonRpcProvider(chain.rpcUrl, undefined, { staticNetwork: true })
      try {
        assert.equal(await RLC__factory.connect(deployed.rlc, provider).minter(), deployed.deployer)
      } finally {
        provider.destroy()
      }
    })

    it('with --rlc reuses the token, and the human output ends with the init line', async () => {
      const r = await runCli(['contracts', 'deploy', '--rpc', chain.rpcUrl, '--key-file', keyFile, '--rlc', deployed.rlc])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, new RegExp(`rlc\\s+${deployed.rlc} \\(given\\)`))
      const hub = /hub\s+(0x[0-9a-fA-F]{40})/.exec(r.stdout)?.[1] ?? ''
      assert.notEqual(hub, deployed.hub, 'a second hub')
      assert.notEqual(await codeAt(chain.rpcUrl, hub), '0x')
      assert.match(r.stdout, new RegExp(`iexec-p2p init --rpc ${chain.rpcUrl} --hub ${hub} --chain-id ${chain.chainId} --from-block \\d+\\n$`))
    })

    it('bad input: missing or malformed key file, dead RPC, an RLC address without code, a deployer without ETH', async () => {
      const missing = await runCli(['contracts', 'deploy', '--rpc', chain.rpcUrl, '--key-file', join(dir, 'nope.key'), '--json'])
      assert.equal(missing.code, 1)
      assert.equal(jsonError(missing).code, 'CLI_FILE_UNREADABLE')

      const badKeyFile = join(dir, 'bad.key')
      await writeFile(badKeyFile, 'not a key\n')
      const bad = await runCli(['contracts', 'deploy', '--rpc', chain.rpcUrl, '--key-file', badKeyFile, '--json'])
      assert.equal(bad.code, 2)
      const badErr = jsonError(bad)
      assert.equal(badErr.code, 'CLI_BAD_OPTION')

      const noKey = await runCli(['contracts', 'deploy', '--rpc', chain.rpcUrl, '--json'])
      assert.equal(noKey.code, 2)
      assert.equal(jsonError(noKey).code, 'CLI_MISSING_ARGUMENT')

      const t0 = Date.now()
      const dead = await runCli(['contracts', 'deploy', '--rpc', `http://127.0.0.1:${await freePort()}`, '--key-file', keyFile, '--json'], 30_000)
      assert.equal(dead.code, 1)
      assert.equal(jsonError(dead).code, 'RPC_UNREACHABLE')
      assert.ok(Date.now() - t0 < 20_000, `a dead RPC is reported in seconds, took ${Date.now() - t0} ms`)

      const noCode = await runCli(['contracts', 'deploy', '--rpc', chain.rpcUrl, '--key-file', keyFile, '--rlc', new Wallet(chain.privateKeys[1]).address, '--json'])
      assert.equal(noCode.code, 1)
      assert.equal(jsonError(noCode).code, 'CONTRACT_NOT_FOUND')

      const poorKey = join(dir, 'poor.key')
      await writeFile(poorKey, `${Wallet.createRandom().privateKey}\n`)
      const poor = await runCli(['contracts', 'deploy', '--rpc', chain.rpcUrl, '--key-file', poorKey, '--json'])
      assert.equal(poor.code, 1)
      assert.equal(jsonError(poor).code, 'TX_REJECTED')
      assert.doesNotMatch(poor.stderr, new RegExp(chain.privateKeys[0].slice(2)), 'never echoes a key')
    })
  })

  describe('init --rpc --hub --chain-id --from-block', () => {
    it('writes the checked settings into a new data dir, with the chain id the RPC reports', async () => {
      const d = join(dir, 'init-new')
      const r = await runCli(['init', '--data-dir', d, '--dev-unprotected-key', '--rpc', chain.rpcUrl, '--hub', deployed.hub.toLowerCase(), '--from-block', String(deployed.blockNumber), '--json'])
      assert.equal(r.code, 0, r.stderr)
      const out = JSON.parse(r.stdout) as { chain: ConfigJson['chain'], chainVerified: boolean, address: string }
      assert.equal(out.chainVerified, true)
      // a lowercase address is stored checksummed
      assert.deepEqual((await readConfig(d)).chain, { rpc: chain.rpcUrl, hub: deployed.hub, chainId: chain.chainId, fromBlock: deployed.blockNumber })
      assert.deepEqual(out.chain, (await readConfig(d)).chain)
    })

    it('updates an existing data dir: a new hub without --from-block drops the old start block; keys are kept', async () => {
      const d = join(dir, 'init-existing')
      const first = await runCli(['init', '--data-dir', d, '--dev-unprotected-key', '--json'])
      assert.equal(first.code, 0, first.stderr)
      const address = (JSON.parse(first.stdout) as { address: string }).address
      assert.deepEqual((await readConfig(d)).chain, {})

      const r1 = await runCli(['init', '--data-dir', d, '--rpc', chain.rpcUrl, '--hub', deployed.hub, '--chain-id', String(chain.chainId), '--from-block', '3'])
      assert.equal(r1.code, 0, r1.stderr)
      assert.match(r1.stdout, /already initialised/)
      assert.match(r1.stdout, new RegExp(`chain\\s+${chain.rpcUrl} \\(chain id ${chain.chainId}\\), hub ${deployed.hub}, events from block 3`))
      assert.equal((await readConfig(d)).chain.fromBlock, 3)

      const other = await runCli(['contracts', 'deploy', '--rpc', chain.rpcUrl, '--key-file', keyFile, '--local', '--json'])
      assert.equal(other.code, 0, other.stderr)
      const hub2 = (JSON.parse(other.stdout) as ContractsDeployJson).hub
      const r2 = await runCli(['init', '--data-dir', d, '--hub', hub2, '--json'])
      assert.equal(r2.code, 0, r2.stderr)
      assert.deepEqual((await readConfig(d)).chain, { rpc: chain.rpcUrl, hub: hub2, chainId: chain.chainId })
      assert.equal((JSON.parse(r2.stdout) as { address: string }).address, address, 'same wallet')
    })

    it('a ws URL: checked over WebSocket and stored as given', async () => {
      const d = join(dir, 'init-ws')
      const wsUrl = chain.rpcUrl.replace(/^http/, 'ws')
      const r = await runCli(['init', '--data-dir', d, '--dev-unprotected-key', '--rpc', wsUrl, '--hub', deployed.hub, '--json'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal((JSON.parse(r.stdout) as { chainVerified: boolean }).chainVerified, true)
      assert.deepEqual((await readConfig(d)).chain, { rpc: wsUrl, hub: deployed.hub, chainId: chain.chainId })
    })

    it('--offline writes the settings without asking the RPC', async () => {
      const d = join(dir, 'init-offline')
      const url = `http://127.0.0.1:${await freePort()}`
      const r = await runCli(['init', '--data-dir', d, '--dev-unprotected-key', '--rpc', url, '--hub', deployed.hub, '--offline', '--json'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal((JSON.parse(r.stdout) as { chainVerified: boolean }).chainVerified, false)
      assert.deepEqual((await readConfig(d)).chain, { rpc: url, hub: deployed.hub })
    })

    it('bad input gets a code and leaves no data dir: dead RPC, bad URL, bad address, bad checksum, no code at the hub, wrong chain id, rpc without hub', async () => {
      const deadUrl = `http://127.0.0.1:${await freePort()}`
      const cases: Array<{ name: string, args: string[], code: string, exit: number }> = [
        { name: 'dead RPC', args: ['--rpc', deadUrl, '--hub', deployed.hub], code: 'RPC_UNREACHABLE', exit: 1 },
        { name: 'not a URL', args: ['--rpc', 'localhost:8545', '--hub', deployed.hub], code: 'CLI_BAD_OPTION', exit: 2 },
        { name: 'not an RPC scheme', args: ['--rpc', 'ftp://127.0.0.1:8545', '--hub', deployed.hub], code: 'CLI_BAD_OPTION', exit: 2 },
        { name: 'dead ws RPC', args: ['--rpc', deadUrl.replace(/^http/, 'ws'), '--hub', deployed.hub], code: 'RPC_UNREACHABLE', exit: 1 },
        { name: 'short address', args: ['--rpc', chain.rpcUrl, '--hub', '0x1234'], code: 'CLI_BAD_OPTION', exit: 2 },
        { name: 'bad checksum', args: ['--rpc', chain.rpcUrl, '--hub', deployed.hub.slice(0, 2) + [...deployed.hub.slice(2)].map((c) => c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()).join('')], code: 'CLI_BAD_OPTION', exit: 2 },
        { name: 'no code at the hub address', args: ['--rpc', chain.rpcUrl, '--hub', new Wallet(chain.privateKeys[1]).address], code: 'CONTRACT_NOT_FOUND', exit: 1 },
        { name: 'wrong chain id', args: ['--rpc', chain.rpcUrl, '--hub', deployed.hub, '--chain-id', '1'], code: 'CHAIN_ID_MISMATCH', exit: 1 },
        { name: 'bad chain id', args: ['--rpc', chain.rpcUrl, '--hub', deployed.hub, '--chain-id', 'mainnet'], code: 'CLI_BAD_OPTION', exit: 2 },
        { name: 'bad from block', args: ['--rpc', chain.rpcUrl, '--hub', deployed.hub, '--from-block', '-1'], code: 'CLI_BAD_OPTION', exit: 2 },
        { name: 'rpc without hub', args: ['--rpc', chain.rpcUrl], code: 'CLI_USAGE', exit: 2 }
      ]
      for (const c of cases) {
        const d = join(dir, `init-bad-${c.name.replace(/\W+/g, '-')}`)
        const t0 = Date.now()
        const r = await runCli(['init', '--data-dir', d, '--dev-unprotected-key', ...c.args, '--json'], 30_000)
        assert.equal(r.code, c.exit, `${c.name}: exit code; stderr ${r.stderr}`)
        assert.equal(jsonError(r).code, c.code, c.name)
        assert.ok(Date.now() - t0 < 20_000, `${c.name}: answered in ${Date.now() - t0} ms`)
        assert.equal(existsSync(join(d, 'config.json')), false, `${c.name}: no data dir written`)
      }
      // the human form names the flag
      const human = await runCli(['init', '--data-dir', join(dir, 'init-bad-human'), '--dev-unprotected-key', '--rpc', chain.rpcUrl, '--hub', '0x1234'])
      assert.match(human.stderr, /--hub must be an Ethereum address .*\(CLI_BAD_OPTION\)/)
    })
  })

  describe('start --rpc --hub --chain-id --from-block', () => {
    it('overrides config.json for one run: the market works with the given hub; config.json keeps no chain', async () => {
      const d = join(dir, 'start-override')
      assert.equal((await runCli(['init', '--data-dir', d, '--dev-unprotected-key'])).code, 0)
      const node = new CliProcess(['start', '--data-dir', d, '--json', '--rpc', chain.rpcUrl, '--hub', deployed.hub, '--chain-id', String(chain.chainId), '--from-block', String(deployed.blockNumber)])
      procs.push(node)
      await node.waitFor('the ready line', () => node.stdout.includes('\n'), 60_000)
      const ready = JSON.parse(node.stdout.split('\n')[0]) as StartReadyJson
      const w = await runCli(['wallet', 'show', '--data-dir', d, '--json'])
      assert.equal(w.code, 0, `the market is configured from the flags: ${w.stderr}`)
      const wallet = JSON.parse(w.stdout) as WalletView
      assert.equal(wallet.address, ready.address)
      assert.equal(wallet.eth, '0')
      assert.deepEqual((await readConfig(d)).chain, {}, 'flags are not written back')
      const exit = await node.stop()
      assert.equal(exit.code, 0)

      // without the flags the same data dir has no chain
      const again = new CliProcess(['start', '--data-dir', d, '--json'])
      procs.push(again)
      await again.waitFor('the ready line', () => again.stdout.includes('\n'), 60_000)
      const w2 = await runCli(['wallet', 'show', '--data-dir', d, '--json'])
      assert.equal(w2.code, 1)
      assert.equal(jsonError(w2).code, 'CHAIN_NOT_CONFIGURED')
    })

    it('bad flags: a usage error at once; a hub without code: the node refuses to start with CONTRACT_NOT_FOUND', async () => {
      const d = join(dir, 'start-bad')
      assert.equal((await runCli(['init', '--data-dir', d, '--dev-unprotected-key'])).code, 0)
      const bad = await runCli(['start', '--data-dir', d, '--json', '--rpc', 'nope', '--hub', deployed.hub])
      assert.equal(bad.code, 2)
      assert.equal(jsonError(bad).code, 'CLI_BAD_OPTION')
      const badHub = await runCli(['start', '--data-dir', d, '--json', '--hub', 'xyz'])
      assert.equal(badHub.code, 2)
      assert.equal(jsonError(badHub).code, 'CLI_BAD_OPTION')

      const noCode = await runCli(['start', '--data-dir', d, '--json', '--rpc', chain.rpcUrl, '--hub', new Wallet(chain.privateKeys[1]).address], 60_000)
      assert.equal(noCode.code, 1)
      assert.equal(jsonError(noCode).code, 'CONTRACT_NOT_FOUND')
      const wrongId = await runCli(['start', '--data-dir', d, '--json', '--rpc', chain.rpcUrl, '--hub', deployed.hub, '--chain-id', '5'], 60_000)
      assert.equal(wrongId.code, 1)
      assert.equal(jsonError(wrongId).code, 'CHAIN_ID_MISMATCH')
    })
  })

  describe('swarm key', () => {
    it('--out writes a pnet key file (0600) and never overwrites it; without --out it prints one', async () => {
      const file = join(dir, 'swarm.key')
      const r = await runCli(['swarm', 'key', '--out', file, '--json'])
      assert.equal(r.code, 0, r.stderr)
      assert.deepEqual(JSON.parse(r.stdout), { file })
      const text = await readFile(file, 'utf8')
      assert.match(text, /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
      assert.equal((await stat(file)).mode & 0o777, 0o600)
      const again = await runCli(['swarm', 'key', '--out', file, '--json'])
      assert.equal(again.code, 1)
      assert.equal(jsonError(again).code, 'CLI_FILE_EXISTS')
      assert.equal(await readFile(file, 'utf8'), text, 'unchanged')
      const printed = await runCli(['swarm', 'key'])
      assert.equal(printed.code, 0)
      assert.match(printed.stdout, /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
      assert.notEqual(printed.stdout, text, 'a fresh key each time')
    })
  })

  describe('swarm fund', () => {
    it('sends ETH and mints RLC from a swarm chain\'s deployer; refused on a swarm without chain, on no swarm and on a bad address', async () => {
      const swarmDir = join(dir, 'swarm')
      swarmDirs.push(swarmDir)
      const up = await runCli(['swarm', 'up', '--nodes', '1', '--dir', swarmDir, '--json'], 120_000)
      assert.equal(up.code, 0, up.stderr)
      const file = JSON.parse(await readFile(join(swarmDir, 'swarm.json'), 'utf8')) as SwarmFile
      const rec = file.chain
      assert.ok(rec != null)
      const to = Wallet.createRandom().address
      const r = await runCli(['swarm', 'fund', to.toLowerCase(), '--dir', swarmDir, '--rlc', '2.5RLC', '--eth', '0.25', '--json'])
      assert.equal(r.code, 0, r.stderr)
      const out = JSON.parse(r.stdout) as SwarmFundJson
      assert.equal(out.address, to)
      assert.equal(out.rlc, '2500000000')
      assert.equal(out.eth, (25n * 10n ** 16n).toString())
      assert.equal(out.transactions.length, 2)
      const provider = new JsonRpcProvider(rec.rpc, undefined, { staticNetwork: true })
      try {
        assert.equal(await provider.getBalance(to), 25n * 10n ** 16n)
        assert.equal(await RLC__factory.connect(rec.rlc, provider).balanceOf(to), 2_500_000_000n)
      } finally {
        provider.destroy()
      }
      // defaults: the same funding `swarm up` gives its nodes
      const d = await runCli(['swarm', 'fund', to, '--dir', swarmDir])
      assert.equal(d.code, 0, d.stderr)
      assert.match(d.stdout, /funded 0x[0-9a-fA-F]{40} on the swarm chain .*: 1000 RLC \(1000000000000 nRLC\) and 10 ETH/)

      const bad = await runCli(['swarm', 'fund', '0xnope', '--dir', swarmDir, '--json'])
      assert.equal(bad.code, 2)
      assert.equal(jsonError(bad).code, 'CLI_BAD_OPTION')
      const badAmount = await runCli(['swarm', 'fund', to, '--dir', swarmDir, '--eth', 'lots', '--json'])
      assert.equal(badAmount.code, 2)
      assert.equal(jsonError(badAmount).code, 'CLI_BAD_OPTION')
      const none = await runCli(['swarm', 'fund', to, '--dir', join(dir, 'no-swarm-here'), '--json'])
      assert.equal(none.code, 1)
      assert.equal(jsonError(none).code, 'SWARM_NOT_FOUND')

      const plainDir = join(dir, 'swarm-no-chain')
      swarmDirs.push(plainDir)
      const plain = await runCli(['swarm', 'up', '--nodes', '1', '--no-chain', '--dir', plainDir, '--json'], 120_000)
      assert.equal(plain.code, 0, plain.stderr)
      const refused = await runCli(['swarm', 'fund', to, '--dir', plainDir, '--json'])
      assert.equal(refused.code, 1)
      assert.equal(jsonError(refused).code, 'SWARM_NO_CHAIN')
    })
  })
})
