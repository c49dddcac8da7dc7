import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { checkAddress, checkChainSettings, checkRpcUrl, type NodeChainConfig, type RawChainSettings } from '../config/index.js'
import { isIexecError } from '../common/errors.js'
import { CliError, UsageError } from './errors.js'
import { printJson, type CliIo } from './output.js'
import { formatAmount, formatEth, parseAmount } from './parse.js'
import type { ChainFlags } from './chain-profiles.js'

// Joining a chain from the command line: chain flags of `init` and `start`,
// `contracts deploy` for a chain of one's own, and the two dev helpers that
// let a hand-started node join a `swarm up` swarm (`swarm key`, `swarm fund`).
// ethers, the chain module and the contracts load lazily: `--help` stays fast.

/**
 * RPC bounds for a command-line check: a dead endpoint is reported in about
 * 1.5 s (3 attempts, 200 ms doubling backoff) and a black-holed one in 5 s
 * per attempt, instead of the node's longer defaults meant to ride over a
 * restart.
 */
const CLI_RPC = { retryAttempts: 3, retryBaseDelayMs: 200, retryMaxDelayMs: 1_000, requestTimeoutMs: 5_000 } as const

export type { ChainFlags } from './chain-profiles.js'

const FLAG_OF: Record<string, string> = {
  'chain.rpc': '--rpc',
  'chain.hub': '--hub',
  'chain.chainId': '--chain-id',
  'chain.fromBlock': '--from-block'
}

/** True when any of the four chain flags was given. */
export function hasChainFlags (f: ChainFlags): boolean {
  return f.rpc !== undefined || f.hub !== undefined || f.chainId !== undefined || f.fromBlock !== undefined
}

/**
 * Checks the chain flags' format offline. A bad value is a usage error
 * (CLI_BAD_OPTION, exit 2) naming the flag.
 */
export function parseChainFlags (f: ChainFlags): NodeChainConfig {
  const raw: RawChainSettings = {
    ...(f.rpc !== undefined ? { rpc: f.rpc } : {}),
    ...(f.hub !== undefined ? { hub: f.hub } : {}),
    ...(f.chainId !== undefined ? { chainId: f.chainId } : {}),
    ...(f.fromBlock !== undefined ? { fromBlock: f.fromBlock } : {})
  }
  try {
    return checkChainSettings(raw)
  } catch (err) {
    if (isIexecError(err, 'CONFIG_INVALID')) {
      const field = String(err.details?.field ?? '')
      const flag = FLAG_OF[field] ?? field
      throw new UsageError('CLI_BAD_OPTION', err.message.replace(field, flag), { flag })
    }
    throw err
  }
}

/**
 * Merges the flags over a node's current chain section. A new hub without
 * --from-block drops the old start block (it belonged to the old hub); a new
 * RPC without --chain-id drops the old chain id (the RPC's answer replaces it).
 */
export function mergeChainSettings (current: NodeChainConfig, flags: NodeChainConfig): NodeChainConfig {
  const merged: NodeChainConfig = { ...current, ...flags }
  if (flags.hub !== undefined && flags.hub !== current.hub && flags.fromBlock === undefined) delete merged.fromBlock
  if (flags.rpc !== undefined && flags.rpc !== current.rpc && flags.chainId === undefined) delete merged.chainId
  return merged
}

/**
 * Asks the RPC what it serves: its chain id (must equal `chainId` when one
 * is set) and whether the hub has code. Bounded: a dead endpoint answers
 * RPC_UNREACHABLE within seconds.
 * @returns the settings with the chain id the RPC reported
 * @throws ChainError RPC_UNREACHABLE, CHAIN_ID_MISMATCH, CONTRACT_NOT_FOUND
 */
export async function verifyChainSettings (settings: NodeChainConfig): Promise<NodeChainConfig> {
  if (settings.rpc === undefined) return settings
  const { Wallet } = await import('ethers')
  const { createChainClient } = await import('../chain/index.js')
  // a throwaway key: the check only reads, and the node's own wallet may be locked
  const client = await createChainClient({
    rpcUrl: settings.rpc,
    privateKey: Wallet.createRandom().privateKey,
    ...(settings.chainId !== undefined ? { chainId: settings.chainId } : {}),
    ...(settings.hub !== undefined ? { hub: settings.hub } : {}),
    rpc: CLI_RPC
  })
  try {
    return { ...settings, chainId: client.chainId }
  } finally {
    await client.close()
  }
}

/** The `init` line `contracts deploy` prints for the nodes of a new chain. */
export function initLine (c: { rpc: string, hub: string, chainId: number, blockNumber: number }): string {
  return `iexec-p2p init --rpc ${c.rpc} --hub ${c.hub} --chain-id ${c.chainId} --from-block ${c.blockNumber}`
}

export interface ContractsDeployOptions {
  rpc?: string
  keyFile?: string
  rlc?: string
  local?: boolean
  /** write a chain profile of this name into the chains file (issue 24) */
  profile?: string
  chainsFile?: string
  json?: boolean
}

/** What `contracts deploy --json` prints. */
export interface ContractsDeployJson {
  rpc: string
  chainId: number
  hub: string
  rlc: string
  /** block of the hub's deployment: `--from-block` of the nodes */
  blockNumber: number
  /** the dev variant: mintable RLC, short unstake cooldown */
  local: boolean
  deployer: string
  /** the command to give every node of this chain */
  init: string
  /** with --profile: the profile written, and the chains file */
  profile?: string
  chainsFile?: string
}

/** Reads a private key file: its first line, 0x and 64 hex digits. Never echoes the key. */
async function readKeyFile (file: string): Promise<string> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new CliError('CLI_FILE_UNREADABLE', `cannot read --key-file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { file })
  }
  text = text.split(/\r?\n/)[0]
  const key = text.trim()
  const hex = key.startsWith('0x') ? key : `0x${key}`
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) {
    throw new UsageError('CLI_BAD_OPTION', `--key-file ${file}: the first line must be a private key (0x and 64 hex digits)`, { file })
  }
  return hex
}

/**
 * `iexec-p2p contracts deploy`: deploys the hub (and an RLC token unless
 * --rlc) with the key in --key-file, then prints where it is and the `init`
 * line for the nodes.
 */
export async function contractsDeployCommand (io: CliIo, opts: ContractsDeployOptions): Promise<void> {
  if (opts.rpc === undefined) throw new UsageError('CLI_MISSING_ARGUMENT', '--rpc <url> is required')
  if (opts.keyFile === undefined) throw new UsageError('CLI_MISSING_ARGUMENT', '--key-file <file> is required')
  const rpc = parseChainFlags({ rpc: opts.rpc }).rpc as string
  const rlcGiven = opts.rlc !== undefined ? parseAddressFlag('--rlc', opts.rlc) : undefined
  const key = await readKeyFile(resolve(opts.keyFile))
  const local = opts.local === true
  const profiles = opts.profile !== undefined ? await import('./chain-profiles.js') : undefined
  const chainsFile = profiles !== undefined ? (opts.chainsFile !== undefined ? resolve(opts.chainsFile) : profiles.defaultChainsFile()) : undefined
  if (opts.chainsFile !== undefined && opts.profile === undefined) throw new UsageError('CLI_USAGE', '--chains-file goes with --profile NAME')
  // before the deployment: a taken name costs no gas
  if (profiles !== undefined) await profiles.assertProfileFree(chainsFile as string, opts.profile as string)
  if (opts.json !== true) io.err(`deploying the ${local ? 'local (dev) ' : ''}hub${rlcGiven === undefined ? ' and an RLC token' : ''} on ${rpc}...\n`)
  const { createChainClient, ChainError } = await import('../chain/index.js')
  const { deployHub } = await import('../../contracts-abi/index.js')
  const client = await createChainClient({ rpcUrl: rpc, privateKey: key, ...(rlcGiven !== undefined ? { rlc: rlcGiven } : {}), rpc: CLI_RPC })
  let out: ContractsDeployJson
  try {
    const balance = await client.ethBalance()
    if (balance === 0n) throw new ChainError('TX_REJECTED', `the deployer ${client.address} has no ETH on chain ${client.chainId} to pay for gas`, { address: client.address })
    let deployed
    try {
      deployed = await deployHub(client.wallet, { local, ...(rlcGiven !== undefined ? { rlc: rlcGiven } : {}) })
    } catch (err) {
      if (isIexecError(err, 'DEPLOY_INVALID_OPTIONS')) throw new UsageError('CLI_BAD_OPTION', err.message)
      throw new ChainError('DEPLOY_FAILED', `deploying the hub on ${rpc} failed: ${(err as Error).message}`, { url: rpc }, { cause: err })
    }
    out = { rpc, chainId: deployed.chainId, hub: deployed.hub, rlc: deployed.rlc, blockNumber: deployed.blockNumber, local, deployer: client.address, init: '' }
    out.init = initLine(out)
  } finally {
    await client.close()
  }
  if (profiles !== undefined) {
    const name = opts.profile as string
    await profiles.saveChainProfile(chainsFile as string, name, { rpc: out.rpc, chainId: out.chainId, hub: out.hub, rlc: out.rlc, fromBlock: out.blockNumber })
    out.profile = name
    out.chainsFile = chainsFile
    out.init = `iexec-p2p init --chain ${name}${opts.chainsFile !== undefined ? ` --chains-file ${chainsFile as string}` : ''}`
  }
  if (opts.json === true) {
    printJson(io, out)
    return
  }
  io.out([
    `hub deployed on chain ${out.chainId} (${out.rpc})${local ? ', dev variant: mintable RLC, short unstake cooldown' : ''}`,
    `hub       ${out.hub}`,
    `rlc       ${out.rlc}${rlcGiven !== undefined ? ' (given)' : ' (deployed)'}`,
    `block     ${out.blockNumber}`,
    `deployer  ${out.deployer}`,
    ...(out.profile !== undefined ? [`profile   ${out.profile} (in ${out.chainsFile as string})`] : []),
    '',
    'give every node of this chain:',
    `  ${out.init}`,
    ''
  ].join('\n'))
}

function parseAddressFlag (flag: string, raw: string): string {
  try {
    return checkAddress(raw, flag)
  } catch (err) {
    if (isIexecError(err, 'CONFIG_INVALID')) throw new UsageError('CLI_BAD_OPTION', err.message, { flag })
    throw err
  }
}

export interface SwarmKeyOptions {
  out?: string
  json?: boolean
}

/** `iexec-p2p swarm key`: a fresh pnet key, to a file (never overwritten) or to stdout. */
export async function swarmKeyCommand (io: CliIo, opts: SwarmKeyOptions): Promise<void> {
  const { generateSwarmKey, writeSwarmKeyFile } = await import('../network/index.js')
  if (opts.out === undefined) {
    const key = generateSwarmKey()
    if (opts.json === true) printJson(io, { key })
    else io.out(key)
    return
  }
  const file = resolve(opts.out)
  try {
    await writeSwarmKeyFile(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') throw new CliError('CLI_FILE_EXISTS', `${file} exists: a swarm key is never overwritten (remove it first, or choose another --out)`, { file })
    throw new CliError('CLI_FILE_UNREADABLE', `cannot write the swarm key to ${file}: ${code ?? String(err)}`, { file })
  }
  if (opts.json === true) printJson(io, { file })
  else io.out(`swarm key written to ${file} (mode 0600): give it to every node with --swarm-key ${file}\n`)
}

export interface SwarmFundOptions {
  dir?: string
  rlc?: string
  eth?: string
  json?: boolean
}

/** What `swarm fund --json` prints. */
export interface SwarmFundJson {
  address: string
  /** nRLC minted to the address */
  rlc: string
  /** wei sent to the address */
  eth: string
  hub: string
  rpc: string
  transactions: string[]
}

/** An ETH amount: up to 18 decimals; 0 sends none. */
function parseEth (raw: string): bigint {
  const m = /^(\d{1,9})(?:\.(\d{1,18}))?$/.exec(raw.trim())
  if (m === null) throw new UsageError('CLI_BAD_OPTION', `--eth must be an amount of ETH like 1 or 0.5, got "${raw}"`)
  return BigInt(m[1]) * 10n ** 18n + BigInt((m[2] ?? '').padEnd(18, '0'))
}

/**
 * `iexec-p2p swarm fund ADDRESS`: sends ETH (gas) and mints RLC to an address
 * from the local swarm chain's deployer (anvil's first dev account, RLC's
 * minter), so a node started by hand can deposit and stake.
 */
export async function swarmFundCommand (io: CliIo, addressRaw: string, opts: SwarmFundOptions): Promise<void> {
  const address = parseAddressFlag('ADDRESS', addressRaw)
  const { SWARM_FUNDING } = await import('./swarm-chain.js')
  const rlc = opts.rlc !== undefined ? parseAmount('--rlc', opts.rlc) : SWARM_FUNDING.rlc
  const eth = opts.eth !== undefined ? parseEth(opts.eth) : SWARM_FUNDING.eth
  const { defaultSwarmDir, readSwarmFile } = await import('./swarm.js')
  const dir = resolve(opts.dir ?? defaultSwarmDir())
  const file = await readSwarmFile(dir)
  if (file === undefined) throw new CliError('SWARM_NOT_FOUND', `no swarm in ${dir} (no swarm.json): start one with \`iexec-p2p swarm up --dir ${dir}\``, { dir })
  const chain = file.chain
  if (chain == null || chain.hub === '') {
    throw new CliError('SWARM_NO_CHAIN', `the swarm in ${dir} has no local chain (started with --no-chain): nothing to fund from`, { dir })
  }
  const { HDNodeWallet, Mnemonic } = await import('ethers')
  const { ANVIL_MNEMONIC, createChainClient } = await import('../chain/index.js')
  // the same account `swarm up` deployed with: anvil's first dev account, RLC's only minter
  const deployer = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(ANVIL_MNEMONIC), "m/44'/60'/0'/0/0").privateKey
  const client = await createChainClient({ rpcUrl: checkRpcUrl(chain.rpc), chainId: chain.chainId, privateKey: deployer, hub: chain.hub, rlc: chain.rlc, rpc: CLI_RPC })
  const txs: string[] = []
  try {
    const token = client.rlc as NonNullable<typeof client.rlc>
    // sent together: the sender's nonce queue keeps them in order
    const sent = await Promise.all([
      ...(rlc > 0n ? [client.sender.send(token.mint.populateTransaction(address, rlc))] : []),
      ...(eth > 0n ? [client.sender.send({ to: address, value: eth })] : [])
    ])
    for (const s of sent) txs.push(s.hash)
  } finally {
    await client.close()
  }
  const out: SwarmFundJson = { address, rlc: rlc.toString(), eth: eth.toString(), hub: chain.hub, rpc: chain.rpc, transactions: txs }
  if (opts.json === true) {
    printJson(io, out)
    return
  }
  io.out(`funded ${address} on the swarm chain ${chain.rpc}: ${formatAmount(rlc)} and ${formatEth(eth)}\n`)
  io.out(`next, on that node: iexec-p2p account deposit <amount>, then (providers) iexec-p2p stake <amount>\n`)
}

export interface InitChainResult {
  chain: NodeChainConfig
  /** false with --offline: the RPC was not asked */
  verified: boolean
}

/**
 * The chain part of `init`: flags merged over the current section, checked
 * offline, then (unless `offline`) against the RPC. Both rpc and hub must be
 * known after the merge: one without the other leaves the node off-chain.
 */
export async function resolveInitChain (current: NodeChainConfig, flags: ChainFlags, offline: boolean): Promise<InitChainResult> {
  const merged = mergeChainSettings(current, parseChainFlags(flags))
  if ((merged.rpc === undefined) !== (merged.hub === undefined)) {
    throw new UsageError('CLI_USAGE', `a node on a chain needs both --rpc and --hub (this data dir would have only ${merged.rpc !== undefined ? 'an RPC URL' : 'a hub address'})`)
  }
  if (offline) return { chain: merged, verified: false }
  return { chain: await verifyChainSettings(merged), verified: true }
}
