/**
 * Where a task stands, read from the hub alone (its status and its events,
 * with their block times), plus what the requester's node remembers of its
 * own submissions (bidding and deal times). `task show` and
 * `task submit --watch` print it; `GET /v1/tasks/:taskId` serves it.
 */
import { getAddress } from 'ethers'
import { ZERO_ADDRESS, taskId as taskIdOf } from '../../protocols/eip712.js'
import { Repository, jsonCodec } from '../db/index.js'
import type { DbController } from '../db/index.js'
import { queryLogsInRanges } from '../chain/index.js'
import { MarketError } from './errors.js'
import { taskStatusName, workersForTrust } from './requester.js'
import type { MarketService } from './service.js'
import { TaskReader__factory, taskReaderAddress } from '../../contracts-abi/index.js'
import type { DealCreatedEvent } from '../../contracts-abi/types/Hub.js'
import type { TypedEventLog } from '../../contracts-abi/types/common.js'
import { summarizeFailures } from '../worker/failure-reports.js'
import type { TaskFailureSummary, WorkerFailureView } from '../worker/failure-reports.js'

/**
 * The task's phase, in the order a task goes through them:
 * scheduling (deal mined, the elected scheduler has not initialized it),
 * running (initialized, no contribution yet), consensus (contributions
 * coming in), revealing (consensus reached, reveals due), then finalized or
 * failed (past its final deadline without consensus: claimed and refunded,
 * or claimable). `failing`: not final on chain, no contribution, and the
 * deal's workers report failures (see TaskStatusView.failure).
 */
export type TaskPhase = 'scheduling' | 'running' | 'failing' | 'consensus' | 'revealing' | 'finalized' | 'failed'

export const FINAL_PHASES: readonly TaskPhase[] = ['finalized', 'failed']

/** One step of the task's life, from the chain (block time) or from the requester's node. */
export interface TaskEventView {
  name: 'requested' | 'first-bid' | 'deal' | 'initialized' | 'contributed' | 'consensus' | 'revealed' | 'finalized' | 'claimed' | 'reelected'
  /** unix ms: the requester node's clock for its own steps, the block timestamp × 1000 (whole seconds) for chain events */
  at: number
  block?: number
  txHash?: string
  worker?: string
}

/**
 * When the task reached each step a user asks about, in unix ms, or null when
 * it has not (yet) happened. Derived from {@link TaskStatusView.events}: chain
 * steps carry their block's timestamp (whole seconds), so two steps mined in
 * the same second show the same time.
 *
 * - `requested`: the request order was gossiped; `firstBid`: the first bid
 *   arrived. Only the requester's own node knows these; null elsewhere.
 * - `deal`: `DealCreated` was mined (the deal made, its scheduler elected).
 * - `initialized`: the scheduler initialized the task (`TaskInitialized`).
 * - `firstContribution`: the first worker's commit (`TaskContributed`).
 * - `consensus`: enough agreeing contributions (`TaskConsensus`); reveals follow.
 * - `finalized`: the result is final on chain (`TaskFinalized`).
 * - `claimed`: the task failed and the requester was refunded (`TaskClaimed`).
 *
 * A trust-1 task finished by `contributeAndFinalize` emits only
 * `TaskFinalized`, so its `initialized`, `firstContribution` and `consensus`
 * stay null while `finalized` is set.
 */
export interface TaskTimes {
  requested: number | null
  firstBid: number | null
  deal: number | null
  initialized: number | null
  firstContribution: number | null
  consensus: number | null
  finalized: number | null
  claimed: number | null
}

/** The phase times of a task from its timeline (events in chain order; the first event of each name counts). */
export function taskTimes (events: readonly TaskEventView[]): TaskTimes {
  const first = (name: TaskEventView['name']): number | null => events.find((e) => e.name === name)?.at ?? null
  return {
    requested: first('requested'),
    firstBid: first('first-bid'),
    deal: first('deal'),
    initialized: first('initialized'),
    firstContribution: first('contributed'),
    consensus: first('consensus'),
    finalized: first('finalized'),
    claimed: first('claimed')
  }
}

/**
 * `task show --json` and `GET /v1/tasks/:taskId`. DESIGN.md's fields are
 * `taskId`, `dealId`, `status`, `contributions`, `resultCid` and `times`; the
 * others say more (phase, counts, deadlines, the whole timeline).
 */
export interface TaskStatusView {
  taskId: string
  dealId: string
  idx: number
  /** the hub's TaskStatus name */
  status: string
  phase: TaskPhase
  app: string
  dataset: string
  requester: string
  scheduler: string
  workers: string[]
  trust: number
  /** commits seen on chain (`TaskContributed`); 0 for a trust-1 contribute-and-finalize */
  contributions: number
  reveals: number
  /** the finalized result's CID (DESIGN.md's name); null until finalized */
  resultCid: string | null
  resultHash: string | null
  /**
   * The request's callback contract (EIP-1154) and what finalize's call to it
   * did (`CallbackCalled`): success null until then; null without a callback
   */
  callback: { address: string, success: boolean | null } | null
  /** unix seconds, from the deal */
  deadlines: { contribution: number, final: number }
  times: TaskTimes
  events: TaskEventView[]
  /**
   * The workers' signed failure reports and their agreement (codes, exit
   * codes, stderr tails opened when sealed to this node); null
   * when no worker reports a failure, when the task is finalized, or when
   * this node cannot ask the workers.
   */
  failure: TaskFailureSummary | null
}

/** Asks a task's workers for their failure reports (the node's FailureCollector, execution/execution.ts). */
export type FailureSource = (taskId: string, workers: readonly string[]) => Promise<{ reports: WorkerFailureView[] }>

/** What the requester's node keeps of a task it asked for. */
export interface RequestedTask {
  taskId: string
  dealId: string
  idx: number
  /** unix ms the request order was gossiped */
  requestedAt: number
  firstBidMs: number | null
  dealMs: number
}

function checkRequested (v: unknown): RequestedTask {
  const o = v as Partial<RequestedTask> | null
  if (o === null || typeof o !== 'object' || typeof o.taskId !== 'string' || typeof o.dealId !== 'string' ||
    typeof o.idx !== 'number' || typeof o.requestedAt !== 'number' || typeof o.dealMs !== 'number') {
    throw new Error('not a requested-task record')
  }
  return o as RequestedTask
}

/** The requester's own tasks, by task id, in its level store (kept across restarts). */
export class RequestedTasks {
  private readonly repo: Repository<RequestedTask>

  constructor (db: DbController) {
    this.repo = new Repository(db, 'requested-task', jsonCodec(checkRequested))
  }

  async put (t: RequestedTask): Promise<void> {
    await this.repo.put(t.taskId.toLowerCase(), t)
  }

  async get (taskId: string): Promise<RequestedTask | undefined> {
    return await this.repo.get(taskId.toLowerCase())
  }
}

/** Deals scanned at most when a task id is not one of ours (its deal must be found by its DealCreated event). */
const MAX_SCANNED_DEALS = 5_000

/**
 * Finds the deal and index of a task: from this node's own requests, from
 * the hub's task record (an initialized task names its deal), else from the
 * last MAX_SCANNED_DEALS deals' task lists. Undefined when no deal has it.
 */
async function locateTask (m: MarketService, requested: RequestedTasks | undefined, id: string): Promise<{ deal: DealCreatedLog, dealId: string, idx: number } | undefined> {
  const hub = m.hub
  const inRanges = hubLogsFrom(m)
  const mine = await requested?.get(id)
  let dealId: string | undefined = mine?.dealId
  let idx: number | undefined = mine?.idx
  if (dealId === undefined) {
    // an initialized task names its deal; otherwise look for a deal whose task list has it
    const task = await hub.taskOf(id)
    if (BigInt(task.dealid) !== 0n) {
      dealId = task.dealid.toLowerCase()
      const init = await inRanges(async (a, b) => await hub.queryFilter(hub.filters.TaskInitialized(id), a, b))
      idx = init.length > 0 ? Number(init[0].args.idx) : undefined
    }
  }
  const dealLogs = dealId !== undefined
    ? await inRanges(async (a, b) => await hub.queryFilter(hub.filters.DealCreated(dealId), a, b))
    : (await inRanges(async (a, b) => await hub.queryFilter(hub.filters.DealCreated(), a, b))).slice(-MAX_SCANNED_DEALS)
  for (const log of dealLogs) {
    const volume = Number(log.args.info.volume)
    const d = String(log.args.dealid).toLowerCase()
    if (dealId !== undefined && d !== dealId) continue
    for (let i = 0; i < volume; i++) {
      if ((idx === undefined || idx === i) && taskIdOf(d, BigInt(i)).toLowerCase() === id) return { deal: log, dealId: d, idx: i }
    }
  }
  return undefined
}

type DealCreatedLog = TypedEventLog<DealCreatedEvent.Event>

/** The hub's logs from the node's first hub block to the latest, in bounded ranges. */
function hubLogsFrom (m: MarketService): <T>(read: (fromBlock: number, toBlock: number | 'latest') => Promise<T[]>) => Promise<T[]> {
  return async (read) => await queryLogsInRanges(read, { fromBlock: m.init.fromBlock, head: m.chain.provider })
}

/** True when a deal on the hub has this task (`result get` of an unknown task answers TASK_NOT_FOUND, as `task show` does). */
export async function taskExists (m: MarketService, taskId: string): Promise<boolean> {
  return await locateTask(m, undefined, taskId.toLowerCase()) !== undefined
}

/**
 * Reads a task's status and timeline.
 * @throws MarketError TASK_NOT_FOUND when no deal on the hub has this task
 */
export async function readTaskStatus (m: MarketService, requested: RequestedTasks, taskId: string, failures?: FailureSource): Promise<TaskStatusView> {
  const hub = m.hub
  const inRanges = hubLogsFrom(m)
  const id = taskId.toLowerCase()
  const mine = await requested.get(id)
  const found = await locateTask(m, requested, id)
  if (found === undefined) throw new MarketError('TASK_NOT_FOUND', `no deal on the hub has task ${taskId}`, { taskId })
  const { deal, dealId, idx } = found
  const info = deal.args.info
  // the TaskReader answers for every task: the hub's taskOf reads zeros for a trust-1 task closed by contributeAndFinalize
  const reader = TaskReader__factory.connect(taskReaderAddress(await hub.getAddress()), hub.runner)
  const [task, current] = await Promise.all([reader.taskOf(dealId, idx), hub.dealOf(dealId, { blockTag: 'pending' })])
  const status = task.status
  const [contributed, consensus, revealed, finalized, claimed, reelected] = await Promise.all([
    inRanges(async (a, b) => await hub.queryFilter(hub.filters.TaskContributed(id), a, b)),
    inRanges(async (a, b) => await hub.queryFilter(hub.filters.TaskConsensus(id), a, b)),
    inRanges(async (a, b) => await hub.queryFilter(hub.filters.TaskRevealed(id), a, b)),
    inRanges(async (a, b) => await hub.queryFilter(hub.filters.TaskFinalized(id), a, b)),
    inRanges(async (a, b) => await hub.queryFilter(hub.filters.TaskClaimed(id), a, b)),
    inRanges(async (a, b) => await hub.queryFilter(hub.filters.SchedulerReelected(dealId), a, b))
  ])
  const initialized = await inRanges(async (a, b) => await hub.queryFilter(hub.filters.TaskInitialized(id), a, b))
  const callbackAddress = getAddress(info.callback)
  const callbackCalls = callbackAddress !== ZERO_ADDRESS ? await inRanges(async (a, b) => await hub.queryFilter(hub.filters.CallbackCalled(id), a, b)) : []

  // block times: one read per distinct block
  const blockTimes = new Map<number, number>()
  const at = async (log: { blockNumber: number, getBlock: () => Promise<{ timestamp: number }> }): Promise<number> => {
    let t = blockTimes.get(log.blockNumber)
    if (t === undefined) {
      t = (await log.getBlock()).timestamp * 1000
      blockTimes.set(log.blockNumber, t)
    }
    return t
  }
  const events: TaskEventView[] = []
  if (mine !== undefined) {
    events.push({ name: 'requested', at: mine.requestedAt })
    if (mine.firstBidMs !== null) events.push({ name: 'first-bid', at: mine.requestedAt + mine.firstBidMs })
  }
  // chain events in chain order (block, then log index): block times have whole-second resolution
  const chainEvents: Array<TaskEventView & { logIndex: number }> = []
  const push = async (name: TaskEventView['name'], logs: ReadonlyArray<{ blockNumber: number, index: number, transactionHash: string, args?: unknown, getBlock: () => Promise<{ timestamp: number }> }>, worker?: (args: unknown) => string): Promise<void> => {
    for (const log of logs) {
      chainEvents.push({
        name, at: await at(log), block: log.blockNumber, logIndex: log.index, txHash: log.transactionHash,
        ...(worker !== undefined ? { worker: worker(log.args) } : {})
      })
    }
  }
  const workerOf = (args: unknown): string => getAddress(String((args as { worker: string }).worker))
  await push('deal', [deal])
  await push('reelected', reelected)
  await push('initialized', initialized)
  await push('contributed', contributed, workerOf)
  await push('consensus', consensus)
  await push('revealed', revealed, workerOf)
  await push('finalized', finalized)
  await push('claimed', claimed)
  chainEvents.sort((a, b) => (a.block ?? 0) - (b.block ?? 0) || a.logIndex - b.logIndex)
  // the requester's own steps come before the deal they led to
  for (const { logIndex: _, ...e } of chainEvents) events.push(e)

  const statusName = taskStatusName(status)
  const fin = finalized[finalized.length - 1]
  const resultsCid: string | null = fin !== undefined ? fin.args.resultsCid : null
  let phase: TaskPhase
  if (statusName === 'COMPLETED') phase = 'finalized'
  else if (statusName === 'FAILED' || claimed.length > 0) phase = 'failed'
  else if (statusName === 'REVEALING') phase = 'revealing'
  else if (statusName === 'ACTIVE') phase = contributed.length > 0 ? 'consensus' : 'running'
  // past the final deadline nothing can finalize it any more: the requester claims a refund
  else phase = Date.now() / 1000 > Number(info.finalDeadline) ? 'failed' : 'scheduling'

  const workers = [...info.workers].map((w: string) => getAddress(w))
  let failure: TaskStatusView['failure'] = null
  if (phase !== 'finalized' && failures !== undefined) {
    const { reports } = await failures(id, workers)
    const summary = summarizeFailures(reports, { workers: workers.length, needed: workersForTrust(Number(info.trust)), contributions: contributed.length, finalDeadline: Number(info.finalDeadline) })
    if (summary !== null) {
      failure = summary
      if (contributed.length === 0 && (phase === 'scheduling' || phase === 'running')) phase = 'failing'
    }
  }

  return {
    taskId: id,
    dealId,
    idx,
    status: statusName,
    phase,
    app: getAddress(info.app),
    dataset: getAddress(info.dataset),
    requester: getAddress(deal.args.requester),
    scheduler: getAddress(current.scheduler),
    workers,
    trust: Number(info.trust),
    contributions: contributed.length,
    reveals: Math.max(Number(task.reveals), revealed.length),
    resultCid: resultsCid,
    resultHash: fin !== undefined ? fin.args.resultHash : null,
    callback: callbackAddress === ZERO_ADDRESS
      ? null
      : { address: callbackAddress, success: callbackCalls.length > 0 ? Boolean(callbackCalls[callbackCalls.length - 1].args.success) : null },
    deadlines: { contribution: Number(info.contributionDeadline), final: Number(info.finalDeadline) },
    times: taskTimes(events),
    events,
    failure
  }
}
