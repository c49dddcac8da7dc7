import { ContributionStatus, TaskStatus } from '../../contracts-abi/index.js'
import { resultHash, resultSeal } from '../../protocols/eip712.js'
import type { ExecMessage } from '../../protocols/execution.js'
import { isChainError } from '../chain/index.js'
import { DutyError } from './duties-errors.js'
import { encryptResultFolder, packFolder } from '../storage/index.js'
import { taskDirs } from './duties-book.js'
import type { TaskBook, WorkerTaskRecord, WorkerTaskState } from './duties-book.js'
import type { WorkerDutiesOptions } from './duties-options.js'
import type { TaskFailures } from './duties-reporter.js'

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()

/** Reads of the hub's state once the node's pool is mined: what this worker has sent and not yet seen mined. */
const PENDING = { blockTag: 'pending' } as const

/** What the committer reads of the hub (the typed Hub binding fits). */
export interface CommitReads {
  taskStatus (dealid: string, idx: number): Promise<bigint>
  taskStatus (dealid: string, idx: number, overrides: { blockTag: 'pending' }): Promise<bigint>
  contributionOf (taskid: string, worker: string): Promise<{ status: bigint }>
  contributionOf (taskid: string, worker: string, overrides: { blockTag?: 'pending' }): Promise<{ status: bigint }>
  taskOf (taskid: string): Promise<{ status: bigint, consensus: string }>
}

/** A transaction sent and mined. */
export interface SentCommit { hash: string, timings?: Record<string, number> }

/** The committer's transactions (node: the hub's populated calls through the chain's sender); a revert throws CONTRACT_REVERT. */
export interface CommitSends {
  contributeAndFinalize: (r: WorkerTaskRecord) => Promise<SentCommit>
  /** one hub multicall of a contributeAndFinalize per task */
  contributeAndFinalizeBatch: (rs: WorkerTaskRecord[]) => Promise<SentCommit>
  contribute: (taskid: string, hash: string, seal: string, authorization: string) => Promise<SentCommit>
  reveal: (taskid: string, digest: string) => Promise<SentCommit>
}

/** The hub event a reorg took back. */
export interface RemovedEvent { name?: string, topics: readonly string[], transactionHash: string }

export interface CommitterInit {
  records: Pick<TaskBook, 'record' | 'save' | 'update' | 'commitRecords' | 'freeDisk' | 'isComputing'>
  failures: TaskFailures
  hub: CommitReads
  sends: CommitSends
  /** tells a task's scheduler (contributed, revealed); best effort */
  tell: (peer: string, message: ExecMessage) => Promise<unknown>
  /** adds a result archive streamed from disk to the content store; its CID */
  addStream: (source: AsyncIterable<Uint8Array>, signal: AbortSignal) => Promise<string>
  /** this worker's address */
  me: string
  workDir: string
  options: Pick<WorkerDutiesOptions, 'maxCommitBatch' | 'maxCommitsInFlight' | 'commitWaitMs'>
  /** false once the worker stops: no batch is sent any more */
  running: () => boolean
  signal: AbortSignal
  log: (msg: string, context?: Record<string, unknown>) => void
}

interface Queued { r: WorkerTaskRecord, queuedAt: number, resolve: (r: WorkerTaskRecord) => void, reject: (err: unknown) => void }

/**
 * Puts results on chain: trust 1 by group commit (contributeAndFinalize),
 * trust > 1 by contribute, then reveal once the consensus is this worker's.
 * Restart safety: a task's record is written after each transaction and
 * the hub is read before sending one (latest, then pending for one still in
 * the pool), so a task is never committed or revealed twice.
 */
export class Committer {
  /** tasks computed since this process started and not yet sent to the chain: no need to ask the hub whether they closed */
  private readonly unsent = new Set<string>()
  /** (what, task) whose transaction of an earlier run was found waiting in the pool: logged once */
  private readonly waitingPool = new Set<string>()
  /** trust-1 results waiting to be committed, in arrival order (see commitFast) */
  private readonly queue: Queued[] = []
  /** group-commit transactions sent and not yet settled */
  private inFlight = 0
  /** brings the committer back when a partial batch has waited commitWaitMs */
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly init: CommitterInit) {}

  /** A result computed by this process: nothing of it can be on chain yet. */
  computed (taskid: string): void {
    this.unsent.add(taskid)
  }

  /** Results not yet committed stay computed in level: the next start commits them. */
  stop (): void {
    clearTimeout(this.timer)
    for (const q of this.queue.splice(0)) q.reject(new DutyError('DUTY_STOPPED', 'the worker is stopping'))
  }

  /** Commits a computed task: group commit for trust 1, contribute above. */
  async commit (r: WorkerTaskRecord): Promise<WorkerTaskRecord> {
    return r.trust === 1 ? await this.commitFast(r) : await this.contribute(r)
  }

  /** Packs the output (encrypted to the requester when asked) and adds it to the content store, once. */
  async upload (r: WorkerTaskRecord): Promise<string> {
    if (r.resultsCid !== undefined) return r.resultsCid
    const { output } = taskDirs(this.init.workDir, r.taskid)
    const source = r.resultEncryptionKey !== undefined
      ? encryptResultFolder(output, r.resultEncryptionKey, { taskid: r.taskid })
      : packFolder(output)
    // not provided in the DHT: a provide per task was most of a bag's network traffic; whoever
    // fetches a result connects to the deal's workers first (network/holders.ts, HolderDialer) and
    // bitswap asks the connected peers
    const text = await this.init.addStream(source, this.init.signal)
    // re-read: a reveal may have moved the record on while the archive was added
    await this.init.records.save({ ...(await this.init.records.record(r.taskid) ?? r), resultsCid: text })
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
   * transaction at a time would hold a worker to maxCommitBatch results a
   * block. A partial batch whose deal has nothing left computing here does
   * not wait for the one in flight either (it would wait a whole block).
   * The worker never waits for the chain between tasks: its slot was freed
   * when the result was computed.
   */
  private async commitFast (r: WorkerTaskRecord): Promise<WorkerTaskRecord> {
    const cid = await this.upload(r)
    return await new Promise((resolve, reject) => {
      this.queue.push({ r: { ...r, resultsCid: cid }, queuedAt: Date.now(), resolve, reject })
      this.pump()
    })
  }

  /** Sends every batch that may go now (see commitFast); called when a result is queued, a transaction settles or a partial batch's wait ends. */
  private pump (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    const o = this.init.options
    while (this.init.running() && this.queue.length > 0 && this.inFlight < o.maxCommitsInFlight) {
      const first = this.queue[0]
      const dealid = first.r.dealid
      const ready = this.queue.reduce((n, q) => n + (q.r.dealid === dealid ? 1 : 0), 0)
      if (ready < o.maxCommitBatch) {
        const computing = this.init.records.isComputing(dealid)
        const waitMs = first.queuedAt + o.commitWaitMs - Date.now()
        // a partial batch gathers more results while two of these hold: its deal still computes
        // here, a transaction is in flight (whose end calls this again), it is younger than
        // commitWaitMs (the timer below calls this again)
        if ([computing, this.inFlight > 0, waitMs > 0].filter(Boolean).length >= 2) {
          if (waitMs > 0) this.timer = setTimeout(() => { this.pump() }, waitMs)
          return
        }
      }
      const batch: Queued[] = []
      for (let i = 0; i < this.queue.length && batch.length < o.maxCommitBatch;) {
        if (this.queue[i].r.dealid === dealid) batch.push(...this.queue.splice(i, 1))
        else i++
      }
      this.inFlight++
      void this.sendBatch(batch).finally(() => {
        this.inFlight--
        this.pump()
      })
    }
  }

  private async sendBatch (batch: Queued[]): Promise<void> {
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
   * Several results of one deal in one transaction. A revert means one of
   * them cannot go (closed by another worker, an authorization of a
   * replaced scheduler...): each is then committed on its own, which checks
   * it against the hub first, so a task already closed (a restart after the
   * batch landed) is never committed twice.
   */
  private async contributeAndFinalizeBatch (rs: WorkerTaskRecord[], queuedAt: number): Promise<WorkerTaskRecord[]> {
    const waited = Date.now() - queuedAt
    let tx
    try {
      tx = await this.init.sends.contributeAndFinalizeBatch(rs)
    } catch (err) {
      // its fate unknown (an RPC failure after the broadcast): the retry asks the hub first
      if (!isChainError(err, 'CONTRACT_REVERT')) {
        for (const r of rs) this.unsent.delete(r.taskid)
        throw err
      }
      this.init.log('batch commit reverted: committing one by one', { dealid: rs[0].dealid, tasks: rs.length, error: err.message })
      const out: WorkerTaskRecord[] = []
      for (const r of rs) out.push(await this.contributeAndFinalize(r, queuedAt))
      return out
    }
    const hash = tx.hash
    for (const r of rs) this.unsent.delete(r.taskid)
    const done = rs.map((r): WorkerTaskRecord => ({ ...r, state: 'done', txHash: hash }))
    // every record of the batch reads 'done' at once, before any folder is removed
    await this.init.records.commitRecords(done)
    for (const r of done) {
      await this.init.records.freeDisk(r)
      // where the commit's time went (an operator's and the bag benchmark's account of a result)
      this.init.log('task contributed and finalized', { taskid: r.taskid, tx: hash, batch: rs.length, queuedMs: waited, ...tx.timings })
    }
    const byPeer = new Map<string, string[]>()
    for (const r of rs) byPeer.set(r.schedulerPeer, [...(byPeer.get(r.schedulerPeer) ?? []), r.taskid])
    for (const [peer, taskids] of byPeer) void this.init.tell(peer, { type: 'contributed', taskids, txHash: hash }).catch(() => {})
    return done
  }

  /** Trust 1, one task: commit and close it in one transaction, unless the hub says it is closed already. */
  private async contributeAndFinalize (r: WorkerTaskRecord, queuedAt: number): Promise<WorkerTaskRecord> {
    const waited = Date.now() - queuedAt
    // a restart, or a transaction whose fate is unknown: the hub says whether the task is closed
    if (!this.unsent.delete(r.taskid)) {
      const status = Number(await this.init.hub.taskStatus(r.dealid, r.idx))
      if (status === TaskStatus.COMPLETED || status === TaskStatus.FAILED) {
        const done: WorkerTaskRecord = { ...r, state: 'done' }
        await this.init.records.save(done)
        return done
      }
      // a contributeAndFinalize of an earlier run may still wait in the pool
      if (this.pendingInPool(r, 'commit', Number(await this.init.hub.taskStatus(r.dealid, r.idx, PENDING)) === TaskStatus.COMPLETED)) return r
    }
    try {
      const tx = await this.init.sends.contributeAndFinalize(r)
      const done: WorkerTaskRecord = { ...r, state: 'done', txHash: tx.hash }
      await this.init.records.commitRecords([done])
      await this.init.records.freeDisk(done)
      this.init.log('task contributed and finalized', { taskid: r.taskid, tx: tx.hash, batch: 1, queuedMs: waited, ...tx.timings })
      void this.init.tell(r.schedulerPeer, { type: 'contributed', taskids: [r.taskid], txHash: tx.hash }).catch(() => {})
      return done
    } catch (err) {
      // a revert is final (task closed by another worker, deadline passed, bad authorization);
      // anything else (RPC down, timeout) leaves the task computed for the next tick to retry
      if (!isChainError(err, 'CONTRACT_REVERT')) throw err
      return await this.init.failures.fail(r, err)
    }
  }

  /** Trust > 1: commit, unless the hub already holds this worker's commit. */
  private async contribute (r: WorkerTaskRecord): Promise<WorkerTaskRecord> {
    const digest = r.digest as string
    const me = this.init.me
    const status = async (pending: boolean): Promise<number> => Number((pending ? await this.init.hub.contributionOf(r.taskid, me, PENDING) : await this.init.hub.contributionOf(r.taskid, me)).status)
    if (await status(false) !== ContributionStatus.UNSET) return await this.contributionFound(r)
    // a commit of an earlier run (killed before it was mined) may still wait in the pool
    if (!this.unsent.delete(r.taskid) && this.pendingInPool(r, 'commit', await status(true) !== ContributionStatus.UNSET)) return r
    try {
      const tx = await this.init.sends.contribute(r.taskid, resultHash(r.taskid, digest), resultSeal(me, r.taskid, digest), r.authorization)
      const next: WorkerTaskRecord = { ...r, state: 'contributed', txHash: tx.hash }
      await this.init.records.save(next)
      this.init.log('task contributed', { taskid: r.taskid, tx: tx.hash })
      void this.init.tell(r.schedulerPeer, { type: 'contributed', taskids: [r.taskid], txHash: tx.hash }).catch(() => {})
      return next
    } catch (err) {
      // a reverted commit lost a race (consensus reached, deadline passed): nothing more to do for this task;
      // a transport failure is retried by the next tick (the hub is read first, so never twice)
      if (!isChainError(err, 'CONTRACT_REVERT')) throw err
      // unless the race was with this worker's own earlier commit, mined meanwhile
      if (await status(false) !== ContributionStatus.UNSET) return await this.contributionFound(r)
      return await this.init.failures.fail(r, err)
    }
  }

  /** The hub holds this worker's commit (sent by an earlier run, or before a lost answer): the task is contributed. */
  private async contributionFound (r: WorkerTaskRecord): Promise<WorkerTaskRecord> {
    const next: WorkerTaskRecord = { ...r, state: 'contributed' }
    await this.init.records.save(next)
    this.init.log('task contribution found on the hub', { taskid: r.taskid })
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
      this.init.log('transaction of an earlier run pending: waiting for it', { taskid: r.taskid, what })
    }
    return true
  }

  /** Reveals once the hub's consensus is this worker's result; gives up when the task went on without it. */
  async revealIfDue (r: WorkerTaskRecord): Promise<WorkerTaskRecord> {
    const digest = r.digest as string
    const task = await this.init.hub.taskOf(r.taskid)
    const status = Number(task.status)
    if (status === TaskStatus.ACTIVE) return r
    if (status === TaskStatus.REVEALING && task.consensus === resultHash(r.taskid, digest)) {
      const proved = async (blockTag?: 'pending'): Promise<boolean> =>
        Number((await this.init.hub.contributionOf(r.taskid, this.init.me, blockTag !== undefined ? { blockTag } : {})).status) === ContributionStatus.PROVED
      const found = async (): Promise<WorkerTaskRecord> => {
        const next: WorkerTaskRecord = { ...r, state: 'revealed' }
        await this.init.records.save(next)
        return next
      }
      if (await proved()) return await found()
      // a reveal of an earlier run (killed before it was mined) may still wait in the pool
      if (this.pendingInPool(r, 'reveal', await proved('pending'))) return r
      let tx
      try {
        tx = await this.init.sends.reveal(r.taskid, digest)
      } catch (err) {
        if (!isChainError(err, 'CONTRACT_REVERT')) throw err
        // this worker's own earlier reveal, mined meanwhile
        if (await proved()) return await found()
        // the reveal deadline passed: this worker can no longer prove its result
        return await this.init.failures.fail(r, err)
      }
      const next: WorkerTaskRecord = { ...r, state: 'revealed', txHash: tx.hash }
      await this.init.records.save(next)
      this.init.log('task revealed', { taskid: r.taskid, tx: tx.hash })
      void this.init.tell(r.schedulerPeer, { type: 'revealed', taskid: r.taskid, txHash: tx.hash }).catch(() => {})
      return next
    }
    // another result won, or the task closed: this worker owes nothing more
    const done: WorkerTaskRecord = { ...r, state: 'done' }
    await this.init.records.save(done)
    return done
  }

  /**
   * A hub event a reorg took back: a task whose record moved on it goes
   * back one step when the hub (latest block) no longer shows the step, and
   * `start` does it again (each step reads the hub first).
   * TaskContributed of this worker: a contributed task commits again;
   * TaskRevealed of this worker: a revealed task reveals again (a trust > 1
   * task already done too: its finalize went with the reveal);
   * TaskFinalized of a trust-1 task this worker closed in that transaction:
   * it commits again, with the result CID it kept.
   */
  async takeBack (event: RemovedEvent, start: (taskid: string) => void): Promise<void> {
    if (event.topics.length < 3) return
    const taskid = event.topics[1].toLowerCase()
    const r = await this.init.records.record(taskid)
    if (r === undefined || r.digest === undefined) return
    const hub = this.init.hub
    const byMe = (): boolean => same('0x' + event.topics[2].slice(-40), this.init.me)
    let back: WorkerTaskState | undefined
    // a trust > 1 task is 'done' once the scheduler said it was finalized: that finalize may be gone too
    const doneAbove1 = r.state === 'done' && r.trust > 1
    if (event.name === 'TaskContributed' && byMe() && (r.state === 'contributed' || r.state === 'revealed' || doneAbove1)) {
      if (Number((await hub.contributionOf(taskid, this.init.me)).status) === ContributionStatus.UNSET) back = 'computed'
    } else if (event.name === 'TaskRevealed' && byMe() && (r.state === 'revealed' || doneAbove1)) {
      if (Number((await hub.contributionOf(taskid, this.init.me)).status) !== ContributionStatus.PROVED) back = 'contributed'
    } else if (event.name === 'TaskFinalized' && r.trust === 1 && r.state === 'done' && r.resultsCid !== undefined && r.txHash !== undefined && same(r.txHash, event.transactionHash)) {
      const status = Number(await hub.taskStatus(r.dealid, r.idx))
      if (status !== TaskStatus.COMPLETED && status !== TaskStatus.FAILED) back = 'computed'
    }
    if (back === undefined) return
    const to = back
    const moved = await this.init.records.update(taskid, (cur) => cur.state === r.state ? { ...cur, state: to } : undefined)
    if (moved === undefined) return
    this.init.log('task step taken back by a reorg: doing it again', { taskid, event: event.name, state: to })
    start(taskid)
  }
}
