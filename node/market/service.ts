/**
 * The node's market: the gossip validators on every market topic, the
 * orderbook they feed, the hub's events that drop and shrink orders, the
 * late-joiner sync, and the provider and requester sides on top.
 *
 * Built by node.ts BEFORE the network starts (its validators must be in
 * place before the topics are subscribed), started right after it, stopped
 * before it. The hub's events come from the node's HubEvents, which the
 * market subscribes first (its book before the scheduler) and the node
 * starts once every subscriber is in.
 */
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { TopicValidatorFn } from '@libp2p/gossipsub'
import { getAddress } from 'ethers'
import { Repository, jsonCodec } from '../db/index.js'
import type { Network } from '../network/index.js'
import type { ChainClient, ChainEvent, HubEvents } from '../chain/index.js'
import { hashOrder, hubDomain, ZERO_ADDRESS } from '../../protocols/eip712.js'
import type { HubDomain, OrderKind } from '../../protocols/eip712.js'
import {
  KIND_OF_TYPE, MAX_MESSAGE_BYTES, MARKET_WIRE_VERSION, bidStreamProtocol, decodeBidStreamMessage, encodeBidStreamAck,
  encodeMarketMessage, expiryOfSalt, marketSyncProtocol, signCancel
} from '../../protocols/market.js'
import type { BidStreamMessage, MarketMessageType, MarketOrderType, OrderMessage } from '../../protocols/market.js'
import { swarmTopics } from '../../protocols/topics.js'
import type { TopicName } from '../../protocols/topics.js'
import {
  GossipValidationStats, PeerRejectTracker, createTopicValidator, runGossipValidation
} from './gossip-adapter.js'
import type { GossipAdapterInit } from './gossip-adapter.js'
import { BoundedCache } from '../common/bounded-cache.js'
import { BoundedSeenSet, CachedAssetOwners, systemClock } from './lookups.js'
import { Orderbook, bookFirstOrderState, marketEventFromHubLog } from './orderbook.js'
import { StakeEvents } from './stake-events.js'
import { HubBalances } from './balances.js'
import { BanList, OffenceCounter, PeerRateLimiter } from './bans.js'
import type { MarketValidationContext, ValidatedMessage, ValidatedOrder } from './validation.js'
import { MarketError } from './errors.js'
import { defaultMarketServiceOptions } from './options.js'
import type { MarketServiceOptions } from './options.js'
import { createSyncHandler, syncFromPeer } from './sync.js'
import { Provider } from './provider.js'
import { OnchainRequests } from './onchain-requests.js'
import { Requester } from './requester.js'

export type { OrderSigner, MarketServiceInit, KnownApp } from './market-core.js'
import type { MarketCore, MarketServiceInit, KnownApp, OrderSigner } from './market-core.js'

function checkKnownApp (v: unknown): KnownApp {
  const r = v as Partial<KnownApp>
  if (typeof r !== 'object' || r === null || typeof r.app !== 'string' || typeof r.owner !== 'string' || typeof r.name !== 'string' ||
    typeof r.cid !== 'string' || typeof r.checksum !== 'string') throw new MarketError('MARKET_BAD_RECORD', 'not an app record')
  return r as KnownApp
}

const ORDER_TYPES: MarketOrderType[] = ['apporder', 'datasetorder', 'requestorder']

/**
 * Hub events after which a provider's free stake may differ (Hub.sol: the
 * stake functions, matchOrders' locks, the lazy scheduler draw's lock,
 * finalize/claim/reelect's seizures and releases). Any other event leaves the cached stake as it is.
 */
const STAKE_EVENTS = new Set(['Staked', 'UnstakeRequested', 'Unstaked', 'StakeSeized', 'StakeReleased', 'DealCreated', 'TaskFinalized', 'TaskClaimed', 'SchedulerReelected', 'SchedulerDrawn'])

/** Peers whose last sync time is remembered (a few hundred bytes each). */
const MAX_SYNC_PEERS = 10_000

/**
 * The market service.
 *
 * @example
 * ```ts
 * const hubEvents = new HubEvents({ chain, hub, db, fromBlock })
 * const market = new MarketService({ network, db, chain, signer: wallet, swarmId, role, provider, fromBlock, hubEvents })
 * await network.start()
 * await market.start()
 * await hubEvents.start()
 * const deal = await market.requester.submit({ app: 'wordcount', args: 'hello' })
 * await hubEvents.stop()
 * await market.stop()
 * ```
 */
export class MarketService implements MarketCore {
  readonly book: Orderbook
  readonly domain: HubDomain
  readonly stats = new GossipValidationStats()
  readonly rejects = new PeerRejectTracker()
  /** bans persisted in level, by peer id and by address */
  readonly bans: BanList
  /** requesters' hub balances from the hub's events */
  readonly balances: HubBalances
  readonly limiter: PeerRateLimiter
  /** per relaying peer: unfunded requests and messages over the rate */
  readonly spam: OffenceCounter
  /** per signer address: refusals its signature proves */
  readonly signerOffences: OffenceCounter
  readonly options: MarketServiceOptions
  readonly requester: Requester
  readonly provider?: Provider
  /** a provider's handling of requests published on chain (DApps): it matches them itself */
  readonly onchain?: OnchainRequests
  readonly topics: Record<TopicName, string>
  readonly ctx: MarketValidationContext
  /** the node's one follower of the hub (node.ts starts and stops it) */
  readonly hubEvents: HubEvents
  private readonly apps: Repository<KnownApp>
  private readonly log: NonNullable<MarketServiceInit['logger']>
  private pruneTimer?: NodeJS.Timeout
  private unsubscribePeers?: () => void
  private readonly syncing = new Set<string>()
  /** when each peer was last synced from (ms), oldest first; bounded */
  private readonly lastSync = new BoundedCache<string, number>(MAX_SYNC_PEERS)
  /** start times of the syncs of the last syncMinIntervalMs (bounded by syncPeersPerInterval) */
  private recentSyncs: number[] = []
  private running = false
  /** told of every order, bid and cancel the book accepts, whichever way it came (the node's event stream); must not throw */
  onAccepted?: (type: MarketMessageType, v: ValidatedMessage<MarketMessageType>, from: string) => void
  /** which hub events move this node's stake */
  private readonly stakeEvents: StakeEvents
  /** inbound bid streams being served (ended on stop) */
  private readonly bidStreams = new Set<Stream>()
  /** our own orders published but not yet in the book (publishOwn), by hash */
  private readonly ownPending = new Map<string, ValidatedOrder>()
  /** pending background work (syncs, bids), awaited by stop() */
  private readonly inflight = new Set<Promise<unknown>>()

  constructor (readonly init: MarketServiceInit) {
    this.options = { ...defaultMarketServiceOptions, ...init.options }
    this.hubEvents = init.hubEvents
    this.log = init.logger ?? { debug: () => {}, warn: () => {} }
    const hub = init.chain.hub
    if (hub === undefined) throw new MarketError('CHAIN_NOT_CONFIGURED', 'the chain client has no hub binding')
    this.domain = hubDomain(init.chain.chainId, hubAddress(hub))
    this.book = new Orderbook(init.db, { maxOrders: this.options.maxOrders, ownSigner: init.signer.address })
    this.bans = new BanList(init.db)
    this.balances = new HubBalances(init.db, { read: async (a) => (await hub.accountOf(a))[0], refreshMs: this.options.balanceRefreshMs })
    this.limiter = new PeerRateLimiter(this.options.gossipRatePerSecond, this.options.gossipBurst)
    this.spam = new OffenceCounter(this.options.spamLimit, (peer) => { this.ban(peer, 'spam') })
    this.signerOffences = new OffenceCounter(this.options.signerOffenceLimit, (address) => {
      this.log.warn('address banned for the orders it signed', { address })
      this.track(this.bans.banAddress(address, 'signer'))
    })
    this.stakeEvents = new StakeEvents(init.signer.address)
    this.apps = new Repository(init.db, 'mkt-app', jsonCodec(checkKnownApp))
    this.topics = swarmTopics(init.swarmId)
    const owners = new CachedAssetOwners({
      ownerOf: async (kind, asset) => {
        const a = kind === 'app' ? await hub.appOf(asset) : await hub.datasetOf(asset)
        return a.owner === ZERO_ADDRESS ? undefined : a.owner
      }
    })
    this.ctx = {
      domain: this.domain,
      clock: systemClock,
      owners,
      // no chain read on the gossip hot path when the book's record of hub
      // events is as good (orderbook.ts): every hop waits for its validator
      orderState: bookFirstOrderState(this.book, {
        consumedOf: async (h) => await hub.consumedOf(h),
        presignedOf: async (h) => await hub.presignedOf(h)
      }, { retentionMs: this.options.tombstoneMaxAgeMs, ownPending: (h) => this.ownPending.has(h.toLowerCase()) }),
      // our own request may still be on its way into the book when its first bids come (publishOwn)
      requests: {
        requestOrder: async (h) => {
          const own = this.ownPending.get(h.toLowerCase())
          if (own?.message.type === 'requestorder') return own.message.order
          return await this.book.requestOrder(h)
        }
      },
      seen: new BoundedSeenSet(),
      balances: this.balances,
      bannedSigner: (a) => this.bans.isAddressBanned(a)
    }
    // a peer that crossed the REJECT limit is cut off now; the node's
    // connection gater (NetworkOptions.denyPeer over rejects.isBanned)
    // refuses it from then on, whatever its gossipsub score says
    this.rejects.onBanned((peer) => { this.ban(peer, 'rejects') })
    this.requester = new Requester(this)
    // first of the node's subscribers (node.ts builds the market before the
    // explorer and the execution subscribe): the scheduler sees an event after
    // the book applied it. `retry`: a failed write of the book holds the
    // follower on the event (and everyone after the book) until it passes
    init.hubEvents.on('*', async (event) => { await this.onHubEvent(event) }, { retry: true, onRemoved: async (event) => { await this.onHubEventRemoved(event) } })
    if (init.role === 'provider') {
      this.provider = new Provider(this, init.provider)
      const onchain = new OnchainRequests(this, (msg, fields) => { this.log.debug(msg, fields) })
      this.onchain = onchain
      init.hubEvents.on('*', (event) => { onchain.onHubEvent(event) })
    }
    // validators now: node.ts builds the service before the network starts,
    // and the network applies them before it subscribes
    for (const type of ['apporder', 'datasetorder', 'requestorder', 'bid', 'cancel'] as const) {
      init.network.setTopicValidator(this.topics[type], this.validatorFor(type))
    }
  }

  get network (): Network { return this.init.network }
  get chain (): ChainClient { return this.init.chain }
  get signer (): OrderSigner { return this.init.signer }
  get address (): string { return this.init.signer.address }

  /** The hub binding (present: checked in the constructor). */
  get hub (): NonNullable<ChainClient['hub']> {
    return this.init.chain.hub as NonNullable<ChainClient['hub']>
  }

  /**
   * Loads the persisted bans and balance estimates: before the network
   * starts, so the connection gater refuses a banned peer from the first dial.
   */
  async load (): Promise<void> {
    await this.bans.load()
    await this.balances.load()
  }

  /** Whether the node refuses this peer: over a limit in this process, or banned before (level). */
  isPeerBanned (peer: string): boolean {
    return this.rejects.isBanned(peer) || this.bans.isPeerBanned(peer)
  }

  /** Bans a peer for good (level) and hangs up on it; the gater refuses it from then on. */
  private ban (peer: string, reason: string): void {
    this.log.warn('peer banned', { peer, reason, rejects: this.rejects.count(peer), spam: this.spam.count(peer) })
    this.track(this.bans.banPeer(peer, reason))
    this.track(this.init.network.hangUp(peer))
  }

  /** Starts the protocols, pruning and the sync of connected peers. Needs a started network; the node starts the hub's events after. */
  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    // node.ts loads them before the network starts; a market built alone (tests) loads them here
    await this.load()
    const net = this.init.network
    await net.handle(marketSyncProtocol(this.init.swarmId), createSyncHandler({ book: this.book, timeoutMs: this.options.syncTimeoutMs, pageSize: this.options.syncPageSize }))
    await net.handle(bidStreamProtocol(this.init.swarmId), async (stream, connection) => {
      await this.onBidStream(stream, connection.remotePeer.toString())
    })
    // a peer whose protocols we learn (it just connected) may hold orders we never saw
    this.unsubscribePeers = net.onPeerIdentified((peer, protocols) => {
      if (protocols.includes(marketSyncProtocol(this.init.swarmId))) this.track(this.syncFrom(peer))
    })
    this.pruneTimer = setInterval(() => { this.track(this.prune()) }, this.options.pruneIntervalMs)
    this.pruneTimer.unref()
  }

  /** Stops in reverse order; waits for work in hand (bounded by its own timeouts). The node stops the hub's events first. */
  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    if (this.pruneTimer !== undefined) clearInterval(this.pruneTimer)
    this.unsubscribePeers?.()
    this.requester.abortAll()
    // kept bid streams: ours to providers, and theirs to us waiting for a next message
    for (const s of this.bidStreams) s.abort(new Error('the node is stopping'))
    await this.provider?.close()
    await Promise.allSettled([...this.inflight])
    await this.init.network.unhandle(marketSyncProtocol(this.init.swarmId)).catch(() => {})
    await this.init.network.unhandle(bidStreamProtocol(this.init.swarmId)).catch(() => {})
  }

  get started (): boolean { return this.running }

  /** Runs background work; stop() waits for it. */
  track (p: Promise<unknown>): void {
    const q = p.catch((err: unknown) => { this.log.debug('market background task failed', { error: err instanceof Error ? err.message : String(err) }) })
    this.inflight.add(q)
    void q.finally(() => { this.inflight.delete(q) })
  }

  private validatorFor<T extends MarketMessageType> (type: T): TopicValidatorFn {
    const init: GossipAdapterInit<T> = {
      type,
      ctx: this.ctx,
      stats: this.stats,
      rejects: this.rejects,
      limiter: this.limiter,
      spam: this.spam,
      signerOffences: this.signerOffences,
      logger: this.log,
      onAccept: async (v, _relay, author) => { await this.accepted(type, v, author) }
    }
    return createTopicValidator(init)
  }

  /**
   * What happens to an accepted message, whichever way it came (gossip, sync,
   * bid stream). `from` is the peer that authored it (gossip, bid stream) or
   * sent it (sync). A provider answers gossiped requests to their author, and
   * synced ones too (a late joiner can still win an open request); a synced
   * request names no peer to answer, so its bid goes by the bid topic
   * (provider.ts). The validators' seen set accepts each order once, so no
   * request is answered twice.
   *
   * The provider's decision and the requester's count of a bid start before
   * the book write: the level store's serialized writes are not on the path
   * to the first bid.
   */
  async accepted<T extends MarketMessageType> (type: T, v: ValidatedMessage<T>, from: string, via: 'gossip' | 'sync' | 'stream' = 'gossip', onCounted?: (counted: boolean) => void): Promise<void> {
    this.onAccepted?.(type, v as ValidatedMessage<MarketMessageType>, from)
    if (type === 'cancel') {
      await this.book.applyCancel(v as ValidatedMessage<'cancel'>)
      return
    }
    const order = v as ValidatedOrder
    // a synced order may already be in our book (our seen set is in memory,
    // the book survives restarts): answer only the requests new to the book.
    // Sync is not on the first-bid path, so it can wait for the write.
    const added = via === 'sync' ? await this.book.add(order) : undefined
    if (type === 'requestorder' && this.provider !== undefined && from !== this.init.network.peerId && via !== 'stream' && added !== false) {
      const request = order as ValidatedOrder<Extract<OrderMessage, { type: 'requestorder' }>>
      // our own request (same wallet) is never bid on, whoever relays it
      if (request.message.order.requester.toLowerCase() !== this.address.toLowerCase()) {
        this.track(this.provider.onRequest(request, via === 'gossip' ? { peer: from } : { peer: undefined }))
      }
    }
    if (type === 'bid') {
      const counted = this.requester.onBid(order as ValidatedOrder<Extract<OrderMessage, { type: 'bid' }>>, from)
      onCounted?.(counted)
    }
    if (added === undefined) await this.book.add(order)
  }

  /**
   * Validates bytes that came by sync or a bid stream with the gossip
   * validators. `accepted`: they passed; `counted`: a bid that is in one of
   * our open bidding windows.
   */
  async validateAndAccept (type: MarketMessageType, bytes: Uint8Array, from: string, via: 'sync' | 'stream', onRefuse?: (code: string, reason: string) => void): Promise<{ accepted: boolean, counted: boolean }> {
    let counted = false
    const verdict = await runGossipValidation({
      type, ctx: this.ctx, stats: this.stats, rejects: this.rejects, spam: this.spam, signerOffences: this.signerOffences, logger: this.log,
      // the validators do not wait for onAccept; a bid is counted before its first await
      onAccept: async (v, f) => { await this.accepted(type, v, f, via, (c) => { counted = c }) },
      ...(onRefuse !== undefined ? { onRefuse } : {})
    }, bytes, from)
    return { accepted: verdict === TopicValidatorResult.Accept, counted }
  }

  /**
   * Signs nothing: takes an order this node signed, puts it in its own book
   * (gossipsub never validates nor delivers our own messages) and gossips it.
   */
  async publishOwn<T extends Exclude<MarketMessageType, 'cancel'>> (type: T, message: OrderMessage & { type: T }): Promise<{ hash: string, recipients: number }> {
    const bytes = encodeMarketMessage(message)
    const kind = KIND_OF_TYPE[type] as OrderKind
    const hash = hashOrder(this.domain, kind, message.order as never).toLowerCase()
    const expiresAt = expiryOfSalt(message.order.salt)
    const v: ValidatedOrder = { message, hash, signer: this.address, ...(expiresAt !== undefined ? { expiresAt } : {}) }
    this.ctx.seen.add(hash)
    if (type === 'bid') return { hash, recipients: await this.init.network.publish(this.topics[type], bytes) }
    // gossiped before the book write lands: the book serializes its writes,
    // and a busy requester's queue (every bid it receives is stored) held a
    // new request back by 0.1-0.9 s at 20 nodes. Until the write lands, bids
    // for it are checked against this in-memory copy. The caller still finds
    // the order in the book when this returns.
    this.ownPending.set(hash, v)
    const stored = this.book.add(v).finally(() => { this.ownPending.delete(hash) })
    try {
      const recipients = await this.init.network.publish(this.topics[type], bytes)
      return { hash, recipients }
    } finally {
      await stored
    }
  }

  /** Gossips a signed cancel of one of our orders and drops it from our book. */
  async gossipCancel (orderKind: OrderKind, order: OrderMessage['order'], orderHash: string): Promise<void> {
    const cancelSign = await signCancel(this.signer, this.domain, orderHash)
    const bytes = encodeMarketMessage({
      v: MARKET_WIRE_VERSION, type: 'cancel', chainId: this.domain.chainId, hub: this.domain.verifyingContract,
      proof: { kind: 'signed', orderKind, order, cancelSign }
    })
    this.ctx.seen.add(`cancel:${orderHash.toLowerCase()}`)
    await this.book.drop(orderHash, 'cancelled')
    await this.init.network.publish(this.topics.cancel, bytes)
  }

  /**
   * Pulls a peer's live orders (one sync at a time per peer; unless
   * `force`, not again within syncMinIntervalMs, and from at most
   * syncPeersPerInterval peers in that time).
   */
  async syncFrom (peer: string, force = false): Promise<number> {
    if (this.syncing.has(peer) || !this.running) return 0
    const now = Date.now()
    const last = this.lastSync.get(peer)
    if (!force && last !== undefined && now - last < this.options.syncMinIntervalMs) return 0
    this.recentSyncs = this.recentSyncs.filter((t) => now - t < this.options.syncMinIntervalMs)
    if (!force && this.recentSyncs.length >= this.options.syncPeersPerInterval) return 0
    this.recentSyncs.push(now)
    this.lastSync.set(peer, now)
    this.syncing.add(peer)
    try {
      return await syncFromPeer({
        dial: async (protocol, o) => await this.init.network.dialProtocol(peer, protocol, o),
        protocol: marketSyncProtocol(this.init.swarmId),
        types: ORDER_TYPES,
        onOrder: async (bytes, type) => { await this.validateAndAccept(type, bytes, peer, 'sync') },
        timeoutMs: this.options.syncTimeoutMs,
        pageSize: this.options.syncPageSize,
        maxPages: this.options.syncMaxPages
      })
    } catch (err) {
      // a failed sync does not count: the next identify of this peer (or another peer) retries it
      this.lastSync.delete(peer)
      const i = this.recentSyncs.indexOf(now)
      if (i >= 0) this.recentSyncs.splice(i, 1)
      throw err
    } finally {
      this.syncing.delete(peer)
    }
  }

  private async prune (): Promise<void> {
    await this.book.pruneExpired()
    await this.book.pruneTombstones(this.options.tombstoneMaxAgeMs)
  }

  /**
   * The bid stream (requester side): a bid or decline in, its ack out,
   * repeated until the provider ends the stream, leaves it idle for
   * bidStreamIdleMs, or sends something unreadable. A provider keeps one
   * stream per requester (provider.ts); one that sends a single message and
   * closes is served the same way.
   */
  private async onBidStream (stream: Stream, remotePeer: string): Promise<void> {
    const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES.bid })
    this.bidStreams.add(stream)
    try {
      for (let n = 0; n < this.options.bidStreamMaxMessages && this.running; n++) {
        let bytes: Uint8Array
        try {
          // the first message comes with the stream; later ones whenever the provider has an answer
          bytes = (await lp.read({ signal: AbortSignal.timeout(n === 0 ? this.options.bidStreamTimeoutMs : this.options.bidStreamIdleMs) })).subarray()
        } catch (err) {
          // after an exchange, the stream's end (or its idle limit) is the normal way out
          if (n > 0) break
          throw err
        }
        const signal = AbortSignal.timeout(this.options.bidStreamTimeoutMs)
        let msg: BidStreamMessage | undefined
        try {
          msg = decodeBidStreamMessage(bytes)
        } catch {
          msg = undefined
        }
        let ok = false
        let code: string | undefined
        if (msg === undefined) {
          code = 'MALFORMED'
          this.rejects.record(remotePeer)
        } else if (msg.type === 'decline') {
          ok = this.requester.onDecline(msg, remotePeer)
          if (!ok) code = 'UNKNOWN_REQUEST'
        } else if (this.requester.windowClosed(msg.order.requestHash)) {
          // nothing would be done with it: no signature check for a bid that cannot count
          // (a large swarm's late bids would otherwise each cost a signature recovery)
          code = 'BID_TOO_LATE'
        } else {
          const bid = msg
          let refused = 'BID_REFUSED'
          const verdict = await this.validateAndAccept('bid', bytes, remotePeer, 'stream', (c, reason) => {
            refused = c
            // the requester's user hears why a bid did not count, as it hears a decline
            this.requester.onRefusedBid(bid.order.requestHash, remotePeer, c, reason)
          })
          ok = verdict.accepted && verdict.counted
          if (!verdict.accepted) code = refused
          else if (!verdict.counted) code = this.requester.whyNotCounted(bid.order.requestHash)
        }
        await lp.write(encodeBidStreamAck(code !== undefined ? { v: MARKET_WIRE_VERSION, ok, code } : { v: MARKET_WIRE_VERSION, ok }), { signal })
        // a peer that sends junk gets its answer, and no more of our time on this stream
        if (msg === undefined) break
      }
      await stream.close({ signal: AbortSignal.timeout(this.options.bidStreamTimeoutMs) })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      this.bidStreams.delete(stream)
    }
  }

  /**
   * The market's records of a hub event, in this order: the app it
   * registers, the requester's balance estimate and the stake cache (both
   * before the book: a request gossiped right after its requester's deposit
   * is judged on it), then the book. A throw (a level write) holds the
   * follower on the event and it comes again: each step is idempotent.
   */
  private async onHubEvent (event: ChainEvent): Promise<void> {
    if (event.name === 'AppRegistered' && event.args !== undefined) {
      const a = event.args
      const app: KnownApp = { app: getAddress(String(a.app)), owner: getAddress(String(a.owner)), name: String(a.name), cid: String(a.cid), checksum: String(a.checksum) }
      await this.rememberApp(app)
    }
    // before the book: a request gossiped right after its requester's deposit is judged on it.
    // A failure here (a write) must not stop the follower: the estimate is a hint, reads correct it
    try {
      await this.balances.apply(event)
    } catch (err) {
      this.log.warn('balance estimate not updated', { event: event.name, error: err instanceof Error ? err.message : String(err) })
    }
    const ev = marketEventFromHubLog(event)
    // our free stake may have moved (stake, unstake, a deal's lock, a seizure, a release): re-read it
    if (this.provider !== undefined && event.name !== undefined && STAKE_EVENTS.has(event.name) && this.stakeEvents.concernsUs(event, ev)) this.provider.stakeMayHaveChanged()
    if (ev !== undefined) {
      await this.book.applyHubEvent(ev, async (h) => await this.hub.consumedOf(h))
    }
  }

  /**
   * A hub event a reorg took back: the stake cache is re-read and the book
   * follows the hub again (Orderbook.takeBackHubEvent); the later
   * subscribers (execution/execution.ts: the scheduler's and the worker's
   * records) reconcile with it after this.
   */
  private async onHubEventRemoved (event: ChainEvent): Promise<void> {
    const ev = marketEventFromHubLog(event)
    if (this.provider !== undefined && event.name !== undefined && STAKE_EVENTS.has(event.name) && this.stakeEvents.concernsUs(event, ev)) this.provider.stakeMayHaveChanged()
    if (ev !== undefined) await this.book.takeBackHubEvent(ev, async (h) => await this.hub.consumedOf(h))
    this.log.warn('hub event taken back by a reorg', { event: event.name, block: event.blockNumber, tx: event.transactionHash })
  }

  /** Records an app (from its AppRegistered event or our own registration). */
  async rememberApp (app: KnownApp): Promise<void> {
    await this.apps.put(app.app.toLowerCase(), app)
  }

  /** Apps known by name (any owner), oldest key first. */
  async appsNamed (name: string, owner?: string): Promise<KnownApp[]> {
    const out: KnownApp[] = []
    for await (const { value } of this.apps.entries()) {
      if (value.name === name && (owner === undefined || value.owner.toLowerCase() === owner.toLowerCase())) out.push(value)
    }
    return out
  }

  async knownApp (app: string): Promise<KnownApp | undefined> {
    return await this.apps.get(app.toLowerCase())
  }
}

/** The hub binding's address, known synchronously (typechain keeps it as `target`). */
function hubAddress (hub: NonNullable<ChainClient['hub']>): string {
  const t = hub.target
  if (typeof t !== 'string') throw new MarketError('CHAIN_NOT_CONFIGURED', 'the hub binding has no address')
  return t
}
