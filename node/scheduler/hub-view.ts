import type { ChainClient, Hub } from '../chain/index.js'

type Pending = { blockTag: 'pending' }

/** The hub's deal, as the scheduler's parts read it. */
export interface DealState {
  done: bigint
  volume: bigint
  scheduler: string
  schedulerLocked: bigint
  schedulerActive: bigint
  initialized: bigint
}

/** The hub's task, as the scheduler's parts read it. */
export interface TaskState {
  status: bigint
  reveals: bigint
  winners: bigint
  revealDeadline: bigint
  consensus: string
}

/**
 * The hub as the scheduler uses it: reads, and writes already sent through
 * the node's nonce queue. Each part takes a `Pick` of it, so a test fakes
 * only the calls that part makes.
 */
export interface SchedulerHub {
  address: () => Promise<string>
  dealOf: (dealid: string, tag?: Pending) => Promise<DealState>
  taskOf: (taskid: string, tag?: Pending) => Promise<TaskState>
  /** taskStatus, not taskOf: a trust-1 task closed by contributeAndFinalize is a bit taskOf cannot see */
  taskStatus: (dealid: string, idx: number) => Promise<bigint>
  contributorsOf: (taskid: string) => Promise<string[]>
  contributionStatus: (taskid: string, worker: string) => Promise<bigint>
  scoreOf: (worker: string) => Promise<bigint>
  schedulerOf: (dealid: string, tag?: Pending) => Promise<string>
  appOf: (app: string) => Promise<{ cid: string, checksum: string }>
  datasetOf: (dataset: string) => Promise<{ cid: string, checksum: string }>
  timeRefOf: (category: number) => Promise<bigint>
  initialize: (dealid: string, idx: number) => Promise<{ hash: string }>
  finalize: (taskid: string, cid: string, callbackData: string) => Promise<{ hash: string }>
  reelect: (dealid: string) => Promise<{ hash: string }>
  reelectForTask: (taskid: string) => Promise<{ hash: string }>
  claim: (dealid: string, idx: number) => Promise<{ hash: string }>
  /** `release(dealid, this node)` */
  release: (dealid: string) => Promise<{ hash: string }>
}

/** The scheduler's view of `chain`'s hub binding (writes go through the chain's sender). */
export function schedulerHub (chain: ChainClient, hub: Hub): SchedulerHub {
  const send = chain.sender.send.bind(chain.sender)
  const tagged = (tag?: Pending): [] | [Pending] => tag === undefined ? [] : [tag]
  return {
    address: async () => await hub.getAddress(),
    dealOf: async (dealid, tag) => await hub.dealOf(dealid, ...tagged(tag)),
    taskOf: async (taskid, tag) => await hub.taskOf(taskid, ...tagged(tag)),
    taskStatus: async (dealid, idx) => await hub.taskStatus(dealid, idx),
    contributorsOf: async (taskid) => await hub.contributorsOf(taskid),
    contributionStatus: async (taskid, worker) => (await hub.contributionOf(taskid, worker)).status,
    scoreOf: async (worker) => await hub.scoreOf(worker),
    schedulerOf: async (dealid, tag) => await hub.schedulerOf(dealid, ...tagged(tag)),
    appOf: async (app) => await hub.appOf(app),
    datasetOf: async (dataset) => await hub.datasetOf(dataset),
    timeRefOf: async (category) => (await hub.categoryOf(category)).timeRef,
    initialize: async (dealid, idx) => await send(hub.initialize.populateTransaction(dealid, idx)),
    finalize: async (taskid, cid, callbackData) => await send(hub.finalize.populateTransaction(taskid, cid, callbackData)),
    reelect: async (dealid) => await send(hub.reelect.populateTransaction(dealid)),
    reelectForTask: async (taskid) => await send(hub.reelectForTask.populateTransaction(taskid)),
    claim: async (dealid, idx) => await send(hub.claim.populateTransaction(dealid, idx)),
    release: async (dealid) => await send(hub.release.populateTransaction(dealid, chain.address))
  }
}
