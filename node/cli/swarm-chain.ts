import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ApiClient } from '../api/index.js'
import { dataDirPaths, loadConfig, loadDataDir, saveConfig, type NodeChainConfig } from '../config/index.js'
import { anvilBinary, ANVIL_MNEMONIC, createChainClient, deployLocalSwarmChain, freePort, portIsFree, rpcChainId } from '../chain/index.js'
import { isIexecError } from '../common/errors.js'
import { CliError } from './errors.js'
import { CLI_DEFAULTS } from './options.js'
import { isOurProcess, logTail, stopProcesses } from './processes.js'

// The local chain of a dev swarm: one anvil process, detached like the nodes
// so it outlives `swarm up`, recorded in swarm.json and stopped by `swarm down`.
//
// Each `swarm up` starts a FRESH chain (no --state): the swarm key is fresh
// too, and a chain that survived would hold deals and stakes of nodes that no
// longer run. The node data dirs are kept, so each config.json gets the new
// hub address and `fromBlock` (the deployment block) at every `swarm up`,
// and their db/ (orderbook, event cursors, deals: all derived from the old
// chain) is removed; keys, wallet and content blocks stay.

/** The chain part of swarm.json. */
export interface SwarmChainRecord {
  rpc: string
  chainId: number
  hub: string
  rlc: string
  /** block of the hub's deployment: where the nodes' event followers start */
  blockNumber: number
  port: number
  /** anvil's pid; 0 once stopped */
  pid: number
  /** an argument of anvil's command line that names this swarm dir (PID reuse check) */
  marker: string
  logFile: string
  /** DIR/chain.json, written by deployLocalSwarmChain */
  configFile: string
}

/** What a node is given on a fresh swarm chain. */
export const SWARM_FUNDING = {
  // gas for thousands of transactions on anvil (1 gwei base fee)
  eth: 10n * 10n ** 18n,
  // 1000 RLC in the wallet...
  rlc: 1_000n * 10n ** 9n,
  // ...half of it deposited in the hub: enough for many XS tasks and stakes
  deposit: 500n * 10n ** 9n,
  // each provider stakes 100 RLC: a worker stake is 30 % of a task price, so
  // this covers hundreds of concurrent tasks at the default prices
  stake: 100n * 10n ** 9n
} as const

const CHAIN_ID = 31337

/** anvil's first dev account: the deployer and RLC minter. */
async function deployerKey (): Promise<string> {
  const { HDNodeWallet, Mnemonic } = await import('ethers')
  return HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(ANVIL_MNEMONIC), "m/44'/60'/0'/0/0").privateKey
}

/**
 * Starts anvil detached on a free 127.0.0.1 port, waits for its RPC, deploys
 * RLC and the hub and funds `addresses` (ETH + RLC). On failure anvil is stopped.
 * `onStarted` records the pid before the (slow) deployment, so an interrupted
 * `swarm up` can still stop it.
 */
export async function startSwarmChain (dir: string, addresses: string[], deadline: number, onStarted: (rec: SwarmChainRecord) => Promise<void>, signal?: AbortSignal, blockTime?: number): Promise<SwarmChainRecord> {
  const chainDir = join(dir, 'chain')
  await mkdir(chainDir, { recursive: true })
  const logFile = join(chainDir, 'anvil.log')
  // names the swarm dir on anvil's command line: `swarm down` checks it
  // before signalling a recorded pid (PIDs get reused)
  const marker = join(chainDir, 'anvil-accounts.json')
  const port = await freePort()
  if (!await portIsFree(port)) throw new CliError('SWARM_CHAIN_FAILED', `port ${port} was taken before anvil could use it; run swarm up again`)
  const args = [
    '--host', '127.0.0.1', '--port', String(port), '--chain-id', String(CHAIN_ID),
    // one dev account is enough: the deployer; nodes have their own keys
    '--accounts', '1', '--mnemonic', ANVIL_MNEMONIC,
    '--config-out', marker,
    // a block every N seconds, as a real chain; without it anvil mines each transaction at once
    ...(blockTime !== undefined ? ['--block-time', String(blockTime)] : [])
  ]
  const log = openSync(logFile, 'a')
  let pid: number
  let exited: { code: number | null, signal: string | null } | undefined
  try {
    const child = spawn(anvilBinary(), args, { detached: true, stdio: ['ignore', log, log] })
    child.once('exit', (code, sig) => { exited = { code, signal: sig } })
    child.unref()
    pid = child.pid ?? 0
  } finally {
    closeSync(log)
  }
  const rpc = `http://127.0.0.1:${port}`
  const rec: SwarmChainRecord = { rpc, chainId: CHAIN_ID, hub: '', rlc: '', blockNumber: 0, port, pid, marker, logFile, configFile: join(dir, 'chain.json') }
  await onStarted(rec)
  const chainDeadline = Math.min(deadline, Date.now() + CLI_DEFAULTS.chainReadyTimeoutMs)
  try {
    while (await rpcChainId(rpc) !== CHAIN_ID) {
      if (signal?.aborted === true) throw new CliError('SWARM_INTERRUPTED', 'swarm up interrupted; anvil was stopped')
      if (exited !== undefined) {
        throw new CliError('SWARM_CHAIN_FAILED', `anvil exited (${exited.code ?? exited.signal ?? '?'}) before its RPC answered; the end of ${logFile}: ${await logTail(logFile, 5)}`, { log: logFile })
      }
      if (Date.now() > chainDeadline) throw new CliError('SWARM_TIMEOUT', `anvil did not answer on ${rpc} in time`, { log: logFile })
      await sleep(CLI_DEFAULTS.pollIntervalMs / 4)
    }
    const deployed = await deployLocalSwarmChain({
      rpcUrl: rpc,
      deployerKey: await deployerKey(),
      fund: addresses.map((address) => ({ address, rlc: SWARM_FUNDING.rlc, eth: SWARM_FUNDING.eth })),
      configFile: rec.configFile
    })
    rec.hub = deployed.hub
    rec.rlc = deployed.rlc
    rec.blockNumber = deployed.blockNumber
    return rec
  } catch (err) {
    await stopSwarmChain(rec)
    throw err
  }
}

/**
 * Writes the chain section into a node's config.json (validated by the
 * config module). `fromBlock` is passed along for the node's event followers;
 * the config module keeps it once it knows the field.
 */
export async function writeNodeChainConfig (dataDir: string, chain: SwarmChainRecord): Promise<void> {
  const file = dataDirPaths(dataDir).config
  const config = await loadConfig(file)
  const section: NodeChainConfig & { fromBlock: number } = { rpc: chain.rpc, hub: chain.hub, chainId: chain.chainId, fromBlock: chain.blockNumber }
  config.chain = section
  await saveConfig(file, config)
}

/** Removes the chain section (swarm up --no-chain on a dir that had one). */
export async function clearNodeChainConfig (dataDir: string): Promise<void> {
  const file = dataDirPaths(dataDir).config
  let config
  try {
    config = await loadConfig(file)
  } catch {
    // an invalid config.json: the node itself refuses it at start and says why
    return
  }
  if (Object.keys(config.chain).length === 0) return
  config.chain = {}
  await saveConfig(file, config)
}

/** How a node's deposit and stake were made. */
export type FundingPath = 'api' | 'direct'

/**
 * Deposits RLC in the hub for a node and, for a provider, stakes. Through the
 * node's API when it has the routes (the node's own nonce queue sends); when
 * the node answers API_NOT_FOUND (an older node without the market routes),
 * directly with node/chain's client and the node's dev key.
 */
export async function depositAndStake (node: { dataDir: string, api: string, role: string }, chain: SwarmChainRecord): Promise<FundingPath> {
  const loaded = await loadDataDir(node.dataDir)
  const api = new ApiClient(node.api, loaded.apiToken, { timeoutMs: CLI_DEFAULTS.chainTxTimeoutMs })
  // the API listens a moment before the node's market has connected to the
  // chain: CHAIN_NOT_CONFIGURED then means "not yet", since config.json has one
  const deadline = Date.now() + CLI_DEFAULTS.chainReadyTimeoutMs
  let viaApi = true
  while (true) {
    try {
      await api.wallet()
      break
    } catch (err) {
      const code = isIexecError(err, 'API_ERROR') ? err.details?.serverCode : undefined
      if (code === 'API_NOT_FOUND') { viaApi = false; break }
      if (code !== 'CHAIN_NOT_CONFIGURED' || Date.now() > deadline) throw err
    }
    await sleep(CLI_DEFAULTS.pollIntervalMs)
  }
  if (viaApi) {
    await api.deposit(SWARM_FUNDING.deposit)
    if (node.role === 'provider') await api.stake(SWARM_FUNDING.stake)
    return 'api'
  }
  const client = await createChainClient({ rpcUrl: chain.rpc, chainId: chain.chainId, privateKey: loaded.wallet.privateKey, hub: chain.hub, rlc: chain.rlc })
  try {
    const hub = client.hub
    const rlc = client.rlc
    if (hub === undefined || rlc === undefined) throw new CliError('SWARM_CHAIN_FAILED', 'chain client without hub or RLC binding')
    await client.sender.send(rlc.approve.populateTransaction(chain.hub, SWARM_FUNDING.deposit))
    await client.sender.send(hub.deposit.populateTransaction(SWARM_FUNDING.deposit))
    if (node.role === 'provider') await client.sender.send(hub.stake.populateTransaction(SWARM_FUNDING.stake))
    return 'direct'
  } finally {
    await client.close()
  }
}

/** True while the recorded anvil still runs (and is ours). */
export async function chainAlive (chain: SwarmChainRecord): Promise<boolean> {
  return chain.pid > 0 && await isOurProcess(chain.pid, chain.marker)
}

/** Stops anvil (SIGTERM, then SIGKILL) and removes chain.json. */
export async function stopSwarmChain (chain: SwarmChainRecord): Promise<{ stopped: boolean, killed: boolean }> {
  let result = { stopped: false, killed: false }
  if (await chainAlive(chain)) {
    const r = await stopProcesses([chain.pid], CLI_DEFAULTS.swarmStopGraceMs, CLI_DEFAULTS.swarmKillWaitMs)
    if (r.survivors.length > 0) throw new CliError('SWARM_STOP_FAILED', `anvil (pid ${chain.pid}) survived SIGKILL`, { pids: r.survivors })
    result = { stopped: r.stopped.length > 0, killed: r.killed.length > 0 }
  }
  await rm(chain.configFile, { force: true })
  return result
}
