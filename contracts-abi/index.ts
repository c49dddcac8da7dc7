/**
 * The PoCo hub's contracts for the node and the tests: compiled artifacts
 * (committed, rebuilt by `npm run contracts:build`), TypeChain bindings for
 * ethers v6, and `deployHub`.
 *
 * @example
 * ```ts
 * const { hub, rlc, chainId } = await deployHub(wallet, { local: true })
 * const contract = Hub__factory.connect(hub, wallet)
 * ```
 */
import { getCreateAddress } from 'ethers'
import type { Interface } from 'ethers'
import hubJson from './artifacts/Hub.json' with { type: 'json' }
import rlcJson from './artifacts/RLC.json' with { type: 'json' }
import taskReaderJson from './artifacts/TaskReader.json' with { type: 'json' }
import { Hub__factory, RLC__factory } from './types/index.js'

export { deployHub, DEFAULT_LOCAL_CATEGORIES, CATEGORY_FIELD_MAX, categorySpecProblem } from './deploy.js'
export type { DeployHubOptions, DeployedHub, CategorySpec, DeployErrorCode } from './deploy.js'
export { Hub__factory, RLC__factory, TaskReader__factory } from './types/index.js'
export type { Hub, RLC, TaskReader } from './types/index.js'

/** A committed artifact: contracts-abi/artifacts/<Name>.json */
export interface Artifact {
  contractName: string
  abi: readonly unknown[]
  bytecode: string
  deployedBytecode: string
}

export type ContractName = 'Hub' | 'RLC' | 'TaskReader'

const ARTIFACTS: Record<ContractName, Artifact> = { Hub: hubJson, RLC: rlcJson, TaskReader: taskReaderJson }

export function artifact (name: ContractName): Artifact {
  return ARTIFACTS[name]
}

/** The hub's ABI interface (functions, events, custom errors) for decoding logs and reverts. */
export function hubInterface (): Interface {
  return Hub__factory.createInterface()
}

export function rlcInterface (): Interface {
  return RLC__factory.createInterface()
}

/**
 * The TaskReader the hub created in its constructor (contracts/TaskReader.sol):
 * the hub's first CREATE, so its address follows from the hub's alone.
 * `taskOf(dealid, idx)` there answers for every task, trust-1 tasks closed
 * by contributeAndFinalize included (the hub's own `taskOf(taskid)` reads
 * zeros and UNSET for those).
 */
export function taskReaderAddress (hub: string): string {
  return getCreateAddress({ from: hub, nonce: 1 })
}

/** Task status on chain (Hub.TaskStatus). */
export enum TaskStatus { UNSET = 0, ACTIVE = 1, REVEALING = 2, COMPLETED = 3, FAILED = 4 }

/** Contribution status on chain (Hub.ContributionStatus). */
export enum ContributionStatus { UNSET = 0, CONTRIBUTED = 1, PROVED = 2 }

/** Hub constants mirrored for off-chain planning (the contract is authoritative). */
export const HUB_RATIOS = {
  contributionDeadline: 7,
  revealDeadline: 2,
  finalDeadline: 10,
  workerStakePercent: 30,
  schedulerStakePercent: 30,
  schedulerRewardPercent: 10,
  maxWorkers: 32,
  maxTrust: 255
} as const

/** iExec's consensus weight of a worker with `score`: max(floor(score / 3), 3) - 1. */
export function workerWeight (score: bigint): bigint {
  const s = score / 3n
  return (s > 3n ? s : 3n) - 1n
}
