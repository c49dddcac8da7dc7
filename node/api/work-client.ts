/**
 * The work API of the seed (XtremWeb-HEP, as iExec's first Solidity API
 * exposed it), as a client of a running node's local API. The node keeps the
 * works (level store), submits them to the market and fetches their results;
 * statuses, parameters and the result pattern are documented in
 * `node/market/works.ts`.
 */
import type { ApiClient } from './client.js'
import { ApiError } from './errors.js'
import { WorkError } from '../market/works.js'
import type { WorkErrorCode, WorkFailure, WorkParamValue, WorkStatus, WorkView } from '../market/works.js'

export type { WorkErrorCode, WorkFailure, WorkParamValue, WorkStatus, WorkView }
export { WorkError, isWorkError } from '../market/works.js'

export interface WaitOptions {
  /** give up after this long, ms (WORK_TIMEOUT) */
  timeoutMs?: number
  /** time between two status reads, ms */
  pollIntervalMs?: number
}

export interface SubmitOptions {
  /** more parameters set before setPending (trust, dataset, biddingwindow...) */
  params?: Record<string, WorkParamValue>
}

export interface WorkClientOptions {
  /** default of waitResult's timeout, ms */
  waitTimeoutMs?: number
  /** default of waitResult's poll interval, ms */
  pollIntervalMs?: number
  /** bound on one result retrieval call (the node fetches the archive from the swarm), ms */
  resultTimeoutMs?: number
}

export const defaultWorkClientOptions: Required<WorkClientOptions> = {
  // a trust-3 task on 1 s blocks takes tens of seconds; 10 minutes bounds a
  // wait on a swarm that went quiet without cutting a real run short
  waitTimeoutMs: 600_000,
  // status reads are one eth_call on the node: 500 ms keeps the wait within
  // half a block of the chain without loading the node
  pollIntervalMs: 500,
  // the node's own retrieval times out after 60 s; leave it room to answer
  resultTimeoutMs: 90_000
}

const WORK_CODES: ReadonlySet<string> = new Set<WorkErrorCode>([
  'WORK_NOT_FOUND', 'WORK_READ_ONLY_PARAM', 'WORK_UNKNOWN_PARAM', 'WORK_BAD_VALUE', 'WORK_BAD_STATE', 'WORK_BAD_PATTERN',
  'WORK_RESULT_NOT_FOUND', 'WORK_FAILED', 'WORK_TIMEOUT', 'WORK_INTERRUPTED', 'WORK_TASK_FAILED', 'WORK_BAD_RECORD'
])

/** `/source/flags` for a RegExp (compileResultPattern's regex form); a string is sent as it is. */
function patternText (pattern: string | RegExp): string {
  return pattern instanceof RegExp ? `/${pattern.source}/${pattern.flags}` : pattern
}

/**
 * XtremWeb-HEP's work calls over a node's API.
 *
 * Errors: WorkError with the server's WORK_* code (WORK_NOT_FOUND,
 * WORK_READ_ONLY_PARAM, WORK_UNKNOWN_PARAM, WORK_BAD_VALUE, WORK_BAD_STATE,
 * WORK_BAD_PATTERN, WORK_RESULT_NOT_FOUND) and, from the waits, WORK_FAILED
 * and WORK_TIMEOUT; other failures are the ApiClient's ApiErrors (API_ERROR
 * with `details.serverCode`, e.g. APP_NOT_FOUND or CHAIN_NOT_CONFIGURED).
 *
 * @example
 * ```ts
 * const works = new WorkClient(new ApiClient(url, token))
 * const uid = await works.submit('primes', '1000')
 * const file = await works.waitResult(uid, 'primes.txt', { timeoutMs: 60_000 })
 * console.info(await works.getStdout(uid))   // "count=168 last=997\n"
 *
 * // or step by step
 * const draft = await works.register('primes')          // UNAVAILABLE
 * await works.setParam(draft, 'cmdline', '5000')
 * await works.setParam(draft, 'trust', 3)
 * await works.setPending(draft)                         // PENDING -> RUNNING -> COMPLETED
 * ```
 */
export class WorkClient {
  private readonly options: Required<WorkClientOptions>

  constructor (readonly api: ApiClient, options: WorkClientOptions = {}) {
    this.options = { ...defaultWorkClientOptions, ...options }
  }

  private async call<T> (method: string, path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    try {
      return await this.api.call<T>(method, path, body, timeoutMs !== undefined ? { timeoutMs } : {})
    } catch (err) {
      // the server's work codes become WorkErrors: callers branch on one code space
      if (err instanceof ApiError && err.code === 'API_ERROR' && typeof err.details?.serverCode === 'string' && WORK_CODES.has(err.details.serverCode)) {
        const details = err.details.serverDetails as Record<string, unknown> | undefined
        throw new WorkError(err.details.serverCode as WorkErrorCode, err.message, details, { cause: err })
      }
      throw err
    }
  }

  private path (uid: string, suffix = ''): string {
    return `/v1/works/${encodeURIComponent(uid)}${suffix}`
  }

  /** A new draft work of `app` (address or registered name), UNAVAILABLE; returns its uid. */
  async register (app: string): Promise<string> {
    return (await this.call<{ uid: string }>('POST', '/v1/works', { app })).uid
  }

  /** Sets a writable parameter while the work is UNAVAILABLE ('' clears it). */
  async setParam (uid: string, name: string, value: WorkParamValue): Promise<void> {
    await this.call('POST', this.path(uid, '/params'), { name, value })
  }

  /** A parameter's value (string), or null when unset. */
  async getParam (uid: string, name: string): Promise<string | null> {
    const timeout = name === 'stdout' ? this.options.resultTimeoutMs : undefined
    return (await this.call<{ value: string | null }>('GET', this.path(uid, `/params/${encodeURIComponent(name)}`), undefined, timeout)).value
  }

  /** Submits the work: PENDING at once; the node makes the deal in the background. */
  async setPending (uid: string): Promise<WorkStatus> {
    return (await this.call<{ status: WorkStatus }>('POST', this.path(uid, '/pending'))).status
  }

  /** register + setParam('cmdline', args) (+ options.params) + setPending; returns the uid. */
  async submit (app: string, args?: string, options: SubmitOptions = {}): Promise<string> {
    const uid = await this.register(app)
    if (args !== undefined) await this.setParam(uid, 'cmdline', args)
    for (const [name, value] of Object.entries(options.params ?? {})) await this.setParam(uid, name, value)
    await this.setPending(uid)
    return uid
  }

  /** UNAVAILABLE, PENDING, RUNNING, COMPLETED or ERROR (the node reads the task's status on chain). */
  async getStatus (uid: string): Promise<WorkStatus> {
    return (await this.call<{ status: WorkStatus }>('GET', this.path(uid, '/status'))).status
  }

  /** The whole work: status, parameters, deal, task, error. */
  async getWork (uid: string): Promise<WorkView> {
    return await this.call<WorkView>('GET', this.path(uid))
  }

  /** The works the node keeps. */
  async list (): Promise<WorkView[]> {
    return (await this.call<{ works: WorkView[] }>('GET', '/v1/works')).works
  }

  /** The app's stdout of a COMPLETED work (WORK_BAD_STATE before). */
  async getStdout (uid: string): Promise<string> {
    return (await this.call<{ stdout: string }>('GET', this.path(uid, '/stdout'), undefined, this.options.resultTimeoutMs)).stdout
  }

  /** The folder the node unpacked a COMPLETED work's result into (WORK_BAD_STATE before). */
  async getResultPath (uid: string): Promise<string> {
    return (await this.call<{ path: string }>('GET', this.path(uid, '/result'), undefined, this.options.resultTimeoutMs)).path
  }

  /**
   * Waits for the work to complete, then resolves with the absolute path of
   * the first file of its result (sorted by relative path) that `pattern`
   * matches: a file name or glob (`*`, `?`, `**`; without `/` it matches base
   * names at any depth, with `/` the path relative to the result folder), or
   * a RegExp (or the string `/source/flags`) searched in the relative path.
   *
   * Polls getStatus every `pollIntervalMs` until COMPLETED, at most
   * `timeoutMs`. Rejects with WORK_FAILED (details.error: the reason) when the
   * work ends in ERROR, WORK_BAD_STATE when it is UNAVAILABLE (it would never
   * start), WORK_RESULT_NOT_FOUND when it completed without a matching file,
   * WORK_TIMEOUT when the time runs out.
   */
  async waitResult (uid: string, pattern: string | RegExp, options: WaitOptions = {}): Promise<string> {
    const timeoutMs = options.timeoutMs ?? this.options.waitTimeoutMs
    const everyMs = Math.max(10, options.pollIntervalMs ?? this.options.pollIntervalMs)
    const text = patternText(pattern)
    const deadline = Date.now() + timeoutMs
    while (true) {
      const s = await this.call<{ status: WorkStatus, error: WorkFailure | null }>('GET', this.path(uid, '/status'))
      if (s.status === 'COMPLETED') {
        const r = await this.call<{ file: string }>('GET', `${this.path(uid, '/result')}?pattern=${encodeURIComponent(text)}`, undefined, this.options.resultTimeoutMs)
        return r.file
      }
      if (s.status === 'ERROR') {
        throw new WorkError('WORK_FAILED', `work ${uid} ended in ERROR: ${s.error?.message ?? 'no reason recorded'}`, { uid, error: s.error })
      }
      if (s.status === 'UNAVAILABLE') {
        throw new WorkError('WORK_BAD_STATE', `work ${uid} is UNAVAILABLE: set it pending before waiting for its result`, { uid, status: s.status })
      }
      const left = deadline - Date.now()
      if (left <= 0) throw new WorkError('WORK_TIMEOUT', `work ${uid} is still ${s.status} after ${timeoutMs} ms`, { uid, status: s.status, timeoutMs })
      await new Promise((resolve) => setTimeout(resolve, Math.min(everyMs, left)))
    }
  }

  /** submit + waitResult: the path of the first result file matching `pattern`. */
  async submitAndWait (app: string, args: string | undefined, pattern: string | RegExp, options: WaitOptions & SubmitOptions = {}): Promise<string> {
    const uid = await this.submit(app, args, options)
    return await this.waitResult(uid, pattern, options)
  }

  /**
   * Deletes the work's record (UNAVAILABLE, COMPLETED or ERROR; a PENDING or
   * RUNNING work is refused with WORK_BAD_STATE, its request or deal being
   * out in the swarm). A fetched result folder stays in the node's data dir.
   */
  async remove (uid: string): Promise<void> {
    await this.call('DELETE', this.path(uid))
  }
}
