/**
 * The market: gossip validation of orders, bids and cancels, the persistent
 * orderbook, the bid strategy and the gossipsub scoring of the market
 * topics. Wire formats live in protocols/market.ts; EIP-712 types in
 * protocols/eip712.ts.
 *
 * @example
 * ```ts
 * const book = new Orderbook(db)
 * const ctx: MarketValidationContext = {
 *   domain: hubDomain(chainId, hub),
 *   clock: systemClock,
 *   owners: new CachedAssetOwners({ ownerOf: async (kind, a) => ... Hub.appOf / datasetOf ... }),
 *   orderState: { orderState: async (h) => ... book.knownState(h) ?? Hub.consumedOf / presignedOf ... },
 *   requests: book,
 *   seen: new BoundedSeenSet()
 * }
 * const topics = swarmTopics(swarmId)
 * network.setTopicValidator(topics.apporder, createTopicValidator({
 *   type: 'apporder', ctx, stats, rejects, onAccept: async (v) => { await book.add(v) }
 * }))
 * // at gossipsub construction (node/network): gossipsub({ ...marketScoring(topics) })
 * const decision = await defaultBidStrategy(request, bidContext)
 * if (!decision.bid) console.log(decision.reason)   // "price too low (max 3 < floor 5 nRLC)"
 * ```
 *
 * In a node, all of the above is wired by {@link MarketService} (node.ts
 * builds it through market/create-market.ts when config.chain has rpc and hub): validators on every topic
 * (registered before the network subscribes), accepted orders into the book,
 * hub events (the node's HubEvents, which it subscribes first) dropping consumed and
 * cancelled orders, the late-joiner sync, the provider's bids and declines
 * (direct stream, or the bid topic), and the requester's
 * `submit` (request -> bids -> matchOrders -> deal). `marketRoutes` serves
 * them on the local API.
 *
 * @example
 * ```ts
 * const hubEvents = new HubEvents({ chain, hub, db, fromBlock })
 * const market = new MarketService({ network, db, chain, signer: wallet, swarmId, role: 'requester', provider, fromBlock, hubEvents })
 * await network.start(); await market.start(); await hubEvents.start()
 * const deal = await market.requester.submit({ app: 'wordcount', args: 'hello', trust: 1 })
 * // { dealId, scheduler, workers, tasks: [{ taskId, status }], ... }
 * ```
 */
export {
  validateAppOrderGossip, validateDatasetOrderGossip, validateRequestOrderGossip, validateBidGossip, validateCancelGossip,
  validateMarketGossip, VALIDATORS
} from './validation.js'
export type { MarketValidationContext, ValidatedOrder, ValidatedCancel, ValidatedMessage } from './validation.js'
export { BoundedSeenSet, CachedAssetOwners, systemClock } from './lookups.js'
export type { AssetKind, AssetOwnerLookup, OrderState, OrderStateLookup, RequestLookup, SeenSet, Clock, CachedAssetOwnersOptions } from './lookups.js'
export {
  createTopicValidator, runGossipValidation, GossipValidationStats, PeerRejectTracker, silentMarketLogger, INTERNAL_ERROR_CODE
} from './gossip-adapter.js'
export type { GossipAdapterInit, GossipOutcome, MarketLogger } from './gossip-adapter.js'
export { Orderbook, ORDERBOOK_TYPES, marketEventFromHubLog, bookFirstOrderState } from './orderbook.js'
export type { OrderbookEntry, OrderbookQuery, OrderbookType, MarketHubEvent, DropReason, DecodedHubLog } from './orderbook.js'
export { defaultBidStrategy } from './bid-strategy.js'
export type { BidStrategy, BidContext, BidDecision, CategoryNeeds } from './bid-strategy.js'
export { HubBalances } from './balances.js'
export type { BalanceLookup, HubBalancesOptions } from './balances.js'
export { BanList, OffenceCounter, PeerRateLimiter } from './bans.js'
export type { BanRecord } from './bans.js'
export { marketScoring } from './scoring.js'
export type { MarketScoring, MarketScoringOptions } from './scoring.js'
export { GossipValidationError, isGossipValidationError, GOSSIP_ACTIONS, MarketError } from './errors.js'
export type { GossipAction, GossipValidationCode, MarketErrorCode } from './errors.js'
export { defaultMarketValidationOptions, defaultOrderbookOptions, defaultMarketServiceOptions } from './options.js'
export type { MarketValidationOptions, OrderbookOptions, ProviderProfile, MarketServiceOptions } from './options.js'
export { MarketService } from './service.js'
export type { MarketServiceInit, OrderSigner, KnownApp } from './service.js'
export { Provider } from './provider.js'
export type { ProviderSettings, ProviderDecisionRecord } from './provider.js'
export { Requester, workersForTrust, taskStatusName } from './requester.js'
export type { SubmitRequestParams, SubmitResult, SubmittedTask, DeclineReason } from './requester.js'
export { createSyncHandler, syncFromPeer } from './sync.js'
export type { SyncHandlerOptions, SyncClientOptions } from './sync.js'
