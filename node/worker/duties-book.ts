import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { AssignMessage } from '../../protocols/execution.js'
import type { FailureReport } from '../../protocols/failure-report.js'

/** Where a task stands on this worker; only moves forward (failed aside). */
export type WorkerTaskState = 'assigned' | 'computed' | 'contributed' | 'revealed' | 'done' | 'failed'

/** What the worker keeps per task in level: enough to resume after a restart. */
export interface WorkerTaskRecord {
  taskid: string
  dealid: string
  idx: number
  trust: number
  /** peer id of the scheduler that assigned it (heartbeats and reports go there) */
  schedulerPeer: string
  authorization: string
  app: string
  appCid: string
  appChecksum: string
  params: string
  resultEncryptionKey?: string
  /** the dataset as registered on the hub (plaintext sha256 checksum) */
  dataset?: { address: string, cid: string, checksum: string }
  state: WorkerTaskState
  digest?: string
  /** computed.json's callback-data: what finalize passes to the request's callback (the digest is its keccak256) */
  callbackData?: string
  resultsCid?: string
  txHash?: string
  error?: string
  /** why it failed, as a code (what the scheduler is told): callers branch on this, never on `error` */
  errorCode?: string
  /** with state 'failed': the signed report the requester's node asks for (protocols/failure-report.ts) */
  failureReport?: FailureReport
}

/** Checks a value read from level is a task record. */
export function checkRecord (v: unknown): WorkerTaskRecord {
  const r = v as WorkerTaskRecord
  if (typeof r !== 'object' || r === null || typeof r.taskid !== 'string' || typeof r.state !== 'string') throw new Error('not a worker task record')
  return r
}

/** A task's folder on this worker and its output folder inside it. */
export function taskDirs (workDir: string, taskid: string): { root: string, output: string } {
  const root = join(workDir, taskid)
  return { root, output: join(root, 'out') }
}

/** What the book needs of level (the db's KeySetRepository<WorkerTaskRecord> fits). */
export interface TaskStore {
  load: () => Promise<void>
  entries: () => AsyncIterable<{ key: string, value: WorkerTaskRecord }>
  get: (key: string) => Promise<WorkerTaskRecord | undefined>
  put: (key: string, value: WorkerTaskRecord) => Promise<void>
  batch: (ops: Array<{ type: 'put', key: string, value: WorkerTaskRecord }>) => Promise<void>
}

/** What the other parts read and write of the book. */
export interface TaskRecords {
  /** a task's record: from memory while the task is open, else from level */
  record: (taskid: string) => Promise<WorkerTaskRecord | undefined>
  /** writes a record after every earlier write of it; a closed task's folder goes */
  save: (r: WorkerTaskRecord) => Promise<void>
}

export interface TaskBookInit {
  store: TaskStore
  /** scratch space: one folder per task, removed when the task closes */
  workDir: string
  /** tasks held uncomputed at most (maxConcurrentTasks x TASKS_PER_CPU) */
  maxHeld: () => number
  /** test-only: holds a commit's written 'done' records this long before memory follows them */
  holdCommitRecordMs?: number
  log: (msg: string, context?: Record<string, unknown>) => void
}

/**
 * The tasks this worker holds and their records. Level is written through;
 * the records of tasks not yet done or failed are also held in memory.
 */
export class TaskBook implements TaskRecords {
  /**
   * Records of the tasks not yet done or failed, as level holds them
   * (written through): the tick's work list, and what each step reads
   * instead of level (a bag read every task's record from level at each of
   * its steps). The store keeps its keys in memory, so a task this worker
   * never had costs no read either.
   */
  private readonly open = new Map<string, WorkerTaskRecord>()
  /** tasks assigned and not yet computed (running or waiting their turn), by deal; a computed task waiting for its transaction holds no CPU */
  private readonly active = new Map<string, string>()
  /**
   * Per task, the end of the last write of its record: a read-modify-write
   * (a resent assign, a finalized message) waits for the writes before it,
   * so it never writes back a state the commit has just left (a resent
   * assign that read 'computed' while the commit wrote 'done' would put the
   * task back to 'computed', and its transaction would never be recorded).
   */
  private readonly writes = new Map<string, Promise<void>>()

  constructor (private readonly init: TaskBookInit) {}

  /** Loads the tasks of an earlier run that are not closed. */
  async load (): Promise<void> {
    await this.init.store.load()
    for await (const { value } of this.init.store.entries()) {
      if (value.state !== 'done' && value.state !== 'failed') this.open.set(value.taskid, value)
      if (value.state === 'assigned') this.active.set(value.taskid, value.dealid)
    }
  }

  /** Open tasks (held in memory) by state (metrics). */
  stateCounts (): Record<string, number> {
    const out: Record<string, number> = {}
    for (const r of this.open.values()) out[r.state] = (out[r.state] ?? 0) + 1
    return out
  }

  /** Tasks assigned and not yet computed: the capacity they hold. */
  activeCount (): number {
    return this.active.size
  }

  /** The ids of the tasks not yet done or failed. */
  openTasks (): string[] {
    return [...this.open.keys()]
  }

  /** The deals with a task assigned and not yet computed here. */
  computingDeals (): Set<string> {
    return new Set(this.active.values())
  }

  /** Whether the deal has a task assigned and not yet computed here. */
  isComputing (dealid: string): boolean {
    return [...this.active.values()].includes(dealid)
  }

  async record (taskid: string): Promise<WorkerTaskRecord | undefined> {
    return this.open.get(taskid) ?? await this.init.store.get(taskid)
  }

  async save (r: WorkerTaskRecord): Promise<void> {
    await this.writing([r.taskid], async () => {
      await this.init.store.put(r.taskid, r)
      this.follow(r)
    })
    await this.freeDisk(r)
  }

  /**
   * Rewrites a task's record from its state at the time of the write (the
   * read happens after every earlier write of it); `change` answers the new
   * record, or undefined to leave it.
   */
  async update (taskid: string, change: (r: WorkerTaskRecord) => WorkerTaskRecord | undefined): Promise<WorkerTaskRecord | undefined> {
    const next = await this.writing([taskid], async () => {
      const r = await this.record(taskid)
      const n = r === undefined ? undefined : change(r)
      if (n !== undefined) {
        await this.init.store.put(n.taskid, n)
        this.follow(n)
      }
      return n
    })
    if (next !== undefined) await this.freeDisk(next)
    return next
  }

  /** A commit's 'done' records: written in one batch, followed in memory before any later write of them. */
  async commitRecords (done: WorkerTaskRecord[]): Promise<void> {
    await this.writing(done.map((r) => r.taskid), async () => {
      await this.init.store.batch(done.map((r) => ({ type: 'put' as const, key: r.taskid, value: r })))
      const hold = this.init.holdCommitRecordMs ?? 0
      if (hold > 0) await sleep(hold)
      for (const r of done) this.follow(r)
    })
  }

  /** A closed task's inputs and outputs are in Helia or no longer needed: its folder goes. */
  async freeDisk (r: WorkerTaskRecord): Promise<void> {
    if (r.state === 'done' || r.state === 'failed') await rm(taskDirs(this.init.workDir, r.taskid).root, { recursive: true, force: true }).catch(() => {})
  }

  /**
   * Takes the tasks of a checked `assign` in order while this worker has
   * room (its uncomputed tasks under maxHeld); a task it already holds (a
   * resend, a new scheduler after reelection) counts as taken and is never
   * started twice. `tasks` are the message's, with their ids; `start` is
   * called for each task taken. Answers how many it took.
   */
  async admit (m: AssignMessage, tasks: Array<{ taskid: string, idx: number, authorization: string }>, from: string, start: (taskid: string) => void): Promise<number> {
    const dealid = m.dealid.toLowerCase()
    let accepted = 0
    // the new tasks' records go to level in one batch
    const taken: WorkerTaskRecord[] = []
    for (const t of tasks) {
      const existing = await this.record(t.taskid)
      if (existing !== undefined && existing.state !== 'failed') {
        // the same task again: never start it twice; before the commit the new scheduler's authorization
        // replaces the old one. Read at the write: a commit may have closed it since `existing` was read
        await this.update(t.taskid, (now) => now.state === 'assigned' || now.state === 'computed'
          ? { ...now, authorization: t.authorization, schedulerPeer: from }
          : now.state !== 'failed' && now.schedulerPeer !== from ? { ...now, schedulerPeer: from } : undefined)
        start(t.taskid)
        accepted++
        continue
      }
      if (this.active.size + taken.length >= this.init.maxHeld()) break
      taken.push({
        taskid: t.taskid,
        dealid,
        idx: t.idx,
        trust: m.trust,
        schedulerPeer: from,
        authorization: t.authorization,
        app: m.app,
        appCid: m.appContent.cid,
        appChecksum: m.appContent.checksum.toLowerCase(),
        params: m.params,
        ...(m.resultEncryptionKey !== undefined ? { resultEncryptionKey: m.resultEncryptionKey } : {}),
        ...(m.dataset !== undefined ? { dataset: { address: m.dataset.address, cid: m.dataset.cid, checksum: m.dataset.checksum.toLowerCase() } } : {}),
        state: 'assigned'
      })
      accepted++
    }
    if (taken.length > 0) await this.init.store.batch(taken.map((r) => ({ type: 'put' as const, key: r.taskid, value: r })))
    for (const r of taken) {
      this.follow(r)
      await this.freeDisk(r)
      this.init.log('task assigned', { taskid: r.taskid, dealid: m.dealid, idx: r.idx })
      start(r.taskid)
    }
    return accepted
  }

  /** Runs `fn` (which writes these tasks' records) after every earlier write of them. */
  private async writing<T> (taskids: string[], fn: () => Promise<T>): Promise<T> {
    const before = Promise.all(taskids.map((id) => this.writes.get(id)))
    const run = before.then(fn)
    const end = run.then(() => undefined, () => undefined)
    for (const id of taskids) this.writes.set(id, end)
    void end.then(() => { for (const id of taskids) if (this.writes.get(id) === end) this.writes.delete(id) })
    return await run
  }

  /** The in-memory sets follow a written record's state. */
  private follow (r: WorkerTaskRecord): void {
    if (r.state === 'done' || r.state === 'failed') this.open.delete(r.taskid)
    else this.open.set(r.taskid, r)
    if (r.state === 'assigned') this.active.set(r.taskid, r.dealid)
    else this.active.delete(r.taskid)
  }
}
