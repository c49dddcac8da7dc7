import { getAddress } from 'ethers'
import { TaskStatus } from '../../contracts-abi/index.js'
import { taskId } from '../../protocols/eip712.js'
import { Repository, jsonCodec } from '../db/index.js'
import type { DbController } from '../db/index.js'
import { BoundedCache } from '../common/bounded-cache.js'
import { memoAsync } from '../common/memo.js'
import type { DealInfo } from '../chain/deal.js'
import type { SchedulerHub } from './hub-view.js'
import { ZERO, same, schedulerOf } from './records.js'
import type { KnownDeal, Log, ScheduledTask } from './records.js'

function checked<T> (v: unknown): T {
  if (typeof v !== 'object' || v === null) throw new Error('not a record')
  return v as T
}

export interface DealBookInit {
  db: DbController
  hub: Pick<SchedulerHub, 'appOf' | 'datasetOf' | 'timeRefOf' | 'schedulerOf' | 'dealOf' | 'taskStatus'>
  /** this node's address */
  me: string
  /** deals followed at once */
  maxDeals: number
  /** something changed that the tick should look at */
  kick: () => void
  /** a task record closed: nothing more is sent or expected for these replicas' peers */
  taskClosed: (taskid: string, peers: string[]) => void
  /** a deal left the open set (done, or taken back by a reorg): the other parts drop their state of it */
  dealForgotten: (dealid: string) => void
  /** a deal reopened by a reorg: the watchdog reads it again */
  dealReopened: (dealid: string) => void
  log: Log
}

/**
 * The deals this node knows and the task records of those it schedules:
 * level holds them (a restart resumes every deal where it was), with the
 * open deals and the task records kept in memory, and the task ends the
 * hub's events told of.
 */
export class DealBook {
  private readonly deals: Repository<KnownDeal>
  private readonly tasks: Repository<ScheduledTask>
  /** open deals (not done), by id */
  private readonly open = new Map<string, KnownDeal>()
  /** done deals where this node, a worker, still has stake to release after the final deadline */
  private readonly releasing = new Map<string, KnownDeal>()
  /**
   * The task records as level holds them (written through): a tick walks
   * every task of its open deals, twice (loads, then schedule). Copies go
   * out, so a caller that changes a record and fails before putting it
   * leaves no trace here.
   */
  private readonly taskCache = new BoundedCache<string, ScheduledTask | null>(50_000)
  /** task ids of open deals, by lowercased deal id (see taskIdOf) */
  private readonly taskIds = new Map<string, string[]>()
  /** registered content and categories never change once on the hub: read once per node, not once per deal */
  private readonly registry = new Map<string, Promise<unknown>>()
  /**
   * Per open deal, the tasks the hub's events said ended (TaskFinalized,
   * TaskClaimed): every node follows every deal, so reading the deal on
   * every such event would multiply the reads by the swarm's size; the
   * deal is read when the count says it may be done. A restart starts the
   * count over and the watchdog's own reads close such a deal.
   */
  private readonly endedTasks = new Map<string, Set<string>>()
  /** open deals whose every task ended by the hub's events: the next tick reads whether they are done */
  private readonly ended = new Set<string>()
  /** task records this node closed since start (metrics) */
  private closedTasks = 0

  constructor (private readonly init: DealBookInit) {
    this.deals = new Repository(init.db, 'sched-deal', jsonCodec((v) => checked<KnownDeal>(v)))
    this.tasks = new Repository(init.db, 'sched-task', jsonCodec((v) => checked<ScheduledTask>(v)))
  }

  /** Loads the deals level holds (at start). */
  async load (): Promise<void> {
    for await (const { key, value } of this.deals.entries({ limit: this.init.maxDeals })) {
      if (!value.done) this.open.set(key, value)
      else if (value.releaseAt !== undefined) this.releasing.set(key, value)
    }
  }

  /** Records a DealCreated deal (idempotent), with its registered app, dataset and category. */
  async add (deal: DealInfo): Promise<void> {
    const { hub } = this.init
    if (await this.deals.has(deal.dealid)) return
    if (this.open.size >= this.init.maxDeals) {
      this.init.log('deal ignored: too many open deals', { dealid: deal.dealid })
      return
    }
    const [asset, timeRef] = await Promise.all([
      this.once(`app:${deal.app.toLowerCase()}`, async () => { const a = await hub.appOf(deal.app); return { cid: a.cid, checksum: a.checksum } }),
      this.once(`category:${deal.category}`, async () => Number(await hub.timeRefOf(deal.category)))
    ])
    // the hub draws the scheduler from the hash of the deal's block (DealCreated names none): read
    // at the pending tag, the draw is known as soon as that block is mined
    if (same(deal.scheduler, ZERO)) deal = { ...deal, scheduler: getAddress(await hub.schedulerOf(deal.dealid, { blockTag: 'pending' })) }
    const known: KnownDeal = { deal, appCid: asset.cid, appChecksum: asset.checksum, timeRef, done: false, scheduler: deal.scheduler }
    if (deal.dataset !== ZERO) {
      known.dataset = await this.once(`dataset:${deal.dataset.toLowerCase()}`, async () => { const d = await hub.datasetOf(deal.dataset); return { cid: d.cid, checksum: d.checksum } })
    }
    await this.deals.put(deal.dealid, known)
    this.open.set(deal.dealid, known)
    this.init.kick()
  }

  private async once<T> (key: string, read: () => Promise<T>): Promise<T> {
    return await memoAsync(this.registry as Map<string, Promise<T>>, key, read)
  }

  /** Whether this node is the deal's current scheduler. */
  isMine (known: KnownDeal): boolean {
    return same(schedulerOf(known), this.init.me)
  }

  /** An open deal by (lowercased) id. */
  openDeal (dealid: string): KnownDeal | undefined {
    return this.open.get(dealid)
  }

  /** The deals not done yet. */
  openDeals (): KnownDeal[] {
    return [...this.open.values()]
  }

  /** Done deals with a worker stake still to release. */
  releasingDeals (): KnownDeal[] {
    return [...this.releasing.values()]
  }

  /** Records who schedules a deal now; starts work at once when it is this node. */
  async learnScheduler (known: KnownDeal, scheduler: string): Promise<void> {
    // zero: a draw whose block is not mined yet; the next read tells
    if (same(scheduler, ZERO) || same(schedulerOf(known), scheduler)) return
    known.scheduler = scheduler
    await this.deals.put(known.deal.dealid, known)
    if (same(scheduler, this.init.me)) {
      this.init.log('this node now schedules the deal', { dealid: known.deal.dealid })
      this.init.kick()
    }
  }

  /**
   * Task `idx` of an open deal, lowercased, hashed once: the tick walks
   * every task of its deals, and a keccak per task per tick costs a bag a
   * good share of its CPU. Forgotten when the deal closes.
   */
  taskIdOf (dealid: string, idx: number): string {
    const key = dealid.toLowerCase()
    let ids = this.taskIds.get(key)
    if (ids === undefined) {
      ids = []
      this.taskIds.set(key, ids)
    }
    ids[idx] ??= taskId(dealid, idx).toLowerCase()
    return ids[idx]
  }

  /** A task's record, a copy the caller may change (and put back). */
  async getTask (taskid: string): Promise<ScheduledTask | undefined> {
    const rec = await this.peekTask(taskid)
    return rec === undefined ? undefined : structuredClone(rec)
  }

  /** The cached record itself: read it, never change it. */
  async peekTask (taskid: string): Promise<Readonly<ScheduledTask> | undefined> {
    let rec = this.taskCache.get(taskid)
    if (rec === undefined) {
      rec = await this.tasks.get(taskid) ?? null
      this.cacheTask(taskid, rec)
    }
    return rec ?? undefined
  }

  async putTask (taskid: string, rec: ScheduledTask): Promise<void> {
    const wasClosed = this.taskCache.get(taskid)?.closed === true
    // dropped first: a failed write must not leave the cache ahead of level
    this.taskCache.delete(taskid)
    await this.tasks.put(taskid, rec)
    if (rec.closed && !wasClosed) this.closedTasks++
    this.cacheTask(taskid, structuredClone(rec))
    if (rec.closed) this.init.taskClosed(taskid, rec.replicas.map((r) => r.peer))
  }

  /** Closes a task's record if it is open (the hub says it ended). */
  async closeTask (taskid: string): Promise<boolean> {
    const rec = await this.getTask(taskid)
    if (rec === undefined || rec.closed) return false
    await this.putTask(taskid, { ...rec, closed: true })
    return true
  }

  private cacheTask (taskid: string, rec: ScheduledTask | null): void {
    this.taskCache.set(taskid, rec)
  }

  /** A TaskFinalized or TaskClaimed event of an open deal: the task's record closes, the deal may be done. */
  async taskEnded (dealid: string, taskid: string): Promise<void> {
    const known = this.open.get(dealid)
    if (known === undefined) return
    let ended = this.endedTasks.get(dealid)
    if (ended === undefined) {
      ended = new Set()
      this.endedTasks.set(dealid, ended)
    }
    ended.add(taskid)
    const mine = this.isMine(known)
    // the task is over on chain: the tick need not read it again (and its worker's slot is free)
    if (mine) await this.closeTask(taskid)
    if (ended.size >= known.deal.volume) this.ended.add(dealid)
    if (mine || this.ended.has(dealid)) this.init.kick()
  }

  /** Whether the hub's events said the task ended. */
  hasEnded (dealid: string, taskid: string): boolean {
    return this.endedTasks.get(dealid)?.has(taskid) === true
  }

  /** Whether the events said every task of the deal ended (it is then due a read, even if another node schedules it). */
  allEnded (dealid: string): boolean {
    return this.ended.has(dealid)
  }

  /** Takes the deal's all-ended mark: true when it was set. */
  takeAllEnded (dealid: string): boolean {
    return this.ended.delete(dealid)
  }

  /** Closes a done deal: its task records and the deal's; a worker of it keeps it until its stake is released. */
  async markDone (known: KnownDeal, worker: boolean): Promise<void> {
    const id = known.deal.dealid
    for (let idx = 0; idx < known.deal.volume; idx++) await this.closeTask(this.taskIdOf(id, idx))
    const done: KnownDeal = { ...known, done: true, ...(worker ? { releaseAt: known.deal.finalDeadline } : {}) }
    await this.deals.put(id, done)
    this.open.delete(id)
    this.taskIds.delete(id.toLowerCase())
    this.ended.delete(id)
    this.endedTasks.delete(id)
    this.init.dealForgotten(id)
    if (worker) this.releasing.set(id, done)
  }

  /**
   * When a done deal's stake is to be released next (chain time, s), or
   * undefined once nothing more is left to release. Read from the deal's
   * stored record, never the caller's copy: a copy taken before markDone
   * would write the deal back as open.
   */
  async releaseAt (dealid: string, at: number | undefined): Promise<void> {
    const known = this.releasing.get(dealid) ?? await this.deals.get(dealid)
    // a closed deal with nothing to change (the usual outcome of a scheduler's release) is not written
    if (known === undefined || !known.done || known.releaseAt === at) return
    const { releaseAt: _, ...rest } = known
    const next: KnownDeal = at === undefined ? rest : { ...rest, releaseAt: at }
    await this.deals.put(dealid, next)
    if (at === undefined) this.releasing.delete(dealid)
    else this.releasing.set(dealid, next)
  }

  /**
   * A DealCreated a reorg took back: when the hub no longer holds the deal,
   * it is forgotten with its records, so that the same deal mined again is
   * taken as new.
   */
  async dealRemoved (dealid: string): Promise<void> {
    const known = this.open.get(dealid) ?? await this.deals.get(dealid)
    if (known === undefined) return
    if (Number((await this.init.hub.dealOf(dealid)).volume) !== 0) return
    for (let idx = 0; idx < known.deal.volume; idx++) {
      const taskid = taskId(dealid, idx).toLowerCase()
      this.taskCache.delete(taskid)
      await this.tasks.del(taskid)
    }
    await this.deals.del(dealid)
    this.open.delete(dealid)
    this.releasing.delete(dealid)
    this.endedTasks.delete(dealid)
    this.ended.delete(dealid)
    this.taskIds.delete(dealid)
    this.init.dealForgotten(dealid)
    this.init.log('deal taken back by a reorg: forgotten', { dealid })
  }

  /**
   * A TaskFinalized or TaskClaimed a reorg took back: a task the hub no
   * longer holds ended reopens with its deal, and the tick finalizes it
   * again (its result CID is kept) or the watchdog claims it again.
   */
  async taskEndRemoved (dealid: string, taskid: string, event: string): Promise<void> {
    this.endedTasks.get(dealid)?.delete(taskid)
    this.ended.delete(dealid)
    const known = this.open.get(dealid) ?? await this.deals.get(dealid)
    if (known === undefined) return
    let idx = 0
    while (idx < known.deal.volume && taskId(dealid, idx).toLowerCase() !== taskid) idx++
    if (idx >= known.deal.volume) return
    const status = Number(await this.init.hub.taskStatus(dealid, idx))
    if (status === TaskStatus.COMPLETED || status === TaskStatus.FAILED) return
    const rec = await this.getTask(taskid)
    if (rec?.closed === true) await this.putTask(taskid, { ...rec, closed: false })
    if (known.done) {
      const reopened: KnownDeal = { ...known, done: false }
      await this.deals.put(dealid, reopened)
      this.open.set(dealid, reopened)
      this.releasing.delete(dealid)
    }
    this.init.dealReopened(dealid)
    this.init.log('task end taken back by a reorg: reopened', { taskid, dealid, event })
    this.init.kick()
  }

  /**
   * The tasks of the open deals this node schedules, by state (metrics), and
   * `closed`: tasks closed since start. Read from the record cache, never
   * from level: the tick peeks every task of its open deals, so they are
   * there; one not seen yet counts as waiting.
   */
  taskStateCounts (): Record<string, number> {
    const out: Record<string, number> = { waiting: 0, running: 0, contributed: 0, finalizing: 0, closed: this.closedTasks }
    for (const known of this.open.values()) {
      if (!this.isMine(known)) continue
      const ids = this.taskIds.get(known.deal.dealid.toLowerCase())
      for (let idx = 0; idx < known.deal.volume; idx++) {
        const id = ids?.[idx]
        const rec = id === undefined ? undefined : this.taskCache.get(id)
        if (rec?.closed === true) continue
        const live = rec?.replicas.filter((r) => !r.dead) ?? []
        const state = rec?.resultsCid !== undefined ? 'finalizing' : live.some((r) => r.contributed) ? 'contributed' : live.length > 0 ? 'running' : 'waiting'
        out[state]++
      }
    }
    return out
  }

  /** A deal's record as level holds it. */
  async dealRecord (dealid: string): Promise<KnownDeal | undefined> {
    return await this.deals.get(dealid)
  }
}
