import { signAuthorization } from '../../protocols/eip712.js'
import type { HubDomain, TypedDataSigner } from '../../protocols/eip712.js'
import { signExecPeer } from '../../protocols/execution.js'
import type { ContributedMessage, HeartbeatMessage } from '../../protocols/execution.js'
import { isDevChain, mineDevBlock } from '../chain/index.js'
import type { ChainClient, ChainEvent } from '../chain/index.js'
import type { DbController } from '../db/index.js'
import { FreshValue } from '../common/memo.js'
import { Assigner } from './assigner.js'
import { dealFromEvent } from '../chain/deal.js'
import type { DealInfo } from '../chain/deal.js'
import { DealBook } from './deal-book.js'
import { SchedulerError } from './errors.js'
import type { ExecChannel } from '../exec/exec-channel.js'
import { Finalizer } from './finalizer.js'
import { schedulerHub } from './hub-view.js'
import type { SchedulerHub } from './hub-view.js'
import { Liveness } from './liveness.js'
import { defaultSchedulerOptions, type SchedulerOptions } from './options.js'
import type { KnownDeal, ScheduledTask } from './records.js'
import { Ticker } from './ticker.js'
import { Watchdog } from './watchdog.js'

export type { Replica, ScheduledTask, KnownDeal } from './records.js'
export { requesterResultKey } from './assigner.js'

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
 *
 * This class wires its parts, each with the narrow view of the others it
 * needs: the deal book (records), liveness (heartbeats, resends), the
 * assigner, the finalizer, the ticker and the watchdog.
 */
export class SchedulerService {
  private readonly opts: SchedulerOptions
  private readonly hub: SchedulerHub
  private readonly book: DealBook
  private readonly liveness: Liveness
  private readonly finalizer: Finalizer
  private readonly ticker: Ticker
  private readonly watchdog: Watchdog
  private watchdogTimer: NodeJS.Timeout | undefined
  private timer: NodeJS.Timeout | undefined
  private watching: Promise<void> | undefined
  private started = false
  /** this node's ExecPeer proof (protocols/execution.ts), signed once at start: it holds for every deal */
  private proof = ''

  constructor (private readonly init: SchedulerInit) {
    const o = this.opts = { ...defaultSchedulerOptions, ...init.options }
    if (!(o.tickMs > 0 && o.heartbeatIntervalMs > 0 && o.missedBeats >= 2 && o.resendMs > 0 && o.watchdogMs > 0 && o.dealRefreshMs > 0 && o.chainTimeMaxAgeMs >= 0 && o.scoreMaxAgeMs >= 0 && o.maxDeals >= 1 && o.reelectStaggerMs >= 0 && o.maxTasksPerWorker >= 1 && o.maxFailuresPerWorker >= 1)) {
      throw new SchedulerError('SCHEDULER_INVALID_OPTIONS', 'scheduler needs positive intervals and missedBeats >= 2 (one lost beat never reassigns)')
    }
    if (init.chain.hub === undefined) throw new SchedulerError('SCHEDULER_INVALID_OPTIONS', 'the chain client needs the hub binding')
    const { chain, channel } = init
    const hub = this.hub = schedulerHub(chain, init.chain.hub)
    const me = chain.address
    const clock = init.clock ?? Date.now
    const log = (msg: string, context?: Record<string, unknown>): void => { init.log?.(msg, context) }
    const running = (): boolean => this.started
    const kick = (): void => { this.ticker.kick() }
    const send = channel.send.bind(channel)
    const proof = (): string => this.proof
    // the latest block's timestamp, read at most once per chainTimeMaxAgeMs (concurrent callers share
    // the read): the tick runs on every event and message of a busy deal, and the deadlines it is
    // compared with are time references (minutes) apart, so a value a tick old changes no decision
    const latest = new FreshValue(o.chainTimeMaxAgeMs, async () => {
      const block = await chain.provider.getBlock('latest')
      return block === null ? Math.floor(clock() / 1000) : block.timestamp
    })
    const chainTime = { now: async () => await latest.get(), forget: () => { latest.forget() } }
    const liveness = this.liveness = new Liveness({ clock, options: o, log })
    const book = this.book = new DealBook({
      db: init.db,
      hub,
      me,
      maxDeals: o.maxDeals,
      kick,
      taskClosed: (taskid, peers) => { liveness.forgetTask(taskid, peers) },
      dealForgotten: (dealid) => { this.watchdog.forget(dealid); this.ticker.forget(dealid) },
      dealReopened: (dealid) => { this.watchdog.forget(dealid) },
      log
    })
    const finalizer = this.finalizer = new Finalizer({ book, liveness, hub, receipt: async (tx) => await chain.provider.getTransactionReceipt(tx), send, proof, resolvePeer: init.resolvePeer, me, running, kick, log })
    const assigner = new Assigner({
      book,
      liveness,
      finalizer,
      hub,
      send,
      proof,
      authorize: async (worker, taskid) => await signAuthorization(init.wallet, init.domain, { worker, taskid }),
      resolvePeer: init.resolvePeer,
      workerCapacity: init.workerCapacity,
      resultEncryptionKey: init.resultEncryptionKey,
      me,
      options: o,
      running,
      kick,
      log
    })
    this.ticker = new Ticker({ book, assigner, finalizer, hub, chainTime, options: o, running, log })
    this.watchdog = new Watchdog({
      book,
      finalizer,
      hub,
      chainTime,
      devChain: { isDev: async () => await isDevChain(chain), mine: async () => { await mineDevBlock(chain) } },
      clock,
      me,
      options: o,
      offsetMs: init.watchdogOffsetMs,
      running,
      log
    })
  }

  async start (): Promise<void> {
    if (this.started) return
    const { channel } = this.init
    this.proof = await signExecPeer(this.init.wallet, this.init.domain, channel.peerId)
    this.started = true
    await this.book.load()
    channel.on('heartbeat', async (m, from) => {
      if (this.liveness.onHeartbeat(m as HeartbeatMessage, from)) this.ticker.kick()
      return { type: 'ack' }
    })
    // a trust-1 worker says its contributeAndFinalize transaction is mined: the finalizer reads the receipt
    channel.on('contributed', async (m) => {
      this.ticker.kick()
      this.finalizer.contributed(m as ContributedMessage)
      return { type: 'ack' }
    })
    // reveals are read from the hub; the message only brings the next tick forward
    channel.on('revealed', async () => {
      this.ticker.kick()
      return { type: 'ack' }
    })
    this.timer = setInterval(() => { this.ticker.kick() }, this.opts.tickMs)
    this.watchdogTimer = setInterval(() => { this.kickWatchdog() }, this.opts.watchdogMs)
    this.ticker.kick()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    clearInterval(this.watchdogTimer)
    for (const t of ['heartbeat', 'contributed', 'revealed'] as const) this.init.channel.off(t)
    await this.ticker.settle()
    await this.watching
    await this.finalizer.settle()
  }

  private kickWatchdog (): void {
    if (!this.started || this.watching !== undefined) return
    this.watching = this.watchdog.run().catch((err: unknown) => { this.init.log?.('watchdog failed', { error: String(err) }) }).finally(() => { this.watching = undefined })
  }

  /**
   * Takes a DealCreated event (every node calls this for every deal: the
   * watchdog needs them all). Idempotent.
   */
  async onDeal (deal: DealInfo): Promise<void> {
    await this.book.add(deal)
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
      const known = this.book.openDeal(String(event.args.dealid).toLowerCase())
      if (known === undefined) return
      // the successor is drawn lazily from the reelecting block's hash: the event names none
      await this.book.learnScheduler(known, await this.hub.schedulerOf(known.deal.dealid, { blockTag: 'pending' }))
    } else if ((event.name === 'TaskFinalized' || event.name === 'TaskClaimed') && event.topics.length >= 3) {
      // both events index (taskid, dealid): read from the topics, with no decoding of the rest
      await this.book.taskEnded(event.topics[2].toLowerCase(), event.topics[1].toLowerCase())
    }
  }

  /**
   * A hub event a reorg took back (the node's follower of the hub rewound past it):
   * the records built on it follow the chain again, read at the latest
   * block. A DealCreated gone from the hub forgets the deal (its records
   * too), so that the same deal mined again is taken as new; a
   * TaskFinalized or TaskClaimed of a task the hub no longer holds ended
   * reopens the task and its deal, and the tick finalizes it again (its
   * result CID is kept) or the watchdog claims it again.
   */
  async onChainEventRemoved (event: ChainEvent): Promise<void> {
    if (event.name === 'DealCreated' && event.topics.length >= 2) {
      await this.book.dealRemoved(event.topics[1].toLowerCase())
    } else if ((event.name === 'TaskFinalized' || event.name === 'TaskClaimed') && event.topics.length >= 3) {
      await this.book.taskEndRemoved(event.topics[2].toLowerCase(), event.topics[1].toLowerCase(), event.name)
    }
  }

  /** The deals not done yet, as this node knows them (metrics). */
  openDeals (): KnownDeal[] {
    return this.book.openDeals()
  }

  /** The tasks of the open deals this node schedules, by state, and `closed` since start (metrics). */
  taskStateCounts (): Record<string, number> {
    return this.book.taskStateCounts()
  }

  /** A deal's record (tests and the API). */
  async dealRecord (dealid: string): Promise<KnownDeal | undefined> {
    return await this.book.dealRecord(dealid.toLowerCase())
  }

  /** A task's record (tests and the API). */
  async taskRecord (taskid: string): Promise<ScheduledTask | undefined> {
    return await this.book.getTask(taskid.toLowerCase())
  }
}

/** Builds the scheduler service (call `start` after the network and db are up). */
export function createSchedulerService (init: SchedulerInit): SchedulerService {
  return new SchedulerService(init)
}
