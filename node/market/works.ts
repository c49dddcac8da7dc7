/**
 * The work API of the seed (XtremWeb-HEP, as iExec's first Solidity API
 * exposed it) on top of the market and the execution flow: a *work* is one
 * task of one app, drafted (`register`, `setParam`), then submitted
 * (`setPending`), whose status follows the request, the deal and the task on
 * chain, and whose result is fetched from the swarm once the task is final.
 *
 * This file holds the pure part (records, the parameter table, the state
 * machine, result-file patterns) and the service that drives it over narrow
 * dependencies; `api/routes/work.ts` binds the service to the node's market and
 * result retrieval and serves it at `/v1/works`, `api/work-client.ts` is the
 * client.
 *
 * ## Statuses
 *
 * | status | when |
 * |---|---|
 * | UNAVAILABLE | registered, parameters still writable, nothing sent |
 * | PENDING | `setPending` done: the node signs and gossips the request, collects bids, matches (in the background) |
 * | RUNNING | the deal is on chain; its task is UNSET, ACTIVE or REVEALING |
 * | COMPLETED | the task is COMPLETED on chain: a result was agreed and finalized |
 * | ERROR | the submission failed (NO_BIDS, INSUFFICIENT_BALANCE, a revert...), the task FAILED on chain, or the node stopped while the work was PENDING; `getParam(uid, 'error')` and `'errorcode'` tell why |
 *
 * ## Parameters
 *
 * Writable while UNAVAILABLE only (WORK_BAD_STATE after); `''` (or an empty
 * list) clears a parameter back to its default:
 *
 * | name | value | default | becomes |
 * |---|---|---|---|
 * | cmdline | the app's arguments, at most 4096 characters | none | `iexec_args` |
 * | dataset | a dataset address | none | the request's dataset |
 * | inputfiles | CIDs, a list or one string separated by spaces or commas (at most 64) | none | `iexec_input_files` |
 * | tags | required tags (`region:eu`, free-form ones), a list or a separated string (at most 16) | none | the request's tags |
 * | trust | integer 1..255 | 1 | the request's trust |
 * | category | integer 0..1000000 | the node's category | the request's category |
 * | maxprice | nRLC per task for the workers, integer < 2^48 | what the hub balance affords | `workerpoolmaxprice` |
 * | biddingwindow | ms, 1..600000 | the market's bidding window | how long bids are collected |
 * | encryptresult | `true` / `false` | false | `iexec_result_encryption`: the result is sealed to this node's key |
 *
 * Read-only (WORK_READ_ONLY_PARAM on setParam): `uid`, `status`, `app` (the
 * resolved app address), `volume` (always 1: one work is one task, as in
 * XtremWeb-HEP), `dealid`, `taskid`, `scheduler`, `workers`, `taskstatus`
 * (the last chain status seen), `resultcid`, `resultpath`, `stdout`,
 * `error`, `errorcode`, `registerdate`, `pendingdate`, `dealdate`,
 * `completeddate`, `errordate` (ISO 8601). A read-only parameter with no
 * value yet reads as null. Any other name is WORK_UNKNOWN_PARAM.
 *
 * ## Restarts
 *
 * Works live in the node's level store (prefix `work`) and survive restarts.
 * A PENDING work whose submission was cut short (the node stopped during the
 * bidding window, or crashed) becomes ERROR with code WORK_INTERRUPTED; it is
 * not resumed, because the signed request may already have been matched and
 * a second one could pay twice. If a crash came right after matchOrders was
 * mined, that deal still runs (see `deal show`), but this work does not know it.
 */
import { randomUUID } from 'node:crypto'
import { access, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { IexecError, isIexecError } from '../common/errors.js'
import { STDOUT_FILE } from '../worker/options.js'
import { ArgsError, quoteArgs, splitArgs } from '../../protocols/args.js'
import { HUB_RATIOS } from '../../contracts-abi/index.js'
import type { SubmitRequestParams } from './requester.js'

/** Codes of the work API (both sides of the wire: the client rethrows the server's WORK_* codes as WorkErrors). */
export type WorkErrorCode =
  /** no work of that uid */
  | 'WORK_NOT_FOUND'
  /** the parameter exists but cannot be written */
  | 'WORK_READ_ONLY_PARAM'
  /** no parameter of that name */
  | 'WORK_UNKNOWN_PARAM'
  /** the value does not fit the parameter (details.param) */
  | 'WORK_BAD_VALUE'
  /** the call is not allowed in the work's status (details.status) */
  | 'WORK_BAD_STATE'
  /** the result pattern is empty, too long or not a valid regex */
  | 'WORK_BAD_PATTERN'
  /** the work is COMPLETED but no file of its result matches the pattern */
  | 'WORK_RESULT_NOT_FOUND'
  /** waitResult: the work ended in ERROR (details.error holds the reason) */
  | 'WORK_FAILED'
  /** waitResult: the work did not complete within the timeout */
  | 'WORK_TIMEOUT'
  /** the node stopped (or crashed) while the work was PENDING */
  | 'WORK_INTERRUPTED'
  /** the task FAILED on chain (claimed after its deadline) */
  | 'WORK_TASK_FAILED'
  /** a stored work record does not decode */
  | 'WORK_BAD_RECORD'

export class WorkError extends IexecError<WorkErrorCode> {}

export function isWorkError (err: unknown, code?: WorkErrorCode): err is WorkError {
  return err instanceof WorkError && (code === undefined || err.code === code)
}

export const WORK_STATUSES = ['UNAVAILABLE', 'PENDING', 'RUNNING', 'COMPLETED', 'ERROR'] as const
export type WorkStatus = typeof WORK_STATUSES[number]

export const WRITABLE_PARAMS = ['cmdline', 'dataset', 'inputfiles', 'tags', 'trust', 'category', 'maxprice', 'biddingwindow', 'encryptresult'] as const
export type WritableParam = typeof WRITABLE_PARAMS[number]

export const READ_ONLY_PARAMS = [
  'uid', 'status', 'app', 'volume', 'dealid', 'taskid', 'scheduler', 'workers', 'taskstatus', 'resultcid', 'resultpath', 'stdout',
  'error', 'errorcode', 'registerdate', 'pendingdate', 'dealdate', 'completeddate', 'errordate'
] as const
export type ReadOnlyParam = typeof READ_ONLY_PARAMS[number]

/** A value as setParam takes it: a string, a number, or a list for the list parameters. */
export type WorkParamValue = string | number | boolean | readonly string[]

/** Why a work is in ERROR. */
export interface WorkFailure {
  code: string
  message: string
  details?: Record<string, unknown>
}

/** A work as stored (level, JSON). Params are kept normalized, as strings. */
export interface WorkRecord {
  v: 1
  uid: string
  status: WorkStatus
  /** the app's address (resolved from a name at register) */
  app: string
  params: Partial<Record<WritableParam, string>>
  /** the service instance that set it PENDING: another one finding it PENDING knows the submission died */
  session?: string
  dealId?: string
  taskId?: string
  scheduler?: string
  workers?: string[]
  taskStatus?: string
  resultCid?: string
  resultPath?: string
  error?: WorkFailure
  /** ms since the epoch */
  times: { registered: number, pending?: number, deal?: number, completed?: number, error?: number }
}

/** What the API returns for one work. */
export interface WorkView {
  uid: string
  status: WorkStatus
  app: string
  params: Record<WritableParam, string | null>
  dealId: string | null
  taskId: string | null
  taskStatus: string | null
  resultCid: string | null
  error: WorkFailure | null
}

const MAX_CMDLINE = 4096
const MAX_LIST_ITEM = 256
const MAX_U48 = (1n << 48n) - 1n
/** A list item: no separator, no control character. */
const LIST_ITEM = /^[^\s,]+$/

function badValue (param: string, why: string): WorkError {
  return new WorkError('WORK_BAD_VALUE', `parameter ${param} ${why}`, { param })
}

function intValue (param: string, value: WorkParamValue, min: number, max: number): string {
  const text = typeof value === 'number' ? String(value) : value
  if (typeof text !== 'string' || !/^(0|[1-9][0-9]{0,15})$/.test(text)) throw badValue(param, `must be an integer in [${min}, ${max}]`)
  const n = Number(text)
  if (n < min || n > max) throw badValue(param, `must be an integer in [${min}, ${max}]`)
  return String(n)
}

function listValue (param: string, value: WorkParamValue, maxItems: number, maxLen: number): string {
  if (typeof value === 'boolean') throw badValue(param, 'must be a list of strings')
  const items = typeof value === 'string' ? value.split(/[\s,]+/).filter((s) => s.length > 0) : typeof value === 'number' ? [String(value)] : [...value]
  if (items.length > maxItems) throw badValue(param, `takes at most ${maxItems} items`)
  for (const item of items) {
    if (typeof item !== 'string' || item.length > maxLen || !LIST_ITEM.test(item)) throw badValue(param, `items must be 1-${maxLen} characters without spaces or commas`)
  }
  return items.join(',')
}

/**
 * The normalized string of a writable parameter's value; '' clears it.
 * @throws WorkError WORK_BAD_VALUE
 */
export function normalizeParam (name: WritableParam, value: WorkParamValue): string {
  if (value === '' || (Array.isArray(value) && value.length === 0)) return ''
  switch (name) {
    case 'cmdline': {
      // a list is one argument per item: quoted so that the workers' split (protocols/args.ts) gives the items back
      const text = typeof value === 'number' ? String(value) : Array.isArray(value) && value.every((v) => typeof v === 'string') ? quoteArgs(value as string[]) : value
      if (typeof text !== 'string' || text.length > MAX_CMDLINE) throw badValue(name, `must be a string of at most ${MAX_CMDLINE} characters`)
      try {
        splitArgs(text)
      } catch (err) {
        if (err instanceof ArgsError) throw badValue(name, `does not split into arguments: ${err.message}`)
        throw err
      }
      return text
    }
    case 'dataset':
      if (typeof value !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(value)) throw badValue(name, 'must be an address (0x and 40 hex digits)')
      return value.toLowerCase()
    case 'inputfiles': return listValue(name, value, 64, MAX_LIST_ITEM)
    case 'tags': return listValue(name, value, 16, 64)
    case 'trust': return intValue(name, value, 1, HUB_RATIOS.maxTrust)
    case 'category': return intValue(name, value, 0, 1_000_000)
    case 'biddingwindow': return intValue(name, value, 1, 600_000)
    case 'encryptresult':
      if (value === true || value === 'true') return 'true'
      if (value === false || value === 'false') return ''
      throw badValue(name, 'must be true or false')
    case 'maxprice': {
      const text = typeof value === 'number' ? String(value) : value
      if (typeof text !== 'string' || !/^(0|[1-9][0-9]{0,15})$/.test(text) || BigInt(text) > MAX_U48) throw badValue(name, 'must be an integer of nRLC in [0, 2^48)')
      return BigInt(text).toString()
    }
  }
}

function isWritable (name: string): name is WritableParam {
  return (WRITABLE_PARAMS as readonly string[]).includes(name)
}

function isReadOnly (name: string): name is ReadOnlyParam {
  return (READ_ONLY_PARAMS as readonly string[]).includes(name)
}

/** @throws WorkError WORK_UNKNOWN_PARAM */
export function checkParamName (name: string): WritableParam | ReadOnlyParam {
  if (isWritable(name) || isReadOnly(name)) return name
  throw new WorkError('WORK_UNKNOWN_PARAM', `no work parameter named '${name}' (writable: ${WRITABLE_PARAMS.join(', ')}; read-only: ${READ_ONLY_PARAMS.join(', ')})`, { param: name })
}

function badState (rec: WorkRecord, what: string): WorkError {
  return new WorkError('WORK_BAD_STATE', `work ${rec.uid} is ${rec.status}: cannot ${what}`, { uid: rec.uid, status: rec.status })
}

// ---- the state machine: pure transitions, each returns a new record or throws ----

export function newWork (uid: string, app: string, now: number): WorkRecord {
  return { v: 1, uid, status: 'UNAVAILABLE', app, params: {}, times: { registered: now } }
}

/** @throws WorkError WORK_UNKNOWN_PARAM, WORK_READ_ONLY_PARAM, WORK_BAD_STATE, WORK_BAD_VALUE */
export function withParam (rec: WorkRecord, name: string, value: WorkParamValue): WorkRecord {
  const known = checkParamName(name)
  if (!isWritable(known)) throw new WorkError('WORK_READ_ONLY_PARAM', `work parameter '${name}' is read-only`, { param: name })
  if (rec.status !== 'UNAVAILABLE') throw badState(rec, `set ${name} (parameters are writable only while UNAVAILABLE)`)
  const normalized = normalizeParam(known, value)
  const params = { ...rec.params }
  if (normalized === '') delete params[known]
  else params[known] = normalized
  return { ...rec, params }
}

/** UNAVAILABLE -> PENDING, owned by `session`. @throws WorkError WORK_BAD_STATE */
export function toPending (rec: WorkRecord, session: string, now: number): WorkRecord {
  if (rec.status !== 'UNAVAILABLE') throw badState(rec, 'be set pending again')
  return { ...rec, status: 'PENDING', session, times: { ...rec.times, pending: now } }
}

/** PENDING -> RUNNING: the deal is on chain. A record that is no longer PENDING is returned as it is. */
export function withDeal (rec: WorkRecord, deal: { dealId: string, scheduler: string, workers: string[], tasks: Array<{ taskId: string, status: string }> }, now: number): WorkRecord {
  if (rec.status !== 'PENDING') return rec
  const task = deal.tasks[0]
  const next: WorkRecord = {
    ...rec, status: 'RUNNING', dealId: deal.dealId.toLowerCase(), scheduler: deal.scheduler, workers: [...deal.workers], times: { ...rec.times, deal: now }
  }
  if (task !== undefined) {
    next.taskId = task.taskId.toLowerCase()
    return withTaskStatus(next, task.status, now)
  }
  return next
}

/** PENDING -> ERROR with the submission's reason. A record that is no longer PENDING is returned as it is. */
export function withSubmitError (rec: WorkRecord, failure: WorkFailure, now: number): WorkRecord {
  if (rec.status !== 'PENDING') return rec
  return { ...rec, status: 'ERROR', error: failure, times: { ...rec.times, error: now } }
}

/**
 * A RUNNING work follows its task on chain: UNSET, ACTIVE, REVEALING keep it
 * RUNNING; COMPLETED completes it; FAILED makes it ERROR (WORK_TASK_FAILED).
 * Other statuses leave the record as it is.
 */
export function withTaskStatus (rec: WorkRecord, taskStatus: string, now: number): WorkRecord {
  if (rec.status !== 'RUNNING') return rec
  switch (taskStatus) {
    case 'UNSET': case 'ACTIVE': case 'REVEALING':
      return rec.taskStatus === taskStatus ? rec : { ...rec, taskStatus }
    case 'COMPLETED':
      return { ...rec, status: 'COMPLETED', taskStatus, times: { ...rec.times, completed: now } }
    case 'FAILED':
      return {
        ...rec, status: 'ERROR', taskStatus,
        error: { code: 'WORK_TASK_FAILED', message: `task ${rec.taskId ?? '?'} of deal ${rec.dealId ?? '?'} FAILED on chain (no consensus before its deadline; the requester was refunded)` },
        times: { ...rec.times, error: now }
      }
    default:
      return rec
  }
}

/** A PENDING work owned by another session lost its submission: ERROR WORK_INTERRUPTED. Others unchanged. */
export function interruptedIfStale (rec: WorkRecord, liveSession: string, now: number): WorkRecord {
  if (rec.status !== 'PENDING' || rec.session === liveSession) return rec
  return withSubmitError(rec, { code: 'WORK_INTERRUPTED', message: 'the node stopped while this work was PENDING: its submission did not finish (set it again with a new work)' }, now)
}

/** The fetched result of a COMPLETED work. */
export function withResult (rec: WorkRecord, result: { cid: string, path: string }): WorkRecord {
  if (rec.status !== 'COMPLETED') return rec
  return { ...rec, resultCid: result.cid, resultPath: result.path }
}

/**
 * A work may be removed when nothing runs for it: UNAVAILABLE, COMPLETED or
 * ERROR. PENDING and RUNNING are refused: the request or the deal is out in
 * the swarm and paid for, and removing the record would only lose track of it.
 * @throws WorkError WORK_BAD_STATE
 */
export function checkRemovable (rec: WorkRecord): void {
  if (rec.status === 'PENDING' || rec.status === 'RUNNING') throw badState(rec, 'be removed while its request or task runs (wait for COMPLETED or ERROR)')
}

/** The market request of a work: one task (volume 1) with its parameters. */
export function submitParamsOf (rec: WorkRecord): SubmitRequestParams {
  const p = rec.params
  const out: SubmitRequestParams = { app: rec.app, volume: 1 }
  if (p.cmdline !== undefined) out.args = p.cmdline
  if (p.dataset !== undefined) out.dataset = p.dataset
  if (p.inputfiles !== undefined) out.inputs = p.inputfiles.split(',')
  if (p.tags !== undefined) out.tags = p.tags.split(',')
  if (p.trust !== undefined) out.trust = Number(p.trust)
  if (p.category !== undefined) out.category = Number(p.category)
  if (p.maxprice !== undefined) out.maxPrice = BigInt(p.maxprice)
  if (p.biddingwindow !== undefined) out.biddingWindowMs = Number(p.biddingwindow)
  if (p.encryptresult === 'true') out.encryptResult = true
  return out
}

function date (ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString()
}

/** A parameter's value as getParam returns it (stdout is read from the result by the service). */
export function paramOf (rec: WorkRecord, name: WritableParam | Exclude<ReadOnlyParam, 'stdout'>): string | null {
  if (isWritable(name)) return rec.params[name] ?? null
  switch (name) {
    case 'uid': return rec.uid
    case 'status': return rec.status
    case 'app': return rec.app
    case 'volume': return '1'
    case 'dealid': return rec.dealId ?? null
    case 'taskid': return rec.taskId ?? null
    case 'scheduler': return rec.scheduler ?? null
    case 'workers': return rec.workers !== undefined ? rec.workers.join(',') : null
    case 'taskstatus': return rec.taskStatus ?? null
    case 'resultcid': return rec.resultCid ?? null
    case 'resultpath': return rec.resultPath ?? null
    case 'error': return rec.error?.message ?? null
    case 'errorcode': return rec.error?.code ?? null
    case 'registerdate': return date(rec.times.registered)
    case 'pendingdate': return date(rec.times.pending)
    case 'dealdate': return date(rec.times.deal)
    case 'completeddate': return date(rec.times.completed)
    case 'errordate': return date(rec.times.error)
  }
}

export function workView (rec: WorkRecord): WorkView {
  const params = Object.fromEntries(WRITABLE_PARAMS.map((n) => [n, rec.params[n] ?? null])) as Record<WritableParam, string | null>
  return {
    uid: rec.uid,
    status: rec.status,
    app: rec.app,
    params,
    dealId: rec.dealId ?? null,
    taskId: rec.taskId ?? null,
    taskStatus: rec.taskStatus ?? null,
    resultCid: rec.resultCid ?? null,
    error: rec.error ?? null
  }
}

/** Checks a decoded record's shape (the repository never returns an unchecked object). */
export function checkWorkRecord (v: unknown): WorkRecord {
  const r = v as Partial<WorkRecord>
  if (typeof r !== 'object' || r === null || r.v !== 1 || typeof r.uid !== 'string' || typeof r.app !== 'string' ||
    !(WORK_STATUSES as readonly string[]).includes(r.status as string) || typeof r.params !== 'object' || r.params === null ||
    typeof r.times !== 'object' || r.times === null || typeof r.times.registered !== 'number') {
    throw new WorkError('WORK_BAD_RECORD', 'not a work record')
  }
  return r as WorkRecord
}

// ---- result file patterns ----

const MAX_PATTERN = 256

function globToRegExp (glob: string): RegExp {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]
    if (c === '*' && glob[i + 1] === '*') {
      // `**/` matches zero or more folders, a bare `**` anything
      if (glob[i + 2] === '/') { re += '(?:.*/)?'; i += 2 } else { re += '.*'; i++ }
    } else if (c === '*') {
      re += '[^/]*'
    } else if (c === '?') {
      re += '[^/]'
    } else {
      re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
    }
  }
  return new RegExp(`^${re}$`)
}

/**
 * Compiles a result-file pattern into a test over a file's path relative to
 * the result folder (`/`-separated):
 * - `/source/flags` (starts with `/`, a last `/` later): a JavaScript regular
 *   expression, searched (not anchored) in the relative path;
 * - anything else is a glob: `*` any characters but `/`, `?` one of them,
 *   `**` any characters including `/`; a glob without `/` is matched against
 *   each file's base name (at any depth), one with `/` against the whole
 *   relative path. A plain file name is a glob without wildcards.
 * @throws WorkError WORK_BAD_PATTERN
 */
export function compileResultPattern (pattern: string): (relPath: string) => boolean {
  if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > MAX_PATTERN) {
    throw new WorkError('WORK_BAD_PATTERN', `a result pattern is 1-${MAX_PATTERN} characters`, { pattern })
  }
  const regex = /^\/(.+)\/([a-z]*)$/s.exec(pattern)
  if (regex !== null) {
    let re: RegExp
    try {
      re = new RegExp(regex[1], regex[2].replace(/[gy]/g, ''))
    } catch (err) {
      throw new WorkError('WORK_BAD_PATTERN', `'${pattern}' is not a valid regular expression`, { pattern }, { cause: err })
    }
    return (p) => re.test(p)
  }
  const re = globToRegExp(pattern)
  if (pattern.includes('/')) return (p) => re.test(p)
  return (p) => re.test(p.slice(p.lastIndexOf('/') + 1))
}

/** The first file (in sorted order of relative paths) that the pattern matches, or undefined. */
export function matchResultFile (files: readonly string[], pattern: string): string | undefined {
  const test = compileResultPattern(pattern)
  return [...files].sort().find((f) => test(f))
}

/** Most files listed in one result folder: a bound on a hostile result's tree. */
const MAX_RESULT_FILES = 10_000

/** Regular files under `dir`, as sorted `/`-separated relative paths (bounded by MAX_RESULT_FILES). */
export async function listResultFiles (dir: string): Promise<string[]> {
  const out: string[] = []
  const stack = ['']
  while (stack.length > 0 && out.length < MAX_RESULT_FILES) {
    const rel = stack.pop() as string
    const entries = await readdir(join(dir, rel), { withFileTypes: true })
    for (const e of entries) {
      const p = rel === '' ? e.name : `${rel}/${e.name}`
      if (e.isDirectory()) stack.push(p)
      else if (e.isFile()) out.push(p)
      if (out.length >= MAX_RESULT_FILES) break
    }
  }
  return out.sort()
}

// ---- the store and the service ----

/** What the service needs of its table (a db Repository<WorkRecord> fits). */
export interface WorkRepo {
  get: (key: string) => Promise<WorkRecord | undefined>
  put: (key: string, value: WorkRecord) => Promise<void>
  del: (key: string) => Promise<void>
  values: (options?: { limit?: number }) => Promise<WorkRecord[]>
}

/** The deal the market made for a work's request. */
export interface WorkDeal { dealId: string, scheduler: string, workers: string[], tasks: Array<{ taskId: string, status: string }> }

/** A fetched, checked and unpacked result. */
export interface WorkResult { cid: string, path: string, stdout: string }

/** What the service drives: the node's market and result retrieval, narrowed to what works need. */
export interface WorkDeps {
  /** an app address or registered name -> its address; throws APP_NOT_FOUND */
  resolveApp: (app: string) => Promise<string>
  /** request, bids, matchOrders (Requester.submit) */
  submit: (params: SubmitRequestParams) => Promise<WorkDeal>
  /** the hub's status name of task `idx` of a deal (UNSET, ACTIVE, REVEALING, COMPLETED, FAILED) */
  taskStatus: (dealId: string, idx: number) => Promise<string>
  /** fetches a finalized task's result (GET /v1/results/:taskId's retrieval) */
  result: (taskId: string) => Promise<WorkResult>
  /** runs a background submission; the owner waits for it when it stops */
  track: (work: Promise<unknown>) => void
  /** false once the owner is stopping: a submission that fails then was interrupted, not refused */
  running: () => boolean
  /** ms since the epoch (tests inject a clock) */
  now?: () => number
}

export interface WorkServiceOptions {
  /** most works one list() returns */
  maxList: number
}

export const defaultWorkServiceOptions: WorkServiceOptions = {
  // one API page; a requester's works are its own drafts and submissions
  maxList: 1_000
}

/** A uid is a UUID (XtremWeb-HEP's uids are UUIDs too). */
const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * The work state machine over a repository. Every read-modify-write of one
 * work runs under that work's lock, so the background submission, a status
 * refresh and an API call never overwrite each other.
 *
 * @example
 * ```ts
 * const works = new WorkService(new Repository(db, 'work', jsonCodec(checkWorkRecord)), deps)
 * const { uid } = await works.register('primes')
 * await works.setParam(uid, 'cmdline', '1000')
 * await works.setPending(uid)              // PENDING; the submission runs in the background
 * await works.status(uid)                  // RUNNING, then COMPLETED (read from the chain)
 * const { path } = await works.result(uid) // the unpacked result folder
 * ```
 */
export class WorkService {
  /** this instance's id: a PENDING work owned by another one was interrupted */
  readonly session = randomUUID()
  private readonly locks = new Map<string, Promise<unknown>>()
  private readonly fetches = new Map<string, Promise<WorkResult>>()
  private readonly options: WorkServiceOptions
  private readonly now: () => number

  constructor (private readonly repo: WorkRepo, private readonly deps: WorkDeps, options: Partial<WorkServiceOptions> = {}) {
    this.options = { ...defaultWorkServiceOptions, ...options }
    this.now = deps.now ?? Date.now
  }

  private async locked<T> (uid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(uid) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => {})
    this.locks.set(uid, tail)
    void tail.then(() => { if (this.locks.get(uid) === tail) this.locks.delete(uid) })
    return await run
  }

  /** The record, with a stale PENDING turned into ERROR (and stored). @throws WorkError WORK_NOT_FOUND */
  private async load (uid: string): Promise<WorkRecord> {
    if (typeof uid !== 'string' || !UID.test(uid)) throw new WorkError('WORK_NOT_FOUND', `no work '${String(uid)}' (a uid is a lowercase UUID)`, { uid })
    const rec = await this.repo.get(uid)
    if (rec === undefined) throw new WorkError('WORK_NOT_FOUND', `no work ${uid}`, { uid })
    const fixed = interruptedIfStale(rec, this.session, this.now())
    if (fixed !== rec) await this.repo.put(uid, fixed)
    return fixed
  }

  private async update (uid: string, fn: (rec: WorkRecord) => WorkRecord | Promise<WorkRecord>): Promise<WorkRecord> {
    return await this.locked(uid, async () => {
      const rec = await this.load(uid)
      const next = await fn(rec)
      if (next !== rec) await this.repo.put(uid, next)
      return next
    })
  }

  /** A new draft work of `app` (address or registered name): UNAVAILABLE. @throws MarketError APP_NOT_FOUND */
  async register (app: string): Promise<WorkRecord> {
    const address = await this.deps.resolveApp(app)
    const rec = newWork(randomUUID(), address, this.now())
    await this.repo.put(rec.uid, rec)
    return rec
  }

  /** @throws WorkError WORK_NOT_FOUND, WORK_UNKNOWN_PARAM, WORK_READ_ONLY_PARAM, WORK_BAD_STATE, WORK_BAD_VALUE */
  async setParam (uid: string, name: string, value: WorkParamValue): Promise<WorkRecord> {
    return await this.update(uid, (rec) => withParam(rec, name, value))
  }

  /** @throws WorkError WORK_NOT_FOUND, WORK_UNKNOWN_PARAM */
  async getParam (uid: string, name: string): Promise<string | null> {
    const known = checkParamName(name)
    if (known === 'stdout') {
      const rec = await this.status(uid)
      return rec.status === 'COMPLETED' ? (await this.result(uid)).stdout : null
    }
    return paramOf(await this.status(uid), known)
  }

  /**
   * UNAVAILABLE -> PENDING, then submits in the background: the request is
   * signed and gossiped, bids are collected, the deal is matched; the work
   * becomes RUNNING, or ERROR with the submission's reason.
   * @throws WorkError WORK_NOT_FOUND, WORK_BAD_STATE
   */
  async setPending (uid: string): Promise<WorkRecord> {
    const rec = await this.update(uid, (r) => toPending(r, this.session, this.now()))
    this.deps.track(this.submitInBackground(rec))
    return rec
  }

  private async submitInBackground (rec: WorkRecord): Promise<void> {
    let outcome: { deal: WorkDeal } | { failure: WorkFailure }
    try {
      outcome = { deal: await this.deps.submit(submitParamsOf(rec)) }
    } catch (err) {
      const failure: WorkFailure = !this.deps.running()
        ? { code: 'WORK_INTERRUPTED', message: 'the node stopped while this work was PENDING: its submission did not finish' }
        : isIexecError(err)
          ? { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) }
          : { code: 'WORK_SUBMIT_FAILED', message: err instanceof Error ? err.message : String(err) }
      outcome = { failure }
    }
    await this.update(rec.uid, (r) => 'deal' in outcome ? withDeal(r, outcome.deal, this.now()) : withSubmitError(r, outcome.failure, this.now()))
  }

  /**
   * The work, its status brought up to date: a RUNNING work reads its task's
   * status on chain.
   * @throws WorkError WORK_NOT_FOUND
   */
  async status (uid: string): Promise<WorkRecord> {
    return await this.update(uid, async (rec) => {
      if (rec.status !== 'RUNNING' || rec.dealId === undefined) return rec
      return withTaskStatus(rec, await this.deps.taskStatus(rec.dealId, 0), this.now())
    })
  }

  /**
   * The result of a COMPLETED work: fetched from the swarm (checked against
   * the chain, decrypted, unpacked under the node's data dir) the first time,
   * or again when its folder was removed.
   * @throws WorkError WORK_NOT_FOUND, WORK_BAD_STATE (not COMPLETED)
   */
  async result (uid: string): Promise<WorkResult> {
    const rec = await this.status(uid)
    if (rec.status !== 'COMPLETED' || rec.taskId === undefined) throw badState(rec, 'give a result before it is COMPLETED')
    if (rec.resultPath !== undefined && rec.resultCid !== undefined && await exists(rec.resultPath)) {
      return { cid: rec.resultCid, path: rec.resultPath, stdout: await readStdout(rec.resultPath) }
    }
    // one retrieval per task at a time: two would unpack into the same folder
    const taskId = rec.taskId
    let fetching = this.fetches.get(taskId)
    if (fetching === undefined) {
      fetching = this.deps.result(taskId)
      this.fetches.set(taskId, fetching)
      void fetching.catch(() => {}).finally(() => { this.fetches.delete(taskId) })
    }
    const r = await fetching
    await this.update(uid, (cur) => withResult(cur, r))
    return r
  }

  /**
   * The first file of a COMPLETED work's result that `pattern` matches
   * (compileResultPattern), as an absolute path.
   * @throws WorkError WORK_BAD_PATTERN, WORK_BAD_STATE, WORK_RESULT_NOT_FOUND
   */
  async resultFile (uid: string, pattern: string): Promise<{ result: WorkResult, file: string }> {
    compileResultPattern(pattern)
    const result = await this.result(uid)
    const match = matchResultFile(await listResultFiles(result.path), pattern)
    if (match === undefined) throw new WorkError('WORK_RESULT_NOT_FOUND', `no file of work ${uid}'s result matches '${pattern}'`, { uid, pattern })
    return { result, file: join(result.path, ...match.split('/')) }
  }

  /**
   * Removes a work's record when nothing runs for it (checkRemovable). A
   * result folder it fetched stays under the node's data dir: `result get`
   * of the same task shares it.
   * @throws WorkError WORK_NOT_FOUND, WORK_BAD_STATE
   */
  async remove (uid: string): Promise<WorkRecord> {
    return await this.locked(uid, async () => {
      const rec = await this.load(uid)
      checkRemovable(rec)
      await this.repo.del(uid)
      return rec
    })
  }

  /** The stored works (statuses as last seen; stale PENDING ones shown as ERROR), bounded by maxList. */
  async list (): Promise<WorkRecord[]> {
    const now = this.now()
    return (await this.repo.values({ limit: this.options.maxList })).map((r) => interruptedIfStale(r, this.session, now))
  }
}

async function exists (path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

async function readStdout (dir: string): Promise<string> {
  try {
    return await readFile(join(dir, STDOUT_FILE), 'utf8')
  } catch {
    // an app may write nothing to stdout
    return ''
  }
}
