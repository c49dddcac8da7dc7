/**
 * The explorer's index of the hub's history: deals, tasks (a per-task audit
 * trail), apps and datasets (uses, earnings), accounts, and look-up tables
 * by transaction hash and CID. Built from the hub's events as the node's
 * follower delivers them, and from a bounded-range read of the blocks the
 * node followed before the index existed (`backfill`), so a node that joins
 * late, or an index wiped, still shows the deals made before.
 *
 * Writes are kept in memory and go to level in one batch every
 * `flushMs` (every node follows every hub event; a write per event was the
 * follower's largest level cost before). A crash loses at most that much,
 * which the next backfill reads again: every update is idempotent.
 */
import { Repository, jsonCodec } from '../../db/index.js'
import type { DbController } from '../../db/index.js'
import { taskId as taskIdOf } from '../../../protocols/eip712.js'
import { BoundedCache } from '../../common/bounded-cache.js'

export type ExplorerTaskStatus = 'UNSET' | 'ACTIVE' | 'REVEALING' | 'COMPLETED' | 'FAILED'

/** One hub event of a task, deal or asset: what the audit trail lists. */
export interface TrailStep {
  name: string
  block: number
  logIndex: number
  txHash: string
  worker?: string
  /** the event's own value: a result hash, a consensus, a digest, a CID */
  value?: string
}

export interface ExplorerTask {
  taskId: string
  dealId: string
  idx: number
  status: ExplorerTaskStatus
  trail: TrailStep[]
  contributions: Array<{ worker: string, resultHash: string, block: number, txHash: string }>
  reveals: Array<{ worker: string, digest: string, block: number, txHash: string }>
  consensus: string | null
  resultCid: string | null
  resultHash: string | null
  /** nRLC, decimal strings: what the hub moved when the task closed */
  payments: Array<{ to: string, role: string, amount: string, exact: boolean }>
}

export interface ExplorerDeal {
  dealId: string
  requester: string
  beneficiary: string
  app: string
  dataset: string
  workers: string[]
  scheduler: string | null
  requestHash: string
  params: string
  tag: string
  volume: string
  trust: string
  category: string
  appPrice: string
  datasetPrice: string
  workerPrice: string
  block: number
  txHash: string
  trail: TrailStep[]
  completed: number
  failed: number
}

export interface ExplorerAsset {
  kind: 'app' | 'dataset'
  address: string
  owner: string
  name: string
  cid: string
  checksum: string
  block: number
  txHash: string
  /** deals that use it, tasks completed with it, and nRLC earned by its owner */
  deals: number
  tasks: number
  earned: string
}

export interface ExplorerAccount {
  address: string
  dealsRequested: number
  spent: string
  tasksWorked: number
  /** a worker's share is exact when it was the task's only winner; with several the hub splits by weight */
  workerEarned: string
  workerEarnedExact: boolean
  tasksScheduled: number
  schedulerEarned: string
  deposits: string
  withdrawals: string
  staked: string
  seized: string
}

/** What a transaction hash or CID points at. */
export interface ExplorerRef { kind: 'task' | 'deal' | 'app' | 'dataset' | 'account', id: string }

interface Counts { deals: number, tasks: number, completed: number, failed: number, apps: number, datasets: number, events: number }

/** A hub event with its arguments as plain strings (what the store reads). */
export interface HubEventLike {
  name: string
  block: number
  logIndex: number
  txHash: string
  args: Record<string, unknown>
}

export interface ExplorerStoreOptions {
  flushMs: number
  /** tasks of a deal given a placeholder when the deal is made (the rest appear with their first event) */
  placeholderTasks: number
}

export const defaultExplorerStoreOptions: ExplorerStoreOptions = {
  // a page re-read after a live event is answered from memory; level gets one batch per interval
  flushMs: 500,
  // a deal of a million tasks would otherwise be a million writes at every node
  placeholderTasks: 256
}

/** tasks of one deal the index can place (a larger deal's later tasks are not shown) */
const MAX_INDEXED_VOLUME = 100_000

const ZERO_ADDRESS = /^0x0{40}$/

const pad = (n: number, w: number): string => n.toString().padStart(w, '0')
/** a sortable key of a log's position */
export const orderKey = (block: number, logIndex: number): string => `${pad(block, 12)}${pad(logIndex, 6)}`
const low = (s: string): string => s.toLowerCase()
const big = (v: unknown): bigint => { try { return BigInt(String(v)) } catch { return 0n } }
const add = (a: string, b: bigint): string => (big(a) + b).toString()

/** A level table with writes held in memory until the next flush. */
class Table<T> {
  readonly pending = new Map<string, T>()
  /** writes on their way to level: still read from here until the batch lands */
  private writing = new Map<string, T>()
  readonly repo: Repository<T>
  /** values read or written lately: the records a bag's events touch again and again (its deal, app, accounts) stay off level */
  private readonly cache: BoundedCache<string, T>
  constructor (db: DbController, prefix: string, cacheSize = 2_048) {
    this.repo = new Repository<T>(db, prefix, jsonCodec<T>())
    this.cache = new BoundedCache(cacheSize)
  }

  async get (key: string): Promise<T | undefined> {
    const mem = this.pending.get(key) ?? this.writing.get(key) ?? this.cache.get(key)
    if (mem !== undefined) return mem
    const v = await this.repo.get(key)
    if (v !== undefined) this.remember(key, v)
    return v
  }

  set (key: string, value: T): void {
    this.pending.set(key, value)
    this.remember(key, value)
  }

  private remember (key: string, value: T): void {
    this.cache.set(key, value)
  }
  async flush (): Promise<void> {
    if (this.pending.size === 0) return
    this.writing = new Map(this.pending)
    this.pending.clear()
    try {
      await this.repo.batch([...this.writing].map(([key, value]) => ({ type: 'put' as const, key, value })))
    } catch (err) {
      // kept for the next flush, unless a newer value came meanwhile
      for (const [k, v] of this.writing) if (!this.pending.has(k)) this.pending.set(k, v)
      throw err
    } finally {
      this.writing = new Map()
    }
  }

  /** values not yet in level (pending and being written) */
  unwritten (): Map<string, T> {
    return new Map([...this.writing, ...this.pending])
  }

  /** newest keys first: pending writes merged with level's, bounded */
  async latest (limit: number): Promise<Array<{ key: string, value: T }>> {
    const fromDb: Array<{ key: string, value: T }> = []
    for await (const e of this.repo.entries({ reverse: true, limit })) fromDb.push(e)
    const merged = new Map<string, T>(fromDb.map((e) => [e.key, e.value]))
    for (const [k, v] of this.unwritten()) merged.set(k, v)
    return [...merged].sort((a, b) => (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0)).slice(0, limit).map(([key, value]) => ({ key, value }))
  }
}

function newAccount (address: string): ExplorerAccount {
  return { address, dealsRequested: 0, spent: '0', tasksWorked: 0, workerEarned: '0', workerEarnedExact: true, tasksScheduled: 0, schedulerEarned: '0', deposits: '0', withdrawals: '0', staked: '0', seized: '0' }
}

function newTask (dealId: string, idx: number): ExplorerTask {
  return { taskId: low(taskIdOf(dealId, BigInt(idx))), dealId: low(dealId), idx, status: 'UNSET', trail: [], contributions: [], reveals: [], consensus: null, resultCid: null, resultHash: null, payments: [] }
}

/** Adds a step unless the same event is there already (events may be delivered twice). */
function addStep (trail: TrailStep[], step: TrailStep): boolean {
  if (trail.some((s) => s.block === step.block && s.logIndex === step.logIndex)) return false
  trail.push(step)
  trail.sort((a, b) => a.block - b.block || a.logIndex - b.logIndex)
  return true
}

/** One request this node submitted, and what came of it (kept in memory: the node's own recent record). */
export interface OwnRequest {
  at: number
  app: string
  volume: number
  trust: number
  requestHash?: string
  dealId?: string
  /** why no deal: the requester's error code, message and the providers' reasons */
  error?: { code: string, message: string, reasons: Array<{ code: string, reason: string }> }
}

/** Own requests kept in memory. */
const OWN_REQUESTS = 100

export class ExplorerStore {
  /** this node's latest requests, newest last */
  readonly ownRequests: OwnRequest[] = []
  private readonly opts: ExplorerStoreOptions
  readonly tasks: Table<ExplorerTask>
  readonly deals: Table<ExplorerDeal>
  readonly assets: Table<ExplorerAsset>
  readonly accounts: Table<ExplorerAccount>
  /** `txhash:kind:id` -> what the transaction touched */
  readonly txs: Table<ExplorerRef>
  /** CID -> ref */
  readonly cids: Table<ExplorerRef>
  /** orderKey -> deal id (newest deals first) */
  readonly dealOrder: Table<string>
  /** orderKey + idx -> task id (newest tasks first) */
  readonly taskOrder: Table<string>
  /** deal id -> task ids known (for deals over the placeholder count) */
  private readonly meta: Table<unknown>
  private counts: Counts = { deals: 0, tasks: 0, completed: 0, failed: 0, apps: 0, datasets: 0, events: 0 }
  private through = -1
  private timer?: NodeJS.Timeout
  private flushing: Promise<void> = Promise.resolve()
  /** one update at a time: a read-modify-write of a task must not interleave with another */
  private queue: Promise<unknown> = Promise.resolve()

  constructor (db: DbController, options: Partial<ExplorerStoreOptions> = {}) {
    this.opts = { ...defaultExplorerStoreOptions, ...options }
    this.tasks = new Table(db, 'xp-task')
    this.deals = new Table(db, 'xp-deal')
    this.assets = new Table(db, 'xp-asset')
    this.accounts = new Table(db, 'xp-acct')
    this.txs = new Table(db, 'xp-tx')
    this.cids = new Table(db, 'xp-cid')
    this.dealOrder = new Table(db, 'xp-dord')
    this.taskOrder = new Table(db, 'xp-tord')
    this.meta = new Table(db, 'xp-meta')
  }

  async start (): Promise<void> {
    const c = await this.meta.get('counts') as Counts | undefined
    if (c !== undefined) this.counts = { ...this.counts, ...c }
    const t = await this.meta.get('through') as number | undefined
    if (typeof t === 'number') this.through = t
    this.timer = setInterval(() => { void this.flush() }, this.opts.flushMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    await this.queue.catch(() => {})
    await this.flush()
  }

  /** Writes what is held in memory (one batch per table). */
  async flush (): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      this.meta.set('counts', this.counts)
      this.meta.set('through', this.through)
      for (const t of [this.tasks, this.deals, this.assets, this.accounts, this.txs, this.cids, this.dealOrder, this.taskOrder, this.meta] as Array<Table<unknown>>) {
        await t.flush()
      }
    }).catch(() => {})
    await this.flushing
  }

  recordRequest (r: OwnRequest): void {
    this.ownRequests.push(r)
    if (this.ownRequests.length > OWN_REQUESTS) this.ownRequests.shift()
  }

  get stats (): Readonly<Counts> { return this.counts }
  /** the last block whose events are all indexed (-1: none) */
  get indexedThrough (): number { return this.through }
  markThrough (block: number): void { if (block > this.through) this.through = block }

  /** Applies one hub event; returns the task or deal it changed. Idempotent. */
  async apply (e: HubEventLike): Promise<ExplorerRef | undefined> {
    const run = this.queue.then(async () => await this.applyNow(e))
    this.queue = run.catch(() => {})
    return await run
  }

  /**
   * Reads blocks `from`..`to` in ranges of `range` blocks and applies their
   * events, as one job of the update queue: live events that come meanwhile
   * wait behind it, so a task's later event never comes before its deal.
   * `read` answering undefined stops it (the node is stopping).
   */
  async backfill (from: number, to: number, range: number, read: (from: number, to: number) => Promise<HubEventLike[] | undefined>): Promise<void> {
    const run = this.queue.then(async () => {
      for (let start = from; start <= to; start += range) {
        const end = Math.min(to, start + range - 1)
        const logs = await read(start, end)
        if (logs === undefined) return
        for (const e of logs) await this.applyNow(e)
        this.markThrough(end)
      }
    })
    this.queue = run.catch(() => {})
    await run
  }

  /** Records that a transaction touched a task, deal, asset or account: a write without a read (a tx is nearly always new). */
  private async ref (txHash: string, r: ExplorerRef): Promise<void> {
    this.txs.set(`${low(txHash)}:${r.kind}:${r.id}`, r)
  }

  /** What a transaction touched (a group commit may close many tasks: the first 64). */
  async txRefs (txHash: string): Promise<ExplorerRef[]> {
    const prefix = `${low(txHash)}:`
    const out = new Map<string, ExplorerRef>()
    for await (const { key, value } of this.txs.repo.entries({ prefix, limit: 64 })) out.set(key, value)
    for (const [key, value] of this.txs.unwritten()) if (key.startsWith(prefix)) out.set(key, value)
    return [...out.values()].slice(0, 64)
  }

  private async account (address: string): Promise<ExplorerAccount> {
    return await this.accounts.get(low(address)) ?? newAccount(low(address))
  }

  private async applyNow (e: HubEventLike): Promise<ExplorerRef | undefined> {
    const a = e.args
    const step = (extra: Partial<TrailStep> = {}): TrailStep => ({ name: e.name, block: e.block, logIndex: e.logIndex, txHash: low(e.txHash), ...extra })
    this.counts.events++
    switch (e.name) {
      case 'AppRegistered':
      case 'DatasetRegistered': {
        const kind = e.name === 'AppRegistered' ? 'app' : 'dataset'
        const address = low(String(a[kind]))
        const prev = await this.assets.get(address)
        if (prev === undefined) {
          if (kind === 'app') this.counts.apps++
          else this.counts.datasets++
        }
        this.assets.set(address, { deals: 0, tasks: 0, earned: '0', ...prev, kind, address, owner: low(String(a.owner)), name: String(a.name), cid: String(a.cid), checksum: String(a.checksum), block: e.block, txHash: low(e.txHash) })
        this.cids.set(String(a.cid), { kind, id: address })
        await this.ref(e.txHash, { kind, id: address })
        return { kind, id: address }
      }
      case 'DealCreated': {
        const dealId = low(String(a.dealid))
        const info = a.info as Record<string, unknown>
        if (await this.deals.get(dealId) !== undefined) return { kind: 'deal', id: dealId }
        const deal: ExplorerDeal = {
          dealId,
          requester: low(String(a.requester)),
          beneficiary: low(String(info.beneficiary)),
          app: low(String(info.app)),
          dataset: low(String(info.dataset)),
          workers: Array.isArray(info.workers) ? (info.workers as unknown[]).map((w) => low(String(w))) : [],
          scheduler: /^0x0{40}$/.test(String(a.scheduler)) ? null : low(String(a.scheduler)),
          requestHash: low(String(info.requestHash)),
          params: String(info.params),
          tag: String(info.tag),
          volume: String(info.volume),
          trust: String(info.trust),
          category: String(info.category),
          appPrice: String(info.appPrice),
          datasetPrice: String(info.datasetPrice),
          workerPrice: String(info.workerPrice),
          block: e.block,
          txHash: low(e.txHash),
          trail: [step()],
          completed: 0,
          failed: 0
        }
        this.deals.set(dealId, deal)
        this.counts.deals++
        const key = orderKey(e.block, e.logIndex)
        this.dealOrder.set(key, dealId)
        const volume = Number(big(deal.volume))
        for (let i = 0; i < Math.min(volume, this.opts.placeholderTasks); i++) {
          const t = newTask(dealId, i)
          t.trail.push(step())
          this.tasks.set(t.taskId, t)
          this.taskOrder.set(`${key}${pad(i, 8)}`, t.taskId)
          this.counts.tasks++
        }
        for (const asset of [deal.app, deal.dataset]) {
          if (ZERO_ADDRESS.test(asset)) continue
          const rec = await this.assets.get(asset)
          if (rec !== undefined) this.assets.set(asset, { ...rec, deals: rec.deals + 1 })
        }
        const acct = await this.account(deal.requester)
        acct.dealsRequested++
        this.accounts.set(acct.address, acct)
        await this.ref(e.txHash, { kind: 'deal', id: dealId })
        return { kind: 'deal', id: dealId }
      }
      case 'SchedulerDrawn':
      case 'SchedulerReelected': {
        const dealId = low(String(a.dealid))
        const deal = await this.deals.get(dealId)
        if (deal === undefined) return undefined
        const scheduler = String(a.scheduler)
        const value = e.name === 'SchedulerReelected' ? `previous ${low(String(a.previous))}` : undefined
        addStep(deal.trail, step({ ...(!/^0x0{40}$/.test(scheduler) ? { worker: low(scheduler) } : {}), ...(value !== undefined ? { value } : {}) }))
        deal.scheduler = /^0x0{40}$/.test(scheduler) ? null : low(scheduler)
        this.deals.set(dealId, deal)
        await this.ref(e.txHash, { kind: 'deal', id: dealId })
        return { kind: 'deal', id: dealId }
      }
      case 'TaskInitialized':
      case 'TaskContributed':
      case 'TaskConsensus':
      case 'TaskRevealed':
      case 'TaskFinalized':
      case 'TaskClaimed':
        return await this.applyTask(e, step)
      case 'Deposit':
      case 'Withdraw':
      case 'Staked':
      case 'StakeSeized': {
        const acct = await this.account(String(a.account))
        const amount = big(a.amount)
        if (e.name === 'Deposit') acct.deposits = add(acct.deposits, amount)
        if (e.name === 'Withdraw') acct.withdrawals = add(acct.withdrawals, amount)
        if (e.name === 'Staked') acct.staked = add(acct.staked, amount)
        if (e.name === 'StakeSeized') acct.seized = add(acct.seized, amount)
        this.accounts.set(acct.address, acct)
        await this.ref(e.txHash, { kind: 'account', id: acct.address })
        return { kind: 'account', id: acct.address }
      }
      default:
        return undefined
    }
  }

  private async applyTask (e: HubEventLike, step: (extra?: Partial<TrailStep>) => TrailStep): Promise<ExplorerRef | undefined> {
    const a = e.args
    const taskId = low(String(a.taskid))
    let task = await this.tasks.get(taskId)
    const dealIdArg = a.dealid !== undefined ? low(String(a.dealid)) : undefined
    if (task === undefined) {
      // past the placeholders, or an event whose deal came before the index: TaskInitialized and
      // TaskFinalized name the deal; the others only the task, which has its first event already
      if (dealIdArg === undefined) return undefined
      const idx = e.name === 'TaskInitialized' ? Number(big(a.idx)) : await this.findIdx(dealIdArg, taskId)
      if (idx === undefined) return undefined
      task = newTask(dealIdArg, idx)
      this.counts.tasks++
      const deal = await this.deals.get(dealIdArg)
      this.taskOrder.set(`${orderKey(deal?.block ?? e.block, deal !== undefined ? 0 : e.logIndex)}${pad(idx, 8)}`, taskId)
    }
    const worker = a.worker !== undefined ? low(String(a.worker)) : undefined
    const fresh = addStep(task.trail, step({
      ...(worker !== undefined ? { worker } : {}),
      ...(a.resultHash !== undefined && e.name === 'TaskContributed' ? { value: String(a.resultHash) } : {}),
      ...(a.consensus !== undefined ? { value: String(a.consensus) } : {}),
      ...(a.digest !== undefined ? { value: String(a.digest) } : {}),
      ...(a.resultsCid !== undefined ? { value: String(a.resultsCid) } : {})
    }))
    await this.ref(e.txHash, { kind: 'task', id: taskId })
    if (!fresh) return { kind: 'task', id: taskId }
    const deal = await this.deals.get(task.dealId)
    switch (e.name) {
      case 'TaskInitialized':
        if (task.status === 'UNSET') task.status = 'ACTIVE'
        break
      case 'TaskContributed':
        if (worker !== undefined && !task.contributions.some((c) => c.worker === worker)) task.contributions.push({ worker, resultHash: String(a.resultHash), block: e.block, txHash: low(e.txHash) })
        if (task.status === 'UNSET') task.status = 'ACTIVE'
        break
      case 'TaskConsensus':
        task.consensus = String(a.consensus)
        if (task.status !== 'COMPLETED' && task.status !== 'FAILED') task.status = 'REVEALING'
        break
      case 'TaskRevealed':
        if (worker !== undefined && !task.reveals.some((r) => r.worker === worker)) task.reveals.push({ worker, digest: String(a.digest), block: e.block, txHash: low(e.txHash) })
        break
      case 'TaskFinalized': {
        task.status = 'COMPLETED'
        task.resultCid = String(a.resultsCid)
        task.resultHash = String(a.resultHash)
        this.cids.set(task.resultCid, { kind: 'task', id: taskId })
        this.counts.completed++
        if (deal !== undefined) {
          deal.completed++
          this.deals.set(deal.dealId, deal)
          task.payments = await this.pay(deal, task)
        }
        break
      }
      case 'TaskClaimed':
        task.status = 'FAILED'
        this.counts.failed++
        if (deal !== undefined) {
          deal.failed++
          this.deals.set(deal.dealId, deal)
          task.payments = [{ to: deal.requester, role: 'requester (refund)', amount: (big(deal.appPrice) + big(deal.datasetPrice) + big(deal.workerPrice)).toString(), exact: true }]
        }
        break
    }
    this.tasks.set(taskId, task)
    return { kind: 'task', id: taskId }
  }

  /** task id -> index, per deal past its placeholders (the newest few deals: a bag's tasks close together) */
  private readonly idxCache = new BoundedCache<string, Map<string, number>>(4)

  /** The task's index in its deal, when the deal is known: its task ids are hashed once per deal, not once per task. */
  private async findIdx (dealId: string, taskId: string): Promise<number | undefined> {
    let ids = this.idxCache.get(dealId)
    if (ids === undefined) {
      const deal = await this.deals.get(dealId)
      if (deal === undefined) return undefined
      ids = new Map()
      const volume = Math.min(Number(big(deal.volume)), MAX_INDEXED_VOLUME)
      for (let i = 0; i < volume; i++) ids.set(low(taskIdOf(dealId, BigInt(i))), i)
      this.idxCache.set(dealId, ids)
    }
    return ids.get(taskId)
  }

  /**
   * What the hub paid when the task completed (Hub.sol "Rewards"): the app
   * and dataset owners their price; the winners 90 % of the task price (and
   * of the losers' seized stakes), split by weight; the scheduler the rest.
   */
  private async pay (deal: ExplorerDeal, task: ExplorerTask): Promise<ExplorerTask['payments']> {
    const out: ExplorerTask['payments'] = []
    for (const [kind, price] of [['app', deal.appPrice], ['dataset', deal.datasetPrice]] as const) {
      const address = kind === 'app' ? deal.app : deal.dataset
      if (/^0x0{40}$/.test(address)) continue
      const asset = await this.assets.get(address)
      if (asset !== undefined) this.assets.set(address, { ...asset, tasks: asset.tasks + 1, earned: add(asset.earned, big(price)) })
      if (big(price) > 0n && asset !== undefined) out.push({ to: asset.owner, role: `${kind} owner`, amount: price, exact: true })
    }
    const pot = big(deal.workerPrice)
    const workersPot = pot * 90n / 100n
    // the winners are the workers who revealed (a contributor of the consensus that did not reveal loses);
    // a trust-1 task closed in one call has no contribution event: its deal's one worker
    const winners = task.reveals.length > 0
      ? task.reveals.map((r) => r.worker)
      : task.contributions.length > 0
        ? task.contributions.filter((c) => c.resultHash === task.consensus).map((c) => c.worker)
        : deal.workers.slice(0, 1)
    const exact = winners.length === 1
    for (const w of winners) {
      const share = workersPot / BigInt(Math.max(1, winners.length))
      out.push({ to: w, role: 'worker', amount: share.toString(), exact })
      const acct = await this.account(w)
      acct.tasksWorked++
      acct.workerEarned = add(acct.workerEarned, share)
      if (!exact) acct.workerEarnedExact = false
      this.accounts.set(acct.address, acct)
    }
    if (deal.scheduler !== null) {
      out.push({ to: deal.scheduler, role: 'scheduler', amount: (pot - workersPot).toString(), exact: exact })
      const acct = await this.account(deal.scheduler)
      acct.tasksScheduled++
      acct.schedulerEarned = add(acct.schedulerEarned, pot - workersPot)
      this.accounts.set(acct.address, acct)
    }
    const req = await this.account(deal.requester)
    req.spent = add(req.spent, big(deal.appPrice) + big(deal.datasetPrice) + pot)
    this.accounts.set(req.address, req)
    return out
  }

  /** Newest deals first. */
  async latestDeals (limit: number): Promise<ExplorerDeal[]> {
    const ids = await this.dealOrder.latest(limit)
    const out: ExplorerDeal[] = []
    for (const { value } of ids) {
      const d = await this.deals.get(value)
      if (d !== undefined) out.push(d)
    }
    return out
  }

  /** Newest tasks first. */
  async latestTasks (limit: number): Promise<ExplorerTask[]> {
    const ids = await this.taskOrder.latest(limit)
    const out: ExplorerTask[] = []
    for (const { value } of ids) {
      const t = await this.tasks.get(value)
      if (t !== undefined) out.push(t)
    }
    return out
  }

  /** Tasks of a deal, by index (bounded). */
  async dealTasks (deal: ExplorerDeal, limit: number): Promise<ExplorerTask[]> {
    const out: ExplorerTask[] = []
    const volume = Math.min(Number(big(deal.volume)), limit)
    for (let i = 0; i < volume; i++) {
      const t = await this.tasks.get(low(taskIdOf(deal.dealId, BigInt(i))))
      if (t !== undefined) out.push(t)
    }
    return out
  }

  async assetsOf (kind: 'app' | 'dataset', limit: number): Promise<ExplorerAsset[]> {
    const out: ExplorerAsset[] = []
    const unwritten = this.assets.unwritten()
    for await (const { value } of this.assets.repo.entries({ limit: limit * 4 })) if (value.kind === kind && !unwritten.has(value.address)) out.push(value)
    for (const v of unwritten.values()) if (v.kind === kind) out.push(v)
    return out.sort((a, b) => b.block - a.block).slice(0, limit)
  }

  /** Deals where the address is the requester, a worker or the scheduler (newest first, scanning a bounded window). */
  async dealsOf (address: string, limit: number, scan = 2_000): Promise<ExplorerDeal[]> {
    const a = low(address)
    const out: ExplorerDeal[] = []
    for (const d of await this.latestDeals(scan)) {
      if (d.requester === a || d.scheduler === a || d.workers.includes(a) || d.app === a || d.dataset === a) out.push(d)
      if (out.length >= limit) break
    }
    return out
  }
}
