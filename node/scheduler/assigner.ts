import { computeAddress } from 'ethers'
import { TaskStatus } from '../../contracts-abi/index.js'
import { MAX_ASSIGN_TASKS, TASKS_PER_CPU } from '../../protocols/execution.js'
import type { ExecMessage } from '../../protocols/execution.js'
import { parseRequestParams } from '../../protocols/market.js'
import { BoundedCache } from '../common/bounded-cache.js'
import { FreshValue } from '../common/memo.js'
import type { DealInfo } from '../chain/deal.js'
import type { DealBook } from './deal-book.js'
import type { Finalizer } from './finalizer.js'
import type { SchedulerHub } from './hub-view.js'
import type { Liveness } from './liveness.js'
import type { SchedulerOptions } from './options.js'
import { ZERO, errorText, same, schedulerOf } from './records.js'
import type { KnownDeal, Log, Replica, ScheduledTask } from './records.js'

/**
 * The default source of the result key: the one the requester put in its
 * signed request's params, accepted only when it is the requester's own key
 * (its address is the deal's requester), so a key planted by anyone else
 * cannot redirect the result.
 */
export async function requesterResultKey (deal: DealInfo): Promise<string | undefined> {
  let key: string | undefined
  try {
    key = parseRequestParams(deal.params).iexec_p2p_result_key
  } catch {
    return undefined
  }
  if (key === undefined) return undefined
  return same(computeAddress(key), deal.requester) ? key : undefined
}

function wantsEncryption (params: string): boolean {
  try {
    return parseRequestParams(params).iexec_result_encryption === true
  } catch {
    return false
  }
}

export interface AssignerInit {
  book: Pick<DealBook, 'openDeals' | 'peekTask' | 'getTask' | 'putTask' | 'taskIdOf' | 'hasEnded'>
  liveness: Pick<Liveness, 'expire' | 'assignDue' | 'assigned' | 'isComputed'>
  /** the consensus path hands a REVEALING task over */
  finalizer: Pick<Finalizer, 'revealAndFinalize'>
  hub: Pick<SchedulerHub, 'taskStatus' | 'taskOf' | 'contributorsOf' | 'scoreOf' | 'initialize'>
  /** sends an exec message to a peer and returns its answer */
  send: (peer: string, message: ExecMessage) => Promise<ExecMessage>
  /** this node's ExecPeer proof (set at start) */
  proof: () => string
  /** signs the authorization of `worker` for `taskid` */
  authorize: (worker: string, taskid: string) => Promise<string>
  resolvePeer: (address: string) => Promise<string | undefined>
  workerCapacity?: (address: string) => Promise<number | undefined>
  resultEncryptionKey?: (deal: DealInfo) => Promise<string | undefined>
  /** this node's address */
  me: string
  options: Pick<SchedulerOptions, 'maxTasksPerWorker' | 'maxFailuresPerWorker' | 'scoreMaxAgeMs'>
  running: () => boolean
  /** tick again once this tick ends */
  kick: () => void
  log: Log
}

type OutboxGroup = { known: KnownDeal, peer: string, worker: string, resultEncryptionKey: string | undefined, tasks: Array<{ taskid: string, idx: number }> }

/**
 * Assigns the tasks of the deals this node schedules: trust 1 (one replica,
 * the worker's contributeAndFinalize closes the task) and consensus (the
 * task initialized, replicas added until the consensus rule can be met,
 * then handed to the finalizer). Workers are picked least loaded first,
 * then by on-chain score; a tick's assignments go out in one message per
 * worker and deal (flush).
 */
export class Assigner {
  /** this tick's assignments, by worker peer and deal (flush sends them) */
  private readonly outbox = new Map<string, OutboxGroup>()
  /** reads of worker scores (see scoreOf) */
  private readonly scores = new BoundedCache<string, FreshValue<bigint>>(10_000)

  constructor (private readonly init: AssignerInit) {}

  /** In-flight assignments per worker across this node's open tasks (least loaded first). */
  async loads (): Promise<Map<string, number>> {
    const { book, liveness } = this.init
    const out = new Map<string, number>()
    // open deals only: a done deal's replicas hold nothing any more (a
    // trust-1 replica is never marked contributed once its deal is done), and
    // reading the whole history would grow with every deal ever scheduled
    for (const known of book.openDeals()) {
      for (let idx = 0; idx < known.deal.volume; idx++) {
        const rec = await book.peekTask(book.taskIdOf(known.deal.dealid, idx))
        if (rec === undefined || rec.closed) continue
        for (const r of rec.replicas) {
          // a computed result waiting for its transaction holds no CPU
          if (!r.dead && !r.contributed && !liveness.isComputed(rec.taskid, r.peer)) out.set(r.worker, (out.get(r.worker) ?? 0) + 1)
        }
      }
    }
    return out
  }

  /** One pass over a deal's tasks; `loads` is this tick's count of in-flight work, updated as tasks are assigned. */
  async schedule (known: KnownDeal, now: number, loads: Map<string, number>): Promise<void> {
    const { book } = this.init
    const { deal } = known
    for (let idx = 0; idx < deal.volume; idx++) {
      if (!this.init.running()) return
      const taskid = book.taskIdOf(deal.dealid, idx)
      // looked at in place first: most tasks of a bag are closed or wait for a free worker, and
      // copying each record on every tick would be most of a tick's time
      const seen = await book.peekTask(taskid)
      if (seen?.closed === true) continue
      // a task nobody holds yet waits, with no chain read (nor initialize), while every worker of the
      // deal is full: a bag of 200 is not read 200 times a tick for the few slots that free up
      if ((seen === undefined || seen.replicas.length === 0) && !await this.anyFree(known, loads)) continue
      const rec = seen === undefined ? { taskid, dealid: deal.dealid, idx, replicas: [], closed: false } : structuredClone(seen)
      const before = JSON.stringify(rec)
      if (deal.trust === 1) await this.scheduleFast(known, rec, now, loads)
      else await this.scheduleConsensus(known, rec, now, loads)
      if (JSON.stringify(rec) !== before) await book.putTask(taskid, rec)
    }
  }

  private async scheduleFast (known: KnownDeal, rec: ScheduledTask, now: number, loads: Map<string, number>): Promise<void> {
    const { liveness, me } = this.init
    if (now >= known.deal.contributionDeadline) return
    liveness.expire(known, rec, now)
    const live = rec.replicas.filter((r) => !r.dead)
    // a live replica with no resend due: its worker is on it, and its end comes as a
    // TaskFinalized event (the deal book closes the record): no chain read each tick
    if (live.length > 0 && !live.some((r) => liveness.assignDue(rec.taskid, r.peer))) return
    // a task this node never assigned, of a deal it has scheduled since the match, cannot be
    // closed (only its authorizations close a trust-1 task): no chain read before its first worker
    const untouched = rec.replicas.length === 0 && same(known.deal.scheduler, me) && same(schedulerOf(known), me)
    const ended = this.init.book.hasEnded(known.deal.dealid, rec.taskid)
    const status = ended ? TaskStatus.COMPLETED : untouched ? TaskStatus.UNSET : Number(await this.init.hub.taskStatus(known.deal.dealid, rec.idx))
    if (status === TaskStatus.COMPLETED || status === TaskStatus.FAILED) {
      rec.closed = true
      return
    }
    if (live.length === 0) await this.addReplica(known, rec, now, loads)
    else await this.resendAssigns(known, rec)
  }

  private async scheduleConsensus (known: KnownDeal, rec: ScheduledTask, now: number, loads: Map<string, number>): Promise<void> {
    const { hub, log } = this.init
    const { deal } = known
    let task = await hub.taskOf(rec.taskid)
    let status = Number(task.status)
    if (status === TaskStatus.UNSET) {
      if (now >= deal.contributionDeadline) return
      await hub.initialize(deal.dealid, rec.idx)
      log('task initialized', { taskid: rec.taskid })
      task = await hub.taskOf(rec.taskid)
      status = Number(task.status)
    }
    if (status === TaskStatus.COMPLETED || status === TaskStatus.FAILED) {
      rec.closed = true
      return
    }
    const contributors = (await hub.contributorsOf(rec.taskid)).map((a) => a.toLowerCase())
    for (const r of rec.replicas) if (contributors.includes(r.worker.toLowerCase())) r.contributed = true
    if (status === TaskStatus.ACTIVE) {
      if (now >= deal.contributionDeadline) return
      this.init.liveness.expire(known, rec, now)
      // add replicas until the consensus rule could be met if every pending replica agreed
      for (let guard = 0; guard < deal.workers.length; guard++) {
        if (await this.consensusReachable(deal.trust, rec, contributors)) break
        if (!await this.addReplica(known, rec, now, loads)) break
      }
      await this.resendAssigns(known, rec)
      return
    }
    // REVEALING
    await this.init.finalizer.revealAndFinalize(known, rec, task, contributors, now)
  }

  /**
   * iExec's rule, optimistic: with weight w = max(score/3, 3) - 1 per worker,
   * could the contributors so far plus the live pending replicas reach
   * group * trust > total * (trust - 1) if they all agreed? With no pending
   * replica left and no consensus on chain, the answer is no (they did not agree).
   */
  private async consensusReachable (trust: number, rec: ScheduledTask, contributors: string[]): Promise<boolean> {
    const pending = rec.replicas.filter((r) => !r.dead && !r.contributed)
    if (pending.length === 0) return false
    let group = 1n
    for (const w of [...contributors, ...pending.map((r) => r.worker)]) {
      const s = (await this.scoreOf(w)) / 3n
      group *= (s > 3n ? s : 3n) - 1n
    }
    const total = 1n + group
    return group * BigInt(trust) > total * BigInt(trust - 1)
  }

  /**
   * A worker's on-chain score, read at most once per `scoreMaxAgeMs`: it
   * moves only when a task of the worker with several contributors ends
   * (+1, or x2/3), and choosing among workers or counting replicas on a
   * score a second old changes nothing that matters; a bag's ticks read it
   * for every candidate of every assignment.
   */
  private async scoreOf (worker: string): Promise<bigint> {
    const key = worker.toLowerCase()
    let v = this.scores.get(key)
    if (v === undefined) {
      v = new FreshValue(this.init.options.scoreMaxAgeMs, async () => await this.init.hub.scoreOf(worker))
      this.scores.set(key, v)
    }
    return await v.get()
  }

  /**
   * Picks a deal worker for one more replica of this task and assigns it:
   * workers without a replica first (most free capacity: its advertised cpus
   * less the tasks it holds of this node's deals; then best on-chain score),
   * then workers whose replica died (refused, unreachable, silent, failed)
   * once `resendMs` has passed, so a busy or restarted worker gets another
   * chance when nobody else is left; a worker that reported the task failed
   * `maxFailuresPerWorker` times is not asked again.
   */
  private async addReplica (known: KnownDeal, rec: ScheduledTask, now: number, loads: Map<string, number>): Promise<boolean> {
    const byWorker = new Map(rec.replicas.map((r) => [r.worker.toLowerCase(), r]))
    const candidates: Array<{ worker: string, retry: boolean, free: number, score: bigint, order: number }> = []
    for (const [order, worker] of known.deal.workers.entries()) {
      const prev = byWorker.get(worker.toLowerCase())
      if (prev !== undefined && (!prev.dead || prev.contributed)) continue
      if (prev !== undefined && (prev.failures ?? 0) >= this.init.options.maxFailuresPerWorker) continue
      const capacity = await this.capacityOf(worker)
      const free = capacity - (loads.get(worker) ?? 0)
      if (free <= 0) continue
      if (prev !== undefined && !this.init.liveness.assignDue(rec.taskid, prev.peer)) continue
      candidates.push({ worker, retry: prev !== undefined, free, score: await this.scoreOf(worker), order })
    }
    candidates.sort((a, b) => Number(a.retry) - Number(b.retry) || b.free - a.free || (b.score > a.score ? 1 : b.score < a.score ? -1 : 0) || a.order - b.order)
    for (const c of candidates) {
      const peer = await this.init.resolvePeer(c.worker)
      if (peer === undefined) continue
      let replica = byWorker.get(c.worker.toLowerCase())
      if (replica === undefined) {
        replica = { worker: c.worker, peer, assignedAt: now, dead: false, contributed: false }
        rec.replicas.push(replica)
      } else {
        Object.assign(replica, { peer, assignedAt: now, dead: false })
        delete replica.failure
      }
      if (await this.queueAssign(known, rec, replica)) {
        loads.set(c.worker, (loads.get(c.worker) ?? 0) + 1)
        this.init.log('task assigned', { taskid: rec.taskid, worker: c.worker, retry: c.retry })
        return true
      }
    }
    return false
  }

  /** Whether some worker of the deal can take one more task now. */
  private async anyFree (known: KnownDeal, loads: Map<string, number>): Promise<boolean> {
    for (const w of known.deal.workers) if (await this.capacityOf(w) > (loads.get(w) ?? 0)) return true
    return false
  }

  /** Uncomputed tasks a worker holds at once: TASKS_PER_CPU per cpu it advertises (else maxTasksPerWorker); it refuses more as busy. */
  private async capacityOf (worker: string): Promise<number> {
    let cpus: number | undefined
    try {
      cpus = await this.init.workerCapacity?.(worker)
    } catch {
      cpus = undefined
    }
    return TASKS_PER_CPU * (cpus !== undefined && Number.isInteger(cpus) && cpus >= 1 ? cpus : this.init.options.maxTasksPerWorker)
  }

  /**
   * Puts one task's assignment in this tick's outbox (flush sends it, with
   * the other tasks of its deal for the same worker, in one message).
   * False when it cannot be sent at all: the replica is then dead.
   */
  private async queueAssign (known: KnownDeal, rec: ScheduledTask, replica: Replica): Promise<boolean> {
    const { deal } = known
    let key: string | undefined
    if (wantsEncryption(deal.params)) {
      key = await (this.init.resultEncryptionKey ?? requesterResultKey)(deal)
      if (key === undefined) {
        // workers refuse such an assignment: without the key the result would be published in clear
        this.init.log('result encryption requested but no requester key is known: not assigning', { taskid: rec.taskid })
        replica.dead = true
        return false
      }
    }
    this.init.liveness.assigned(rec.taskid, replica.peer)
    const box = `${replica.peer}:${deal.dealid}`
    let group = this.outbox.get(box)
    if (group === undefined) {
      group = { known, peer: replica.peer, worker: replica.worker, resultEncryptionKey: key, tasks: [] }
      this.outbox.set(box, group)
    }
    group.tasks.push({ taskid: rec.taskid, idx: rec.idx })
    return true
  }

  /** Sends the assignment again to live pending replicas now and then (a lost message, a restarted worker). */
  private async resendAssigns (known: KnownDeal, rec: ScheduledTask): Promise<void> {
    for (const r of rec.replicas) {
      if (r.dead || r.contributed || !this.init.liveness.assignDue(rec.taskid, r.peer)) continue
      await this.queueAssign(known, rec, r)
    }
  }

  /**
   * Sends this tick's assignments: one `assign` per worker and deal (in
   * chunks of MAX_ASSIGN_TASKS), all workers at once. The worker takes a
   * prefix of the tasks; the ones it refused (busy, or the send failed)
   * have their replica marked dead, and the next tick finds them a worker.
   */
  async flush (): Promise<void> {
    if (this.outbox.size === 0) return
    const { book, log } = this.init
    const groups = [...this.outbox.values()]
    this.outbox.clear()
    const refused: Array<{ taskid: string, peer: string, worker: string, error: string }> = []
    await Promise.all(groups.map(async (g) => {
      for (let i = 0; i < g.tasks.length; i += MAX_ASSIGN_TASKS) {
        const chunk = g.tasks.slice(i, i + MAX_ASSIGN_TASKS)
        let accepted = 0
        let error = 'refused as busy'
        try {
          accepted = await this.sendAssign(g, chunk)
        } catch (err) {
          // refused (busy, not a worker...) or unreachable: these replicas do not count
          error = errorText(err)
        }
        for (const t of chunk.slice(accepted)) refused.push({ taskid: t.taskid, peer: g.peer, worker: g.worker, error })
      }
    }))
    for (const r of refused) {
      const rec = await book.getTask(r.taskid)
      const replica = rec?.replicas.find((x) => x.peer === r.peer && !x.dead)
      if (rec === undefined || replica === undefined) continue
      replica.dead = true
      await book.putTask(r.taskid, rec)
      log('assignment failed', { taskid: r.taskid, worker: r.worker, error: r.error })
    }
    // a refused task goes to another worker (or the same one, later) on the next tick
    if (refused.length > 0) this.init.kick()
  }

  /** One `assign` message; answers how many of the chunk's tasks (a prefix) the worker took. */
  private async sendAssign (g: OutboxGroup, chunk: Array<{ taskid: string, idx: number }>): Promise<number> {
    const { deal } = g.known
    const tasks = await Promise.all(chunk.map(async (t) => ({ idx: t.idx, authorization: await this.init.authorize(g.worker, t.taskid) })))
    const answer = await this.init.send(g.peer, {
      type: 'assign',
      proof: this.init.proof(),
      dealid: deal.dealid,
      tasks,
      trust: deal.trust,
      app: deal.app,
      appContent: { cid: g.known.appCid, checksum: g.known.appChecksum },
      ...(deal.dataset !== ZERO && g.known.dataset !== undefined ? { dataset: { address: deal.dataset, ...g.known.dataset } } : {}),
      params: deal.params,
      ...(g.resultEncryptionKey !== undefined ? { resultEncryptionKey: g.resultEncryptionKey } : {}),
      deadline: deal.contributionDeadline
    })
    return answer.type === 'assigned' ? Math.min(answer.accepted, chunk.length) : chunk.length
  }
}
