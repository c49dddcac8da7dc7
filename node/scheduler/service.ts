import { computeAddress, getAddress, keccak256, toUtf8Bytes } from 'ethers'
import { ContributionStatus, TaskStatus } from '../../contracts-abi/index.js'
import { ZERO_ADDRESS as ZERO_ADDR, resultHash as resultHashOf, signAuthorization, taskId } from '../../protocols/eip712.js'
import type { HubDomain, TypedDataSigner } from '../../protocols/eip712.js'
import { MAX_ASSIGN_TASKS, TASKS_PER_CPU, signExecPeer } from '../../protocols/execution.js'
import type { ContributedMessage, ExecMessage, HeartbeatMessage } from '../../protocols/execution.js'
import { parseRequestParams } from '../../protocols/market.js'
import { hubInterface, isDevChain, mineDevBlock } from '../chain/index.js'
import type { ChainClient, ChainEvent, Hub } from '../chain/index.js'
import { Repository, jsonCodec } from '../db/index.js'
import type { DbController } from '../db/index.js'
import { FreshValue, memoAsync } from '../common/memo.js'
import { dealFromEvent } from '../chain/deal.js'
import type { DealInfo } from '../chain/deal.js'
import { SchedulerError } from './errors.js'
import type { ExecChannel } from '../exec/exec-channel.js'
import { defaultSchedulerOptions, type SchedulerOptions } from './options.js'

/** One worker's copy of a task, as the scheduler tracks it. */
export interface Replica {
  worker: string
  peer: string
  /** chain time (s) of the assignment: a pending replica counts for one time reference only */
  assignedAt: number
  /** no heartbeat for missedBeats beats, refused, or unreachable: it no longer counts */
  dead: boolean
  /** its commit is on the hub (trust > 1) */
  contributed: boolean
  /** the worker reported the task failed (a heartbeat with status failed): its code, e.g. TIMEOUT */
  failure?: string
  /** how many times this worker reported this task failed; past maxFailuresPerWorker it is not asked again */
  failures?: number
}

/** The scheduler's record of one task (level: survives restarts). */
export interface ScheduledTask {
  taskid: string
  dealid: string
  idx: number
  replicas: Replica[]
  /** peer id that was asked to upload, and the CID it answered */
  resultsCid?: string
  /** the result's callback-data, for a deal with a callback (finalize passes it) */
  callbackData?: string
  /** completed or failed on the hub: nothing more to do */
  closed: boolean
}

/** The record of one deal this node knows (every node keeps them, for the watchdog). */
export interface KnownDeal {
  deal: DealInfo
  appCid: string
  appChecksum: string
  timeRef: number
  /** the dataset's content as registered, when the deal uses one */
  dataset?: { cid: string, checksum: string }
  /** every task completed or claimed */
  done: boolean
  /**
   * The deal's scheduler as this node last learned it (DealCreated, then
   * SchedulerReelected or a read of the hub's deal); unset in records of
   * earlier versions, which means `deal.scheduler`.
   */
  scheduler?: string
  /**
   * Chain time (s) from which this node, a worker of the deal, can take back
   * the stake still locked for contributions it never made (a spare
   * replica's): the deal's final deadline. Unset once released.
   */
  releaseAt?: number
}

export interface SchedulerInit {
  channel: ExecChannel
  db: DbController
  /** this node's chain client, with the hub binding */
  chain: ChainClient
  domain: HubDomain
  /** signs authorizations (the node's wallet; its address must be the chain client's) */
  wallet: TypedDataSigner
  /** the peer id of a worker's address (resource adverts in the node; a map in tests); undefined when unknown */
  resolvePeer: (address: string) => Promise<string | undefined>
  /** tasks a worker runs at once (its advertised cpus); undefined when unknown: maxTasksPerWorker then */
  workerCapacity?: (address: string) => Promise<number | undefined>
  /** unix ms; injected so tests can drive heartbeat timeouts */
  clock?: () => number
  /** the requester's compressed public key when its params ask for result encryption; default: {@link requesterResultKey} */
  resultEncryptionKey?: (deal: DealInfo) => Promise<string | undefined>
  options?: Partial<SchedulerOptions>
  /** this node's fixed offset in the reelection window (tests give each node its own); default from a hash */
  watchdogOffsetMs?: number
  log?: (msg: string, context?: Record<string, unknown>) => void
}

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()
const ZERO = '0x0000000000000000000000000000000000000000'

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

function checked<T> (v: unknown): T {
  if (typeof v !== 'object' || v === null) throw new Error('not a record')
  return v as T
}

/** Receipt reads after `contributed` messages in flight at once; past it the follower's TaskFinalized closes the tasks. */
const MAX_HINT_READS = 32

/** Statuses a worker reports once a task's result is computed: its slot is free for another task. */
const COMPUTED: ReadonlySet<string> = new Set(['contributing', 'contributed', 'revealing', 'revealed', 'uploading', 'done'])

const TASK_FINALIZED_TOPIC = hubInterface().getEvent('TaskFinalized')?.topicHash as string

/**
 * Scheduler duties of the node elected for a deal, plus the watchdog every
 * node runs. `onChainEvent` takes the hub's events (`onDeal` a DealCreated
 * alone); the deals where this node is the (current) scheduler are driven by
 * a tick that reads the hub and:
 * initializes tasks (trust > 1; trust 1 tasks are opened by the worker's
 * contribute-and-finalize), assigns workers (least loaded first, then highest
 * on-chain score) with a signed authorization, adds replicas until the
 * consensus rule can be met, reassigns away from workers that miss
 * `missedBeats` heartbeats, asks the winners to reveal, asks one winner to
 * upload the result and finalizes with its CID.
 *
 * The hub is the source of truth; level keeps what the hub does not (who was
 * assigned when), so a restart resumes every deal where it was.
 */
export class SchedulerService {
  private readonly opts: SchedulerOptions
  private readonly deals: Repository<KnownDeal>
  private readonly tasks: Repository<ScheduledTask>
  private readonly hub: Hub
  private readonly me: string
  private readonly clock: () => number
  /** in memory: last heartbeat per (taskid, peer); after a restart every replica starts fresh */
  private readonly beats = new Map<string, number>()
  /** in memory: failures reported by heartbeat per (taskid, peer), until the next tick records them */
  private readonly failed = new Map<string, string>()
  /** in memory: last time a message was sent per (kind, taskid, peer), for resends */
  private readonly sent = new Map<string, number>()
  /** in memory: (taskid, peer) of replicas whose worker reported the result computed: they hold no slot */
  private readonly computed = new Set<string>()
  /** open deals (not done), by id */
  private readonly open = new Map<string, KnownDeal>()
  /** done deals where this node, a worker, still has stake to release after the final deadline */
  private readonly releasing = new Map<string, KnownDeal>()
  /** in memory: when this node first saw a deal's scheduler late (local ms), per deal and kind */
  private readonly lateSince = new Map<string, number>()
  /** in memory: chain time before which the watchdog need not read a deal again */
  private readonly nextCheck = new Map<string, number>()
  /** open deals whose every task ended by the hub's events: the next tick reads whether they are done */
  private readonly ended = new Set<string>()
  /**
   * Per open deal, the tasks the hub's events said ended (TaskFinalized,
   * TaskClaimed). Reading the deal on every such event was five reads per
   * task of a bag in a 5-node swarm (every node follows every deal); the
   * deal is read when the count says it may be done. A restart starts the
   * count over and the watchdog's own reads close such a deal.
   */
  private readonly endedTasks = new Map<string, Set<string>>()
  /** per deal this node schedules: when its tick last read the hub's deal (local ms) */
  private readonly dealReadAt = new Map<string, number>()
  /** whether the chain is a dev chain that may be told to mine (letTimePass), asked once */
  private devChain: Promise<boolean> | undefined
  /** the latest block's timestamp: see chainNow */
  private readonly chainTime: FreshValue<number>
  /** registered content and categories never change once on the hub: read once per node, not once per deal */
  private readonly registry = new Map<string, Promise<unknown>>()
  /**
   * The task records as level holds them (written through): a tick walks
   * every task of its open deals, and a bag of 200 read 200 records from
   * level per tick, twice (loads, then schedule). Copies go out, so a caller
   * that changes a record and fails before putting it leaves no trace here.
   */
  private readonly taskCache = new Map<string, ScheduledTask | null>()
  /** reads of worker scores (see scoreOf) */
  private readonly scores = new Map<string, FreshValue<bigint>>()
  private timer: NodeJS.Timeout | undefined
  private watchdogTimer: NodeJS.Timeout | undefined
  private ticking: Promise<void> | undefined
  /** status reads after `contributed` messages, in flight (stop waits for them) */
  private readonly hints = new Set<Promise<void>>()
  /** this node's ExecPeer proof (protocols/execution.ts), signed once at start: it holds for every deal */
  private proof = ''
  /** task ids of open deals, by lowercased deal id (see taskIdOf) */
  private readonly taskIds = new Map<string, string[]>()
  /** kicked while a tick ran: tick again when it ends */
  private kickAgain = false
  /** this tick's assignments, by worker peer and deal (flushAssigns sends them) */
  private readonly outbox = new Map<string, { known: KnownDeal, peer: string, worker: string, resultEncryptionKey: string | undefined, tasks: Array<{ taskid: string, idx: number }> }>()
  private watching: Promise<void> | undefined
  private started = false
  /** task records this node closed since start (metrics) */
  private closedTasks = 0

  constructor (private readonly init: SchedulerInit) {
    this.opts = { ...defaultSchedulerOptions, ...init.options }
    const o = this.opts
    if (!(o.tickMs > 0 && o.heartbeatIntervalMs > 0 && o.missedBeats >= 2 && o.resendMs > 0 && o.watchdogMs > 0 && o.dealRefreshMs > 0 && o.chainTimeMaxAgeMs >= 0 && o.scoreMaxAgeMs >= 0 && o.maxDeals >= 1 && o.reelectStaggerMs >= 0 && o.maxTasksPerWorker >= 1 && o.maxFailuresPerWorker >= 1)) {
      throw new SchedulerError('SCHEDULER_INVALID_OPTIONS', 'scheduler needs positive intervals and missedBeats >= 2 (one lost beat never reassigns)')
    }
    if (init.chain.hub === undefined) throw new SchedulerError('SCHEDULER_INVALID_OPTIONS', 'the chain client needs the hub binding')
    this.hub = init.chain.hub
    this.me = init.chain.address
    this.clock = init.clock ?? Date.now
    this.chainTime = new FreshValue(this.opts.chainTimeMaxAgeMs, async () => {
      const block = await this.init.chain.provider.getBlock('latest')
      return block === null ? Math.floor(this.clock() / 1000) : block.timestamp
    })
    this.deals = new Repository(init.db, 'sched-deal', jsonCodec((v) => checked<KnownDeal>(v)))
    this.tasks = new Repository(init.db, 'sched-task', jsonCodec((v) => checked<ScheduledTask>(v)))
  }

  async start (): Promise<void> {
    if (this.started) return
    this.proof = await signExecPeer(this.init.wallet, this.init.domain, this.init.channel.peerId)
    this.started = true
    for await (const { key, value } of this.deals.entries({ limit: this.opts.maxDeals })) {
      if (!value.done) this.open.set(key, value)
      else if (value.releaseAt !== undefined) this.releasing.set(key, value)
    }
    this.init.channel.on('heartbeat', async (m, from) => {
      let freed = false
      for (const t of (m as HeartbeatMessage).tasks) {
        const key = `${t.taskid.toLowerCase()}:${from}`
        this.beats.set(key, this.clock())
        if (t.status === 'failed') {
          // the replica is out now, not after missedBeats: the next tick assigns another worker
          if (this.failed.size < 10_000) this.failed.set(key, t.code ?? 'DUTY_FAILED')
          freed = true
        } else if (COMPUTED.has(t.status) && !this.computed.has(key) && this.computed.size < 100_000) {
          // computed: the worker's CPU is free for another task while its commit waits for the chain
          this.computed.add(key)
          freed = true
        }
      }
      if (freed) this.kick()
      return { type: 'ack' }
    })
    // commits and reveals are read from the hub; these messages only bring the next tick forward
    const hint = async (): Promise<ExecMessage> => {
      this.kick()
      return { type: 'ack' }
    }
    // a trust-1 worker says its contributeAndFinalize transaction is mined:
    // the tasks close now, not when the follower's next poll brings
    // TaskFinalized. The chain is read (the transaction's receipt), the worker not believed
    this.init.channel.on('contributed', async (m) => {
      this.kick()
      const c = m as ContributedMessage
      if (this.hints.size < MAX_HINT_READS) {
        const read: Promise<void> = this.closeFromReceipt(c.txHash, c.taskids.map((t) => t.toLowerCase()))
          .catch((err: unknown) => { this.log('transaction receipt read failed', { tx: c.txHash, error: String(err) }) })
          .finally(() => { this.hints.delete(read) })
        this.hints.add(read)
      }
      return { type: 'ack' }
    })
    this.init.channel.on('revealed', hint)
    this.timer = setInterval(() => { this.kick() }, this.opts.tickMs)
    this.watchdogTimer = setInterval(() => { this.kickWatchdog() }, this.opts.watchdogMs)
    this.kick()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    clearInterval(this.watchdogTimer)
    for (const t of ['heartbeat', 'contributed', 'revealed'] as const) this.init.channel.off(t)
    await this.ticking
    await this.watching
    await Promise.allSettled([...this.hints])
  }

  /**
   * Takes a DealCreated event (every node calls this for every deal: the
   * watchdog needs them all). Idempotent.
   */
  async onDeal (deal: DealInfo): Promise<void> {
    if (await this.deals.has(deal.dealid)) return
    if (this.open.size >= this.opts.maxDeals) {
      this.log('deal ignored: too many open deals', { dealid: deal.dealid })
      return
    }
    const [asset, timeRef] = await Promise.all([
      this.once(`app:${deal.app.toLowerCase()}`, async () => { const a = await this.hub.appOf(deal.app); return { cid: a.cid, checksum: a.checksum } }),
      this.once(`category:${deal.category}`, async () => Number((await this.hub.categoryOf(deal.category)).timeRef))
    ])
    // the hub draws the scheduler from the hash of the deal's block (DealCreated names none): read
    // at the pending tag, the draw is known as soon as that block is mined
    if (same(deal.scheduler, ZERO)) deal = { ...deal, scheduler: getAddress(await this.hub.schedulerOf(deal.dealid, { blockTag: 'pending' })) }
    const known: KnownDeal = { deal, appCid: asset.cid, appChecksum: asset.checksum, timeRef, done: false, scheduler: deal.scheduler }
    if (deal.dataset !== ZERO) {
      known.dataset = await this.once(`dataset:${deal.dataset.toLowerCase()}`, async () => { const d = await this.hub.datasetOf(deal.dataset); return { cid: d.cid, checksum: d.checksum } })
    }
    await this.deals.put(deal.dealid, known)
    this.open.set(deal.dealid, known)
    this.kick()
  }

  /**
   * Takes the hub's events that move a deal (every node's follower feeds
   * them all; others are ignored): DealCreated, SchedulerReelected (a deal
   * this node now schedules, or no longer does), TaskFinalized and
   * TaskClaimed (a deal that may be done). They spare the tick from reading
   * every deal of the swarm on every beat: it reads the deals this node
   * schedules, and the others only when an event says something changed.
   */
  async onChainEvent (event: ChainEvent): Promise<void> {
    if (event.name === 'DealCreated') {
      await this.onDeal(dealFromEvent(event))
    } else if (event.name === 'SchedulerReelected' && event.args !== undefined) {
      const a = event.args
      const known = this.open.get(String(a.dealid).toLowerCase())
      if (known === undefined) return
      // the successor is drawn lazily from the reelecting block's hash: the event names none
      await this.learnScheduler(known, await this.hub.schedulerOf(known.deal.dealid, { blockTag: 'pending' }))
    } else if ((event.name === 'TaskFinalized' || event.name === 'TaskClaimed') && event.topics.length >= 3) {
      // both events index (taskid, dealid): read from the topics, with no decoding of the rest
      const dealid = event.topics[2].toLowerCase()
      const known = this.open.get(dealid)
      if (known === undefined) return
      const taskid = event.topics[1].toLowerCase()
      let ended = this.endedTasks.get(dealid)
      if (ended === undefined) {
        ended = new Set()
        this.endedTasks.set(dealid, ended)
      }
      ended.add(taskid)
      const mine = same(known.scheduler ?? known.deal.scheduler, this.me)
      if (mine) {
        // the task is over on chain: the tick need not read it again (and its worker's slot is free)
        const rec = await this.getTask(taskid)
        if (rec !== undefined && !rec.closed) await this.putTask(taskid, { ...rec, closed: true })
      }
      if (ended.size >= known.deal.volume) this.ended.add(dealid)
      if (mine || this.ended.has(dealid)) this.kick()
    }
  }

  /**
   * A hub event a reorg took back (the market's follower rewound past it):
   * the records built on it follow the chain again, read at the latest
   * block. A DealCreated gone from the hub forgets the deal (its records
   * too), so that the same deal mined again is taken as new; a
   * TaskFinalized or TaskClaimed of a task the hub no longer holds ended
   * reopens the task and its deal, and the tick finalizes it again (its
   * result CID is kept) or the watchdog claims it again.
   */
  async onChainEventRemoved (event: ChainEvent): Promise<void> {
    if (event.name === 'DealCreated' && event.topics.length >= 2) {
      const dealid = event.topics[1].toLowerCase()
      const known = this.open.get(dealid) ?? await this.deals.get(dealid)
      if (known === undefined) return
      if (Number((await this.hub.dealOf(dealid)).volume) !== 0) return
      for (let idx = 0; idx < known.deal.volume; idx++) {
        const taskid = taskId(dealid, idx).toLowerCase()
        this.taskCache.delete(taskid)
        await this.tasks.del(taskid)
      }
      await this.deals.del(dealid)
      for (const m of [this.open, this.releasing, this.nextCheck, this.endedTasks, this.dealReadAt] as Array<Map<string, unknown>>) m.delete(dealid)
      this.ended.delete(dealid)
      this.taskIds.delete(dealid)
      this.log('deal taken back by a reorg: forgotten', { dealid })
    } else if ((event.name === 'TaskFinalized' || event.name === 'TaskClaimed') && event.topics.length >= 3) {
      const taskid = event.topics[1].toLowerCase()
      const dealid = event.topics[2].toLowerCase()
      this.endedTasks.get(dealid)?.delete(taskid)
      this.ended.delete(dealid)
      const known = this.open.get(dealid) ?? await this.deals.get(dealid)
      if (known === undefined) return
      let idx = 0
      while (idx < known.deal.volume && taskId(dealid, idx).toLowerCase() !== taskid) idx++
      if (idx >= known.deal.volume) return
      // taskStatus, not taskOf: a trust-1 task closed by contributeAndFinalize is a bit taskOf cannot see
      const status = Number(await this.hub.taskStatus(dealid, idx))
      if (status === TaskStatus.COMPLETED || status === TaskStatus.FAILED) return
      const rec = await this.getTask(taskid)
      if (rec?.closed === true) await this.putTask(taskid, { ...rec, closed: false })
      if (known.done) {
        const reopened: KnownDeal = { ...known, done: false }
        await this.deals.put(dealid, reopened)
        this.open.set(dealid, reopened)
        this.releasing.delete(dealid)
      }
      this.nextCheck.delete(dealid)
      this.log('task end taken back by a reorg: reopened', { taskid, dealid, event: event.name })
      this.kick()
    }
  }

  /**
   * After a worker's `contributed` of trust-1 tasks this node schedules: one
   * read of the transaction's receipt (one for a whole batch); each listed
   * task whose TaskFinalized the hub emitted in it closes, and the tick
   * assigns what is left of the deal.
   */
  private async closeFromReceipt (txHash: string, taskids: string[]): Promise<void> {
    const open: ScheduledTask[] = []
    for (const taskid of taskids) {
      const rec = await this.getTask(taskid)
      if (rec === undefined || rec.closed) continue
      const known = this.open.get(rec.dealid)
      if (known === undefined || known.deal.trust !== 1 || !same(known.scheduler ?? known.deal.scheduler, this.me)) continue
      open.push(rec)
    }
    if (open.length === 0 || !this.started) return
    const receipt = await this.init.chain.provider.getTransactionReceipt(txHash)
    if (receipt === null || receipt.status !== 1) return
    const hub = (await this.hub.getAddress()).toLowerCase()
    const finalized = new Set<string>()
    for (const log of receipt.logs) {
      if (log.address.toLowerCase() === hub && log.topics[0] === TASK_FINALIZED_TOPIC && log.topics[1] !== undefined) finalized.add(log.topics[1].toLowerCase())
    }
    let closed = false
    for (const rec of open) {
      if (!finalized.has(rec.taskid)) continue
      // read again: the tick or an event may have written it meanwhile
      const now = await this.getTask(rec.taskid)
      if (now === undefined || now.closed) continue
      await this.putTask(rec.taskid, { ...now, closed: true })
      closed = true
    }
    if (closed) this.kick()
  }

  /** Records who schedules a deal now; starts work at once when it is this node. */
  private async learnScheduler (known: KnownDeal, scheduler: string): Promise<void> {
    // zero: a draw whose block is not mined yet; the next read tells
    if (same(scheduler, ZERO) || same(known.scheduler ?? known.deal.scheduler, scheduler)) return
    known.scheduler = scheduler
    await this.deals.put(known.deal.dealid, known)
    if (same(scheduler, this.me)) {
      this.log('this node now schedules the deal', { dealid: known.deal.dealid })
      this.kick()
    }
  }

  /**
   * Task `idx` of an open deal, lowercased, hashed once: the tick walks
   * every task of its deals, and a keccak per task per tick was a tenth of
   * the CPU of a bag of 200. Forgotten when the deal closes.
   */
  private taskIdOf (dealid: string, idx: number): string {
    const key = dealid.toLowerCase()
    let ids = this.taskIds.get(key)
    if (ids === undefined) {
      ids = []
      this.taskIds.set(key, ids)
    }
    ids[idx] ??= taskId(dealid, idx).toLowerCase()
    return ids[idx]
  }

  private async once<T> (key: string, read: () => Promise<T>): Promise<T> {
    return await memoAsync(this.registry as Map<string, Promise<T>>, key, read)
  }

  /** A task's record, a copy the caller may change (and put back). */
  private async getTask (taskid: string): Promise<ScheduledTask | undefined> {
    const rec = await this.peekTask(taskid)
    return rec === undefined ? undefined : structuredClone(rec)
  }

  /** The cached record itself: read it, never change it. */
  private async peekTask (taskid: string): Promise<Readonly<ScheduledTask> | undefined> {
    let rec = this.taskCache.get(taskid)
    if (rec === undefined) {
      rec = await this.tasks.get(taskid) ?? null
      this.cacheTask(taskid, rec)
    }
    return rec ?? undefined
  }

  private async putTask (taskid: string, rec: ScheduledTask): Promise<void> {
    const wasClosed = this.taskCache.get(taskid)?.closed === true
    // dropped first: a failed write must not leave the cache ahead of level
    this.taskCache.delete(taskid)
    await this.tasks.put(taskid, rec)
    if (rec.closed && !wasClosed) this.closedTasks++
    this.cacheTask(taskid, structuredClone(rec))
    if (rec.closed) {
      // nothing more is sent or expected for it
      for (const r of rec.replicas) {
        const key = `${taskid}:${r.peer}`
        this.beats.delete(key)
        this.computed.delete(key)
        this.failed.delete(key)
        for (const kind of ['assign', 'reveal']) this.sent.delete(`${kind}:${key}`)
      }
      this.sent.delete(`finalize-pending:${taskid}`)
    }
  }

  private cacheTask (taskid: string, rec: ScheduledTask | null): void {
    this.taskCache.delete(taskid)
    this.taskCache.set(taskid, rec)
    if (this.taskCache.size > 50_000) this.taskCache.delete(this.taskCache.keys().next().value as string)
  }

  /** A deal's record (tests and the API). */
  /** The deals not done yet, as this node knows them (metrics). */
  openDeals (): KnownDeal[] {
    return [...this.open.values()]
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
      if (!same(known.scheduler ?? known.deal.scheduler, this.me)) continue
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

  async dealRecord (dealid: string): Promise<KnownDeal | undefined> {
    return await this.deals.get(dealid.toLowerCase())
  }

  /** A task's record (tests and the API). */
  async taskRecord (taskid: string): Promise<ScheduledTask | undefined> {
    return await this.getTask(taskid.toLowerCase())
  }

  private log (msg: string, context?: Record<string, unknown>): void {
    this.init.log?.(msg, context)
  }

  private kick (): void {
    if (!this.started) return
    // an event during a tick may concern what the tick already read: one more tick right after it
    if (this.ticking !== undefined) {
      this.kickAgain = true
      return
    }
    this.ticking = this.tick().catch((err: unknown) => { this.log('scheduler tick failed', { error: String(err) }) }).finally(() => {
      this.ticking = undefined
      if (this.kickAgain) {
        this.kickAgain = false
        this.kick()
      }
    })
  }

  private kickWatchdog (): void {
    if (!this.started || this.watching !== undefined) return
    this.watching = this.watchdog().catch((err: unknown) => { this.log('watchdog failed', { error: String(err) }) }).finally(() => { this.watching = undefined })
  }

  /**
   * The latest block's timestamp, read at most once per `chainTimeMaxAgeMs`
   * (concurrent callers share the read): the tick runs on every event and
   * message of a busy deal, and a block read per tick was most of what a
   * bag asked the chain. The deadlines it is compared with are time
   * references (minutes) apart; a value a tick old changes no decision that matters.
   */
  private async chainNow (): Promise<number> {
    return await this.chainTime.get()
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
      if (this.scores.size >= 10_000) this.scores.clear()
      v = new FreshValue(this.opts.scoreMaxAgeMs, async () => await this.hub.scoreOf(worker))
      this.scores.set(key, v)
    }
    return await v.get()
  }

  private async tick (): Promise<void> {
    // the deals this node schedules, and the others an event says may be done
    const due = [...this.open.values()].filter((k) => same(k.scheduler ?? k.deal.scheduler, this.me) || this.ended.has(k.deal.dealid))
    if (due.length === 0) return
    const now = await this.chainNow()
    try {
      await this.tickDeals(due, now)
    } finally {
      if (this.outbox.size > 0) await this.flushAssigns()
    }
  }

  private async tickDeals (due: KnownDeal[], now: number): Promise<void> {
    let loads: Map<string, number> | undefined
    for (const known of due) {
      if (!this.started) return
      const id = known.deal.dealid
      // the hub's deal is read when its events say every task ended, and now and then in case
      // an event was missed; its scheduler changes come as SchedulerReelected events in between
      const endedAll = this.ended.delete(id)
      const readAt = this.dealReadAt.get(id)
      if (endedAll || readAt === undefined || Date.now() - readAt >= this.opts.dealRefreshMs) {
        this.dealReadAt.set(id, Date.now())
        const d = await this.hub.dealOf(id, { blockTag: 'pending' })
        if (Number(d.done) >= known.deal.volume && await this.doneMined(id, known.deal.volume)) {
          await this.closeDeal(known, d)
          continue
        }
        await this.learnScheduler(known, d.scheduler)
      }
      if (!same(known.scheduler ?? known.deal.scheduler, this.me) || now >= known.deal.finalDeadline) continue
      // one count of in-flight work per tick, shared by the deals scheduled in it (schedule() updates it)
      loads ??= await this.loads()
      await this.schedule(known, now, loads).catch((err: unknown) => { this.log('scheduling failed', { dealid: known.deal.dealid, error: String(err) }) })
    }
  }

  /**
   * Whether the deal's tasks are all done in a mined block. The deal is
   * read at the pending tag (its scheduler draw is known from the block
   * after the deal's), where a finalize still in the pool already counts: a
   * deal closed on it is forgotten for good, and a finalize dropped from
   * the pool (its sender killed, replaced) would never be sent again.
   */
  private async doneMined (dealid: string, volume: number): Promise<boolean> {
    return Number((await this.hub.dealOf(dealid)).done) >= volume
  }

  private async closeDeal (known: KnownDeal, current: { scheduler: string, schedulerLocked: bigint }): Promise<void> {
    // the tick and the watchdog may both see it done
    if (!this.open.has(known.deal.dealid)) return
    const worker = known.deal.workers.some((w) => same(w, this.me))
    // its task records are over too (the ones this node scheduled)
    for (let idx = 0; idx < known.deal.volume; idx++) {
      const taskid = this.taskIdOf(known.deal.dealid, idx)
      const rec = await this.getTask(taskid)
      if (rec !== undefined && !rec.closed) await this.putTask(taskid, { ...rec, closed: true })
    }
    const done: KnownDeal = { ...known, done: true, ...(worker ? { releaseAt: known.deal.finalDeadline } : {}) }
    await this.deals.put(known.deal.dealid, done)
    this.open.delete(known.deal.dealid)
    this.taskIds.delete(known.deal.dealid.toLowerCase())
    this.nextCheck.delete(known.deal.dealid)
    this.ended.delete(known.deal.dealid)
    this.endedTasks.delete(known.deal.dealid)
    this.dealReadAt.delete(known.deal.dealid)
    if (worker) this.releasing.set(known.deal.dealid, done)
    this.log('deal done', { dealid: known.deal.dealid })
    // the scheduler's stake for the deal is locked until someone releases it: we do, at once
    if (same(current.scheduler, this.me) && current.schedulerLocked > 0n) await this.release(known.deal.dealid, 'scheduler stake')
  }

  /** `release(dealid, me)`: NothingToRelease is fine (every contribution already gave its stake back). */
  private async release (dealid: string, what: string): Promise<void> {
    try {
      const tx = await this.init.chain.sender.send(this.hub.release.populateTransaction(dealid, this.me))
      this.log('stake released', { dealid, what, tx: tx.hash })
    } catch (err) {
      this.log('stake release not done', { dealid, what, error: err instanceof Error ? err.message : String(err) })
    }
  }

  /** After a deal's final deadline: the stake a spare replica locked comes back. */
  private async releaseDue (now: number): Promise<void> {
    for (const known of [...this.releasing.values()]) {
      if (!this.started) return
      if (known.releaseAt === undefined || now < known.releaseAt) continue
      await this.release(known.deal.dealid, 'worker stake')
      const { releaseAt: _, ...released } = known
      await this.deals.put(known.deal.dealid, released)
      this.releasing.delete(known.deal.dealid)
    }
  }

  /** In-flight assignments per worker across this node's open tasks (least loaded first). */
  private async loads (): Promise<Map<string, number>> {
    const out = new Map<string, number>()
    // open deals only: a done deal's replicas hold nothing any more (a
    // trust-1 replica is never marked contributed once its deal is done), and
    // reading the whole history would grow with every deal ever scheduled
    for (const known of this.open.values()) {
      for (let idx = 0; idx < known.deal.volume; idx++) {
        const rec = await this.peekTask(this.taskIdOf(known.deal.dealid, idx))
        if (rec === undefined || rec.closed) continue
        for (const r of rec.replicas) {
          // a computed result waiting for its transaction holds no CPU
          if (!r.dead && !r.contributed && !this.computed.has(`${rec.taskid}:${r.peer}`)) out.set(r.worker, (out.get(r.worker) ?? 0) + 1)
        }
      }
    }
    return out
  }

  private async schedule (known: KnownDeal, now: number, loads: Map<string, number>): Promise<void> {
    const { deal } = known
    for (let idx = 0; idx < deal.volume; idx++) {
      if (!this.started) return
      const taskid = this.taskIdOf(deal.dealid, idx)
      // looked at in place first: most tasks of a bag are closed or wait for a free worker, and
      // copying each record on every tick was most of a tick's time
      const seen = await this.peekTask(taskid)
      if (seen?.closed === true) continue
      // a task nobody holds yet waits, with no chain read (nor initialize), while every worker of the
      // deal is full: a bag of 200 is not read 200 times a tick for the few slots that free up
      if ((seen === undefined || seen.replicas.length === 0) && !await this.anyFree(known, loads)) continue
      const rec = seen === undefined ? { taskid, dealid: deal.dealid, idx, replicas: [], closed: false } : structuredClone(seen)
      const before = JSON.stringify(rec)
      if (deal.trust === 1) await this.scheduleFast(known, rec, now, loads)
      else await this.scheduleConsensus(known, rec, now, loads)
      if (JSON.stringify(rec) !== before) await this.putTask(taskid, rec)
    }
  }

  /** Marks replicas that failed, missed their beats or outlived a time reference pending as dead. */
  private expire (known: KnownDeal, rec: ScheduledTask, now: number): void {
    const limit = this.opts.missedBeats * this.opts.heartbeatIntervalMs
    for (const r of rec.replicas) {
      if (r.dead || r.contributed) continue
      const key = `${rec.taskid}:${r.peer}`
      const failure = this.failed.get(key)
      if (failure !== undefined) {
        this.failed.delete(key)
        r.dead = true
        r.failure = failure
        r.failures = (r.failures ?? 0) + 1
        this.log('worker reported the task failed: replica dropped', { taskid: rec.taskid, worker: r.worker, code: failure, failures: r.failures })
        continue
      }
      const last = this.beats.get(key)
      if (last === undefined) {
        // first sight (assignment, or a restart): the clock starts now
        this.beats.set(key, this.clock())
        continue
      }
      if (this.clock() - last > limit) {
        r.dead = true
        this.log('worker missed its heartbeats: replica dropped', { taskid: rec.taskid, worker: r.worker })
      } else if (now - r.assignedAt >= known.timeRef) {
        r.dead = true
        this.log('pending replica outlived one time reference', { taskid: rec.taskid, worker: r.worker })
      }
    }
  }

  private async scheduleFast (known: KnownDeal, rec: ScheduledTask, now: number, loads: Map<string, number>): Promise<void> {
    if (now >= known.deal.contributionDeadline) return
    this.expire(known, rec, now)
    const live = rec.replicas.filter((r) => !r.dead)
    // a live replica with no resend due: its worker is on it, and its end comes as a
    // TaskFinalized event (onChainEvent closes the record): no chain read each tick
    if (live.length > 0 && !live.some((r) => this.resendDue(rec, r))) return
    // a task this node never assigned, of a deal it has scheduled since the match, cannot be
    // closed (only its authorizations close a trust-1 task): no chain read before its first worker
    const untouched = rec.replicas.length === 0 && same(known.deal.scheduler, this.me) && same(known.scheduler ?? known.deal.scheduler, this.me)
    const ended = this.endedTasks.get(known.deal.dealid)?.has(rec.taskid) === true
    const status = ended ? TaskStatus.COMPLETED : untouched ? TaskStatus.UNSET : Number(await this.hub.taskStatus(known.deal.dealid, rec.idx))
    if (status === TaskStatus.COMPLETED || status === TaskStatus.FAILED) {
      rec.closed = true
      return
    }
    if (live.length === 0) await this.addReplica(known, rec, now, loads)
    else await this.resendAssigns(known, rec)
  }

  private resendDue (rec: ScheduledTask, r: Replica): boolean {
    const last = this.sent.get(`assign:${rec.taskid}:${r.peer}`)
    return last === undefined || this.clock() - last >= this.opts.resendMs
  }

  private async scheduleConsensus (known: KnownDeal, rec: ScheduledTask, now: number, loads: Map<string, number>): Promise<void> {
    const { deal } = known
    let task = await this.hub.taskOf(rec.taskid)
    let status = Number(task.status)
    if (status === TaskStatus.UNSET) {
      if (now >= deal.contributionDeadline) return
      await this.init.chain.sender.send(this.hub.initialize.populateTransaction(deal.dealid, rec.idx))
      this.log('task initialized', { taskid: rec.taskid })
      task = await this.hub.taskOf(rec.taskid)
      status = Number(task.status)
    }
    if (status === TaskStatus.COMPLETED || status === TaskStatus.FAILED) {
      rec.closed = true
      return
    }
    const contributors = (await this.hub.contributorsOf(rec.taskid)).map((a) => a.toLowerCase())
    for (const r of rec.replicas) if (contributors.includes(r.worker.toLowerCase())) r.contributed = true
    if (status === TaskStatus.ACTIVE) {
      if (now >= deal.contributionDeadline) return
      this.expire(known, rec, now)
      // add replicas until the consensus rule could be met if every pending replica agreed
      for (let guard = 0; guard < deal.workers.length; guard++) {
        if (await this.consensusReachable(deal.trust, rec, contributors)) break
        if (!await this.addReplica(known, rec, now, loads)) break
      }
      await this.resendAssigns(known, rec)
      return
    }
    // REVEALING
    await this.revealAndFinalize(known, rec, task, contributors, now)
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
      if (prev !== undefined && (prev.failures ?? 0) >= this.opts.maxFailuresPerWorker) continue
      const capacity = await this.capacityOf(worker)
      const free = capacity - (loads.get(worker) ?? 0)
      if (free <= 0) continue
      if (prev !== undefined && !this.resendDue(rec, prev)) continue
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
        this.log('task assigned', { taskid: rec.taskid, worker: c.worker, retry: c.retry })
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
    return TASKS_PER_CPU * (cpus !== undefined && Number.isInteger(cpus) && cpus >= 1 ? cpus : this.opts.maxTasksPerWorker)
  }

  /**
   * Puts one task's assignment in this tick's outbox (flushAssigns sends it,
   * with the other tasks of its deal for the same worker, in one message).
   * False when it cannot be sent at all: the replica is then dead.
   */
  private async queueAssign (known: KnownDeal, rec: ScheduledTask, replica: Replica): Promise<boolean> {
    const { deal } = known
    let key: string | undefined
    if (wantsEncryption(deal.params)) {
      key = await (this.init.resultEncryptionKey ?? requesterResultKey)(deal)
      if (key === undefined) {
        // workers refuse such an assignment: without the key the result would be published in clear
        this.log('result encryption requested but no requester key is known: not assigning', { taskid: rec.taskid })
        replica.dead = true
        return false
      }
    }
    this.sent.set(`assign:${rec.taskid}:${replica.peer}`, this.clock())
    this.beats.set(`${rec.taskid}:${replica.peer}`, this.clock())
    this.computed.delete(`${rec.taskid}:${replica.peer}`)
    const box = `${replica.peer}:${deal.dealid}`
    let group = this.outbox.get(box)
    if (group === undefined) {
      group = { known, peer: replica.peer, worker: replica.worker, resultEncryptionKey: key, tasks: [] }
      this.outbox.set(box, group)
    }
    group.tasks.push({ taskid: rec.taskid, idx: rec.idx })
    return true
  }

  /**
   * Sends this tick's assignments: one `assign` per worker and deal (in
   * chunks of MAX_ASSIGN_TASKS), all workers at once. The worker takes a
   * prefix of the tasks; the ones it refused (busy, or the send failed)
   * have their replica marked dead, and the next tick finds them a worker.
   */
  private async flushAssigns (): Promise<void> {
    const groups = [...this.outbox.values()]
    this.outbox.clear()
    const refused: Array<{ taskid: string, peer: string, worker: string, error: string }> = []
    await Promise.all(groups.map(async (g) => {
      const { deal } = g.known
      for (let i = 0; i < g.tasks.length; i += MAX_ASSIGN_TASKS) {
        const chunk = g.tasks.slice(i, i + MAX_ASSIGN_TASKS)
        let accepted = 0
        let error = 'refused as busy'
        try {
          const tasks = await Promise.all(chunk.map(async (t) => ({ idx: t.idx, authorization: await signAuthorization(this.init.wallet, this.init.domain, { worker: g.worker, taskid: t.taskid }) })))
          const answer = await this.init.channel.send(g.peer, {
            type: 'assign',
            proof: this.proof,
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
          accepted = answer.type === 'assigned' ? Math.min(answer.accepted, chunk.length) : chunk.length
        } catch (err) {
          // refused (busy, not a worker...) or unreachable: these replicas do not count
          error = err instanceof Error ? err.message : String(err)
        }
        for (const t of chunk.slice(accepted)) refused.push({ taskid: t.taskid, peer: g.peer, worker: g.worker, error })
      }
    }))
    for (const r of refused) {
      const rec = await this.getTask(r.taskid)
      const replica = rec?.replicas.find((x) => x.peer === r.peer && !x.dead)
      if (rec === undefined || replica === undefined) continue
      replica.dead = true
      await this.putTask(r.taskid, rec)
      this.log('assignment failed', { taskid: r.taskid, worker: r.worker, error: r.error })
    }
    // a refused task goes to another worker (or the same one, later) on the next tick
    if (refused.length > 0) this.kickAgain = true
  }

  /** Sends the assignment again to live pending replicas now and then (a lost message, a restarted worker). */
  private async resendAssigns (known: KnownDeal, rec: ScheduledTask): Promise<void> {
    for (const r of rec.replicas) {
      if (r.dead || r.contributed || !this.resendDue(rec, r)) continue
      await this.queueAssign(known, rec, r)
    }
  }

  private async revealAndFinalize (known: KnownDeal, rec: ScheduledTask, task: Awaited<ReturnType<Hub['taskOf']>>, contributors: string[], now: number): Promise<void> {
    const proved: string[] = []
    for (const w of contributors) {
      const c = await this.hub.contributionOf(rec.taskid, w)
      const status = Number(c.status)
      if (status === ContributionStatus.PROVED) {
        proved.push(w)
        continue
      }
      // ask every contributor: only the winners can reveal, and the hub tells who they are
      const peer = rec.replicas.find((r) => same(r.worker, w))?.peer ?? await this.init.resolvePeer(w)
      if (peer === undefined || now >= Number(task.revealDeadline)) continue
      const key = `reveal:${rec.taskid}:${peer}`
      const last = this.sent.get(key)
      if (last !== undefined && this.clock() - last < this.opts.resendMs) continue
      this.sent.set(key, this.clock())
      await this.init.channel.send(peer, { type: 'reveal-request', taskid: rec.taskid, proof: this.proof }).catch(() => {})
    }
    const allIn = Number(task.reveals) === Number(task.winners)
    if (!(allIn || (Number(task.reveals) > 0 && now >= Number(task.revealDeadline)))) return
    if (rec.resultsCid === undefined) {
      for (const w of proved) {
        const peer = rec.replicas.find((r) => same(r.worker, w))?.peer ?? await this.init.resolvePeer(w)
        if (peer === undefined) continue
        try {
          const answer = await this.init.channel.send(peer, { type: 'upload-request', taskid: rec.taskid, proof: this.proof })
          if (answer.type === 'result-uploaded') {
            // a deal with a callback finalizes only with the data the consensus covers (keccak256 of it is the digest)
            if ((known.deal.callback ?? ZERO_ADDR) !== ZERO_ADDR && (answer.callbackData === undefined || resultHashOf(rec.taskid, keccak256(answer.callbackData)) !== task.consensus)) {
              this.log('upload answer without the consensus callback data', { taskid: rec.taskid, worker: w })
              continue
            }
            rec.resultsCid = answer.cid
            if (answer.callbackData !== undefined) rec.callbackData = answer.callbackData
            break
          }
        } catch (err) {
          this.log('upload request failed', { taskid: rec.taskid, worker: w, error: err instanceof Error ? err.message : String(err) })
        }
      }
      if (rec.resultsCid === undefined) return
      // keep the CID before the transaction: a restart finalizes with the same one
      await this.putTask(rec.taskid, rec)
    }
    // a finalize of an earlier run (killed before it was mined) may still wait in the node's pool:
    // a second one would revert; the next tick reads the hub again (mined: closed; dropped: sent anew)
    if (Number((await this.hub.taskOf(rec.taskid, { blockTag: 'pending' })).status) === TaskStatus.COMPLETED) {
      const key = `finalize-pending:${rec.taskid}`
      if (!this.sent.has(key)) this.log('finalize of an earlier run pending: waiting for it', { taskid: rec.taskid })
      this.sent.set(key, this.clock())
      return
    }
    const tx = await this.init.chain.sender.send(this.hub.finalize.populateTransaction(rec.taskid, rec.resultsCid, (known.deal.callback ?? ZERO_ADDR) !== ZERO_ADDR ? rec.callbackData ?? '0x' : '0x'))
    rec.closed = true
    this.log('task finalized', { taskid: rec.taskid, cid: rec.resultsCid, tx: tx.hash })
    for (const w of proved) {
      const peer = rec.replicas.find((r) => same(r.worker, w))?.peer
      if (peer !== undefined) void this.init.channel.send(peer, { type: 'finalized', taskid: rec.taskid, txHash: tx.hash, cid: rec.resultsCid, proof: this.proof }).catch(() => {})
    }
  }

  /**
   * Every node: replaces a deal's scheduler that misses its duties, as the
   * hub allows, and claims unfinished tasks after the final deadline (reelect when tasks stay uninitialized a time reference past
   * its last work; reelectForTask when a revealed task is not finalized a
   * time reference past its reveal deadline). Reverts (someone was faster,
   * not late after all) are expected and ignored.
   */
  private async watchdog (): Promise<void> {
    if (this.open.size === 0 && this.releasing.size === 0) return
    const now = await this.letTimePass(await this.chainNow())
    await this.releaseDue(now)
    for (const known of [...this.open.values()]) {
      if (!this.started) return
      const { deal } = known
      // nothing can be late before this (chain time): skip the deal's reads until then
      const due = this.nextCheck.get(deal.dealid)
      if (due !== undefined && now < due) continue
      const d = await this.hub.dealOf(deal.dealid, { blockTag: 'pending' })
      if (Number(d.done) >= deal.volume && await this.doneMined(deal.dealid, deal.volume)) {
        await this.closeDeal(known, d)
        continue
      }
      if (now >= deal.finalDeadline) {
        await this.claimUnfinished(known)
        continue
      }
      const since = Number(d.schedulerActive)
      // a reelection this node's events have not told it of yet
      await this.learnScheduler(known, d.scheduler)
      if (same(d.scheduler, this.me)) {
        // our own deal: the tick does the work; look again when a reelection would be possible
        this.nextCheck.set(deal.dealid, Math.min(deal.finalDeadline, now + known.timeRef))
        continue
      }
      if (Number(d.initialized) < deal.volume && now >= since + known.timeRef) {
        if (this.myTurn(`reelect:${deal.dealid}`, deal.dealid)) {
          await this.tryReelect(deal.dealid, async () => await this.init.chain.sender.send(this.hub.reelect.populateTransaction(deal.dealid)))
        }
        continue
      }
      this.lateSince.delete(`reelect:${deal.dealid}`)
      // the earliest a reelection could be due: an uninitialized task, or a revealed task not finalized;
      // a task that reaches consensus from now on cannot be late before now + 3 time references (reveal: 2T, then T)
      let next = Math.min(deal.finalDeadline, now + 3 * known.timeRef)
      if (Number(d.initialized) < deal.volume) next = Math.min(next, since + known.timeRef)
      let waiting = false
      if (deal.trust > 1) {
        // the hub lets reelectForTask run again as long as the task is unfinalized, even right after a
        // reelection: a new scheduler gets one time reference from its election before we call it late
        for (let idx = 0; idx < Number(d.initialized) && idx < deal.volume; idx++) {
          const taskid = this.taskIdOf(deal.dealid, idx)
          const t = await this.hub.taskOf(taskid)
          const key = `reelectForTask:${taskid}`
          if (Number(t.status) !== TaskStatus.REVEALING) {
            this.lateSince.delete(key)
            continue
          }
          const lateAt = Math.max(Number(t.revealDeadline), since) + known.timeRef
          if (Number(t.reveals) > 0 && now >= lateAt) {
            waiting = true
            if (this.myTurn(key, deal.dealid)) {
              await this.tryReelect(deal.dealid, async () => await this.init.chain.sender.send(this.hub.reelectForTask.populateTransaction(taskid)))
            }
            break
          }
          this.lateSince.delete(key)
          // reveals may still come in before the deadline: check again by then
          next = Math.min(next, Number(t.reveals) > 0 ? lateAt : Math.max(now + 1, Number(t.revealDeadline)))
        }
      }
      if (waiting) this.nextCheck.delete(deal.dealid)
      else this.nextCheck.set(deal.dealid, next)
    }
  }

  /**
   * A dev chain that mines on transactions only (anvil's automine) keeps the
   * time of its last block while the swarm is idle: a deadline the watchdog
   * waits for (a claim after the final deadline, a stake release, a
   * reelection) would wait for an unrelated transaction. When the wall clock
   * has passed the earliest of them and the chain's time has not, this mines
   * one empty block on a dev chain (never on a real one, whose blocks come
   * on their own); the chain time it answers is then read again.
   */
  private async letTimePass (now: number): Promise<number> {
    const wall = Math.floor(this.clock() / 1000)
    if (wall <= now) return now
    let due: number | undefined
    for (const known of this.open.values()) {
      const at = Math.min(known.deal.finalDeadline, this.nextCheck.get(known.deal.dealid) ?? known.deal.finalDeadline)
      if (due === undefined || at < due) due = at
    }
    for (const known of this.releasing.values()) {
      if (known.releaseAt !== undefined && (due === undefined || known.releaseAt < due)) due = known.releaseAt
    }
    if (due === undefined || due <= now || due > wall) return now
    this.devChain ??= isDevChain(this.init.chain).catch(() => { this.devChain = undefined; return false })
    if (!await this.devChain) return now
    await mineDevBlock(this.init.chain)
    this.chainTime.forget()
    const after = await this.chainNow()
    this.log('dev chain: mined a block so that a due deadline can pass', { deadline: due, chainTime: now, newChainTime: after })
    return after
  }

  /** True once this node's offset in the stagger window has passed since it first saw the lateness. */
  private myTurn (key: string, dealid: string): boolean {
    const first = this.lateSince.get(key)
    if (first === undefined) {
      this.lateSince.set(key, this.clock())
      return this.offset(dealid) === 0
    }
    if (this.clock() - first < this.offset(dealid)) return false
    this.lateSince.delete(key)
    return true
  }

  private offset (dealid: string): number {
    if (this.init.watchdogOffsetMs !== undefined) return this.init.watchdogOffsetMs
    if (this.opts.reelectStaggerMs === 0) return 0
    const h = keccak256(toUtf8Bytes(`${this.me.toLowerCase()}:${dealid}`))
    return Number(BigInt(h.slice(0, 14)) % BigInt(this.opts.reelectStaggerMs))
  }

  /**
   * After the final deadline anyone may fail an unfinished task: the
   * requester is refunded in full. No task is left with neither a result nor
   * a refund. Reverts (another node claimed first) are expected.
   */
  private async claimUnfinished (known: KnownDeal): Promise<void> {
    for (let idx = 0; idx < known.deal.volume; idx++) {
      if (!this.started) return
      const status = Number(await this.hub.taskStatus(known.deal.dealid, idx))
      if (status === TaskStatus.COMPLETED || status === TaskStatus.FAILED) continue
      try {
        const tx = await this.init.chain.sender.send(this.hub.claim.populateTransaction(known.deal.dealid, idx))
        this.log('task claimed after the final deadline', { dealid: known.deal.dealid, idx, tx: tx.hash })
      } catch (err) {
        this.log('claim not done', { dealid: known.deal.dealid, idx, error: err instanceof Error ? err.message : String(err) })
      }
    }
  }

  private async tryReelect (dealid: string, send: () => Promise<{ hash: string }>): Promise<void> {
    try {
      const tx = await send()
      this.log('scheduler reelected', { dealid, tx: tx.hash })
    } catch (err) {
      this.log('reelection not done', { dealid, error: err instanceof Error ? err.message : String(err) })
    }
  }
}

/** Builds the scheduler service (call `start` after the network and db are up). */
export function createSchedulerService (init: SchedulerInit): SchedulerService {
  return new SchedulerService(init)
}
