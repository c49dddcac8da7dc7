import { createHash } from 'node:crypto'
import { appendFile, copyFile, link, mkdir, open as openFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { computeAddress } from 'ethers'
import { ContributionStatus, TaskStatus } from '../../contracts-abi/index.js'
import { recoverAuthorizationSigner, resultHash, resultSeal, taskId } from '../../protocols/eip712.js'
import type { HubDomain } from '../../protocols/eip712.js'
import { MAX_ASSIGN_TASKS, MAX_REPORT_TASKS, TASKS_PER_CPU, recoverExecPeer } from '../../protocols/execution.js'
import type { AssignMessage, ExecMessage, FinalizedMessage, TaskProgress, TaskReport, UploadRequestMessage } from '../../protocols/execution.js'
import { ZERO_ADDRESS } from '../../protocols/eip712.js'
import { MAX_STDERR_TAIL_BYTES, failureReportContext, signFailureReport } from '../../protocols/failure-report.js'
import type { FailureReport } from '../../protocols/failure-report.js'
import { eciesEncrypt } from '../storage/ecies.js'
import { dealFromEvent } from '../scheduler/deal.js'
import type { DealInfo } from '../scheduler/deal.js'
import { MAX_SWEEP_DOCUMENT_BYTES, parseRequestParams, parseSweepDocument } from '../../protocols/market.js'
import { splitArgs } from '../../protocols/args.js'
import { isChainError, queryLogsInRanges } from '../chain/index.js'
import { isIexecError } from '../errors.js'
import { memoAsync } from '../memo.js'
import type { ChainClient, ChainEvent, Hub } from '../chain/index.js'
import { KeySetRepository, jsonCodec } from '../db/index.js'
import type { DbController } from '../db/index.js'
import { addBytes, addStream, catContent, decryptDataset, encryptResult, encryptResultFolder, fetchToFile, isEncryptedContent, packFolder, packTree, placePlainDataset } from '../storage/index.js'
import type { ContentHelia, FetchOptions, TreeEntry } from '../storage/index.js'
import type { ExecChannel } from '../scheduler/exec-channel.js'
import { computeResultDigest, resultDigestOfTree } from './digest.js'
import type { Executor } from './executor.js'
import { DutyError } from './duties-errors.js'
import { defaultWorkerDutiesOptions, type WorkerDutiesOptions } from './duties-options.js'
import { runLimits, type CategoryLimits } from './run-limits.js'

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

/** What the tasks of one deal run on (see WorkerDuties.prepareDeal). */
interface PreparedDeal {
  /** the deal's folder on this worker */
  root: string
  module: Uint8Array
  /** opened read-only to every run */
  inputDir: string
  inputFiles: string[]
  datasetFilename?: string
}

/** Test-only faults. */
export interface WorkerFaults {
  /** changes the app's output before the digest: the worker commits a wrong result */
  corruptOutput?: boolean
  /** waits this long before fetching, as a slow worker would (heartbeats go on meanwhile) */
  delayBeforeRunMs?: number
  /** holds a commit's written 'done' records this long before memory follows them, as a loaded event loop would */
  holdCommitRecordMs?: number
}

export interface WorkerDutiesInit {
  channel: ExecChannel
  /** Network's Helia (bitswap fetches, adds) */
  helia: ContentHelia
  db: DbController
  /** this node's chain client, with the hub binding */
  chain: ChainClient
  domain: HubDomain
  executor: Executor
  /** scratch space for inputs and outputs (one folder per task) */
  workDir: string
  options?: Partial<WorkerDutiesOptions>
  faults?: WorkerFaults
  /**
   * Gets a dataset's content key from its owner (node.ts: storage's
   * `fetchDatasetKey` over a dialer to the owner's peer). Without it,
   * assignments of deals with a dataset are refused.
   */
  datasetKey?: (request: { dataset: string, dealid: string, idx: number, authorization: string }) => Promise<Uint8Array>
  /** told of what happens, for node.log */
  log?: (msg: string, context?: Record<string, unknown>) => void
  /**
   * Block retention (storage's BlockRetention): `prepare` before a fetch,
   * the returned function after it keeps and provides what was fetched for
   * a while. Without it fetched blocks stay in the blockstore, unannounced.
   */
  retention?: { prepare: (cids: string[]) => Promise<() => Promise<void>> }
  /**
   * Connects to the peers that hold an app's module (node.ts: its owner, by
   * its advert) before a deal's first task fetches it. Best effort: a
   * failure is logged and the fetch finds providers through the DHT.
   */
  reachAppHolders?: (app: string) => Promise<void>
  /**
   * What the deal's requester signed, as this node already learned it from
   * the hub's DealCreated event (node.ts: the scheduler service's record of
   * the deal); undefined when not known yet. Tried first; the hub's
   * DealCreated log of the deal, read from `fromBlock`, otherwise.
   */
  dealCommitment?: (dealid: string) => Promise<DealInfo | undefined>
  /** first block of the hub's logs (default 0) */
  fromBlock?: number
}

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()

/** Reads of the hub's state once the node's pool is mined: what this worker has sent and not yet seen mined. */
const PENDING = { blockTag: 'pending' } as const

function checkRecord (v: unknown): WorkerTaskRecord {
  const r = v as WorkerTaskRecord
  if (typeof r !== 'object' || r === null || typeof r.taskid !== 'string' || typeof r.state !== 'string') throw new Error('not a worker task record')
  return r
}

/** A failed task's reason as a wire code: the executor's status for a run that did not complete, else the error's code. */
function failureCode (err: unknown): string {
  if (isIexecError(err, 'DUTY_EXECUTION_FAILED') && typeof err.details?.status === 'string') return err.details.status
  const code = isIexecError(err) ? err.code : 'DUTY_FAILED'
  return /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'DUTY_FAILED'
}

/** The last MAX_STDERR_TAIL_BYTES of a run's stderr, and its whole size (nothing when the file is gone). */
export async function stderrTail (path: string): Promise<{ tail: Uint8Array, bytes: number }> {
  let f
  try {
    f = await openFile(path, 'r')
  } catch {
    return { tail: new Uint8Array(0), bytes: 0 }
  }
  try {
    const { size } = await f.stat()
    const n = Math.min(size, MAX_STDERR_TAIL_BYTES)
    const buf = Buffer.alloc(n)
    const { bytesRead } = await f.read(buf, 0, n, size - n)
    return { tail: new Uint8Array(buf.subarray(0, bytesRead)), bytes: size }
  } finally {
    await f.close()
  }
}

/**
 * The worker's side of execution: takes assignments from deal schedulers over
 * the exec protocol, fetches the app and inputs through Helia (checksums
 * checked against the hub), runs the app in the executor, commits, reveals
 * when consensus is reached, and uploads the result when chosen.
 *
 * Restart safety: a task's record is written before each transaction and the
 * hub is read before sending one, so a restart never contributes twice
 * (`contributionOf` says whether the commit landed) and resumes every reveal
 * it owes (the tick checks each contributed task against the hub).
 */
export class WorkerDuties {
  private readonly opts: WorkerDutiesOptions
  private readonly tasks: KeySetRepository<WorkerTaskRecord>
  private readonly hub: Hub
  private readonly me: string
  /** tasks being worked on now (one promise per task: a second trigger waits its turn) */
  private readonly running = new Map<string, Promise<void>>()
  /**
   * Records of the tasks not yet done or failed, as level holds them
   * (written through): the tick's work list, and what each step reads
   * instead of level (a bag read every task's record from level at each of
   * its steps). The repository keeps its keys in memory, so a task this
   * worker never had costs no read either.
   */
  private readonly open = new Map<string, WorkerTaskRecord>()
  /** tasks assigned and not yet computed (running or waiting their turn), by deal: at most maxConcurrentTasks x TASKS_PER_CPU; a computed task waiting for its transaction holds no CPU */
  private readonly active = new Map<string, string>()
  /** tasks computed since this process started and not yet sent to the chain: no need to ask the hub whether they closed */
  private readonly unsent = new Set<string>()
  /** (what, task) whose transaction of an earlier run was found waiting in the pool: logged once */
  private readonly waitingPool = new Set<string>()
  /**
   * Per task, the end of the last write of its record: a read-modify-write
   * (a resent assign, a finalized message) waits for the writes before it,
   * so it never writes back a state the commit has just left (a resent
   * assign that read 'computed' while the commit wrote 'done' put the task
   * back to 'computed', and its transaction was then never recorded).
   */
  private readonly writes = new Map<string, Promise<void>>()
  /** tasks computing now, and the ones waiting for a compute slot */
  private computing = 0
  private readonly slotWaiters: Array<() => void> = []
  /** each deal's inputs, prepared once for its tasks (see prepareDeal) */
  private readonly prepared = new Map<string, { ready: Promise<PreparedDeal>, usedAt: number }>()
  /** group-commit transactions sent and not yet settled */
  private fastInFlight = 0
  /** brings the committer back when a partial batch has waited commitWaitMs */
  private fastTimer: NodeJS.Timeout | undefined
  /**
   * What the scheduler of each task in hand is told: its status, sent every
   * beat in one heartbeat per scheduler, and at once (coalesced over
   * reportDelayMs) when a task is computed or failed.
   */
  private readonly reports = new Map<string, { peer: string, status: TaskProgress, code?: string }>()
  /** schedulers with a report due soon, and its timer */
  private readonly reportDue = new Set<string>()
  private reportTimer: NodeJS.Timeout | undefined
  private beatTimer: NodeJS.Timeout | undefined
  /** trust-1 results waiting to be committed, in arrival order (see commitFast) */
  private readonly fastQueue: Array<{ r: WorkerTaskRecord, queuedAt: number, resolve: (r: WorkerTaskRecord) => void, reject: (err: unknown) => void }> = []
  private timer: NodeJS.Timeout | undefined
  private ticking = false
  private started = false
  private readonly abort = new AbortController()
  /**
   * What the hub says of each deal and app, read once: a deal's fields never
   * change but its scheduler (reelection: an authorization by another signer
   * reads the deal again), membership never changes, nor a registered app.
   * A bag of 200 tasks read them 200 times (3 RPC calls before each ack).
   */
  private readonly deals = new Map<string, Promise<Awaited<ReturnType<Hub['dealOf']>>>>()
  private readonly members = new Set<string>()
  private readonly apps = new Map<string, Promise<Awaited<ReturnType<Hub['appOf']>>>>()
  /** each category's bounds, read once (a category never changes) */
  private readonly categories = new Map<string, Promise<CategoryLimits>>()
  /** each deal's DealCreated, read once (it never changes) */
  private readonly commitments = new Map<string, Promise<DealInfo>>()
  /** the assignment contents found to match their deal's commitment, by deal: later assigns compare one string */
  private readonly matched = new Map<string, string>()
  /** each sweep deal's per-task lists, from its document (a failed fetch is not kept) */
  private readonly sweeps = new Map<string, Promise<{ args?: string[], inputs?: string[][] }>>()
  /** the signer of each (peer, ExecPeer proof) pair seen: one recovery per scheduler peer, not per message */
  private readonly provers = new Map<string, string>()

  constructor (private readonly init: WorkerDutiesInit) {
    this.opts = { ...defaultWorkerDutiesOptions, ...init.options }
    const o = this.opts
    if (!(o.maxConcurrentTasks >= 1 && o.heartbeatIntervalMs > 0 && o.tickMs > 0 && (o.maxRunMs === undefined || o.maxRunMs > 0) && o.reportDelayMs >= 0 && o.maxCommitBatch >= 1 && o.maxCommitBatch <= MAX_ASSIGN_TASKS && o.maxCommitsInFlight >= 1)) {
      throw new DutyError('DUTY_INVALID_OPTIONS', `worker duties need maxConcurrentTasks >= 1, positive intervals, maxCommitBatch in 1..${MAX_ASSIGN_TASKS} and maxCommitsInFlight >= 1`)
    }
    if (init.chain.hub === undefined) throw new DutyError('DUTY_INVALID_OPTIONS', 'the chain client needs the hub binding')
    this.hub = init.chain.hub
    this.me = init.chain.address
    this.tasks = new KeySetRepository(init.db, 'worker-task', jsonCodec(checkRecord))
  }

  /** Open tasks (held in memory) by state (metrics). */
  stateCounts (): Record<string, number> {
    const out: Record<string, number> = {}
    for (const r of this.open.values()) out[r.state] = (out[r.state] ?? 0) + 1
    return out
  }

  /** Tasks assigned and not yet computed: the capacity they hold (the provider's bids count it). */
  activeTasks (): number {
    return this.active.size
  }

  /** Registers the handlers, loads unfinished tasks and starts the tick. */
  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    // deal folders of an earlier run: nothing is prepared yet in this one
    for (const name of await readdir(this.init.workDir).catch(() => [] as string[])) {
      if (name.startsWith('deal-')) await rm(join(this.init.workDir, name), { recursive: true, force: true })
    }
    await this.tasks.load()
    for await (const { value } of this.tasks.entries()) {
      if (value.state !== 'done' && value.state !== 'failed') this.open.set(value.taskid, value)
      if (value.state === 'assigned') this.active.set(value.taskid, value.dealid)
    }
    this.init.channel.on('assign', async (m, from) => await this.onAssign(m as AssignMessage, from))
    this.init.channel.on('reveal-request', async (m, from) => {
      const r = await this.heldTask((m as { taskid: string }).taskid)
      await this.requireScheduler(r.dealid, from, (m as { proof: string }).proof)
      this.trigger(r.taskid)
      return { type: 'ack' }
    })
    this.init.channel.on('upload-request', async (m, from) => await this.onUploadRequest(m as UploadRequestMessage, from))
    this.init.channel.on('finalized', async (m, from) => await this.onFinalized(m as FinalizedMessage, from))
    this.timer = setInterval(() => { void this.tick() }, this.opts.tickMs)
    this.beatTimer = setInterval(() => { this.beat() }, this.opts.heartbeatIntervalMs)
    void this.tick()
  }

  /** Stops taking work, waits (bounded by the executor's own bounds) for tasks in hand. */
  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    clearInterval(this.beatTimer)
    clearTimeout(this.reportTimer)
    clearTimeout(this.fastTimer)
    this.abort.abort()
    // results not yet committed stay computed in level: the next start commits them
    for (const q of this.fastQueue.splice(0)) q.reject(new DutyError('DUTY_STOPPED', 'the worker is stopping'))
    for (const t of ['assign', 'reveal-request', 'upload-request', 'finalized'] as const) this.init.channel.off(t)
    await Promise.allSettled([...this.running.values()])
  }

  /** A task's record (tests and the API). */
  async task (taskid: string): Promise<WorkerTaskRecord | undefined> {
    return await this.record(taskid.toLowerCase())
  }

  /** A task's record: from memory while the task is open, else from level. */
  private async record (taskid: string): Promise<WorkerTaskRecord | undefined> {
    return this.open.get(taskid) ?? await this.tasks.get(taskid)
  }

  private log (msg: string, context?: Record<string, unknown>): void {
    this.init.log?.(msg, context)
  }

  private async save (r: WorkerTaskRecord): Promise<void> {
    await this.writing([r.taskid], async () => {
      await this.tasks.put(r.taskid, r)
      this.follow(r)
    })
    await this.freeDisk(r)
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

  /**
   * Rewrites a task's record from its state at the time of the write (the
   * read happens after every earlier write of it); `change` answers the new
   * record, or undefined to leave it.
   */
  private async update (taskid: string, change: (r: WorkerTaskRecord) => WorkerTaskRecord | undefined): Promise<WorkerTaskRecord | undefined> {
    const next = await this.writing([taskid], async () => {
      const r = await this.record(taskid)
      const n = r === undefined ? undefined : change(r)
      if (n !== undefined) {
        await this.tasks.put(n.taskid, n)
        this.follow(n)
      }
      return n
    })
    if (next !== undefined) await this.freeDisk(next)
    return next
  }

  /** A commit's 'done' records: written in one batch, followed in memory before any later write of them. */
  private async commitRecords (done: WorkerTaskRecord[]): Promise<void> {
    await this.writing(done.map((r) => r.taskid), async () => {
      await this.tasks.batch(done.map((r) => ({ type: 'put' as const, key: r.taskid, value: r })))
      const hold = this.init.faults?.holdCommitRecordMs ?? 0
      if (hold > 0) await sleep(hold)
      for (const r of done) this.follow(r)
    })
  }

  /** The in-memory sets follow a written record's state. */
  private follow (r: WorkerTaskRecord): void {
    if (r.state === 'done' || r.state === 'failed') this.open.delete(r.taskid)
    else this.open.set(r.taskid, r)
    if (r.state === 'assigned') this.active.set(r.taskid, r.dealid)
    else this.active.delete(r.taskid)
  }

  /** After a record was written: the in-memory sets follow its state, and a closed task's folder goes. */
  private async settled (r: WorkerTaskRecord): Promise<void> {
    this.follow(r)
    await this.freeDisk(r)
  }

  /** A closed task's inputs and outputs are in Helia or no longer needed: its folder goes. */
  private async freeDisk (r: WorkerTaskRecord): Promise<void> {
    if (r.state === 'done' || r.state === 'failed') await rm(this.dirs(r.taskid).root, { recursive: true, force: true }).catch(() => {})
  }

  /**
   * Takes the tasks of an `assign` in order while this worker has room (its
   * uncomputed tasks under maxConcurrentTasks); a task it already holds (a
   * resend, a new scheduler after reelection) counts as taken and is never
   * started twice. Answers how many it took; none is DUTY_BUSY.
   */
  private async onAssign (m: AssignMessage, from: string): Promise<ExecMessage> {
    if (!this.started) throw new DutyError('DUTY_STOPPED', 'the worker is stopping')
    const dealid = m.dealid.toLowerCase()
    // the sender first: nothing of a message from anyone but the deal's scheduler is looked at
    await this.requireScheduler(dealid, from, m.proof)
    await this.checkCommitment(m)
    const tasks = m.tasks.map((t) => ({ ...t, taskid: taskId(m.dealid, t.idx).toLowerCase() }))
    const signers = tasks.map((t) => {
      try {
        return recoverAuthorizationSigner(this.init.domain, { worker: this.me, taskid: t.taskid }, t.authorization)
      } catch (err) {
        throw new DutyError('DUTY_NOT_AUTHORIZED', 'an authorization does not recover', { idx: t.idx }, { cause: err })
      }
    })
    let deal = await this.deal(m.dealid, false)
    // another signer than the scheduler we know: the deal may have been reelected since we read it
    if (signers.some((signer) => !same(signer, deal.scheduler))) deal = await this.deal(m.dealid, true)
    if (Number(deal.trust) !== m.trust) throw new DutyError('DUTY_BAD_TASK', 'trust differs from the deal\'s')
    const scheduler = deal.scheduler
    const forged = signers.find((signer) => !same(signer, scheduler))
    if (forged !== undefined) throw new DutyError('DUTY_NOT_AUTHORIZED', 'an authorization is not signed by the deal\'s scheduler', { signer: forged, scheduler })
    if (!this.members.has(dealid)) {
      if (!await this.hub.isDealWorker(m.dealid, this.me)) throw new DutyError('DUTY_NOT_A_WORKER', 'this node is not a worker of the deal')
      if (this.members.size >= 10_000) this.members.clear()
      this.members.add(dealid)
    }
    const asset = await memoAsync(this.apps, m.app.toLowerCase(), async () => await this.hub.appOf(m.app))
    if (asset.cid !== m.appContent.cid || !same(asset.checksum, m.appContent.checksum)) {
      throw new DutyError('DUTY_BAD_APP', 'the app content differs from the hub\'s registry', { app: m.app })
    }
    if (m.dataset !== undefined) {
      if (this.init.datasetKey === undefined) throw new DutyError('DUTY_DATASET_UNSUPPORTED', 'this worker has no way to get dataset keys')
      const ds = await this.hub.datasetOf(m.dataset.address)
      if (ds.cid !== m.dataset.cid || !same(ds.checksum, m.dataset.checksum)) {
        throw new DutyError('DUTY_BAD_APP', 'the dataset content differs from the hub\'s registry', { dataset: m.dataset.address })
      }
    }
    let encrypt: boolean | undefined
    try {
      encrypt = parseRequestParams(m.params).iexec_result_encryption
    } catch (err) {
      throw new DutyError('DUTY_BAD_TASK', 'params do not parse', {}, { cause: err })
    }
    // never publish a result in clear that the requester asked to be encrypted
    if (encrypt === true && m.resultEncryptionKey === undefined) throw new DutyError('DUTY_BAD_TASK', 'the request asks for result encryption but the assignment carries no key')

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
        this.trigger(t.taskid)
        accepted++
        continue
      }
      if (this.active.size + taken.length >= this.opts.maxConcurrentTasks * TASKS_PER_CPU) break
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
    if (taken.length > 0) await this.tasks.batch(taken.map((r) => ({ type: 'put' as const, key: r.taskid, value: r })))
    for (const r of taken) {
      await this.settled(r)
      this.log('task assigned', { taskid: r.taskid, dealid: m.dealid, idx: r.idx })
      this.trigger(r.taskid)
    }
    if (accepted === 0) throw new DutyError('DUTY_BUSY', `already running ${this.active.size} tasks`)
    return { type: 'assigned', accepted }
  }

  /**
   * Proves that peer `from` speaks for the deal's current scheduler: its
   * ExecPeer proof recovers (once per peer and proof) to the hub's
   * scheduler of the deal, read again once when it differs (a reelection
   * since the deal was read).
   * @throws DutyError DUTY_NOT_SCHEDULER, DUTY_BAD_TASK (no such deal)
   */
  private async requireScheduler (dealid: string, from: string, proof: string): Promise<Awaited<ReturnType<Hub['dealOf']>>> {
    const key = `${from}|${proof}`
    let signer = this.provers.get(key)
    if (signer === undefined) {
      try {
        signer = recoverExecPeer(this.init.domain, from, proof)
      } catch (err) {
        throw new DutyError('DUTY_NOT_SCHEDULER', 'the sender\'s proof does not recover', { peer: from }, { cause: err })
      }
      // bounded: a few schedulers in practice, a flood of forged proofs costs its sender its ban
      if (this.provers.size >= 1_000) this.provers.clear()
      this.provers.set(key, signer)
    }
    let deal = await this.deal(dealid, false)
    if (!same(signer, deal.scheduler)) deal = await this.deal(dealid, true)
    if (!same(signer, deal.scheduler)) throw new DutyError('DUTY_NOT_SCHEDULER', 'the sender is not the deal\'s current scheduler', { peer: from, signer, scheduler: deal.scheduler })
    return deal
  }

  /** A task this worker holds, by id. @throws DutyError DUTY_UNKNOWN_TASK */
  private async heldTask (taskid: string): Promise<WorkerTaskRecord> {
    const r = await this.record(taskid.toLowerCase())
    if (r === undefined) throw new DutyError('DUTY_UNKNOWN_TASK', 'this worker holds no such task')
    return r
  }

  /** The deal's DealCreated, read once. @throws DutyError DUTY_BAD_TASK when the hub emitted none */
  private async commitment (dealid: string): Promise<DealInfo> {
    if (this.commitments.size >= 10_000 && !this.commitments.has(dealid)) this.commitments.clear()
    return await memoAsync(this.commitments, dealid, async () => {
      const info = (await this.init.dealCommitment?.(dealid)) ?? await this.dealCreated(dealid)
      if (info === undefined) throw new DutyError('DUTY_BAD_TASK', 'the hub emitted no DealCreated for the deal', { dealid })
      return info
    })
  }

  /** The bounds of the deal's category (a category never changes on the hub: read once per category). */
  private async categoryLimits (dealid: string): Promise<CategoryLimits> {
    const category = (await this.commitment(dealid)).category
    return await memoAsync(this.categories, String(category), async () => {
      const c = await this.hub.categoryOf(category)
      return { timeRef: Number(c.timeRef), memoryMiB: Number(c.memoryMiB), diskMiB: Number(c.diskMiB) }
    })
  }

  private async dealCreated (dealid: string): Promise<DealInfo | undefined> {
    const logs = await queryLogsInRanges(async (a, b) => await this.hub.queryFilter(this.hub.filters.DealCreated(dealid), a, b), { fromBlock: this.init.fromBlock ?? 0, head: this.init.chain.provider })
    const log = logs[0]
    if (log === undefined) return undefined
    return dealFromEvent({ name: 'DealCreated', args: log.args, transactionHash: log.transactionHash } as unknown as Parameters<typeof dealFromEvent>[0])
  }

  /**
   * What the worker runs is what the requester signed: the assignment's
   * app, dataset and params are the ones of the deal's DealCreated (emitted
   * by the hub from the signed request order), and a result key, present
   * exactly when the params ask for encryption, is the requester's own
   * (the one its params name, when they name one). The hub's registry
   * checks the app's and dataset's contents afterwards.
   * @throws DutyError DUTY_ASSIGNMENT_MISMATCH
   */
  private async checkCommitment (m: AssignMessage): Promise<void> {
    const dealid = m.dealid.toLowerCase()
    const fingerprint = JSON.stringify([m.app.toLowerCase(), (m.dataset?.address ?? ZERO_ADDRESS).toLowerCase(), m.params, m.resultEncryptionKey?.toLowerCase() ?? ''])
    if (this.matched.get(dealid) === fingerprint) return
    const info = await this.commitment(dealid)
    const mismatch = (field: string): DutyError => new DutyError('DUTY_ASSIGNMENT_MISMATCH', `the assignment's ${field} is not the one the deal's requester signed`, { dealid, field })
    if (!same(m.app, info.app)) throw mismatch('app')
    if (!same(m.dataset?.address ?? ZERO_ADDRESS, info.dataset)) throw mismatch('dataset')
    if (m.params !== info.params) throw mismatch('params')
    let params
    try {
      params = parseRequestParams(info.params)
    } catch (err) {
      throw new DutyError('DUTY_BAD_TASK', 'the deal\'s params do not parse', { dealid }, { cause: err })
    }
    const key = m.resultEncryptionKey
    if (params.iexec_result_encryption === true) {
      if (key === undefined) throw mismatch('result key')
      if (params.iexec_p2p_result_key !== undefined && key.toLowerCase() !== params.iexec_p2p_result_key.toLowerCase()) throw mismatch('result key')
      let owner: string
      try {
        owner = computeAddress(key)
      } catch {
        throw mismatch('result key')
      }
      if (!same(owner, info.requester)) throw mismatch('result key')
    } else if (key !== undefined) {
      throw mismatch('result key')
    }
    if (this.matched.size >= 10_000) this.matched.clear()
    this.matched.set(dealid, fingerprint)
  }

  /** The hub's deal, read once (again when `fresh`); a failed read is not kept. @throws DutyError DUTY_BAD_TASK when there is no such deal */
  private async deal (dealid: string, fresh: boolean): Promise<Awaited<ReturnType<Hub['dealOf']>>> {
    const key = dealid.toLowerCase()
    if (fresh) this.deals.delete(key)
    try {
      return await memoAsync(this.deals, key, async () => await this.hub.dealOf(dealid, { blockTag: 'pending' }))
    } catch (err) {
      throw new DutyError('DUTY_BAD_TASK', 'no such deal on the hub', { dealid }, { cause: err })
    }
  }

  /** Runs the task's next steps unless they are already running. */
  private trigger (taskid: string): void {
    if (!this.started || this.running.has(taskid)) return
    const p = this.advance(taskid)
      .catch((err: unknown) => { this.log('task step failed', { taskid, error: err instanceof Error ? err.message : String(err) }) })
      .finally(() => { this.running.delete(taskid) })
    this.running.set(taskid, p)
  }

  private async tick (): Promise<void> {
    if (this.ticking || !this.started) return
    this.ticking = true
    try {
      for (const taskid of [...this.open.keys()]) this.trigger(taskid)
      await this.evictPrepared()
    } finally {
      this.ticking = false
    }
  }

  /** Moves one task forward as far as it can go now. */
  private async advance (taskid: string): Promise<void> {
    let r = await this.record(taskid)
    if (r === undefined) return
    if (r.state === 'assigned' || r.state === 'computed') {
      this.report(r, r.state === 'assigned' ? 'running' : 'contributing')
      try {
        if (r.state === 'assigned') {
          // maxConcurrentTasks runs at once; the other tasks held wait their turn, in order
          await this.computeSlot()
          try {
            r = await this.compute(r)
          } finally {
            this.releaseComputeSlot()
          }
        }
        if (r.state === 'computed') {
          // the CPU is free: the scheduler hears it at once and can give the slot another task
          this.report(r, 'contributing', true)
          r = r.trust === 1 ? await this.commitFast(r) : await this.contribute(r)
        }
      } finally {
        // once committed (or failed) the chain speaks for the task: no more beats
        if (r.state !== 'assigned' && r.state !== 'computed' && this.reports.get(r.taskid)?.status !== 'failed') this.reports.delete(r.taskid)
      }
    }
    if (r.state === 'contributed') r = await this.revealIfDue(r)
  }

  /** Waits for one of the maxConcurrentTasks compute slots (first come, first served). */
  private async computeSlot (): Promise<void> {
    if (this.computing < this.opts.maxConcurrentTasks) {
      this.computing++
      return
    }
    await new Promise<void>((resolve) => { this.slotWaiters.push(resolve) })
  }

  private releaseComputeSlot (): void {
    const next = this.slotWaiters.shift()
    // the slot passes straight to the next waiter
    if (next !== undefined) next()
    else this.computing--
  }

  /** Records what the task's scheduler is told; `soon` sends it within reportDelayMs instead of at the next beat. */
  private report (r: WorkerTaskRecord, status: TaskProgress, soon = false, code?: string): void {
    this.reports.set(r.taskid, { peer: r.schedulerPeer, status, ...(code !== undefined ? { code } : {}) })
    if (!soon) return
    this.reportDue.add(r.schedulerPeer)
    this.reportTimer ??= setTimeout(() => {
      this.reportTimer = undefined
      const peers = [...this.reportDue]
      this.reportDue.clear()
      this.sendReports(peers)
    }, this.opts.reportDelayMs)
  }

  /** Every beat: one heartbeat per scheduler with every task this worker holds for it. */
  private beat (): void {
    this.sendReports([...new Set([...this.reports.values()].map((v) => v.peer))])
  }

  /** Sends each of `peers` the reports of its tasks (split by MAX_REPORT_TASKS); a failure, once sent, is forgotten. */
  private sendReports (peers: string[]): void {
    for (const peer of peers) {
      const tasks: TaskReport[] = []
      for (const [taskid, v] of this.reports) {
        if (v.peer !== peer) continue
        tasks.push({ taskid, status: v.status, ...(v.code !== undefined ? { code: v.code } : {}) })
        if (v.status === 'failed') this.reports.delete(taskid)
      }
      for (let i = 0; i < tasks.length; i += MAX_REPORT_TASKS) {
        void this.init.channel.send(peer, { type: 'heartbeat', tasks: tasks.slice(i, i + MAX_REPORT_TASKS) }, { signal: this.abort.signal }).catch(() => {})
      }
    }
  }

  private async fail (r: WorkerTaskRecord, err: unknown): Promise<WorkerTaskRecord> {
    const failed: WorkerTaskRecord = { ...r, state: 'failed', error: err instanceof Error ? err.message : String(err), errorCode: failureCode(err) }
    failed.failureReport = await this.signFailure(failed, err).catch((e: unknown) => {
      this.log('failure report not signed', { taskid: r.taskid, error: e instanceof Error ? e.message : String(e) })
      return undefined
    })
    await this.save(failed)
    // the scheduler hears why at once: it need not wait for missed beats to count this replica out
    this.report(r, 'failed', true, failed.errorCode)
    this.log('task failed', { taskid: r.taskid, code: failed.errorCode, error: failed.error })
    return failed
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
    if (sealed) tail = eciesEncrypt(r.resultEncryptionKey as string, tail, failureReportContext(r.taskid, this.me))
    return await signFailureReport(this.init.chain.wallet, this.init.domain, {
      taskid: r.taskid,
      worker: this.me,
      code: r.errorCode ?? 'DUTY_FAILED',
      exitCode,
      stderr: Buffer.from(tail).toString('base64'),
      stderrEncrypted: sealed,
      stderrBytes: typeof d.stderrBytes === 'number' ? d.stderrBytes : 0,
      at: Math.floor(Date.now() / 1000)
    })
  }

  /** A failed task's signed report, when this worker holds one (the failure-report protocol's answer). */
  async failureReport (taskid: string): Promise<FailureReport | undefined> {
    const r = await this.record(taskid.toLowerCase())
    return r?.state === 'failed' ? r.failureReport : undefined
  }

  private dirs (taskid: string): { root: string, output: string } {
    const root = join(this.init.workDir, taskid)
    return { root, output: join(root, 'out') }
  }

  /**
   * What every task of a deal runs on, made once on this worker and shared
   * by its tasks (a deal's tasks have the same app, dataset and params): the
   * app module checked against its registered checksum, and one input
   * folder with the input files and the (decrypted, checked) dataset, which
   * the executor opens read-only to each run. A bag fetched, hashed and
   * wrote them once per task. Forgotten, and its folder removed, once the
   * deal has had no task computing here for preparedTtlMs.
   */
  private async prepareDeal (r: WorkerTaskRecord): Promise<PreparedDeal> {
    let entry = this.prepared.get(r.dealid)
    if (entry === undefined) {
      const made = this.makePrepared(r)
      entry = { ready: made, usedAt: Date.now() }
      this.prepared.set(r.dealid, entry)
      // a failed preparation is not kept: the next task tries again
      made.catch(() => { if (this.prepared.get(r.dealid)?.ready === made) this.prepared.delete(r.dealid) })
    }
    entry.usedAt = Date.now()
    return await entry.ready
  }

  private async makePrepared (r: WorkerTaskRecord): Promise<PreparedDeal> {
    const root = join(this.init.workDir, `deal-${r.dealid}`)
    const input = join(root, 'in')
    // left by an earlier run of this node: made again from empty
    await rm(root, { recursive: true, force: true })
    await mkdir(input, { recursive: true })
    const params = parseRequestParams(r.params)
    // inputs and datasets may be GiBs: their whole-fetch bound grows with their size, and a
    // fetch whose peers went away is stopped by the stall bound long before that
    const inputFetch: FetchOptions = {
      maxBytes: this.opts.maxInputBytes,
      timeoutMs: this.opts.fetchTimeoutMs,
      minBytesPerSecond: this.opts.fetchMinBytesPerSecond,
      stallTimeoutMs: this.opts.fetchStallTimeoutMs,
      signal: this.abort.signal
    }
    // the CID is an input file's name: the same on every worker, and safe as a path
    const inputFiles = params.iexec_input_files ?? []
    // all at once, the dial of the app's holders too (bitswap asks a peer as soon as it is
    // connected): none of them waits for another
    const steps = await Promise.allSettled([
      this.fetchApp(r),
      ...[...new Set(inputFiles)].map(async (cid) => { await fetchToFile(this.init.helia, cid, join(input, cid), inputFetch) }),
      this.init.reachAppHolders?.(r.app).catch((err: unknown) => { this.log('app holders not reached', { app: r.app, error: err instanceof Error ? err.message : String(err) }) })
    ])
    // every fetch has ended (none writes into the folder any more) before a failure is reported
    const failed = steps.find((x): x is PromiseRejectedResult => x.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    const module = (steps[0] as PromiseFulfilledResult<Uint8Array>).value
    let datasetFilename: string | undefined
    if (r.dataset !== undefined) {
      if (this.init.datasetKey === undefined) throw new DutyError('DUTY_DATASET_UNSUPPORTED', 'this worker has no way to get dataset keys')
      const enc = join(root, 'dataset.enc')
      const keepDataset = await this.init.retention?.prepare([r.dataset.cid])
      await fetchToFile(this.init.helia, r.dataset.cid, enc, inputFetch)
      await keepDataset?.()
      datasetFilename = 'dataset'
      if (await isEncryptedContent(enc)) {
        const key = await this.init.datasetKey({ dataset: r.dataset.address, dealid: r.dealid, idx: r.idx, authorization: r.authorization })
        try {
          const plain = await decryptDataset(enc, join(input, datasetFilename), key)
          if (plain.checksum.toLowerCase() !== r.dataset.checksum) throw new DutyError('DUTY_BAD_APP', 'the decrypted dataset does not hash to its registered checksum', { expected: r.dataset.checksum, got: plain.checksum })
        } finally {
          key.fill(0)
          await rm(enc, { force: true })
        }
      } else {
        // a dataset published with --no-encrypt: no key to ask for, the same checksum to check
        const checksum = await placePlainDataset(enc, join(input, datasetFilename))
        if (checksum !== r.dataset.checksum) throw new DutyError('DUTY_BAD_APP', 'the dataset does not hash to its registered checksum', { expected: r.dataset.checksum, got: checksum })
      }
    }
    return { root, module, inputDir: input, inputFiles, ...(datasetFilename !== undefined ? { datasetFilename } : {}) }
  }

  /**
   * A sweep task's own parameters (params' iexec_p2p_task_args and
   * iexec_p2p_task_inputs, signed by the requester with the request): its
   * arguments, and an input folder of its own holding the deal's inputs
   * (linked) and its own files, so that no task sees another's inputs.
   * Without a sweep, the deal's shared folder.
   * @throws DutyError DUTY_SWEEP_MISMATCH when a list is not one entry per task of the deal
   */
  private async sweepTask (r: WorkerTaskRecord, params: ReturnType<typeof parseRequestParams>, prepared: PreparedDeal): Promise<{ args?: string, inputDir: string, inputFiles: string[] }> {
    let taskArgs = params.iexec_p2p_task_args
    let taskInputs = params.iexec_p2p_task_inputs
    if (params.iexec_p2p_sweep !== undefined) {
      const doc = await this.sweepDocument(r.dealid, params.iexec_p2p_sweep)
      taskArgs = doc.args
      taskInputs = doc.inputs
    }
    if (taskArgs === undefined && taskInputs === undefined) return { inputDir: prepared.inputDir, inputFiles: prepared.inputFiles }
    const volume = (await this.commitment(r.dealid)).volume
    for (const [field, list] of [['iexec_p2p_task_args', taskArgs], ['iexec_p2p_task_inputs', taskInputs]] as const) {
      if (list !== undefined && (list.length !== volume || r.idx >= list.length)) {
        throw new DutyError('DUTY_SWEEP_MISMATCH', `params.${field} has ${list.length} entries for a deal of ${volume} task(s)`, { field, entries: list.length, volume, idx: r.idx })
      }
    }
    const own = taskInputs?.[r.idx] ?? []
    if (own.length === 0) return { ...(taskArgs !== undefined ? { args: taskArgs[r.idx] } : {}), inputDir: prepared.inputDir, inputFiles: prepared.inputFiles }
    const dir = join(this.dirs(r.taskid).root, 'in')
    await mkdir(dir, { recursive: true })
    for (const name of await readdir(prepared.inputDir)) {
      await link(join(prepared.inputDir, name), join(dir, name)).catch(async () => { await copyFile(join(prepared.inputDir, name), join(dir, name)) })
    }
    const fetchOpts: FetchOptions = {
      maxBytes: this.opts.maxInputBytes,
      timeoutMs: this.opts.fetchTimeoutMs,
      minBytesPerSecond: this.opts.fetchMinBytesPerSecond,
      stallTimeoutMs: this.opts.fetchStallTimeoutMs,
      signal: this.abort.signal
    }
    // the CID is the file's name, as for the deal's inputs (checked to be letters and digits by the params parser)
    for (const cid of new Set(own)) {
      if (!prepared.inputFiles.includes(cid)) await fetchToFile(this.init.helia, cid, join(dir, cid), fetchOpts)
    }
    return { ...(taskArgs !== undefined ? { args: taskArgs[r.idx] } : {}), inputDir: dir, inputFiles: [...prepared.inputFiles, ...own] }
  }

  /**
   * A sweep's lists from the document its params name, fetched once per
   * deal and checked against the params' sha256.
   * @throws DutyError DUTY_SWEEP_MISMATCH when the bytes do not hash to it or do not parse
   */
  private async sweepDocument (dealid: string, ref: { cid: string, checksum: string }): Promise<{ args?: string[], inputs?: string[][] }> {
    return await memoAsync(this.sweeps, dealid, async () => {
      const chunks: Uint8Array[] = []
      for await (const c of catContent(this.init.helia, ref.cid, { maxBytes: MAX_SWEEP_DOCUMENT_BYTES, timeoutMs: this.opts.fetchTimeoutMs, stallTimeoutMs: this.opts.fetchStallTimeoutMs, signal: this.abort.signal })) chunks.push(c)
      const bytes = Buffer.concat(chunks)
      const checksum = '0x' + createHash('sha256').update(bytes).digest('hex')
      if (checksum !== ref.checksum) throw new DutyError('DUTY_SWEEP_MISMATCH', 'the sweep document does not hash to the checksum in the params', { expected: ref.checksum, got: checksum })
      try {
        return parseSweepDocument(bytes)
      } catch (err) {
        throw new DutyError('DUTY_SWEEP_MISMATCH', 'the sweep document does not parse', {}, { cause: err })
      }
    }, 100)
  }

  /** The deal's app module, fetched (kept and provided a while by retention) and checked against its registered checksum. */
  private async fetchApp (r: WorkerTaskRecord): Promise<Uint8Array> {
    const keepApp = await this.init.retention?.prepare([r.appCid])
    const chunks: Uint8Array[] = []
    for await (const c of catContent(this.init.helia, r.appCid, { maxBytes: this.opts.maxAppBytes, timeoutMs: this.opts.fetchTimeoutMs, stallTimeoutMs: this.opts.fetchStallTimeoutMs, signal: this.abort.signal })) chunks.push(c)
    const module = new Uint8Array(Buffer.concat(chunks))
    const checksum = '0x' + createHash('sha256').update(module).digest('hex')
    if (checksum !== r.appChecksum) throw new DutyError('DUTY_BAD_APP', 'the fetched app does not hash to its registered checksum', { expected: r.appChecksum, got: checksum })
    await keepApp?.()
    return module
  }

  /** Forgets the preparations of deals with no task computing here for preparedTtlMs, and removes their folders. */
  private async evictPrepared (): Promise<void> {
    const computing = new Set(this.active.values())
    const before = Date.now() - this.opts.preparedTtlMs
    for (const [dealid, entry] of this.prepared) {
      if (computing.has(dealid) || entry.usedAt >= before) continue
      this.prepared.delete(dealid)
      const made = await entry.ready.catch(() => undefined)
      if (made !== undefined) await rm(made.root, { recursive: true, force: true }).catch(() => {})
    }
  }

  /** Fetch, check, run, digest. */
  private async compute (r: WorkerTaskRecord): Promise<WorkerTaskRecord> {
    const { root, output } = this.dirs(r.taskid)
    try {
      const delay = this.init.faults?.delayBeforeRunMs ?? 0
      if (delay > 0) await sleep(delay, undefined, { signal: this.abort.signal })
      const t0 = Date.now()
      // a restart mid-run starts the run over from an empty folder
      try {
        await mkdir(root)
      } catch {
        await rm(root, { recursive: true, force: true })
        await mkdir(root, { recursive: true })
      }
      const prepared = await this.prepareDeal(r)
      const { module, datasetFilename } = prepared
      const params = parseRequestParams(r.params)
      // a sweep task's own line of arguments and input files
      const sweep = await this.sweepTask(r, params, prepared)
      // split as a POSIX shell would, without expansion: the same argv on every worker (protocols/args.ts)
      const args = splitArgs(sweep.args ?? params.iexec_args ?? '')
      const { inputDir, inputFiles } = sweep
      const limits = runLimits(await this.categoryLimits(r.dealid), this.opts)
      const t1 = Date.now()
      const result = await this.init.executor.run({
        taskId: r.taskid,
        taskIndex: r.idx,
        module,
        args,
        inputDir,
        outputDir: output,
        ...(datasetFilename !== undefined ? { datasetFilename } : {}),
        inputFiles,
        ...limits,
        collectBytes: this.opts.collectOutputBytes,
        // what was read back is all a task needs of its output (the fault below rewrites the disk's)
        removeCollected: this.init.faults?.corruptOutput !== true
      }, this.abort.signal)
      const t2 = Date.now()
      if (result.status !== 'COMPLETED') {
        const stderr = await stderrTail(result.stderrPath)
        throw new DutyError('DUTY_EXECUTION_FAILED', `the app ended ${result.status}: ${result.message ?? ''}`, { status: result.status, exitCode: result.exitCode, stderrTail: stderr.tail, stderrBytes: stderr.bytes })
      }
      let tree = result.output
      if (this.init.faults?.corruptOutput === true) {
        const { mode, path } = tree !== undefined ? resultDigestOfTree(tree) : await computeResultDigest(output)
        if (mode === 'file') await appendFile(join(output, ...path.split('/')), 'corrupted\n')
        else await writeFile(join(output, 'corrupted.txt'), 'corrupted\n')
        // what is in memory is no longer the output: the disk speaks
        tree = undefined
      }
      const digest = tree !== undefined ? resultDigestOfTree(tree) : await computeResultDigest(output)
      const t3 = Date.now()
      // an output read back whole goes to Helia now, from memory (every trust: a trust > 1 result
      // waits for an upload request that then costs nothing); a larger one streams from disk at upload
      const resultsCid = tree !== undefined ? await this.addResult(r, tree) : undefined
      const next: WorkerTaskRecord = {
        ...r,
        state: 'computed',
        digest: digest.digest,
        ...(resultsCid !== undefined ? { resultsCid } : {}),
        ...(digest.callbackData !== undefined ? { callbackData: digest.callbackData } : {})
      }
      await this.save(next)
      this.unsent.add(r.taskid)
      // where a task's time on this worker went (an operator's and the bag benchmark's account)
      this.log('task computed', { taskid: r.taskid, prepareMs: t1 - t0, runMs: t2 - t1, digestMs: t3 - t2, storeMs: Date.now() - t3 })
      return next
    } catch (err) {
      if (this.abort.signal.aborted) throw err
      return await this.fail(r, err)
    }
  }

  /** Adds the result archive of an output held in memory (encrypted to the requester when asked) to Helia; its CID. */
  private async addResult (r: WorkerTaskRecord, tree: TreeEntry[]): Promise<string> {
    let archive = packTree(tree)
    if (r.resultEncryptionKey !== undefined) {
      const parts: Uint8Array[] = []
      for await (const c of encryptResult((async function * () { yield archive })(), r.resultEncryptionKey, { taskid: r.taskid })) parts.push(c)
      archive = Buffer.concat(parts)
    }
    // not provided in the DHT: see upload
    const { cid } = await addBytes(this.init.helia, archive, { signal: this.abort.signal })
    return cid.toString()
  }

  /** Packs the output (encrypted to the requester when asked) and adds it to Helia. */
  private async upload (r: WorkerTaskRecord): Promise<string> {
    if (r.resultsCid !== undefined) return r.resultsCid
    const { output } = this.dirs(r.taskid)
    const source = r.resultEncryptionKey !== undefined
      ? encryptResultFolder(output, r.resultEncryptionKey, { taskid: r.taskid })
      : packFolder(output)
    // not provided in the DHT: a provide per task was most of a bag's network traffic (eight
    // DHT streams a task in a 5-node swarm); whoever fetches a result connects to the deal's
    // workers first (node.ts reachResultHolders) and bitswap asks the connected peers
    const { cid } = await addStream(this.init.helia, source, { signal: this.abort.signal })
    const text = cid.toString()
    // re-read: a reveal may have moved the record on while the archive was added
    await this.save({ ...(await this.record(r.taskid) ?? r), resultsCid: text })
    return text
  }

  /**
   * Trust 1: uploads the result, then commits it with the other results
   * waiting for a transaction (group commit): one transaction carries the
   * ready results of one deal, up to maxCommitBatch. A partial batch goes
   * when nothing else is in flight, once it has waited commitWaitMs for the
   * deal's tasks still computing here (at once when none is), so a worker
   * sends about one transaction per block however fast its tasks run; while
   * one is in flight the next results gather. A full batch goes at once, up
   * to maxCommitsInFlight transactions: with blocks a second apart, one
   * transaction at a time held a worker to maxCommitBatch results a block.
   * A partial batch whose deal has nothing left computing here does not
   * wait for the one in flight either (it would wait a whole block). The
   * worker never waits for the chain between tasks: its slot was freed when
   * the result was computed.
   */
  private async commitFast (r: WorkerTaskRecord): Promise<WorkerTaskRecord> {
    const cid = await this.upload(r)
    return await new Promise((resolve, reject) => {
      this.fastQueue.push({ r: { ...r, resultsCid: cid }, queuedAt: Date.now(), resolve, reject })
      this.pumpFast()
    })
  }

  /** Sends every batch that may go now (see commitFast); called when a result is queued, a transaction settles or a partial batch's wait ends. */
  private pumpFast (): void {
    clearTimeout(this.fastTimer)
    this.fastTimer = undefined
    while (this.started && this.fastQueue.length > 0 && this.fastInFlight < this.opts.maxCommitsInFlight) {
      const first = this.fastQueue[0]
      const dealid = first.r.dealid
      const ready = this.fastQueue.reduce((n, q) => n + (q.r.dealid === dealid ? 1 : 0), 0)
      if (ready < this.opts.maxCommitBatch) {
        const computing = [...this.active.values()].includes(dealid)
        const waitMs = first.queuedAt + this.opts.commitWaitMs - Date.now()
        // a partial batch gathers more results while two of these hold: its deal still computes
        // here, a transaction is in flight (whose end calls this again), it is younger than
        // commitWaitMs (the timer below calls this again)
        if ([computing, this.fastInFlight > 0, waitMs > 0].filter(Boolean).length >= 2) {
          if (waitMs > 0) this.fastTimer = setTimeout(() => { this.pumpFast() }, waitMs)
          return
        }
      }
      const batch: typeof this.fastQueue = []
      for (let i = 0; i < this.fastQueue.length && batch.length < this.opts.maxCommitBatch;) {
        if (this.fastQueue[i].r.dealid === dealid) batch.push(...this.fastQueue.splice(i, 1))
        else i++
      }
      this.fastInFlight++
      void this.sendFast(batch).finally(() => {
        this.fastInFlight--
        this.pumpFast()
      })
    }
  }

  private async sendFast (batch: typeof this.fastQueue): Promise<void> {
    try {
      const done = batch.length === 1
        ? [await this.contributeAndFinalize(batch[0].r, batch[0].queuedAt)]
        : await this.contributeAndFinalizeBatch(batch.map((b) => b.r), batch[0].queuedAt)
      batch.forEach((b, i) => { b.resolve(done[i]) })
    } catch (err) {
      for (const b of batch) b.reject(err)
    }
  }

  /**
   * Several results of one deal in one transaction: the hub's multicall of
   * one contributeAndFinalize per task. A revert means one of them cannot
   * go (closed by another worker, an authorization of a replaced
   * scheduler...): each is then committed on its own, which checks it
   * against the hub first, so a task already closed (a restart after the
   * batch landed) is never committed twice.
   */
  private async contributeAndFinalizeBatch (rs: WorkerTaskRecord[], queuedAt: number): Promise<WorkerTaskRecord[]> {
    const waited = Date.now() - queuedAt
    const calls = rs.map((r) => this.hub.interface.encodeFunctionData('contributeAndFinalize', [r.dealid, r.idx, r.digest as string, r.resultsCid as string, r.authorization, r.callbackData ?? '0x']))
    let tx
    try {
      tx = await this.init.chain.sender.send(this.hub.multicall.populateTransaction(calls))
    } catch (err) {
      // its fate unknown (an RPC failure after the broadcast): the retry asks the hub first
      if (!isChainError(err, 'CONTRACT_REVERT')) {
        for (const r of rs) this.unsent.delete(r.taskid)
        throw err
      }
      this.log('batch commit reverted: committing one by one', { dealid: rs[0].dealid, tasks: rs.length, error: err.message })
      const out: WorkerTaskRecord[] = []
      for (const r of rs) out.push(await this.contributeAndFinalize(r, queuedAt))
      return out
    }
    const hash = tx.hash
    for (const r of rs) this.unsent.delete(r.taskid)
    const done = rs.map((r): WorkerTaskRecord => ({ ...r, state: 'done', txHash: hash }))
    // every record of the batch reads 'done' at once, before any folder is removed
    await this.commitRecords(done)
    for (const r of done) {
      await this.freeDisk(r)
      // where the commit's time went (an operator's and the bag benchmark's account of a result)
      this.log('task contributed and finalized', { taskid: r.taskid, tx: hash, batch: rs.length, queuedMs: waited, ...tx.timings })
    }
    const byPeer = new Map<string, string[]>()
    for (const r of rs) byPeer.set(r.schedulerPeer, [...(byPeer.get(r.schedulerPeer) ?? []), r.taskid])
    for (const [peer, taskids] of byPeer) void this.init.channel.send(peer, { type: 'contributed', taskids, txHash: hash }).catch(() => {})
    return done
  }

  /** Trust 1, one task: commit and close it in one transaction, unless the hub says it is closed already. */
  private async contributeAndFinalize (r: WorkerTaskRecord, queuedAt: number): Promise<WorkerTaskRecord> {
    const digest = r.digest as string
    const cid = r.resultsCid as string
    const waited = Date.now() - queuedAt
    // a restart, or a transaction whose fate is unknown: the hub says whether the task is closed
    if (!this.unsent.delete(r.taskid)) {
      const status = Number(await this.hub.taskStatus(r.dealid, r.idx))
      if (status === TaskStatus.COMPLETED || status === TaskStatus.FAILED) {
        const done: WorkerTaskRecord = { ...r, state: 'done' }
        await this.save(done)
        return done
      }
      if (await this.closedInPool(r)) return r
    }
    try {
      const tx = await this.init.chain.sender.send(this.hub.contributeAndFinalize.populateTransaction(r.dealid, r.idx, digest, cid, r.authorization, r.callbackData ?? '0x'))
      const done: WorkerTaskRecord = { ...r, state: 'done', txHash: tx.hash }
      await this.commitRecords([done])
      await this.freeDisk(done)
      this.log('task contributed and finalized', { taskid: r.taskid, tx: tx.hash, batch: 1, queuedMs: waited, ...tx.timings })
      void this.init.channel.send(r.schedulerPeer, { type: 'contributed', taskids: [r.taskid], txHash: tx.hash }).catch(() => {})
      return done
    } catch (err) {
      // a revert is final (task closed by another worker, deadline passed, bad authorization);
      // anything else (RPC down, timeout) leaves the task computed for the next tick to retry
      if (!isChainError(err, 'CONTRACT_REVERT')) throw err
      return await this.fail(r, err)
    }
  }

  /** Trust > 1: commit, unless the hub already holds this worker's commit. */
  private async contribute (r: WorkerTaskRecord): Promise<WorkerTaskRecord> {
    const digest = r.digest as string
    const c = await this.hub.contributionOf(r.taskid, this.me)
    if (Number(c.status) !== ContributionStatus.UNSET) return await this.contributionFound(r)
    // a commit of an earlier run (killed before it was mined) may still wait in the pool
    if (!this.unsent.delete(r.taskid) && this.pendingInPool(r, 'commit', Number((await this.hub.contributionOf(r.taskid, this.me, PENDING)).status) !== ContributionStatus.UNSET)) return r
    try {
      const tx = await this.init.chain.sender.send(this.hub.contribute.populateTransaction(r.taskid, resultHash(r.taskid, digest), resultSeal(this.me, r.taskid, digest), r.authorization))
      const next: WorkerTaskRecord = { ...r, state: 'contributed', txHash: tx.hash }
      await this.save(next)
      this.log('task contributed', { taskid: r.taskid, tx: tx.hash })
      void this.init.channel.send(r.schedulerPeer, { type: 'contributed', taskids: [r.taskid], txHash: tx.hash }).catch(() => {})
      return next
    } catch (err) {
      // a reverted commit lost a race (consensus reached, deadline passed): nothing more to do for this task;
      // a transport failure is retried by the next tick (the hub is read first, so never twice)
      if (!isChainError(err, 'CONTRACT_REVERT')) throw err
      // unless the race was with this worker's own earlier commit, mined meanwhile
      if (Number((await this.hub.contributionOf(r.taskid, this.me)).status) !== ContributionStatus.UNSET) return await this.contributionFound(r)
      return await this.fail(r, err)
    }
  }

  /**
   * A hub event a reorg took back (the market's follower rewound past it):
   * a task whose record moved on it goes back one step when the hub (latest
   * block) no longer shows the step, and the tick does it again (each step
   * reads the hub first). TaskContributed of this worker: a contributed task
   * commits again; TaskRevealed of this worker: a revealed task reveals
   * again (a trust > 1 task already done too: its finalize went with the
   * reveal); TaskFinalized of a trust-1 task this worker closed in that
   * transaction: it commits again, with the result CID it kept.
   */
  async onChainEventRemoved (event: ChainEvent): Promise<void> {
    if (event.topics.length < 3) return
    const taskid = event.topics[1].toLowerCase()
    const r = await this.record(taskid)
    if (r === undefined || r.digest === undefined) return
    const byMe = (): boolean => same('0x' + event.topics[2].slice(-40), this.me)
    let back: WorkerTaskState | undefined
    // a trust > 1 task is 'done' once the scheduler said it was finalized: that finalize may be gone too
    const doneAbove1 = r.state === 'done' && r.trust > 1
    if (event.name === 'TaskContributed' && byMe() && (r.state === 'contributed' || r.state === 'revealed' || doneAbove1)) {
      if (Number((await this.hub.contributionOf(taskid, this.me)).status) === ContributionStatus.UNSET) back = 'computed'
    } else if (event.name === 'TaskRevealed' && byMe() && (r.state === 'revealed' || doneAbove1)) {
      if (Number((await this.hub.contributionOf(taskid, this.me)).status) !== ContributionStatus.PROVED) back = 'contributed'
    } else if (event.name === 'TaskFinalized' && r.trust === 1 && r.state === 'done' && r.resultsCid !== undefined && r.txHash !== undefined && same(r.txHash, event.transactionHash)) {
      const status = Number(await this.hub.taskStatus(r.dealid, r.idx))
      if (status !== TaskStatus.COMPLETED && status !== TaskStatus.FAILED) back = 'computed'
    }
    if (back === undefined) return
    const to = back
    const moved = await this.update(taskid, (cur) => cur.state === r.state ? { ...cur, state: to } : undefined)
    if (moved === undefined) return
    this.log('task step taken back by a reorg: doing it again', { taskid, event: event.name, state: to })
    this.trigger(taskid)
  }

  /** The hub holds this worker's commit (sent by an earlier run, or before a lost answer): the task is contributed. */
  private async contributionFound (r: WorkerTaskRecord): Promise<WorkerTaskRecord> {
    const next: WorkerTaskRecord = { ...r, state: 'contributed' }
    await this.save(next)
    this.log('task contribution found on the hub', { taskid: r.taskid })
    return next
  }

  /**
   * Whether a transaction of this worker for the task waits in the node's
   * pool (`pending` is the hub's state once the pool is mined: anvil and
   * geth answer it from their pool). A second one would revert, at
   * estimation or once mined, and the task would be failed while the first
   * one lands: the task waits instead, and the next tick reads the hub
   * again (mined: it moves on; dropped: it is sent anew).
   */
  private pendingInPool (r: WorkerTaskRecord, what: string, pending: boolean): boolean {
    if (!pending) return false
    if (!this.waitingPool.has(`${what}:${r.taskid}`)) {
      this.waitingPool.add(`${what}:${r.taskid}`)
      this.log('transaction of an earlier run pending: waiting for it', { taskid: r.taskid, what })
    }
    return true
  }

  /** Trust 1: whether a contributeAndFinalize of the task (this worker's, of an earlier run) waits in the pool. */
  private async closedInPool (r: WorkerTaskRecord): Promise<boolean> {
    const status = Number(await this.hub.taskStatus(r.dealid, r.idx, PENDING))
    return this.pendingInPool(r, 'commit', status === TaskStatus.COMPLETED)
  }

  /** Reveals once the hub's consensus is this worker's result; gives up when the task went on without it. */
  private async revealIfDue (r: WorkerTaskRecord): Promise<WorkerTaskRecord> {
    const digest = r.digest as string
    const task = await this.hub.taskOf(r.taskid)
    const status = Number(task.status)
    if (status === TaskStatus.ACTIVE) return r
    if (status === TaskStatus.REVEALING && task.consensus === resultHash(r.taskid, digest)) {
      const proved = async (blockTag?: 'pending'): Promise<boolean> =>
        Number((await this.hub.contributionOf(r.taskid, this.me, blockTag !== undefined ? { blockTag } : {})).status) === ContributionStatus.PROVED
      const found = async (): Promise<WorkerTaskRecord> => {
        const next: WorkerTaskRecord = { ...r, state: 'revealed' }
        await this.save(next)
        return next
      }
      if (await proved()) return await found()
      // a reveal of an earlier run (killed before it was mined) may still wait in the pool
      if (this.pendingInPool(r, 'reveal', await proved('pending'))) return r
      let tx
      try {
        tx = await this.init.chain.sender.send(this.hub.reveal.populateTransaction(r.taskid, digest))
      } catch (err) {
        if (!isChainError(err, 'CONTRACT_REVERT')) throw err
        // this worker's own earlier reveal, mined meanwhile
        if (await proved()) return await found()
        // the reveal deadline passed: this worker can no longer prove its result
        return await this.fail(r, err)
      }
      const next: WorkerTaskRecord = { ...r, state: 'revealed', txHash: tx.hash }
      await this.save(next)
      this.log('task revealed', { taskid: r.taskid, tx: tx.hash })
      void this.init.channel.send(r.schedulerPeer, { type: 'revealed', taskid: r.taskid, txHash: tx.hash }).catch(() => {})
      return next
    }
    // another result won, or the task closed: this worker owes nothing more
    const done: WorkerTaskRecord = { ...r, state: 'done' }
    await this.save(done)
    return done
  }

  /**
   * The result's CID goes to the deal's current scheduler only, and only
   * once the hub holds this worker's result as the task's consensus
   * (REVEALING or COMPLETED): before that the CID would let a co-worker
   * copy the result and commit it as its own.
   */
  private async onUploadRequest (m: UploadRequestMessage, from: string): Promise<ExecMessage> {
    const r = await this.heldTask(m.taskid)
    await this.requireScheduler(r.dealid, from, m.proof)
    if (r.digest === undefined || !(r.state === 'revealed' || r.state === 'done' || r.state === 'contributed')) {
      throw new DutyError('DUTY_UNKNOWN_TASK', 'this worker holds no result for the task')
    }
    const task = await this.hub.taskOf(r.taskid)
    const status = Number(task.status)
    if (!((status === TaskStatus.REVEALING || status === TaskStatus.COMPLETED) && task.consensus === resultHash(r.taskid, r.digest))) {
      throw new DutyError('DUTY_RESULT_NOT_DUE', 'the hub does not hold this result as the task\'s consensus', { taskid: r.taskid, status })
    }
    const cid = await this.upload(r)
    return { type: 'result-uploaded', taskid: r.taskid, cid, ...(r.callbackData !== undefined ? { callbackData: r.callbackData } : {}) }
  }

  /**
   * The scheduler says a task is finalized: a hint, from the deal's
   * scheduler only, that the hub confirms before the worker lets the task
   * go (a task dropped while its consensus still waits for this worker's
   * reveal would cost its stake).
   */
  private async onFinalized (m: FinalizedMessage, from: string): Promise<ExecMessage> {
    const r = await this.heldTask(m.taskid)
    await this.requireScheduler(r.dealid, from, m.proof)
    if (r.state === 'failed' || r.state === 'done') return { type: 'ack' }
    const status = Number((await this.hub.taskOf(r.taskid)).status)
    // re-read under the task's write order: a commit may have moved it while the hub answered
    if (status === TaskStatus.COMPLETED || status === TaskStatus.FAILED) await this.update(r.taskid, (cur) => cur.state !== 'failed' && cur.state !== 'done' ? { ...cur, state: 'done' } : undefined)
    return { type: 'ack' }
  }
}

/** Builds the worker's duties (call `start` after the network and db are up). */
export function createWorkerDuties (init: WorkerDutiesInit): WorkerDuties {
  return new WorkerDuties(init)
}
