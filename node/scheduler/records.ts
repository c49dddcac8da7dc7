import type { DealInfo } from '../chain/deal.js'

/** One worker's copy of a task, as the scheduler tracks it. */
export interface Replica {
  worker: string
  peer: string
  /** chain time (s) of the assignment: a pending replica counts for one time reference only */
  assignedAt: number
  /** no heartbeat for missedBeats beats, refused, or unreachable: it no longer counts */
  dead: boolean
  /** its commit is on the hub (trust > 1) */
  contributed: boolean
  /** the worker reported the task failed (a heartbeat with status failed): its code, e.g. TIMEOUT */
  failure?: string
  /** how many times this worker reported this task failed; past maxFailuresPerWorker it is not asked again */
  failures?: number
}

/** The scheduler's record of one task (level: survives restarts). */
export interface ScheduledTask {
  taskid: string
  dealid: string
  idx: number
  replicas: Replica[]
  /** peer id that was asked to upload, and the CID it answered */
  resultsCid?: string
  /** the result's callback-data, for a deal with a callback (finalize passes it) */
  callbackData?: string
  /** completed or failed on the hub: nothing more to do */
  closed: boolean
}

/** The record of one deal this node knows (every node keeps them, for the watchdog). */
export interface KnownDeal {
  deal: DealInfo
  appCid: string
  appChecksum: string
  timeRef: number
  /** the dataset's content as registered, when the deal uses one */
  dataset?: { cid: string, checksum: string }
  /** every task completed or claimed */
  done: boolean
  /**
   * The deal's scheduler as this node last learned it (DealCreated, then
   * SchedulerReelected or a read of the hub's deal); unset in records of
   * earlier versions, which means `deal.scheduler`.
   */
  scheduler?: string
  /**
   * Chain time (s) from which this node, a worker of the deal, can take back
   * the stake still locked for contributions it never made (a spare
   * replica's): the deal's final deadline. Unset once released.
   */
  releaseAt?: number
}

export const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()
export const ZERO = '0x0000000000000000000000000000000000000000'

/** The deal's current scheduler as this node knows it. */
export function schedulerOf (known: KnownDeal): string {
  return known.scheduler ?? known.deal.scheduler
}

/** What the parts log through (the service's logger). */
export type Log = (msg: string, context?: Record<string, unknown>) => void

export function errorText (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
