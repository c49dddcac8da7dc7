import { keccak256 } from 'ethers'
import { ContributionStatus, TaskStatus } from '../../contracts-abi/index.js'
import { ZERO_ADDRESS as ZERO_ADDR, resultHash as resultHashOf } from '../../protocols/eip712.js'
import type { ContributedMessage, ExecMessage } from '../../protocols/execution.js'
import { hubInterface, isChainError } from '../chain/index.js'
import type { DealBook } from './deal-book.js'
import type { SchedulerHub, TaskState } from './hub-view.js'
import type { Liveness } from './liveness.js'
import { errorText, same } from './records.js'
import type { KnownDeal, Log, ScheduledTask } from './records.js'

/** Receipt reads after `contributed` messages in flight at once; past it the follower's TaskFinalized closes the tasks. */
const MAX_HINT_READS = 32

const TASK_FINALIZED_TOPIC = hubInterface().getEvent('TaskFinalized')?.topicHash as string

/** A mined transaction's receipt, as far as the finalizer reads it. */
export interface ReceiptView {
  status: number | null
  logs: ReadonlyArray<{ address: string, topics: readonly string[] }>
}

export interface FinalizerInit {
  book: Pick<DealBook, 'getTask' | 'putTask' | 'closeTask' | 'openDeal' | 'isMine' | 'markDone' | 'releasingDeals' | 'releaseAt'>
  liveness: Pick<Liveness, 'revealDue' | 'finalizePending'>
  hub: Pick<SchedulerHub, 'address' | 'dealOf' | 'taskOf' | 'contributionStatus' | 'finalize' | 'release'>
  /** a transaction's receipt (null: not mined) */
  receipt: (txHash: string) => Promise<ReceiptView | null>
  send: (peer: string, message: ExecMessage) => Promise<ExecMessage>
  /** this node's ExecPeer proof (set at start) */
  proof: () => string
  resolvePeer: (address: string) => Promise<string | undefined>
  /** this node's address */
  me: string
  running: () => boolean
  kick: () => void
  log: Log
}

/**
 * Ends what the scheduler started: asks a consensus task's contributors to
 * reveal and a winner to upload, finalizes with its CID; closes trust-1
 * tasks from the receipt a worker points at; closes done deals and
 * releases the stakes left locked in them.
 */
export class Finalizer {
  /** status reads after `contributed` messages, in flight (settle waits for them) */
  private readonly hints = new Set<Promise<void>>()
  /**
   * Stake releases in flight, by deal id (settle waits for them). The tick
   * and the watchdog start them and go on: a release waits for its receipt,
   * and one stuck transaction would otherwise hold every deal's tick.
   */
  private readonly releases = new Map<string, Promise<void>>()

  constructor (private readonly init: FinalizerInit) {}

  /** A REVEALING task: reveal requests, then an upload request to a winner, then finalize with its CID. */
  async revealAndFinalize (known: KnownDeal, rec: ScheduledTask, task: TaskState, contributors: string[], now: number): Promise<void> {
    const { hub, liveness, log } = this.init
    const proved: string[] = []
    for (const w of contributors) {
      if (Number(await hub.contributionStatus(rec.taskid, w)) === ContributionStatus.PROVED) {
        proved.push(w)
        continue
      }
      // ask every contributor: only the winners can reveal, and the hub tells who they are
      const peer = rec.replicas.find((r) => same(r.worker, w))?.peer ?? await this.init.resolvePeer(w)
      if (peer === undefined || now >= Number(task.revealDeadline)) continue
      if (!liveness.revealDue(rec.taskid, peer)) continue
      await this.init.send(peer, { type: 'reveal-request', taskid: rec.taskid, proof: this.init.proof() }).catch(() => {})
    }
    const allIn = Number(task.reveals) === Number(task.winners)
    if (!(allIn || (Number(task.reveals) > 0 && now >= Number(task.revealDeadline)))) return
    if (rec.resultsCid === undefined) {
      await this.requestUpload(known, rec, task, proved)
      if (rec.resultsCid === undefined) return
      // keep the CID before the transaction: a restart finalizes with the same one
      await this.init.book.putTask(rec.taskid, rec)
    }
    // a finalize of an earlier run (killed before it was mined) may still wait in the node's pool:
    // a second one would revert; the next tick reads the hub again (mined: closed; dropped: sent anew)
    if (Number((await hub.taskOf(rec.taskid, { blockTag: 'pending' })).status) === TaskStatus.COMPLETED) {
      if (liveness.finalizePending(rec.taskid)) log('finalize of an earlier run pending: waiting for it', { taskid: rec.taskid })
      return
    }
    const withCallback = (known.deal.callback ?? ZERO_ADDR) !== ZERO_ADDR
    const tx = await hub.finalize(rec.taskid, rec.resultsCid, withCallback ? rec.callbackData ?? '0x' : '0x')
    rec.closed = true
    log('task finalized', { taskid: rec.taskid, cid: rec.resultsCid, tx: tx.hash })
    for (const w of proved) {
      const peer = rec.replicas.find((r) => same(r.worker, w))?.peer
      if (peer !== undefined) void this.init.send(peer, { type: 'finalized', taskid: rec.taskid, txHash: tx.hash, cid: rec.resultsCid, proof: this.init.proof() }).catch(() => {})
    }
  }

  /** Asks the proved winners, one after the other, to upload the result; sets rec.resultsCid from the first good answer. */
  private async requestUpload (known: KnownDeal, rec: ScheduledTask, task: TaskState, proved: string[]): Promise<void> {
    for (const w of proved) {
      const peer = rec.replicas.find((r) => same(r.worker, w))?.peer ?? await this.init.resolvePeer(w)
      if (peer === undefined) continue
      try {
        const answer = await this.init.send(peer, { type: 'upload-request', taskid: rec.taskid, proof: this.init.proof() })
        if (answer.type !== 'result-uploaded') continue
        // a deal with a callback finalizes only with the data the consensus covers (keccak256 of it is the digest)
        if ((known.deal.callback ?? ZERO_ADDR) !== ZERO_ADDR && (answer.callbackData === undefined || resultHashOf(rec.taskid, keccak256(answer.callbackData)) !== task.consensus)) {
          this.init.log('upload answer without the consensus callback data', { taskid: rec.taskid, worker: w })
          continue
        }
        rec.resultsCid = answer.cid
        if (answer.callbackData !== undefined) rec.callbackData = answer.callbackData
        return
      } catch (err) {
        this.init.log('upload request failed', { taskid: rec.taskid, worker: w, error: errorText(err) })
      }
    }
  }

  /**
   * A trust-1 worker says its contributeAndFinalize transaction is mined:
   * the tasks close now, not when the follower's next poll brings
   * TaskFinalized. The chain is read (the transaction's receipt), the worker
   * not believed; past MAX_HINT_READS in flight the hint is dropped.
   */
  contributed (m: ContributedMessage): void {
    if (this.hints.size >= MAX_HINT_READS) return
    const read: Promise<void> = this.closeFromReceipt(m.txHash, m.taskids.map((t) => t.toLowerCase()))
      .catch((err: unknown) => { this.init.log('transaction receipt read failed', { tx: m.txHash, error: String(err) }) })
      .finally(() => { this.hints.delete(read) })
    this.hints.add(read)
  }

  /** Waits for the receipt reads in flight (stop). */
  async settle (): Promise<void> {
    await Promise.allSettled([...this.hints, ...this.releases.values()])
  }

  /**
   * One read of the transaction's receipt (one for a whole batch); each
   * listed trust-1 task of a deal this node schedules whose TaskFinalized
   * the hub emitted in it closes, and the tick assigns what is left of the deal.
   */
  private async closeFromReceipt (txHash: string, taskids: string[]): Promise<void> {
    const { book } = this.init
    const open: ScheduledTask[] = []
    for (const taskid of taskids) {
      const rec = await book.getTask(taskid)
      if (rec === undefined || rec.closed) continue
      const known = book.openDeal(rec.dealid)
      if (known === undefined || known.deal.trust !== 1 || !book.isMine(known)) continue
      open.push(rec)
    }
    if (open.length === 0 || !this.init.running()) return
    const receipt = await this.init.receipt(txHash)
    if (receipt === null || receipt.status !== 1) return
    const hub = (await this.init.hub.address()).toLowerCase()
    const finalized = new Set<string>()
    for (const log of receipt.logs) {
      if (log.address.toLowerCase() === hub && log.topics[0] === TASK_FINALIZED_TOPIC && log.topics[1] !== undefined) finalized.add(log.topics[1].toLowerCase())
    }
    let closed = false
    for (const rec of open) {
      // read again (closeTask does): the tick or an event may have written it meanwhile
      if (finalized.has(rec.taskid) && await book.closeTask(rec.taskid)) closed = true
    }
    if (closed) this.init.kick()
  }

  /**
   * Whether the deal's tasks are all done in a mined block. The deal is
   * read at the pending tag (its scheduler draw is known from the block
   * after the deal's), where a finalize still in the pool already counts: a
   * deal closed on it is forgotten for good, and a finalize dropped from
   * the pool (its sender killed, replaced) would never be sent again.
   */
  async doneMined (dealid: string, volume: number): Promise<boolean> {
    return Number((await this.init.hub.dealOf(dealid)).done) >= volume
  }

  /** A deal the hub says is done: its records close, and the scheduler stake is released if it is this node's. */
  async closeDeal (known: KnownDeal, current: { scheduler: string, schedulerLocked: bigint }): Promise<void> {
    const { book, me } = this.init
    // the tick and the watchdog may both see it done
    if (book.openDeal(known.deal.dealid) === undefined) return
    const worker = known.deal.workers.some((w) => same(w, me))
    await book.markDone(known, worker)
    this.init.log('deal done', { dealid: known.deal.dealid })
    // the scheduler's stake for the deal is locked until someone releases it: we do, at once
    if (same(current.scheduler, me) && current.schedulerLocked > 0n) this.startRelease(known, 'scheduler stake', 0)
  }

  /**
   * The releases due by chain time `now`: after a deal's final deadline the
   * stake a spare replica locked comes back; a scheduler stake whose
   * release failed is due at once.
   */
  async releaseDue (now: number): Promise<void> {
    for (const known of this.init.book.releasingDeals()) {
      if (!this.init.running()) return
      if (known.releaseAt === undefined || now < known.releaseAt) continue
      this.startRelease(known, now >= known.deal.finalDeadline ? 'worker stake' : 'scheduler stake', now)
    }
  }

  /**
   * `release(dealid, me)` in the background, one per deal at a time. Once
   * it is mined, or reverts (NothingToRelease: every stake already came
   * back), the deal keeps a release only for the worker stake of a deal
   * whose final deadline is still ahead. A failure that is no revert (the
   * node, the RPC, a receipt that did not come) leaves it due at once, so
   * the watchdog's next pass, or the next start, sends it again.
   */
  private startRelease (known: KnownDeal, what: string, now: number): void {
    const { book, log, me } = this.init
    const dealid = known.deal.dealid
    if (this.releases.has(dealid)) return
    const run = (async () => {
      let again = false
      try {
        const tx = await this.init.hub.release(dealid)
        log('stake released', { dealid, what, tx: tx.hash })
      } catch (err) {
        again = !isChainError(err, 'CONTRACT_REVERT')
        log(again ? 'stake release failed: sent again later' : 'stake release not done', { dealid, what, error: errorText(err) })
      }
      const worker = known.deal.workers.some((w) => same(w, me))
      await book.releaseAt(dealid, again ? now : worker && now < known.deal.finalDeadline ? known.deal.finalDeadline : undefined)
    })().catch((err: unknown) => { log('stake release record failed', { dealid, error: String(err) }) })
      .finally(() => { this.releases.delete(dealid) })
    this.releases.set(dealid, run)
  }
}
