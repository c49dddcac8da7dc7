import type { Signer } from 'ethers'
import { IexecError } from '../node/errors.js'
import { Hub__factory, RLC__factory } from './types/index.js'

export type DeployErrorCode = 'DEPLOY_INVALID_OPTIONS' | 'DEPLOY_FAILED'

/** A task category: its time reference T sets the deadlines (contribution 7T, reveal 2T after consensus, final 10T). */
export interface CategorySpec {
  name: string
  /** seconds */
  timeRef: number
}

/**
 * Categories of a local deployment. T = 60 s is enough for the example WASI
 * apps (they run in milliseconds; the slack is for fetching over bitswap and
 * for the chain), the larger ones are for real workloads.
 */
export const DEFAULT_LOCAL_CATEGORIES: readonly CategorySpec[] = [
  { name: 'XS', timeRef: 60 },
  { name: 'S', timeRef: 300 },
  { name: 'M', timeRef: 900 },
  { name: 'L', timeRef: 3600 }
]

export interface DeployHubOptions {
  /** local deployment: the deployer can mint RLC (tests, `swarm up`); otherwise 87M RLC go to the deployer once */
  local: boolean
  /** categories to create, in id order; default DEFAULT_LOCAL_CATEGORIES */
  categories?: readonly CategorySpec[]
  /** seconds between an unstake request and the unstake; default 60 locally (tests and demos), 7 days otherwise */
  unstakeCooldown?: number
  /** reuse this RLC token instead of deploying one */
  rlc?: string
}

export interface DeployedHub {
  rlc: string
  hub: string
  chainId: number
  /** the block of the hub's deployment: where event followers start */
  blockNumber: number
}

/**
 * Deploys RLC (unless given) and the Hub, then creates the categories. Sends
 * the transactions with explicit nonces so a provider's nonce cache cannot
 * reuse one, and waits for each receipt.
 */
export async function deployHub (signer: Signer, opts: DeployHubOptions): Promise<DeployedHub> {
  const provider = signer.provider
  if (provider === null) throw new IexecError<DeployErrorCode>('DEPLOY_INVALID_OPTIONS', 'the signer has no provider')
  const categories = opts.categories ?? DEFAULT_LOCAL_CATEGORIES
  for (const c of categories) {
    if (!Number.isInteger(c.timeRef) || c.timeRef <= 0 || c.timeRef > 0xffffffff) {
      throw new IexecError<DeployErrorCode>('DEPLOY_INVALID_OPTIONS', `category ${c.name}: timeRef must be a positive integer of seconds`, { category: c.name })
    }
  }
  if (categories.length > 256) throw new IexecError<DeployErrorCode>('DEPLOY_INVALID_OPTIONS', 'at most 256 categories')
  const cooldown = opts.unstakeCooldown ?? (opts.local ? 60 : 7 * 24 * 3600)
  if (!Number.isInteger(cooldown) || cooldown < 0) throw new IexecError<DeployErrorCode>('DEPLOY_INVALID_OPTIONS', 'unstakeCooldown must be a non-negative integer')

  try {
    let nonce = await signer.getNonce('pending')
    let rlc = opts.rlc
    if (rlc === undefined) {
      const token = await new RLC__factory(signer).deploy(opts.local, { nonce: nonce++ })
      await token.waitForDeployment()
      rlc = await token.getAddress()
    }
    const hub = await new Hub__factory(signer).deploy(rlc, cooldown, { nonce: nonce++ })
    const receipt = await hub.deploymentTransaction()?.wait()
    const address = await hub.getAddress()
    const pending = []
    for (const c of categories) pending.push(await hub.createCategory(c.name, c.timeRef, { nonce: nonce++ }))
    for (const tx of pending) await tx.wait()
    const network = await provider.getNetwork()
    return { rlc, hub: address, chainId: Number(network.chainId), blockNumber: receipt?.blockNumber ?? await provider.getBlockNumber() }
  } catch (err) {
    throw new IexecError<DeployErrorCode>('DEPLOY_FAILED', `hub deployment failed: ${err instanceof Error ? err.message : String(err)}`, {}, { cause: err })
  }
}
