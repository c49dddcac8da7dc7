import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLocalChain, type LocalChain } from '../../node/chain/local-chain.js'
import type { ContractsDeployJson } from '../../node/cli/chain-commands.js'
import type { ChainsFile } from '../../node/cli/chain-profiles.js'
import type { WalletView } from '../../node/api/client.js'
import { assertBuilt, CliProcess, jsonError, runCli } from './cli-helpers.js'

/**
 * Chain profiles (issue 24) through the compiled CLI against a real anvil:
 * `contracts deploy --profile` writes one, `init --chain` and `start --chain`
 * use it, `local` is the chain of the default swarm dir; bad names, taken
 * names and broken files get their codes and change nothing.
 */
describe('e2e: chain profiles (contracts deploy --profile, init/start --chain)', function () {
  this.timeout(180_000)
  let chain: LocalChain
  let dir: string
  let chainsFile: string
  let keyFile: string
  let deployed: ContractsDeployJson
  let env: NodeJS.ProcessEnv
  const procs: CliProcess[] = []

  before(async () => {
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-profiles-'))
    chainsFile = join(dir, 'chains.json')
    // the default chains file and swarm dir of these runs live in the test dir
    env = { ...process.env, IEXEC_P2P_CHAINS_FILE: chainsFile, IEXEC_P2P_DATA_DIR: join(dir, 'default-data') }
    chain = await startLocalChain({ accounts: 1 })
    keyFile = join(dir, 'deployer.key')
    await writeFile(keyFile, `${chain.privateKeys[0]}\n`, { mode: 0o600 })
    const r = await runCli(['contracts', 'deploy', '--rpc', chain.rpcUrl, '--key-file', keyFile, '--local', '--profile', 'devnet', '--json'], 60_000, env)
    assert.equal(r.code, 0, r.stderr)
    deployed = JSON.parse(r.stdout) as ContractsDeployJson
  })

  after(async () => {
    for (const p of procs) await p.stop()
    await chain?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('contracts deploy --profile writes the profile; the init line names it', async () => {
    assert.equal(deployed.profile, 'devnet')
    assert.equal(deployed.chainsFile, chainsFile)
    assert.equal(deployed.init, 'iexec-p2p init --chain devnet')
    const file = JSON.parse(await readFile(chainsFile, 'utf8')) as ChainsFile
    assert.deepEqual(file.chains.devnet, { rpc: chain.rpcUrl, chainId: chain.chainId, hub: deployed.hub, rlc: deployed.rlc, fromBlock: deployed.blockNumber })
  })

  it('a taken or reserved name is refused before deploying (no gas spent), a bad name is a usage error', async () => {
    const before = await readFile(chainsFile, 'utf8')
    const nonce = async (): Promise<number> => {
      const res = await fetch(chain.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_getTransactionCount', params: [deployed.deployer, 'latest'] }) })
      return Number(((await res.json()) as { result: string }).result)
    }
    const n0 = await nonce()
    for (const [name, code, exit] of [['devnet', 'CHAIN_PROFILE_EXISTS', 1], ['local', 'CHAIN_PROFILE_EXISTS', 1], ['Bad Name', 'CLI_BAD_OPTION', 2]] as const) {
      const r = await runCli(['contracts', 'deploy', '--rpc', chain.rpcUrl, '--key-file', keyFile, '--local', '--profile', name, '--json'], 60_000, env)
      assert.equal(r.code, exit, `${name}: ${r.stderr}`)
      assert.equal(jsonError(r).code, code, name)
    }
    assert.equal(await nonce(), n0, 'nothing was deployed')
    assert.equal(await readFile(chainsFile, 'utf8'), before)
  })

  it('init --chain NAME writes the profile\'s chain into config.json; start --chain runs on it', async () => {
    const d = join(dir, 'node-a')
    const r = await runCli(['init', '--data-dir', d, '--dev-unprotected-key', '--chain', 'devnet', '--json'], 60_000, env)
    assert.equal(r.code, 0, r.stderr)
    const config = JSON.parse(await readFile(join(d, 'config.json'), 'utf8')) as { chain: Record<string, unknown> }
    assert.deepEqual(config.chain, { rpc: chain.rpcUrl, hub: deployed.hub, chainId: chain.chainId, fromBlock: deployed.blockNumber })

    const b = join(dir, 'node-b')
    assert.equal((await runCli(['init', '--data-dir', b, '--dev-unprotected-key'], 60_000, env)).code, 0)
    const node = new CliProcess(['start', '--data-dir', b, '--json', '--chain', 'devnet', '--chains-file', chainsFile])
    procs.push(node)
    await node.waitFor('the ready line', () => node.stdout.includes('\n'), 90_000)
    const w = await runCli(['wallet', 'show', '--data-dir', b, '--json'])
    assert.equal(w.code, 0, `the market runs on the profile's chain: ${w.stderr}`)
    assert.match((JSON.parse(w.stdout) as WalletView).address, /^0x[0-9a-fA-F]{40}$/)
    await node.stop()
  })

  it('`local` is the chain of the default swarm dir\'s swarm; none there is CHAIN_PROFILE_NOT_FOUND', async () => {
    const d = join(dir, 'node-local')
    const none = await runCli(['init', '--data-dir', d, '--dev-unprotected-key', '--chain', 'local', '--json'], 60_000, env)
    assert.equal(none.code, 1)
    assert.equal(jsonError(none).code, 'CHAIN_PROFILE_NOT_FOUND')
    assert.equal(existsSync(d), false, 'nothing written')
    // the record `swarm up` writes, here for the test's chain
    const swarmDir = join(dir, 'default-data', 'swarm')
    await mkdir(swarmDir, { recursive: true })
    await writeFile(join(swarmDir, 'swarm.json'), JSON.stringify({
      dir: swarmDir, swarmKeyFile: join(swarmDir, 'swarm.key'), startedAt: new Date().toISOString(), nodes: [],
      chain: { rpc: chain.rpcUrl, chainId: chain.chainId, hub: deployed.hub, rlc: deployed.rlc, blockNumber: deployed.blockNumber, port: chain.port, pid: chain.pid, marker: '', logFile: '', configFile: '' }
    }))
    const r = await runCli(['init', '--data-dir', d, '--dev-unprotected-key', '--chain', 'local', '--json'], 60_000, env)
    assert.equal(r.code, 0, r.stderr)
    const config = JSON.parse(await readFile(join(d, 'config.json'), 'utf8')) as { chain: Record<string, unknown> }
    assert.equal(config.chain.hub, deployed.hub)
    assert.equal(config.chain.rpc, chain.rpcUrl)
  })

  it('bad input: unknown name, a mix with --rpc, a broken chains file, --chains-file alone; nothing written', async () => {
    const d = join(dir, 'node-bad')
    const broken = join(dir, 'broken.json')
    await writeFile(broken, JSON.stringify({ chains: { x: { rpc: 'ftp://nope', chainId: 1, hub: deployed.hub } } }))
    const notJson = join(dir, 'not-json.json')
    await writeFile(notJson, '{')
    const cases: Array<{ args: string[], code: string, exit: number }> = [
      { args: ['--chain', 'nope'], code: 'CHAIN_PROFILE_NOT_FOUND', exit: 1 },
      { args: ['--chain', 'devnet', '--rpc', chain.rpcUrl], code: 'CLI_USAGE', exit: 2 },
      { args: ['--chain', 'x', '--chains-file', broken], code: 'CHAINS_FILE_INVALID', exit: 1 },
      { args: ['--chain', 'x', '--chains-file', notJson], code: 'CHAINS_FILE_INVALID', exit: 1 },
      { args: ['--chains-file', chainsFile], code: 'CLI_USAGE', exit: 2 },
      { args: ['--chain', '../etc'], code: 'CLI_BAD_OPTION', exit: 2 }
    ]
    for (const c of cases) {
      const r = await runCli(['init', '--data-dir', d, '--dev-unprotected-key', ...c.args, '--json'], 60_000, env)
      assert.equal(r.code, c.exit, `${c.args.join(' ')}: ${r.stderr}`)
      assert.equal(jsonError(r).code, c.code, c.args.join(' '))
      assert.equal(existsSync(d), false, `${c.args.join(' ')}: nothing written`)
    }
  })
})
