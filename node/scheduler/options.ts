/**
 * Options of the scheduler service and the exec channel, with their reasons.
 */

export { defaultExecChannelOptions } from '../exec/options.js'
export type { ExecChannelOptions } from '../exec/options.js'

export interface SchedulerOptions {
  /** how often each deal's state is read from the hub and duties are done */
  tickMs: number
  /** the interval at which workers send heartbeats (the scheduler expects them this often) */
  heartbeatIntervalMs: number
  /** beats missed in a row before a worker's replica stops counting and the task is reassigned */
  missedBeats: number
  /** how often a message (assign, reveal request, upload request) is sent again while unanswered on chain */
  resendMs: number
  /** the watchdog's period: reelect / reelectForTask checks of every known deal */
  watchdogMs: number
  /** the tick reads a deal it schedules from the hub at least this often (events tell it what changed in between) */
  dealRefreshMs: number
  /** how old the latest block's timestamp may be when the tick and the watchdog compare it with deadlines */
  chainTimeMaxAgeMs: number
  /** how old a worker's on-chain score may be when the scheduler chooses workers and counts replicas */
  scoreMaxAgeMs: number
  /** deals followed at once (state kept for each) */
  maxDeals: number
  /** a worker's cpus when its advertised capacity is unknown (it is given TASKS_PER_CPU tasks per cpu: more would be refused as busy) */
  maxTasksPerWorker: number
  /** times a worker may report one task failed before it is not asked to run it again */
  maxFailuresPerWorker: number
  /**
   * Window over which the nodes spread their reelect / reelectForTask calls:
   * each waits its own offset in it (from a hash of its address and the deal)
   * after the scheduler became late, then checks again, so that the first
   * call is mined before the others fire and one reelection happens, not one per node.
   */
  reelectStaggerMs: number
}

export const defaultSchedulerOptions: SchedulerOptions = {
  // anvil mines in ~70 ms and a 1 s-block chain changes state once a second:
  // 250 ms reads keep the scheduler within a block of what happened
  tickMs: 250,
  // a beat every 2 s costs one tiny stream per running task and detects a dead
  // worker within missedBeats * 2 s
  heartbeatIntervalMs: 2_000,
  // never reassign on a single lost beat (a GC pause, a slow link): three in a row
  missedBeats: 3,
  // a lost message is retried, but not so often that a slow worker is flooded
  resendMs: 3_000,
  // reelection needs one time reference (minutes on real categories): 1 s checks are plenty
  watchdogMs: 1_000,
  // a missed SchedulerReelected or TaskFinalized event costs at most this much delay
  dealRefreshMs: 2_000,
  // under a block time of anvil's 1 s blocks; deadlines are a time reference (minutes) apart
  chainTimeMaxAgeMs: 200,
  // scores move by one per task with several contributors: a second-old one chooses as well
  scoreMaxAgeMs: 1_000,
  // each deal's state is a few records; 1000 bounds memory against a flood of deals
  maxDeals: 1_000,
  // the worker's default maxConcurrentTasks: assigning more only earns DUTY_BUSY refusals
  maxTasksPerWorker: 2,
  // once more after a failure (a fetch that timed out may pass the second
  // time); a third run of an app that times out or breaks its sandbox only
  // burns the worker's time until the deadline
  maxFailuresPerWorker: 2,
  // more than a block time of public chains (12 s), well under a time reference (minutes)
  reelectStaggerMs: 15_000
}
