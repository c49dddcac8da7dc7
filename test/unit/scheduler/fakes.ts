// Shared fixtures of the scheduler's unit tests: deals, records and the
// small fakes of the narrow interfaces each part takes.
import { taskId } from '../../../protocols/eip712.js'
import type { DealInfo } from '../../../node/chain/deal.js'
import type { KnownDeal, ScheduledTask, Replica } from '../../../node/scheduler/records.js'
import type { DealState, TaskState } from '../../../node/scheduler/hub-view.js'

export const ME = '0x000000000000000000000000000000000000000A'
export const OTHER = '0x000000000000000000000000000000000000000B'
export const W1 = '0x0000000000000000000000000000000000000001'
export const W2 = '0x0000000000000000000000000000000000000002'
export const W3 = '0x0000000000000000000000000000000000000003'
export const ZERO = '0x0000000000000000000000000000000000000000'
export const DEAL = '0x' + 'd1'.repeat(32)

/** worker address -> peer id, as resolvePeer answers */
export const peerOf = (w: string): string => `peer-${w.slice(-1)}`

export function dealInfo (over: Partial<DealInfo> = {}): DealInfo {
  return {
    dealid: DEAL,
    requestHash: '0x' + '02'.repeat(32),
    scheduler: ME,
    requester: '0x00000000000000000000000000000000000000Ee',
    app: '0x00000000000000000000000000000000000000A1',
    dataset: ZERO,
    workers: [W1, W2, W3],
    callback: ZERO,
    params: '{}',
    volume: 1,
    trust: 1,
    category: 0,
    workerPrice: '1',
    startTime: 1_000,
    contributionDeadline: 2_000,
    finalDeadline: 5_000,
    ...over
  }
}

export function knownDeal (over: Partial<DealInfo> = {}, rest: Partial<KnownDeal> = {}): KnownDeal {
  const deal = dealInfo(over)
  return { deal, appCid: 'bafyapp', appChecksum: '0x' + '00'.repeat(32), timeRef: 100, done: false, scheduler: deal.scheduler, ...rest }
}

export const tid = (idx: number, dealid = DEAL): string => taskId(dealid, idx).toLowerCase()

export function task (idx: number, replicas: Replica[] = [], over: Partial<ScheduledTask> = {}): ScheduledTask {
  return { taskid: tid(idx), dealid: DEAL, idx, replicas, closed: false, ...over }
}

export function replica (worker: string, over: Partial<Replica> = {}): Replica {
  return { worker, peer: peerOf(worker), assignedAt: 1_100, dead: false, contributed: false, ...over }
}

export function dealState (over: Partial<DealState> = {}): DealState {
  return { done: 0n, volume: 1n, scheduler: ME, schedulerLocked: 0n, schedulerActive: 1_000n, initialized: 0n, ...over }
}

export function taskState (over: Partial<TaskState> = {}): TaskState {
  return { status: 0n, reveals: 0n, winners: 0n, revealDeadline: 0n, consensus: '0x' + '00'.repeat(32), ...over }
}

/** A log that keeps its lines, for assertions on what was reported. */
export function recordingLog (): { log: (msg: string, context?: Record<string, unknown>) => void, lines: string[] } {
  const lines: string[] = []
  return { log: (msg) => { lines.push(msg) }, lines }
}

/** A clock the test moves. */
export function fakeClock (start = 1_000_000): { now: () => number, advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => { t += ms } }
}

/** A task-record store with the deal book's task methods (copies in and out, as the real one). */
export class FakeTasks {
  readonly recs = new Map<string, ScheduledTask>()
  puts: ScheduledTask[] = []
  async peekTask (taskid: string): Promise<ScheduledTask | undefined> { return this.recs.get(taskid) }
  async getTask (taskid: string): Promise<ScheduledTask | undefined> {
    const r = this.recs.get(taskid)
    return r === undefined ? undefined : structuredClone(r)
  }

  async putTask (taskid: string, rec: ScheduledTask): Promise<void> {
    this.recs.set(taskid, structuredClone(rec))
    this.puts.push(structuredClone(rec))
  }

  async closeTask (taskid: string): Promise<boolean> {
    const r = this.recs.get(taskid)
    if (r === undefined || r.closed) return false
    await this.putTask(taskid, { ...r, closed: true })
    return true
  }
}
