import type { HeartbeatMessage } from '../../protocols/execution.js'
import type { SchedulerOptions } from './options.js'
import type { KnownDeal, Log, ScheduledTask } from './records.js'

/** Statuses a worker reports once a task's result is computed: its slot is free for another task. */
const COMPUTED: ReadonlySet<string> = new Set(['contributing', 'contributed', 'revealing', 'revealed', 'uploading', 'done'])

export interface LivenessInit {
  /** unix ms */
  clock: () => number
  options: Pick<SchedulerOptions, 'heartbeatIntervalMs' | 'missedBeats' | 'resendMs'>
  log: Log
}

/**
 * What the scheduler knows of its replicas between chain reads, in memory
 * only (after a restart every replica starts fresh): the workers'
 * heartbeats, the failures and computed results they report, and when each
 * message (assign, reveal request) was last sent, for resends. Keys are
 * `taskid:peer`.
 */
export class Liveness {
  /** last heartbeat per (taskid, peer) */
  private readonly beats = new Map<string, number>()
  /** failures reported by heartbeat per (taskid, peer), until the next tick records them */
  private readonly failed = new Map<string, string>()
  /** last time a message was sent per (kind, taskid, peer), for resends */
  private readonly sent = new Map<string, number>()
  /** (taskid, peer) of replicas whose worker reported the result computed: they hold no slot */
  private readonly computed = new Set<string>()

  constructor (private readonly init: LivenessInit) {}

  /** Records a heartbeat from `from`; true when it freed a worker's slot (a failure, a computed result): tick now. */
  onHeartbeat (m: HeartbeatMessage, from: string): boolean {
    let freed = false
    for (const t of m.tasks) {
      const key = `${t.taskid.toLowerCase()}:${from}`
      this.beats.set(key, this.init.clock())
      if (t.status === 'failed') {
        // the replica is out now, not after missedBeats: the next tick assigns another worker
        if (this.failed.size < 10_000) this.failed.set(key, t.code ?? 'DUTY_FAILED')
        freed = true
      } else if (COMPUTED.has(t.status) && !this.computed.has(key) && this.computed.size < 100_000) {
        // computed: the worker's CPU is free for another task while its commit waits for the chain
        this.computed.add(key)
        freed = true
      }
    }
    return freed
  }

  /** Marks replicas that failed, missed their beats or outlived a time reference pending as dead. */
  expire (known: KnownDeal, rec: ScheduledTask, now: number): void {
    const { clock, options: o, log } = this.init
    const limit = o.missedBeats * o.heartbeatIntervalMs
    for (const r of rec.replicas) {
      if (r.dead || r.contributed) continue
      const key = `${rec.taskid}:${r.peer}`
      const failure = this.failed.get(key)
      if (failure !== undefined) {
        this.failed.delete(key)
        r.dead = true
        r.failure = failure
        r.failures = (r.failures ?? 0) + 1
        log('worker reported the task failed: replica dropped', { taskid: rec.taskid, worker: r.worker, code: failure, failures: r.failures })
        continue
      }
      const last = this.beats.get(key)
      if (last === undefined) {
        // first sight (assignment, or a restart): the clock starts now
        this.beats.set(key, clock())
        continue
      }
      if (clock() - last > limit) {
        r.dead = true
        log('worker missed its heartbeats: replica dropped', { taskid: rec.taskid, worker: r.worker })
      } else if (now - r.assignedAt >= known.timeRef) {
        r.dead = true
        log('pending replica outlived one time reference', { taskid: rec.taskid, worker: r.worker })
      }
    }
  }

  /** Whether the assignment of `taskid` to `peer` was never sent, or not for resendMs. */
  assignDue (taskid: string, peer: string): boolean {
    const last = this.sent.get(`assign:${taskid}:${peer}`)
    return last === undefined || this.init.clock() - last >= this.init.options.resendMs
  }

  /** An assignment goes out: its resend and heartbeat clocks start, and it holds a slot until computed. */
  assigned (taskid: string, peer: string): void {
    const now = this.init.clock()
    this.sent.set(`assign:${taskid}:${peer}`, now)
    this.beats.set(`${taskid}:${peer}`, now)
    this.computed.delete(`${taskid}:${peer}`)
  }

  /** Whether the worker reported the task computed (its slot is free while its transaction waits). */
  isComputed (taskid: string, peer: string): boolean {
    return this.computed.has(`${taskid}:${peer}`)
  }

  /** True (and the send recorded) when a reveal request to `peer` is due: never sent, or not for resendMs. */
  revealDue (taskid: string, peer: string): boolean {
    const key = `reveal:${taskid}:${peer}`
    const last = this.sent.get(key)
    if (last !== undefined && this.init.clock() - last < this.init.options.resendMs) return false
    this.sent.set(key, this.init.clock())
    return true
  }

  /** Records that a finalize of an earlier run waits in the pool; true the first time (worth a log line). */
  finalizePending (taskid: string): boolean {
    const key = `finalize-pending:${taskid}`
    const first = !this.sent.has(key)
    this.sent.set(key, this.init.clock())
    return first
  }

  /** A closed task: nothing more is sent or expected for it. */
  forgetTask (taskid: string, peers: string[]): void {
    for (const peer of peers) {
      const key = `${taskid}:${peer}`
      this.beats.delete(key)
      this.computed.delete(key)
      this.failed.delete(key)
      for (const kind of ['assign', 'reveal']) this.sent.delete(`${kind}:${key}`)
    }
    this.sent.delete(`finalize-pending:${taskid}`)
  }
}
