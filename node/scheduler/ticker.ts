import type { Assigner } from './assigner.js'
import type { DealBook } from './deal-book.js'
import type { Finalizer } from './finalizer.js'
import type { SchedulerHub } from './hub-view.js'
import type { SchedulerOptions } from './options.js'
import type { KnownDeal, Log } from './records.js'
import type { ChainClock } from './watchdog.js'

export interface TickerInit {
  book: Pick<DealBook, 'openDeals' | 'isMine' | 'allEnded' | 'takeAllEnded' | 'learnScheduler'>
  assigner: Pick<Assigner, 'loads' | 'schedule' | 'flush'>
  finalizer: Pick<Finalizer, 'doneMined' | 'closeDeal'>
  hub: Pick<SchedulerHub, 'dealOf'>
  chainTime: Pick<ChainClock, 'now'>
  options: Pick<SchedulerOptions, 'dealRefreshMs'>
  running: () => boolean
  log: Log
}

/**
 * The scheduler's tick: one at a time, run on a timer and whenever
 * something changed (kick). It reads the hub's deal of the deals this node
 * schedules now and then, closes the done ones, and has the assigner
 * schedule the others.
 */
export class Ticker {
  private ticking: Promise<void> | undefined
  /** kicked while a tick ran: tick again when it ends */
  private kickAgain = false
  /** per deal this node schedules: when its tick last read the hub's deal (local ms) */
  private readonly dealReadAt = new Map<string, number>()

  constructor (private readonly init: TickerInit) {}

  kick (): void {
    if (!this.init.running()) return
    // an event during a tick may concern what the tick already read: one more tick right after it
    if (this.ticking !== undefined) {
      this.kickAgain = true
      return
    }
    this.ticking = this.tick().catch((err: unknown) => { this.init.log('scheduler tick failed', { error: String(err) }) }).finally(() => {
      this.ticking = undefined
      if (this.kickAgain) {
        this.kickAgain = false
        this.kick()
      }
    })
  }

  /** Waits for the tick in progress (stop). */
  async settle (): Promise<void> {
    await this.ticking
  }

  /** The deal left the open set: its next tick reads it afresh. */
  forget (dealid: string): void {
    this.dealReadAt.delete(dealid)
  }

  private async tick (): Promise<void> {
    const { book } = this.init
    // the deals this node schedules, and the others an event says may be done
    const due = book.openDeals().filter((k) => book.isMine(k) || book.allEnded(k.deal.dealid))
    if (due.length === 0) return
    const now = await this.init.chainTime.now()
    try {
      await this.tickDeals(due, now)
    } finally {
      await this.init.assigner.flush()
    }
  }

  private async tickDeals (due: KnownDeal[], now: number): Promise<void> {
    const { book, assigner, finalizer } = this.init
    let loads: Map<string, number> | undefined
    for (const known of due) {
      if (!this.init.running()) return
      const id = known.deal.dealid
      // the hub's deal is read when its events say every task ended, and now and then in case
      // an event was missed; its scheduler changes come as SchedulerReelected events in between
      const endedAll = book.takeAllEnded(id)
      const readAt = this.dealReadAt.get(id)
      if (endedAll || readAt === undefined || Date.now() - readAt >= this.init.options.dealRefreshMs) {
        this.dealReadAt.set(id, Date.now())
        const d = await this.init.hub.dealOf(id, { blockTag: 'pending' })
        if (Number(d.done) >= known.deal.volume && await finalizer.doneMined(id, known.deal.volume)) {
          await finalizer.closeDeal(known, d)
          continue
        }
        await book.learnScheduler(known, d.scheduler)
      }
      if (!book.isMine(known) || now >= known.deal.finalDeadline) continue
      // one count of in-flight work per tick, shared by the deals scheduled in it (schedule() updates it)
      loads ??= await assigner.loads()
      await assigner.schedule(known, now, loads).catch((err: unknown) => { this.init.log('scheduling failed', { dealid: id, error: String(err) }) })
    }
  }
}
