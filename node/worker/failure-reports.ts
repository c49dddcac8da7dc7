/**
 * Both ends of the failure-report protocol (protocols/failure-report.ts):
 * the worker's stream handler, which answers the signed report it keeps
 * with a failed task, and the requester's collector, which asks the deal's
 * workers, checks every answer and sums them up for `task show`,
 * `task submit --watch` and `task logs`.
 */
import type { Stream, StreamHandler } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import {
  DETERMINISTIC_FAILURE_CODES, FAILURE_REPORT_MAX_MESSAGE_BYTES, FAILURE_REPORT_PROTOCOL, decodeFailureReportRequest, decodeFailureReportResponse,
  FailureReportError, encodeFailureReportRequest, encodeFailureReportResponse, failureKey, failureReportContext, verifyFailureReport
} from '../../protocols/failure-report.js'
import type { FailureReport, FailureReportResponse } from '../../protocols/failure-report.js'
import type { HubDomain } from '../../protocols/eip712.js'
import { isIexecError } from '../common/errors.js'
import { eciesDecrypt } from '../storage/ecies.js'
import type { EciesPrivateKey } from '../storage/ecies.js'

/** Bound of one exchange, either side. */
export const FAILURE_REPORT_TIMEOUT_MS = 5_000

/**
 * The worker's handler: one `{ taskid }`, one answer (its signed report, or
 * NO_FAILURE while it holds none), bounded in size and time.
 */
export function createFailureReportHandler (lookup: (taskid: string) => Promise<FailureReport | undefined>): StreamHandler {
  return async (stream) => {
    const signal = AbortSignal.timeout(FAILURE_REPORT_TIMEOUT_MS)
    const lp = lpStream(stream, { maxDataLength: FAILURE_REPORT_MAX_MESSAGE_BYTES })
    try {
      const bytes = await lp.read({ signal })
      let answer: FailureReportResponse
      try {
        const taskid = decodeFailureReportRequest(bytes.subarray())
        const report = await lookup(taskid)
        answer = report !== undefined ? { ok: true, report } : { ok: false, code: 'NO_FAILURE', reason: 'this worker reports no failure of the task' }
      } catch (err) {
        if (!isIexecError(err)) throw err
        answer = { ok: false, code: 'BAD_REQUEST', reason: err.message.slice(0, 200) }
      }
      await lp.write(encodeFailureReportResponse(answer), { signal })
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }
}

/** Opens a stream to one peer on a protocol. */
export type FailureReportDialer = (peer: string, protocol: string, options: { signal: AbortSignal }) => Promise<Stream>

/** Asks one peer for its report of a task; the answer decoded (not yet verified). */
export async function askFailureReport (dial: FailureReportDialer, peer: string, taskid: string, timeoutMs = FAILURE_REPORT_TIMEOUT_MS): Promise<FailureReportResponse> {
  const signal = AbortSignal.timeout(timeoutMs)
  const stream = await dial(peer, FAILURE_REPORT_PROTOCOL, { signal })
  try {
    const lp = lpStream(stream, { maxDataLength: FAILURE_REPORT_MAX_MESSAGE_BYTES })
    await lp.write(encodeFailureReportRequest(taskid), { signal })
    let bytes
    try {
      bytes = await lp.read({ signal })
    } catch (err) {
      // a peer announcing a longer answer than the bound: refused before it is read
      if (err instanceof Error && /DataLength/.test(err.name)) throw new FailureReportError('FAILURE_REPORT_TOO_LARGE', `the answer exceeds ${FAILURE_REPORT_MAX_MESSAGE_BYTES} bytes`, {}, { cause: err })
      throw err
    }
    const answer = decodeFailureReportResponse(bytes.subarray())
    await stream.close({ signal }).catch(() => {})
    return answer
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}

/** One worker's failure as the requester's node shows it. */
export interface WorkerFailureView {
  worker: string
  code: string
  exitCode: number | null
  /** the stderr tail as text (decrypted when it was sealed to this node); null when sealed to another key */
  stderr: string | null
  stderrEncrypted: boolean
  /** bytes the app wrote to stderr in all (the tail is at most MAX_STDERR_TAIL_BYTES of them) */
  stderrBytes: number
  /** unix seconds the worker signed the report */
  at: number
}

/** A worker whose report could not be had or was refused. */
export interface WorkerReportError {
  worker: string
  /** FAILURE_REPORT_* for a refused report; PEER_NOT_FOUND, UNREACHABLE otherwise */
  code: string
  reason: string
}

/** What the requester's node knows of a task's failures. */
export interface TaskFailureSummary {
  /** the workers' reports, verified */
  reports: WorkerFailureView[]
  /** the deal's workers asked, and those that reported */
  workers: number
  /**
   * Reports of one deterministic failure (same code; same exit code for
   * APP_ERROR) from `needed` distinct workers (as many as would agree on a
   * result), and no contribution on
   * chain: waiting for the final deadline changes nothing.
   */
  agreed: boolean
  /** distinct workers that must agree: as many as a result's consensus needs at the deal's trust (workersForTrust), at most the deal's workers */
  needed: number
  /** the most reported failure: its code and exit code */
  code: string
  exitCode: number | null
  /** one line for people, e.g. "APP_ERROR (exit code 3) reported by 2 of 3 workers" */
  reason: string
  /** unix seconds after which the task can be claimed and the requester refunded (the deal's final deadline) */
  refundAfter: number
}

/** The agreement of a set of verified reports (see TaskFailureSummary). */
export function summarizeFailures (reports: WorkerFailureView[], deal: { workers: number, needed: number, contributions: number, finalDeadline: number }): TaskFailureSummary | null {
  if (reports.length === 0) return null
  const byKey = new Map<string, WorkerFailureView[]>()
  for (const r of reports) {
    const k = failureKey(r)
    byKey.set(k, [...(byKey.get(k) ?? []), r])
  }
  const [, top] = [...byKey.entries()].sort((a, b) => b[1].length - a[1].length)[0]
  const first = top[0]
  const needed = Math.max(1, Math.min(deal.needed, deal.workers))
  const agreed = deal.contributions === 0 && DETERMINISTIC_FAILURE_CODES.has(first.code) && top.length >= needed
  const exit = first.exitCode !== null ? ` (exit code ${first.exitCode})` : ''
  return {
    reports,
    workers: deal.workers,
    agreed,
    needed,
    code: first.code,
    exitCode: first.exitCode,
    reason: `${first.code}${exit} reported by ${top.length} of ${deal.workers} worker(s)`,
    refundAfter: deal.finalDeadline
  }
}

export interface FailureCollectorInit {
  domain: HubDomain
  /** the requester's result key: opens stderr tails sealed to it */
  privateKey: EciesPrivateKey
  /** a worker address's peer id (the scheduler's resolver) */
  resolve: (address: string) => Promise<string | undefined>
  dial: FailureReportDialer
  /** how long an answer without a report is kept before the worker is asked again */
  missTtlMs?: number
  /**
   * Workers asked per second at most, over every task: a watched bag of
   * hundreds of tasks would otherwise open a stream per worker and task at
   * each poll. Those left out are asked at a later call.
   */
  maxAsksPerSecond?: number
  /** how long a collect waits for its asks before answering with what it has (default 3 s) */
  budgetMs?: number
  /** this node's own worker: its reports are read, not dialled for */
  self?: { address: string, report: (taskid: string) => Promise<FailureReport | undefined> }
}

/**
 * The requester's node's collection: asks each of a task's workers at most
 * once per missTtlMs, keeps the verified reports (a failure is final for
 * that worker and task), and keeps a bounded number of tasks.
 */
export class FailureCollector {
  private readonly reports = new Map<string, Map<string, FailureReport>>()
  private readonly asked = new Map<string, { at: number, error?: WorkerReportError }>()
  private readonly missTtlMs: number
  private readonly maxAsks: number
  private readonly budgetMs: number
  /** asks in the current one-second window */
  private window = { start: 0, asks: 0 }

  constructor (private readonly init: FailureCollectorInit) {
    this.missTtlMs = init.missTtlMs ?? 2_000
    this.maxAsks = init.maxAsksPerSecond ?? 20
    this.budgetMs = init.budgetMs ?? 3_000
  }

  /** One more ask within the rate bound? */
  private mayAsk (now: number): boolean {
    if (now - this.window.start >= 1_000) this.window = { start: now, asks: 0 }
    if (this.window.asks >= this.maxAsks) return false
    this.window.asks++
    return true
  }

  /** The verified reports of the task's workers, asking those not heard from lately. */
  async collect (taskid: string, workers: readonly string[]): Promise<{ reports: WorkerFailureView[], errors: WorkerReportError[] }> {
    const id = taskid.toLowerCase()
    let got = this.reports.get(id)
    if (got === undefined) {
      if (this.reports.size >= 1_000) this.reports.clear()
      got = new Map()
      this.reports.set(id, got)
    }
    const have = got
    const now = Date.now()
    const asks = Promise.all(workers.map(async (worker) => {
      const w = worker.toLowerCase()
      if (have.has(w)) return
      const key = `${id}|${w}`
      const last = this.asked.get(key)
      if (last !== undefined && now - last.at < this.missTtlMs) return
      if (!this.mayAsk(now)) return
      if (this.asked.size >= 10_000) this.asked.clear()
      // marked before the answer: a call meanwhile does not ask again
      this.asked.set(key, { at: now })
      const error = await this.ask(id, worker, workers, have)
      if (error !== undefined) this.asked.set(key, { at: now, error })
    }))
    // a slow peer look-up or dial does not hold `task show` up: its answer lands for the next call
    let timer: NodeJS.Timeout | undefined
    await Promise.race([asks, new Promise<void>((resolve) => { timer = setTimeout(resolve, this.budgetMs) })])
    clearTimeout(timer)
    const errors = workers.map((w) => this.asked.get(`${id}|${w.toLowerCase()}`)?.error).filter((e): e is WorkerReportError => e !== undefined && !have.has(e.worker.toLowerCase()))
    return { reports: [...have.values()].map((r) => this.view(r)), errors }
  }

  private async ask (taskid: string, worker: string, workers: readonly string[], into: Map<string, FailureReport>): Promise<WorkerReportError | undefined> {
    let answer: FailureReportResponse
    try {
      const self = this.init.self
      if (self !== undefined && self.address.toLowerCase() === worker.toLowerCase()) {
        const own = await self.report(taskid)
        answer = own !== undefined ? { ok: true, report: own } : { ok: false, code: 'NO_FAILURE', reason: '' }
      } else {
        const peer = await this.init.resolve(worker).catch(() => undefined)
        if (peer === undefined) return { worker, code: 'PEER_NOT_FOUND', reason: 'no peer is known for this worker' }
        answer = await askFailureReport(this.init.dial, peer, taskid)
      }
    } catch (err) {
      if (isIexecError(err)) return { worker, code: err.code, reason: err.message }
      return { worker, code: 'UNREACHABLE', reason: err instanceof Error ? err.message : String(err) }
    }
    if (!answer.ok) return undefined
    try {
      const report = verifyFailureReport(this.init.domain, answer.report, { taskid, workers })
      // a peer may answer for another worker: kept under the signer's address, which the check proved
      into.set(report.worker.toLowerCase(), report)
    } catch (err) {
      if (isIexecError(err)) return { worker, code: err.code, reason: err.message }
      throw err
    }
    return undefined
  }

  private view (r: FailureReport): WorkerFailureView {
    let stderr: string | null
    const bytes = Buffer.from(r.stderr, 'base64')
    if (r.stderrEncrypted) {
      try {
        stderr = Buffer.from(eciesDecrypt(this.init.privateKey, bytes, failureReportContext(r.taskid, r.worker))).toString('utf8')
      } catch {
        stderr = null
      }
    } else {
      stderr = bytes.toString('utf8')
    }
    return { worker: r.worker, code: r.code, exitCode: r.exitCode, stderr, stderrEncrypted: r.stderrEncrypted, stderrBytes: r.stderrBytes, at: r.at }
  }
}
