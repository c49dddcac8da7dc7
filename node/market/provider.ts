/**
 * The provider side: on each accepted request order, decide with the bid
 * strategy and answer the requester, a signed Bid or a decline with the
 * reason, over the direct bid stream (or a bid on the bid topic, when the
 * service's bidTransport is 'gossip'; declines always go by stream, since
 * gossiping every "no" would flood the swarm).
 *
 * A request that came by the late-joiner sync names no peer to answer (the
 * peer that synced it is not its author): its bid goes by the bid topic,
 * and a decline is not sent (nobody to send it to).
 *
 * One bid stream per requester, kept open and reused for every answer to
 * it (the requester reads message/ack pairs until the stream ends): a new
 * stream per answer is slow (libp2p updates its level-backed peer store on
 * every new stream, on both sides) and delays the first bid. Answers to one requester are serialized on its stream.
 *
 * No RPC round trip before answering: the free stake is cached and re-read
 * when a hub event may have changed it (the service calls
 * stakeMayHaveChanged), the app's owner comes from the validators' owner
 * cache.
 */
import { lpStream } from '@libp2p/utils'
import type { LengthPrefixedStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { signOrder } from '../../protocols/eip712.js'
import type { RequestOrder } from '../../protocols/eip712.js'
import {
  CATEGORY_NEEDS, MARKET_WIRE_VERSION, bidStreamProtocol, decodeBidStreamAck, encodeBidStreamMessage, orderMessage, saltWithExpiry
} from '../../protocols/market.js'
import type { BidDecline, BidMessage, BidStreamAck, RequestOrderMessage } from '../../protocols/market.js'
import { HUB_RATIOS } from '../../contracts-abi/index.js'
import { memoAsync } from '../common/memo.js'
import { defaultBidStrategy } from './bid-strategy.js'
import type { BidContext, BidDecision, CategoryNeeds } from './bid-strategy.js'
import type { ValidatedOrder } from './validation.js'
import type { MarketCore } from './market-core.js'

export type { ProviderSettings } from './market-core.js'
import type { ProviderSettings } from './market-core.js'

/** How long a decision waits for an app's first check; past it the provider bids and the verdict serves the next requests. Well under a requester's bidding window (a few seconds): a bid later than the window is no bid. */
const APP_CHECK_WAIT_MS = 1_000

/** One decision this provider made (for tests, metrics and the log). */
export interface ProviderDecisionRecord {
  requestHash: string
  requester: string
  decision: BidDecision
  /** how the answer went out ('skipped': a decline to a synced request, no peer to tell), and whether the requester acknowledged it */
  sent: 'pending' | 'stream' | 'gossip' | 'skipped' | 'failed'
  /** how the request came: gossip from its author, or the late-joiner sync */
  via: 'gossip' | 'sync'
  ack?: BidStreamAck
  /** ms since epoch: request accepted, decision made, answer acknowledged */
  receivedAt: number
  decidedAt?: number
  answeredAt?: number
}

/** Most decisions kept in memory. */
const MAX_DECISIONS = 1000

/** The free stake last read from the hub, and whether a hub event may have changed it since. */
interface StakeView { free: bigint, stale: boolean }

/** An open bid stream to one requester. */
interface BidChannel { stream: Stream, lp: LengthPrefixedStream<Stream>, lastUsed: number }

export class Provider {
  readonly decisions: ProviderDecisionRecord[] = []
  /** told of each decision as it is made (the node's event stream); must not throw */
  onDecision?: (record: ProviderDecisionRecord) => void
  /** decisions since start by `sent/OK` or `declined/CODE` (metrics: decisions above is bounded) */
  readonly counts = new Map<string, number>()
  private stake?: StakeView
  /** the read in flight, shared by concurrent requests */
  private stakeRead?: Promise<bigint>
  /** a hub event came while a read was in flight: read again after it */
  private rereadStake = false
  /** the open bid stream of each requester peer */
  private readonly channels = new Map<string, BidChannel>()
  /** the last answer queued to each requester peer (answers to one peer go one at a time) */
  private readonly queues = new Map<string, Promise<unknown>>()
  /** what each category needs (a category never changes on the hub): read once per category */
  private readonly needs = new Map<string, Promise<CategoryNeeds | undefined>>()

  constructor (private readonly market: MarketCore, readonly settings: ProviderSettings) {}

  /**
   * Decides on a request and answers its requester: to peer `to.peer` when
   * the request came by gossip from its author, by the bid topic when it came
   * by sync (`to.peer` undefined). Never throws.
   */
  async onRequest (v: ValidatedOrder<RequestOrderMessage>, to: { peer: string | undefined }): Promise<void> {
    const request = v.message.order
    const receivedAt = Date.now()
    const strategy = this.settings.strategy ?? defaultBidStrategy
    let decision: BidDecision
    try {
      const ctx = await this.context(request, v, false)
      decision = await strategy(request, ctx.bid)
      // a cached stake too low to bid may predate a stake the follower has
      // not delivered yet: check the hub before saying no
      if (!decision.bid && decision.code === 'STAKE_TOO_LOW' && ctx.stakeFromCache) {
        decision = await strategy(request, (await this.context(request, v, true)).bid)
      }
    } catch (err) {
      decision = { bid: false, code: 'NO_CAPACITY', reason: `provider error: ${err instanceof Error ? err.message : String(err)}`.slice(0, 200) }
    }
    const via = to.peer !== undefined ? 'gossip' : 'sync'
    const record: ProviderDecisionRecord = { requestHash: v.hash, requester: request.requester, decision, sent: 'pending', via, receivedAt, decidedAt: Date.now() }
    this.decisions.push(record)
    if (this.decisions.length > MAX_DECISIONS) this.decisions.shift()
    this.onDecision?.(record)
    const key = decision.bid ? 'sent/OK' : `declined/${decision.code}`
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
    try {
      // an expiry is the node's policy (the hub has none): a request that
      // expired while we decided is not bid on, nor answered
      if (decision.bid && v.expiresAt !== undefined && v.expiresAt <= BigInt(Math.floor(Date.now() / 1000))) {
        record.sent = 'skipped'
      } else if (decision.bid) {
        const bid = await this.signBid(v.hash, decision.price, decision.volume)
        if (to.peer === undefined) {
          await this.gossipBid(bid)
          record.sent = 'gossip'
        } else if (this.market.options.bidTransport === 'gossip') {
          await this.market.publishOwn('bid', bid)
          record.sent = 'gossip'
        } else {
          record.ack = await this.send(to.peer, bid)
          record.sent = 'stream'
        }
      } else if (to.peer !== undefined) {
        const decline: BidDecline = { v: MARKET_WIRE_VERSION, type: 'decline', requestHash: v.hash, worker: this.market.address, code: decision.code, reason: decision.reason.slice(0, 200) }
        record.ack = await this.send(to.peer, decline)
        record.sent = 'stream'
      } else {
        record.sent = 'skipped'
      }
      record.answeredAt = Date.now()
    } catch {
      // the requester may be gone: its loss, nothing to retry (its window is short)
      record.sent = 'failed'
    }
  }

  /**
   * The strategy's decision on a request published on chain
   * (onchain-requests.ts): no requester peer to answer, the caller matches.
   */
  async decide (request: RequestOrder, consumed: bigint): Promise<BidDecision> {
    const strategy = this.settings.strategy ?? defaultBidStrategy
    const ctx = await this.context(request, { consumed } as unknown as ValidatedOrder<RequestOrderMessage>, true)
    return await strategy(request, ctx.bid)
  }

  /**
   * A hub event may have moved our free stake: the next decision re-reads it
   * (and a read starts now, so that decision finds it ready).
   */
  stakeMayHaveChanged (): void {
    // never read yet: the first decision reads it
    if (this.stake === undefined) return
    this.stake.stale = true
    // a read in flight may predate this event: one more after it (coalesced)
    if (this.stakeRead !== undefined) {
      this.rereadStake = true
      return
    }
    this.market.track(this.freeStake(true))
  }

  /** Our free stake (amount - locked - pending): the cached one unless stale or `fresh`. */
  private async freeStake (fresh: boolean): Promise<bigint> {
    if (!fresh && this.stake !== undefined && !this.stake.stale) return this.stake.free
    // a read that started before this call may predate the event that made us
    // stale; it is still the freshest answer the hub can give within a poll
    if (this.stakeRead !== undefined) return await this.stakeRead
    const read = (async () => {
      // marked before the call: an event during the call marks it stale again
      if (this.stake !== undefined) this.stake.stale = false
      try {
        const [amount, locked, pending] = await this.market.hub.stakeOf(this.market.address)
        const free = amount - locked - pending
        this.stake = { free, stale: this.stake?.stale ?? false }
        return free
      } catch (err) {
        // the cached value is no better than before the failed read
        if (this.stake !== undefined) this.stake.stale = true
        throw err
      }
    })()
    this.stakeRead = read
    try {
      return await read
    } finally {
      this.stakeRead = undefined
      if (this.rereadStake && this.market.started) {
        this.rereadStake = false
        this.market.track(this.freeStake(true))
      }
    }
  }

  /**
   * Publishes a bid on the bid topic, once some peer subscribes to it: a late
   * joiner answers synced requests right after connecting, possibly before
   * its peers' subscriptions reached it, and a bid published to nobody is lost.
   */
  private async gossipBid (bid: BidMessage): Promise<void> {
    const topic = this.market.topics.bid
    const deadline = Date.now() + this.market.options.bidStreamTimeoutMs
    while (this.market.network.topicPeers(topic).length === 0) {
      if (Date.now() > deadline || !this.market.started) throw new Error('no peer on the bid topic')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await this.market.publishOwn('bid', bid)
  }

  private async signBid (requestHash: string, price: bigint, volume: bigint): Promise<BidMessage> {
    const expiresAt = Math.floor(Date.now() / 1000) + this.market.options.bidTtlSeconds
    const signed = await signOrder(this.market.signer, this.market.domain, 'Bid', {
      requestHash, worker: this.market.address, price, volume, salt: saltWithExpiry(expiresAt)
    })
    const { sign, ...order } = signed
    return orderMessage('bid', this.market.domain, order, sign)
  }

  /** Facts the strategy needs: the provider's profile, its free stake, the app's executor. */
  private async context (request: RequestOrder, v: ValidatedOrder<RequestOrderMessage>, freshStake: boolean): Promise<{ bid: BidContext, stakeFromCache: boolean }> {
    const s = this.settings
    const stakeFromCache = !freshStake && this.stake !== undefined && !this.stake.stale
    const [freeStake, appOwner, categoryNeeds, appProblem, appExecutor] = await Promise.all([
      this.freeStake(freshStake),
      this.market.ctx.owners.ownerOf('app', request.app),
      this.categoryNeeds(request.category),
      this.appProblem(request.app),
      this.appExecutor(request.app)
    ])
    return {
      stakeFromCache,
      bid: {
        provider: { categories: [s.category], tags: s.tags, priceFloor: s.priceFloor, executors: s.executors, cpus: s.cpus, memoryMb: s.memoryMb, ...(s.diskMb !== undefined ? { diskMb: s.diskMb } : {}) },
        worker: this.market.address,
        ...(appOwner !== undefined ? { appExecutor: appExecutor ?? 'wasi' } : {}),
        ...(appProblem !== undefined ? { appProblem } : {}),
        ...(categoryNeeds !== undefined ? { categoryNeeds } : {}),
        freeStake,
        workerStakeRatio: BigInt(HUB_RATIOS.workerStakePercent),
        // one task per cpu, less the tasks running now
        freeSlots: s.cpus - (s.busyTasks?.() ?? 0),
        remainingVolume: request.volume - (v.consumed ?? 0n)
      }
    }
  }

  /** The app's problem, if its check says so within APP_CHECK_WAIT_MS (a first check fetches the module). */
  private async appProblem (app: string): Promise<string | undefined> {
    const check = this.settings.appProblem
    if (check === undefined) return undefined
    return await withinAppWait(check(app))
  }

  /** The executor the app needs, if its first bytes say so within APP_CHECK_WAIT_MS (the look-up goes on for the next requests). */
  private async appExecutor (app: string): Promise<string | undefined> {
    const lookup = this.settings.appExecutorOf
    if (lookup === undefined) return undefined
    return await withinAppWait(lookup(app))
  }

  /**
   * What the request's category needs of a worker: its memory and disk as
   * the hub defines them, its cpus by its name (CATEGORY_NEEDS; one for a
   * name not listed). Only the categories this provider serves are read (the
   * strategy declines the others before it looks at their needs).
   */
  private async categoryNeeds (category: bigint): Promise<CategoryNeeds | undefined> {
    if (Number(category) !== this.settings.category) return undefined
    return await memoAsync(this.needs, category.toString(), async () => {
      const c = await this.market.hub.categoryOf(category)
      return { cpus: CATEGORY_NEEDS[c.name]?.cpus ?? 1, memoryMb: Number(c.memoryMiB), diskMb: Number(c.diskMiB), timeRef: Number(c.timeRef) }
    })
  }

  /** Sends one answer to a requester and reads its ack, after the answers already queued to it. */
  private async send (peer: string, msg: BidMessage | BidDecline): Promise<BidStreamAck> {
    const prev = this.queues.get(peer) ?? Promise.resolve()
    const run = prev.catch(() => {}).then(async () => await this.sendNow(peer, msg))
    this.queues.set(peer, run)
    try {
      return await run
    } finally {
      if (this.queues.get(peer) === run) this.queues.delete(peer)
    }
  }

  private async sendNow (peer: string, msg: BidMessage | BidDecline): Promise<BidStreamAck> {
    const signal = AbortSignal.timeout(this.market.options.bidStreamTimeoutMs)
    const bytes = encodeBidStreamMessage(msg)
    // at most two tries: a kept stream the requester has just closed (idle,
    // restarted) fails on use, and a fresh stream is then the real attempt
    for (let attempt = 0; ; attempt++) {
      const kept = this.usableChannel(peer)
      const ch = kept ?? await this.openChannel(peer, signal)
      try {
        await ch.lp.write(bytes, { signal })
        const ack = decodeBidStreamAck((await ch.lp.read({ signal })).subarray())
        ch.lastUsed = Date.now()
        return ack
      } catch (err) {
        this.dropChannel(peer, ch, err)
        if (kept === undefined || attempt > 0 || signal.aborted) throw err
      }
    }
  }

  /** The kept stream to `peer` if still open both ways and not idle for long (the requester ends idle ones). */
  private usableChannel (peer: string): BidChannel | undefined {
    const ch = this.channels.get(peer)
    if (ch === undefined) return undefined
    const s = ch.stream
    // half the requester's idle limit: we close first rather than race its close
    if (s.status !== 'open' || s.writeStatus !== 'writable' || s.remoteWriteStatus !== 'writable' || s.readStatus === 'closed' ||
      Date.now() - ch.lastUsed > this.market.options.bidStreamIdleMs / 2) {
      this.channels.delete(peer)
      void s.close({ signal: AbortSignal.timeout(this.market.options.bidStreamTimeoutMs) }).catch(() => { s.abort(new Error('bid stream closed')) })
      return undefined
    }
    return ch
  }

  private async openChannel (peer: string, signal: AbortSignal): Promise<BidChannel> {
    // one protocol, so libp2p can send its name with the first bid
    // (negotiateFully: false) instead of waiting a round trip for the
    // requester's echo. A variable, not a literal: Network.dialProtocol's
    // options type lists only `signal`, and it passes the object to libp2p as is
    const dialOptions = { signal, negotiateFully: false }
    const stream = await this.market.network.dialProtocol(peer, bidStreamProtocol(this.market.init.swarmId), dialOptions)
    const ch: BidChannel = { stream, lp: lpStream(stream, { maxDataLength: 256 }), lastUsed: Date.now() }
    this.channels.set(peer, ch)
    return ch
  }

  private dropChannel (peer: string, ch: BidChannel, err: unknown): void {
    if (this.channels.get(peer) === ch) this.channels.delete(peer)
    ch.stream.abort(err instanceof Error ? err : new Error(String(err)))
  }

  /** Closes every kept bid stream (the node is stopping); bounded by the stream timeout. */
  async close (): Promise<void> {
    const all = [...this.channels.values()]
    this.channels.clear()
    await Promise.allSettled(all.map(async (ch) => {
      try {
        await ch.stream.close({ signal: AbortSignal.timeout(this.market.options.bidStreamTimeoutMs) })
      } catch (err) {
        ch.stream.abort(err instanceof Error ? err : new Error(String(err)))
      }
    }))
  }

}

/** A look-up's answer if it comes within APP_CHECK_WAIT_MS, else (or on its failure) undefined. */
async function withinAppWait<T> (lookup: Promise<T | undefined>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const waited = new Promise<undefined>((resolve) => { timer = setTimeout(() => { resolve(undefined) }, APP_CHECK_WAIT_MS) })
  try {
    return await Promise.race([lookup.catch(() => undefined), waited])
  } finally {
    clearTimeout(timer)
  }
}
