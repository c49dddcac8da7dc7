import { mkdir, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { isAddress } from 'ethers'
import { deployHub, RLC__factory, type CategorySpec } from '../../contracts-abi/index.js'
import { isIexecError } from '../common/errors.js'
import { createChainClient } from './client.js'
import { ChainError, isChainError } from './errors.js'
import type { RpcOptions } from './options.js'

/** A dev account to fund on a fresh local chain. */
export interface FundSpec {
  address: string
  /** nRLC minted to the address (RLC has 9 decimals) */
  rlc: bigint
  /** wei sent from the deployer, for gas; none when absent (anvil's dev accounts already hold 10000 ETH) */
  eth?: bigint
}

export interface LocalSwarmChainOptions {
  rpcUrl: string
  /** the deployer: owns the hub and is RLC's only minter */
  deployerKey: string
  fund?: FundSpec[]
  /** where to write `{ rpc, chainId, hub, rlc }` (the swarm's chain config) */
  configFile?: string
  /** task categories; default the hub's DEFAULT_LOCAL_CATEGORIES */
  categories?: readonly CategorySpec[]
  /** seconds between an unstake request and the unstake; default the hub's local default */
  unstakeCooldown?: number
  rpc?: Partial<RpcOptions>
}

/** The swarm's chain config, as `swarm up --json` prints it under `chain`. */
export interface SwarmChainConfig {
  rpc: string
  chainId: number
  hub: string
  rlc: string
}

export interface LocalSwarmChain extends SwarmChainConfig {
  /** block of the hub's deployment: where event followers start */
  blockNumber: number
}

/**
 * Deploys RLC and the hub on a local chain (`deployHub` in mint-able local
 * mode), mints RLC and sends ETH to the given accounts, and writes the chain
 * config. Used by tests and `swarm up`.
 * @throws ChainError INVALID_ARGUMENT, RPC_UNREACHABLE, DEPLOY_FAILED
 * @example
 * const anvil = await startLocalChain()
 * const chain = await deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0],
 *   fund: [{ address: nodeAddress, rlc: 1_000n * 10n ** 9n }], configFile: join(dir, 'chain.json') })
 */
export async function deployLocalSwarmChain (opts: LocalSwarmChainOptions): Promise<LocalSwarmChain> {
  const fund = opts.fund ?? []
  for (const f of fund) {
    if (!isAddress(f.address)) throw new ChainError('INVALID_ARGUMENT', `fund: not an address: ${f.address}`, { address: f.address })
    if (f.rlc < 0n || (f.eth !== undefined && f.eth < 0n)) throw new ChainError('INVALID_ARGUMENT', `fund: negative amount for ${f.address}`, { address: f.address })
  }
  const client = await createChainClient({ rpcUrl: opts.rpcUrl, privateKey: opts.deployerKey, rpc: opts.rpc })
  try {
    let deployed
    try {
      deployed = await deployHub(client.wallet, {
        local: true,
        ...(opts.categories !== undefined ? { categories: opts.categories } : {}),
        ...(opts.unstakeCooldown !== undefined ? { unstakeCooldown: opts.unstakeCooldown } : {})
      })
    } catch (err) {
      if (isIexecError(err, 'DEPLOY_INVALID_OPTIONS')) throw new ChainError('INVALID_ARGUMENT', err.message, err.details, { cause: err })
      throw new ChainError('DEPLOY_FAILED', `deploying the hub on ${opts.rpcUrl} failed: ${(err as Error).message}`, { url: opts.rpcUrl }, { cause: err })
    }
    // deployHub sent with its own nonces: the sender must ask the chain
    client.sender.resetNonce()
    const rlc = RLC__factory.connect(deployed.rlc, client.wallet)
    try {
      // all funding transactions go out together: the nonce queue keeps them in order
      await Promise.all(fund.flatMap((f) => [
        ...(f.rlc > 0n ? [client.sender.send(rlc.mint.populateTransaction(f.address, f.rlc))] : []),
        ...(f.eth !== undefined && f.eth > 0n ? [client.sender.send({ to: f.address, value: f.eth })] : [])
      ]))
    } catch (err) {
      if (isChainError(err, 'RPC_UNREACHABLE')) throw err
      throw new ChainError('DEPLOY_FAILED', `funding dev accounts failed: ${(err as Error).message}`, { url: opts.rpcUrl }, { cause: err })
    }
    const config: SwarmChainConfig = { rpc: opts.rpcUrl, chainId: deployed.chainId, hub: deployed.hub, rlc: deployed.rlc }
    if (opts.configFile !== undefined) await writeConfig(opts.configFile, config)
    return { ...config, blockNumber: deployed.blockNumber }
  } finally {
    await client.close()
  }
}

/** Writes the config atomically (temp file + rename): a reader never sees half of it. */
async function writeConfig (path: string, config: SwarmChainConfig): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  try {
    await mkdir(dirname(path), { recursive: true })
    await writeFile(tmp, JSON.stringify(config, null, 2) + '\n')
    await rename(tmp, path)
  } catch (err) {
    throw new ChainError('DEPLOY_FAILED', `cannot write the chain config ${path}`, { path }, { cause: err })
  }
}
