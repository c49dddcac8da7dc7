import type { ChainEvent } from '../chain/index.js'
import type { MarketHubEvent } from './orderbook.js'

/** Deal ids kept, each set (a deal's events past that many newer deals count as ours: a re-read too many, never one too few). */
const MAX_DEALS_KEPT = 10_000

/**
 * Tells which of the hub's stake events concern one node: its own
 * account's (Staked, UnstakeRequested, Unstaked, StakeSeized,
 * StakeReleased: the account is their first topic), and those of the
 * deals it is in (its stake locks at the match, unlocks as each task ends,
 * moves at a reelection). Every node follows every hub event, and a
 * provider re-reading its stake on each task's end anywhere in the swarm
 * made one chain call per task per provider. A task's end in a deal whose
 * creation this process did not see (it started later) counts as its own.
 */
export class StakeEvents {
  private readonly me: string
  /** deals whose DealCreated this process followed */
  private readonly seen = new Set<string>()
  /** deals where this node is a worker or the scheduler */
  private readonly ours = new Set<string>()

  constructor (address: string) {
    this.me = address.slice(2).toLowerCase()
  }

  /** `ev`: the market's view of the same log (marketEventFromHubLog), which decodes a DealCreated's workers. */
  concernsUs (event: Pick<ChainEvent, 'name' | 'topics'>, ev: MarketHubEvent | undefined): boolean {
    switch (event.name) {
      case 'DealCreated': {
        if (ev?.name !== 'DealCreated') return true
        const dealid = ev.dealid.toLowerCase()
        remember(this.seen, dealid)
        const ours = this.isMe(event.topics[2]) || ev.workers.some((w) => w.slice(2).toLowerCase() === this.me)
        if (ours) this.rememberOurs(dealid)
        return ours
      }
      case 'TaskFinalized':
      case 'TaskClaimed': {
        const dealid = (event.topics[2] ?? '').toLowerCase()
        return this.ours.has(dealid) || !this.seen.has(dealid)
      }
      case 'SchedulerDrawn': {
        // (dealid, scheduler): the drawn scheduler's stake locks now, not at the match
        if (!this.isMe(event.topics[2])) return false
        this.rememberOurs((event.topics[1] ?? '').toLowerCase())
        return true
      }
      case 'SchedulerReelected': {
        const dealid = (event.topics[1] ?? '').toLowerCase()
        if (this.isMe(event.topics[2]) || this.isMe(event.topics[3])) {
          this.rememberOurs(dealid)
          return true
        }
        return this.ours.has(dealid)
      }
      default:
        return this.isMe(event.topics[1])
    }
  }

  /** A deal of ours dropped from memory is forgotten as seen too: its events then count as ours again. */
  private rememberOurs (dealid: string): void {
    if (this.ours.size >= MAX_DEALS_KEPT && !this.ours.has(dealid)) {
      const oldest = this.ours.values().next().value as string
      this.ours.delete(oldest)
      this.seen.delete(oldest)
    }
    this.ours.add(dealid)
  }

  /** An address topic (32 bytes, the address in its last 20) names this node. */
  private isMe (topic: string | undefined): boolean {
    return topic !== undefined && topic.slice(-40).toLowerCase() === this.me
  }
}

function remember (set: Set<string>, dealid: string): void {
  if (set.size >= MAX_DEALS_KEPT) set.delete(set.values().next().value as string)
  set.add(dealid)
}
