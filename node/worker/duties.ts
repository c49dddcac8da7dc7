import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { TaskStatus } from '../../contracts-abi/index.js'
import type { HubDomain } from '../../protocols/eip712.js'
import { resultHash } from '../../protocols/eip712.js'
import { MAX_ASSIGN_TASKS, TASKS_PER_CPU } from '../../protocols/execution.js'
import type { AssignMessage, ExecMessage, FinalizedMessage, UploadRequestMessage } from '../../protocols/execution.js'
import { failureReportContext, signFailureReport } from '../../protocols/failure-report.js'
import type { FailureReport } from '../../protocols/failure-report.js'
import type { ChainClient, ChainEvent, Hub } from '../chain/index.js'
import { queryLogsInRanges } from '../chain/index.js'
import { KeySetRepository, jsonCodec } from '../db/index.js'
import type { DbController } from '../db/index.js'
import { dealFromEvent } from '../chain/deal.js'
import type { DealInfo } from '../chain/deal.js'
import type { ExecChannel } from '../exec/exec-channel.js'
import { eciesEncrypt } from '../storage/ecies.js'
import { addBytes, addStream, catContent, decryptDataset, fetchToFile, isEncryptedContent, placePlainDataset } from '../storage/index.js'
import type { ContentHelia } from '../storage/index.js'
import { TaskBook, checkRecord } from './duties-book.js'
import type { WorkerTaskRecord } from './duties-book.js'
import { AssignmentChecks } from './duties-checks.js'
import { Committer } from './duties-committer.js'
import { ComputeSlots } from './duties-compute.js'
import { DutyError } from './duties-errors.js'
import { defaultWorkerDutiesOptions, type WorkerDutiesOptions } from './duties-options.js'
import { DealPreparer } from './duties-prepare.js'
import { Reporter } from './duties-reporter.js'
import type { Executor } from './executor.js'

export type { WorkerTaskRecord, WorkerTaskState } from './duties-book.js'
export { stderrTail } from './duties-compute.js'

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
   * Gets a dataset's content key from its owner (storage/dataset-key-resolver.ts: storage's
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
   * Connects to the peers that hold an app's module (network/holders.ts: its owner, by
   * its advert) before a deal's first task fetches it. Best effort: a
   * failure is logged and the fetch finds providers through the DHT.
   */
  reachAppHolders?: (app: string) => Promise<void>
  /**
   * What the deal's requester signed, as this node already learned it from
   * the hub's DealCreated event (execution/execution.ts: the scheduler service's record of
   * the deal); undefined when not known yet. Tried first; the hub's
   * DealCreated log of the deal, read from `fromBlock`, otherwise.
   */
  dealCommitment?: (dealid: string) => Promise<DealInfo | undefined>
  /** first block of the hub's logs (default 0) */
  fromBlock?: number
}
/**
 * The worker's side of execution: takes assignments from deal schedulers over
 * the exec protocol, fetches the app and inputs through Helia (checksums
 * checked against the hub), runs the app in the executor, commits, reveals
 * when consensus is reached, and uploads the result when chosen.
 *
 * A facade over its parts, each given only what it uses: the task book
 * (records), the assignment checks, the deal preparer (app, inputs,
 * dataset), the compute slots (runs), the reporter (heartbeats, failures)
 * and the committer (contribute, reveal, group commit). This class routes
 * the exec messages and moves each task from one part to the next.
 */
export class WorkerDuties {
  private readonly opts: WorkerDutiesOptions
  private readonly hub: Hub
  private readonly book: TaskBook
  private readonly checks: AssignmentChecks
  private readonly preparer: DealPreparer
  private readonly slots: ComputeSlots
  private readonly reporter: Reporter
  private readonly committer: Committer
  /** tasks being worked on now (one promise per task: a second trigger waits its turn) */
  private readonly running = new Map<string, Promise<void>>()
  private timer: NodeJS.Timeout | undefined
  private beatTimer: NodeJS.Timeout | undefined
  private ticking = false
  private started = false
  private readonly abort = new AbortController()

  constructor (private readonly init: WorkerDutiesInit) {
    this.opts = { ...defaultWorkerDutiesOptions, ...init.options }
    const o = this.opts
    if (!(o.maxConcurrentTasks >= 1 && o.heartbeatIntervalMs > 0 && o.tickMs > 0 && (o.maxRunMs === undefined || o.maxRunMs > 0) && o.reportDelayMs >= 0 && o.maxCommitBatch >= 1 && o.maxCommitBatch <= MAX_ASSIGN_TASKS && o.maxCommitsInFlight >= 1)) {
      throw new DutyError('DUTY_INVALID_OPTIONS', `worker duties need maxConcurrentTasks >= 1, positive intervals, maxCommitBatch in 1..${MAX_ASSIGN_TASKS} and maxCommitsInFlight >= 1`)
    }
    if (init.chain.hub === undefined) throw new DutyError('DUTY_INVALID_OPTIONS', 'the chain client needs the hub binding')
    const hub = this.hub = init.chain.hub
    const me = init.chain.address
    const { helia, workDir, channel } = init
    const sender = init.chain.sender
    const signal = this.abort.signal
    const log = (msg: string, context?: Record<string, unknown>): void => { init.log?.(msg, context) }
    this.book = new TaskBook({
      store: new KeySetRepository(init.db, 'worker-task', jsonCodec(checkRecord)),
      workDir,
      maxHeld: () => o.maxConcurrentTasks * TASKS_PER_CPU,
      ...(init.faults?.holdCommitRecordMs !== undefined ? { holdCommitRecordMs: init.faults.holdCommitRecordMs } : {}),
      log
    })
    this.checks = new AssignmentChecks({
      hub,
      domain: init.domain,
      me,
      datasets: init.datasetKey !== undefined,
      ...(init.dealCommitment !== undefined ? { dealCommitment: init.dealCommitment } : {}),
      dealCreated: async (dealid) => await this.dealCreated(dealid)
    })
    this.reporter = new Reporter({
      records: this.book,
      send: async (peer, message, signal) => await channel.send(peer, message, { signal }),
      sign: async (fields) => await signFailureReport(init.chain.wallet, init.domain, fields),
      seal: (key, tail, taskid) => eciesEncrypt(key, tail, failureReportContext(taskid, me)),
      me,
      reportDelayMs: o.reportDelayMs,
      signal,
      log
    })
    this.preparer = new DealPreparer({
      content: {
        cat: (cid, options) => catContent(helia, cid, options),
        toFile: async (cid, path, options) => { await fetchToFile(helia, cid, path, options) }
      },
      datasets: { isEncrypted: isEncryptedContent, decrypt: decryptDataset, placePlain: placePlainDataset },
      workDir,
      options: o,
      signal,
      volume: async (dealid) => (await this.checks.commitment(dealid)).volume,
      ...(init.datasetKey !== undefined ? { datasetKey: init.datasetKey } : {}),
      ...(init.retention !== undefined ? { retention: init.retention } : {}),
      ...(init.reachAppHolders !== undefined ? { reachAppHolders: init.reachAppHolders } : {}),
      log
    })
    this.slots = new ComputeSlots({
      records: this.book,
      failures: this.reporter,
      preparer: this.preparer,
      limits: async (dealid) => await this.checks.categoryLimits(dealid),
      executor: init.executor,
      addBytes: async (bytes, signal) => (await addBytes(helia, bytes, { signal })).cid.toString(),
      workDir,
      options: o,
      signal,
      ...(init.faults !== undefined ? { faults: init.faults } : {}),
      log
    })
    this.committer = new Committer({
      records: this.book,
      failures: this.reporter,
      hub,
      sends: {
        contributeAndFinalize: async (r) => await sender.send(hub.contributeAndFinalize.populateTransaction(r.dealid, r.idx, r.digest as string, r.resultsCid as string, r.authorization, r.callbackData ?? '0x')),
        contributeAndFinalizeBatch: async (rs) => await sender.send(hub.multicall.populateTransaction(rs.map((r) =>
          hub.interface.encodeFunctionData('contributeAndFinalize', [r.dealid, r.idx, r.digest as string, r.resultsCid as string, r.authorization, r.callbackData ?? '0x'])))),
        contribute: async (taskid, hash, seal, authorization) => await sender.send(hub.contribute.populateTransaction(taskid, hash, seal, authorization)),
        reveal: async (taskid, digest) => await sender.send(hub.reveal.populateTransaction(taskid, digest))
      },
      tell: async (peer, message) => await channel.send(peer, message),
      addStream: async (source, signal) => (await addStream(helia, source, { signal })).cid.toString(),
      me,
      workDir,
      options: o,
      running: () => this.started,
      signal,
      log
    })
  }

  /** Open tasks (held in memory) by state (metrics). */
  stateCounts (): Record<string, number> {
    return this.book.stateCounts()
  }

  /** Tasks assigned and not yet computed: the capacity they hold (the provider's bids count it). */
  activeTasks (): number {
    return this.book.activeCount()
  }

  /** Registers the handlers, loads unfinished tasks and starts the tick. */
  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    // deal folders of an earlier run: nothing is prepared yet in this one
    for (const name of await readdir(this.init.workDir).catch(() => [] as string[])) {
      if (name.startsWith('deal-')) await rm(join(this.init.workDir, name), { recursive: true, force: true })
    }
    await this.book.load()
    const channel = this.init.channel
    channel.on('assign', async (m, from) => await this.onAssign(m as AssignMessage, from))
    channel.on('reveal-request', async (m, from) => {
      const r = await this.heldTask((m as { taskid: string }).taskid)
      await this.checks.requireScheduler(r.dealid, from, (m as { proof: string }).proof)
      this.trigger(r.taskid)
      return { type: 'ack' }
    })
    channel.on('upload-request', async (m, from) => await this.onUploadRequest(m as UploadRequestMessage, from))
    channel.on('finalized', async (m, from) => await this.onFinalized(m as FinalizedMessage, from))
    this.timer = setInterval(() => { void this.tick() }, this.opts.tickMs)
    this.beatTimer = setInterval(() => { this.reporter.beat() }, this.opts.heartbeatIntervalMs)
    void this.tick()
  }

  /** Stops taking work, waits (bounded by the executor's own bounds) for tasks in hand. */
  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    clearInterval(this.beatTimer)
    this.reporter.stop()
    this.abort.abort()
    this.committer.stop()
    for (const t of ['assign', 'reveal-request', 'upload-request', 'finalized'] as const) this.init.channel.off(t)
    await Promise.allSettled([...this.running.values()])
  }

  /** A task's record (tests and the API). */
  async task (taskid: string): Promise<WorkerTaskRecord | undefined> {
    return await this.book.record(taskid.toLowerCase())
  }

  /** A failed task's signed report, when this worker holds one (the failure-report protocol's answer). */
  async failureReport (taskid: string): Promise<FailureReport | undefined> {
    const r = await this.book.record(taskid.toLowerCase())
    return r?.state === 'failed' ? r.failureReport : undefined
  }

  /** A hub event a reorg took back (the node's follower of the hub rewound past it): see Committer.takeBack. */
  async onChainEventRemoved (event: ChainEvent): Promise<void> {
    await this.committer.takeBack(event, (taskid) => { this.trigger(taskid) })
  }

  /** The deal's DealCreated log, when the node did not learn it from the scheduler service. */
  private async dealCreated (dealid: string): Promise<DealInfo | undefined> {
    const logs = await queryLogsInRanges(async (a, b) => await this.hub.queryFilter(this.hub.filters.DealCreated(dealid), a, b), { fromBlock: this.init.fromBlock ?? 0, head: this.init.chain.provider })
    const log = logs[0]
    if (log === undefined) return undefined
    return dealFromEvent({ name: 'DealCreated', args: log.args, transactionHash: log.transactionHash } as unknown as Parameters<typeof dealFromEvent>[0])
  }

  /** Checks an `assign`, then takes its tasks while this worker has room; none taken is DUTY_BUSY. */
  private async onAssign (m: AssignMessage, from: string): Promise<ExecMessage> {
    if (!this.started) throw new DutyError('DUTY_STOPPED', 'the worker is stopping')
    const tasks = await this.checks.checkAssign(m, from)
    const accepted = await this.book.admit(m, tasks, from, (taskid) => { this.trigger(taskid) })
    if (accepted === 0) throw new DutyError('DUTY_BUSY', `already running ${this.book.activeCount()} tasks`)
    return { type: 'assigned', accepted }
  }

  /** A task this worker holds, by id. @throws DutyError DUTY_UNKNOWN_TASK */
  private async heldTask (taskid: string): Promise<WorkerTaskRecord> {
    const r = await this.book.record(taskid.toLowerCase())
    if (r === undefined) throw new DutyError('DUTY_UNKNOWN_TASK', 'this worker holds no such task')
    return r
  }

  /** Runs the task's next steps unless they are already running. */
  private trigger (taskid: string): void {
    if (!this.started || this.running.has(taskid)) return
    const p = this.advance(taskid)
      .catch((err: unknown) => { this.init.log?.('task step failed', { taskid, error: err instanceof Error ? err.message : String(err) }) })
      .finally(() => { this.running.delete(taskid) })
    this.running.set(taskid, p)
  }

  private async tick (): Promise<void> {
    if (this.ticking || !this.started) return
    this.ticking = true
    try {
      for (const taskid of this.book.openTasks()) this.trigger(taskid)
      await this.preparer.evict(this.book.computingDeals())
    } finally {
      this.ticking = false
    }
  }

  /** Moves one task forward as far as it can go now. */
  private async advance (taskid: string): Promise<void> {
    let r = await this.book.record(taskid)
    if (r === undefined) return
    if (r.state === 'assigned' || r.state === 'computed') {
      this.reporter.report(r, r.state === 'assigned' ? 'running' : 'contributing')
      try {
        if (r.state === 'assigned') {
          // maxConcurrentTasks run at once; the other tasks held wait their turn, in order
          r = await this.slots.run(r)
          if (r.state === 'computed') this.committer.computed(r.taskid)
        }
        if (r.state === 'computed') {
          // the CPU is free: the scheduler hears it at once and can give the slot another task
          this.reporter.report(r, 'contributing', true)
          r = await this.committer.commit(r)
        }
      } finally {
        // once committed (or failed) the chain speaks for the task: no more beats
        if (r.state !== 'assigned' && r.state !== 'computed') this.reporter.settle(r.taskid)
      }
    }
    if (r.state === 'contributed') r = await this.committer.revealIfDue(r)
  }

  /**
   * The result's CID goes to the deal's current scheduler only, and only
   * once the hub holds this worker's result as the task's consensus
   * (REVEALING or COMPLETED): before that the CID would let a co-worker
   * copy the result and commit it as its own.
   */
  private async onUploadRequest (m: UploadRequestMessage, from: string): Promise<ExecMessage> {
    const r = await this.heldTask(m.taskid)
    await this.checks.requireScheduler(r.dealid, from, m.proof)
    if (r.digest === undefined || !(r.state === 'revealed' || r.state === 'done' || r.state === 'contributed')) {
      throw new DutyError('DUTY_UNKNOWN_TASK', 'this worker holds no result for the task')
    }
    const task = await this.hub.taskOf(r.taskid)
    const status = Number(task.status)
    if (!((status === TaskStatus.REVEALING || status === TaskStatus.COMPLETED) && task.consensus === resultHash(r.taskid, r.digest))) {
      throw new DutyError('DUTY_RESULT_NOT_DUE', 'the hub does not hold this result as the task\'s consensus', { taskid: r.taskid, status })
    }
    const cid = await this.committer.upload(r)
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
    await this.checks.requireScheduler(r.dealid, from, m.proof)
    if (r.state === 'failed' || r.state === 'done') return { type: 'ack' }
    const status = Number((await this.hub.taskOf(r.taskid)).status)
    // re-read under the task's write order: a commit may have moved it while the hub answered
    if (status === TaskStatus.COMPLETED || status === TaskStatus.FAILED) await this.book.update(r.taskid, (cur) => cur.state !== 'failed' && cur.state !== 'done' ? { ...cur, state: 'done' } : undefined)
    return { type: 'ack' }
  }
}

/** Builds the worker's duties (call `start` after the network and db are up). */
export function createWorkerDuties (init: WorkerDutiesInit): WorkerDuties {
  return new WorkerDuties(init)
}
