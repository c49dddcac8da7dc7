import type { Signer } from 'ethers'
import { IexecError } from '../node/common/errors.js'
import { Hub__factory, RLC__factory } from './types/index.js'

export type DeployErrorCode = 'DEPLOY_INVALID_OPTIONS' | 'DEPLOY_FAILED'

/**
 * A task category: its time reference T sets the deadlines (contribution 7T,
 * reveal 2T after consensus, final 10T) and bounds each run; its memory and
 * disk bound each run's memory and output. Providers bid only on the
 * categories whose limits their resources meet.
 */
export interface CategorySpec {
  name: string
  /** seconds: a run's time bound */
  timeRef: number
  /** MiB: a run's memory bound */
  memoryMiB: number
  /** MiB: a run's output bound (files, stdout and stderr together) */
  diskMiB: number
}

/** The hub's bounds of a category's fields (its storage types: uint24, uint32, uint32). */
export const CATEGORY_FIELD_MAX = { timeRef: 0xffffff, memoryMiB: 0xffffffff, diskMiB: 0xffffffff } as const

/**
 * Categories of a local deployment. T = 60 s is enough for the example WASI
 * apps (they run in milliseconds; the slack is for fetching over bitswap and
 * for the chain), the larger ones are for real workloads. XS keeps the
 * bounds every run had before categories carried them (256 MiB, 64 MiB out);
 * each larger category asks more of its providers.
 */
export const DEFAULT_LOCAL_CATEGORIES: readonly CategorySpec[] = [
  { name: 'XS', timeRef: 60, memoryMiB: 256, diskMiB: 64 },
  { name: 'S', timeRef: 300, memoryMiB: 1024, diskMiB: 1024 },
  { name: 'M', timeRef: 900, memoryMiB: 4096, diskMiB: 8192 },
  { name: 'L', timeRef: 3600, memoryMiB: 8192, diskMiB: 32768 }
]

/** Why a category spec cannot go on chain; undefined when it can. */
export function categorySpecProblem (c: CategorySpec): string | undefined {
  if (typeof c.name !== 'string' || c.name.length === 0 || c.name.length > 64) return 'name must be 1-64 characters'
  for (const k of ['timeRef', 'memoryMiB', 'diskMiB'] as const) {
    const v = c[k]
    if (!Number.isInteger(v) || v <= 0 || v > CATEGORY_FIELD_MAX[k]) return `${k} must be an integer in [1, ${CATEGORY_FIELD_MAX[k]}]`
  }
  return undefined
}

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
    const problem = categorySpecProblem(c)
    if (problem !== undefined) throw new IexecError<DeployErrorCode>('DEPLOY_INVALID_OPTIONS', `category ${c.name}: ${problem}`, { category: c.name })
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
    for (const c of categories) pending.push(await hub.createCategory(c.name, c.timeRef, c.memoryMiB, c.diskMiB, { nonce: nonce++ }))
    for (const tx of pending) await tx.wait()
    const network = await provider.getNetwork()
    return { rlc, hub: address, chainId: Number(network.chainId), blockNumber: receipt?.blockNumber ?? await provider.getBlockNumber() }
  } catch (err) {
    throw new IexecError<DeployErrorCode>('DEPLOY_FAILED', `hub deployment failed: ${err instanceof Error ? err.message : String(err)}`, {}, { cause: err })
  }
}
