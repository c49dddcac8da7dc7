import { MAX_REPORT_TASKS } from '../../protocols/execution.js'
import type { ExecMessage, TaskProgress, TaskReport } from '../../protocols/execution.js'
import type { FailureReport, FailureReportFields } from '../../protocols/failure-report.js'
import { isIexecError } from '../common/errors.js'
import type { TaskRecords, WorkerTaskRecord } from './duties-book.js'

/** A failed task's reason as a wire code: the executor's status for a run that did not complete, else the error's code. */
export function failureCode (err: unknown): string {
  if (isIexecError(err, 'DUTY_EXECUTION_FAILED') && typeof err.details?.status === 'string') return err.details.status
  const code = isIexecError(err) ? err.code : 'DUTY_FAILED'
  return /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'DUTY_FAILED'
}

/** What the other parts tell the scheduler through the reporter. */
export interface StatusReports {
  /** records what the task's scheduler is told; `soon` sends it within reportDelayMs instead of at the next beat */
  report: (r: WorkerTaskRecord, status: TaskProgress, soon?: boolean, code?: string) => void
}

/** How the other parts fail a task. */
export interface TaskFailures {
  /** records the task failed (with its signed report) and tells its scheduler at once */
  fail: (r: WorkerTaskRecord, err: unknown) => Promise<WorkerTaskRecord>
}

export interface ReporterInit {
  records: Pick<TaskRecords, 'save'>
  /** sends a heartbeat; a failure to send is the next beat's to mend */
  send: (peer: string, message: ExecMessage, signal: AbortSignal) => Promise<unknown>
  /** signs a failure report with this worker's wallet under the hub's domain */
  sign: (fields: FailureReportFields) => Promise<FailureReport>
  /** seals a stderr tail to the requester's result key, bound to the task and this worker */
  seal: (key: string, tail: Uint8Array, taskid: string) => Uint8Array
  /** this worker's address */
  me: string
  reportDelayMs: number
  /** stops sends in flight when the worker stops */
  signal: AbortSignal
  log: (msg: string, context?: Record<string, unknown>) => void
  now?: () => number
}

/**
 * What the scheduler of each task in hand is told, and why a task failed:
 * a status sent every beat in one heartbeat per scheduler, and at once
 * (coalesced over reportDelayMs) when a task is computed or failed; a
 * failed task's signed report, kept with its record for the requester.
 */
export class Reporter implements StatusReports, TaskFailures {
  private readonly reports = new Map<string, { peer: string, status: TaskProgress, code?: string }>()
  /** schedulers with a report due soon, and its timer */
  private readonly due = new Set<string>()
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly init: ReporterInit) {}

  report (r: WorkerTaskRecord, status: TaskProgress, soon = false, code?: string): void {
    this.reports.set(r.taskid, { peer: r.schedulerPeer, status, ...(code !== undefined ? { code } : {}) })
    if (!soon) return
    this.due.add(r.schedulerPeer)
    this.timer ??= setTimeout(() => {
      this.timer = undefined
      const peers = [...this.due]
      this.due.clear()
      this.send(peers)
    }, this.init.reportDelayMs)
  }

  /** Once committed (or failed) the chain speaks for the task: no more beats, but a failure not yet sent is still sent. */
  settle (taskid: string): void {
    if (this.reports.get(taskid)?.status !== 'failed') this.reports.delete(taskid)
  }

  /** Every beat: one heartbeat per scheduler with every task this worker holds for it. */
  beat (): void {
    this.send([...new Set([...this.reports.values()].map((v) => v.peer))])
  }

  /** Stops the pending report timer. */
  stop (): void {
    clearTimeout(this.timer)
  }

  async fail (r: WorkerTaskRecord, err: unknown): Promise<WorkerTaskRecord> {
    const failed: WorkerTaskRecord = { ...r, state: 'failed', error: err instanceof Error ? err.message : String(err), errorCode: failureCode(err) }
    failed.failureReport = await this.signFailure(failed, err).catch((e: unknown) => {
      this.init.log('failure report not signed', { taskid: r.taskid, error: e instanceof Error ? e.message : String(e) })
      return undefined
    })
    await this.init.records.save(failed)
    // the scheduler hears why at once: it need not wait for missed beats to count this replica out
    this.report(r, 'failed', true, failed.errorCode)
    this.init.log('task failed', { taskid: r.taskid, code: failed.errorCode, error: failed.error })
    return failed
  }

  /** Sends each of `peers` the reports of its tasks (split by MAX_REPORT_TASKS); a failure, once sent, is forgotten. */
  private send (peers: string[]): void {
    for (const peer of peers) {
      const tasks: TaskReport[] = []
      for (const [taskid, v] of this.reports) {
        if (v.peer !== peer) continue
        tasks.push({ taskid, status: v.status, ...(v.code !== undefined ? { code: v.code } : {}) })
        if (v.status === 'failed') this.reports.delete(taskid)
      }
      for (let i = 0; i < tasks.length; i += MAX_REPORT_TASKS) {
        void this.init.send(peer, { type: 'heartbeat', tasks: tasks.slice(i, i + MAX_REPORT_TASKS) }, this.init.signal).catch(() => {})
      }
    }
  }

  /**
   * The report the requester's node asks for: the failure code, the app's
   * exit code and its stderr tail (sealed to the requester's result key
   * when the request asks for encryption), signed by this worker.
   */
  private async signFailure (r: WorkerTaskRecord, err: unknown): Promise<FailureReport> {
    const d = isIexecError(err, 'DUTY_EXECUTION_FAILED') ? err.details ?? {} : {}
    const exitCode = typeof d.exitCode === 'number' ? d.exitCode : null
    let tail = d.stderrTail instanceof Uint8Array ? d.stderrTail : new Uint8Array(0)
    const sealed = r.resultEncryptionKey !== undefined
    if (sealed) tail = this.init.seal(r.resultEncryptionKey as string, tail, r.taskid)
    return await this.init.sign({
      taskid: r.taskid,
      worker: this.init.me,
      code: r.errorCode ?? 'DUTY_FAILED',
      exitCode,
      stderr: Buffer.from(tail).toString('base64'),
      stderrEncrypted: sealed,
      stderrBytes: typeof d.stderrBytes === 'number' ? d.stderrBytes : 0,
      at: Math.floor((this.init.now ?? Date.now)() / 1000)
    })
  }
}
