import { keccak256, toUtf8Bytes } from 'ethers'
import { TaskStatus } from '../../contracts-abi/index.js'
import type { DealBook } from './deal-book.js'
import type { Finalizer } from './finalizer.js'
import type { SchedulerHub } from './hub-view.js'
import type { SchedulerOptions } from './options.js'
import { errorText, same } from './records.js'
import type { KnownDeal, Log } from './records.js'

/** The chain's time as the tick and the watchdog compare deadlines with it. */
export interface ChainClock {
  /** the latest block's timestamp (s), possibly a little stale */
  now: () => Promise<number>
  /** the next `now` reads the chain again */
  forget: () => void
}

/** A dev chain that mines only on transactions (anvil's automine). */
export interface DevChain {
  /** whether the chain is one that may be told to mine */
  isDev: () => Promise<boolean>
  /** mines one empty block now */
  mine: () => Promise<void>
}

export interface WatchdogInit {
  book: Pick<DealBook, 'openDeals' | 'releasingDeals' | 'learnScheduler' | 'taskIdOf'>
  finalizer: Pick<Finalizer, 'closeDeal' | 'doneMined' | 'releaseDue'>
  hub: Pick<SchedulerHub, 'dealOf' | 'taskOf' | 'taskStatus' | 'reelect' | 'reelectForTask' | 'claim'>
  chainTime: ChainClock
  devChain: DevChain
  /** unix ms */
  clock: () => number
  /** this node's address */
  me: string
  options: Pick<SchedulerOptions, 'reelectStaggerMs'>
  /** this node's fixed offset in the reelection window; default from a hash of its address and the deal */
  offsetMs?: number
  running: () => boolean
  log: Log
}

/**
 * What every node runs over every deal it knows: replaces a deal's
 * scheduler that misses its duties, as the hub allows (reelect when tasks
 * stay uninitialized a time reference past its last work; reelectForTask
 * when a revealed task is not finalized a time reference past its reveal
 * deadline), claims unfinished tasks after the final deadline, and
 * releases stakes when due. Reverts (someone was faster, not late after
 * all) are expected and ignored.
 */
export class Watchdog {
  /** when this node first saw a deal's scheduler late (local ms), per deal and kind */
  private readonly lateSince = new Map<string, number>()
  /** chain time before which a deal need not be read again */
  private readonly nextCheck = new Map<string, number>()
  /** whether the chain is a dev chain that may be told to mine (letTimePass), asked once */
  private devChain: Promise<boolean> | undefined

  constructor (private readonly init: WatchdogInit) {}

  /** The deal left the open set, or changed under a reorg: read it on the next pass. */
  forget (dealid: string): void {
    this.nextCheck.delete(dealid)
  }

  /** One pass over the deals this node knows. */
  async run (): Promise<void> {
    const { book, finalizer, hub, me } = this.init
    if (book.openDeals().length === 0 && book.releasingDeals().length === 0) return
    const now = await this.letTimePass(await this.init.chainTime.now())
    await finalizer.releaseDue(now)
    for (const known of book.openDeals()) {
      if (!this.init.running()) return
      const { deal } = known
      // nothing can be late before this (chain time): skip the deal's reads until then
      const due = this.nextCheck.get(deal.dealid)
      if (due !== undefined && now < due) continue
      const d = await hub.dealOf(deal.dealid, { blockTag: 'pending' })
      if (Number(d.done) >= deal.volume && await finalizer.doneMined(deal.dealid, deal.volume)) {
        await finalizer.closeDeal(known, d)
        continue
      }
      if (now >= deal.finalDeadline) {
        await this.claimUnfinished(known)
        continue
      }
      const since = Number(d.schedulerActive)
      // a reelection this node's events have not told it of yet
      await book.learnScheduler(known, d.scheduler)
      if (same(d.scheduler, me)) {
        // our own deal: the tick does the work; look again when a reelection would be possible
        this.nextCheck.set(deal.dealid, Math.min(deal.finalDeadline, now + known.timeRef))
        continue
      }
      const initialized = Number(d.initialized)
      if (initialized < deal.volume && now >= since + known.timeRef) {
        if (this.myTurn(`reelect:${deal.dealid}`, deal.dealid)) await this.tryReelect(deal.dealid, async () => await hub.reelect(deal.dealid))
        continue
      }
      this.lateSince.delete(`reelect:${deal.dealid}`)
      // the earliest a reelection could be due: an uninitialized task, or a revealed task not finalized;
      // a task that reaches consensus from now on cannot be late before now + 3 time references (reveal: 2T, then T)
      let next = Math.min(deal.finalDeadline, now + 3 * known.timeRef)
      if (initialized < deal.volume) next = Math.min(next, since + known.timeRef)
      const late = deal.trust > 1 ? await this.revealsLate(known, initialized, since, now) : undefined
      if (late === 'waiting') this.nextCheck.delete(deal.dealid)
      else this.nextCheck.set(deal.dealid, Math.min(next, late ?? next))
    }
  }

  /**
   * The hub lets reelectForTask run again as long as the task is
   * unfinalized, even right after a reelection: a new scheduler gets one
   * time reference from its election before it is called late. Answers
   * 'waiting' when a task is late (reelectForTask sent when this node's
   * turn came), else the chain time by which to look again.
   */
  private async revealsLate (known: KnownDeal, initialized: number, since: number, now: number): Promise<'waiting' | number | undefined> {
    const { deal } = known
    let next: number | undefined
    for (let idx = 0; idx < initialized && idx < deal.volume; idx++) {
      const taskid = this.init.book.taskIdOf(deal.dealid, idx)
      const t = await this.init.hub.taskOf(taskid)
      const key = `reelectForTask:${taskid}`
      if (Number(t.status) !== TaskStatus.REVEALING) {
        this.lateSince.delete(key)
        continue
      }
      const lateAt = Math.max(Number(t.revealDeadline), since) + known.timeRef
      if (Number(t.reveals) > 0 && now >= lateAt) {
        if (this.myTurn(key, deal.dealid)) await this.tryReelect(deal.dealid, async () => await this.init.hub.reelectForTask(taskid))
        return 'waiting'
      }
      this.lateSince.delete(key)
      // reveals may still come in before the deadline: check again by then
      const at = Number(t.reveals) > 0 ? lateAt : Math.max(now + 1, Number(t.revealDeadline))
      next = next === undefined ? at : Math.min(next, at)
    }
    return next
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
    const wall = Math.floor(this.init.clock() / 1000)
    if (wall <= now) return now
    let due: number | undefined
    for (const known of this.init.book.openDeals()) {
      const at = Math.min(known.deal.finalDeadline, this.nextCheck.get(known.deal.dealid) ?? known.deal.finalDeadline)
      if (due === undefined || at < due) due = at
    }
    for (const known of this.init.book.releasingDeals()) {
      if (known.releaseAt !== undefined && (due === undefined || known.releaseAt < due)) due = known.releaseAt
    }
    if (due === undefined || due <= now || due > wall) return now
    this.devChain ??= this.init.devChain.isDev().catch(() => { this.devChain = undefined; return false })
    if (!await this.devChain) return now
    await this.init.devChain.mine()
    this.init.chainTime.forget()
    const after = await this.init.chainTime.now()
    this.init.log('dev chain: mined a block so that a due deadline can pass', { deadline: due, chainTime: now, newChainTime: after })
    return after
  }

  /** True once this node's offset in the stagger window has passed since it first saw the lateness. */
  private myTurn (key: string, dealid: string): boolean {
    const first = this.lateSince.get(key)
    if (first === undefined) {
      this.lateSince.set(key, this.init.clock())
      return this.offset(dealid) === 0
    }
    if (this.init.clock() - first < this.offset(dealid)) return false
    this.lateSince.delete(key)
    return true
  }

  private offset (dealid: string): number {
    if (this.init.offsetMs !== undefined) return this.init.offsetMs
    const stagger = this.init.options.reelectStaggerMs
    if (stagger === 0) return 0
    const h = keccak256(toUtf8Bytes(`${this.init.me.toLowerCase()}:${dealid}`))
    return Number(BigInt(h.slice(0, 14)) % BigInt(stagger))
  }

  /**
   * After the final deadline anyone may fail an unfinished task: the
   * requester is refunded in full. No task is left with neither a result nor
   * a refund. Reverts (another node claimed first) are expected.
   */
  private async claimUnfinished (known: KnownDeal): Promise<void> {
    const { dealid, volume } = known.deal
    for (let idx = 0; idx < volume; idx++) {
      if (!this.init.running()) return
      const status = Number(await this.init.hub.taskStatus(dealid, idx))
      if (status === TaskStatus.COMPLETED || status === TaskStatus.FAILED) continue
      try {
        const tx = await this.init.hub.claim(dealid, idx)
        this.init.log('task claimed after the final deadline', { dealid, idx, tx: tx.hash })
      } catch (err) {
        this.init.log('claim not done', { dealid, idx, error: errorText(err) })
      }
    }
  }

  private async tryReelect (dealid: string, send: () => Promise<{ hash: string }>): Promise<void> {
    try {
      const tx = await send()
      this.init.log('scheduler reelected', { dealid, tx: tx.hash })
    } catch (err) {
      this.init.log('reelection not done', { dealid, error: errorText(err) })
    }
  }
}
