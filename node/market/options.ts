/** Options of the market module, with the reason for each default. */

export interface MarketValidationOptions {
  /** how many accepted order hashes the de-duplication set remembers */
  seenCacheSize: number
  /** how many asset owners the owner cache keeps */
  ownerCacheSize: number
  /** how long an "unknown asset" answer is cached, ms */
  ownerNegativeTtlMs: number
}

export const defaultMarketValidationOptions: MarketValidationOptions = {
  // 50k hashes x ~100 bytes = ~5 MB: several hours of a busy swarm's orders,
  // far longer than gossipsub's own seen-cache (2 minutes by default), so a
  // replay after that window is still caught
  seenCacheSize: 50_000,
  // an asset's owner never changes on the hub, so entries stay valid; the
  // bound only caps memory (one entry per app or dataset seen)
  ownerCacheSize: 10_000,
  // a forger can name random apps: caching the miss stops each forged order
  // from costing an RPC call, and 5 s is about two blocks, so a freshly
  // registered app is seen soon after it is mined
  ownerNegativeTtlMs: 5_000
}

export interface OrderbookOptions {
  /** most orders returned by one query */
  maxQueryResults: number
  /** most tombstones one pruneTombstones pass removes (bounds one pass; call it periodically) */
  maxTombstones: number
  /** most live orders the book holds; past it a new order evicts the oldest-received request or bid (orderbook.ts) */
  maxOrders: number
  /** most arrival-index keys one eviction looks at before giving up (our own orders are skipped) */
  maxEvictionScan: number
  /** the node's own address: its orders are never evicted */
  ownSigner?: string
}

export const defaultOrderbookOptions: OrderbookOptions = {
  // one API page; a requester looks for a handful of matching orders
  maxQueryResults: 1_000,
  // a tombstone is ~150 bytes: one pass over 100k touches ~15 MB at most,
  // and keeps a periodic prune from stalling the node's other writes for long
  maxTombstones: 100_000,
  // an order record is ~1-2 KB with its index keys: 100k orders hold ~150 MB
  // of level data at most, hours of a busy swarm's live orders
  maxOrders: 100_000,
  // our own orders are few (one node's): a short scan always finds another's
  maxEvictionScan: 1_000
}

/** What the default bid strategy knows about the provider it decides for. */
export interface ProviderProfile {
  /** categories whose resources and time bound this provider can serve */
  categories: readonly number[]
  /** tags the provider offers (TAG_BITS names, and free-form ones) */
  tags: readonly string[]
  /** smallest price per task it accepts, nRLC */
  priceFloor: bigint
  /** executor kinds it runs ('wasi', 'docker') */
  executors: readonly string[]
}

/** How the node's market service runs (node/market/service.ts). */
export interface MarketServiceOptions {
  /** how providers send bids: a direct stream to the requester, or the bid topic */
  bidTransport: 'stream' | 'gossip'
  /** how long a requester collects bids by default, ms */
  biddingWindowMs: number
  /** most nRLC per task a request offers the workers when its submitter names no max price */
  defaultMaxPrice: bigint
  /** workers picked beyond what the trust level's consensus needs (when trust > 1) */
  spareWorkers: number
  /** lifetime of a request order (its salt's expiry), seconds */
  requestTtlSeconds: number
  /** lifetime of a bid, seconds */
  bidTtlSeconds: number
  /** how often expired orders and old tombstones are pruned, ms */
  pruneIntervalMs: number
  /** tombstones older than this are pruned, ms */
  tombstoneMaxAgeMs: number
  /** bound on one sync exchange (one page), ms */
  syncTimeoutMs: number
  /** orders per sync page */
  syncPageSize: number
  /** pages pulled from one peer at most */
  syncMaxPages: number
  /** a peer synced from less than this long ago is not synced again when it reconnects, ms */
  syncMinIntervalMs: number
  /** most peers synced from within one syncMinIntervalMs (the first ones identified) */
  syncPeersPerInterval: number
  /** bound on sending one bid or decline and reading its ack, ms */
  bidStreamTimeoutMs: number
  /** a bid stream with no message for this long is ended by the requester (providers keep one per requester), ms */
  bidStreamIdleMs: number
  /** messages one bid stream carries at most before the requester ends it */
  bidStreamMaxMessages: number
  /** how often the node's follower of the hub (HubEvents, built by create-market.ts) polls, ms */
  eventPollIntervalMs: number
  /** blocks on top of a block before the node's follower of the hub delivers its events (node/chain/profile.ts picks it per chain) */
  eventConfirmations: number
  /** market gossip messages a relaying peer may send per second on average (valid ones included) */
  gossipRatePerSecond: number
  /** market gossip messages a relaying peer may send in a burst */
  gossipBurst: number
  /** messages dropped as spam (unfunded requests, messages over the rate) a peer may send before it is banned */
  spamLimit: number
  /** refusals its signature proves (unfunded requests, bids the hub can never accept) an address may sign before it is banned */
  signerOffenceLimit: number
  /** live orders the book holds at most (orderbook.ts: the eviction rule) */
  maxOrders: number
  /** least time between two chain reads of one known account's balance, ms (balances.ts) */
  balanceRefreshMs: number
  /**
   * nRLC a provider adds to its price when it matches a request published on
   * chain (a DApp's, no requester node): the matcher pays matchOrders' gas and
   * gets it back in the task price (onchain-requests.ts)
   */
  onchainMatchFee: bigint
  /** a provider waits up to this long (at random) before matching an on-chain request, so that few race for it, ms */
  onchainMatchJitterMs: number
}

export const defaultMarketServiceOptions: MarketServiceOptions = {
  // the benchmark keeps the transport that holds its latency at 50 nodes;
  // a direct stream reaches the requester in one hop, gossip in log(n) hops
  bidTransport: 'stream',
  // providers answer within tens of ms on a LAN; 5 s leaves room for a slow
  // provider's RPC calls, and the window ends early once enough bids are in
  biddingWindowMs: 5_000,
  // 1 RLC a task: what a requester who named no price expects to risk on a task, not its whole
  // balance (a lone expensive provider would be paid all it asks up to the cap); config.json's
  // defaultMaxPrice replaces it
  defaultMaxPrice: 1_000_000_000n,
  // one spare covers a worker that goes silent without making the deal costlier by much
  spareWorkers: 1,
  // an hour: long enough for bidding and a retry, short enough that a stale request leaves every book
  requestTtlSeconds: 3600,
  bidTtlSeconds: 3600,
  // a minute: expired orders are already hidden from queries, pruning only reclaims space
  pruneIntervalMs: 60_000,
  // an hour: longer than gossipsub's seen cache and any plausible replay window of a late copy
  tombstoneMaxAgeMs: 3_600_000,
  syncTimeoutMs: 10_000,
  // a page of 500 orders is ~400 KB: one stream, a few ms on a LAN
  syncPageSize: 500,
  // 20 pages = 10k orders: far more than a swarm's live book, and a bound against a peer that never ends
  syncMaxPages: 20,
  // a late joiner needs one sync per peer; connections churn (DHT walks, the
  // connection manager's pruning), and each reconnect re-identifies the peer:
  // at 20 nodes that re-synced ~150 times in 5 s, each a stream, a page and
  // a validation of every order in it, for orders gossip had already brought.
  // A minute still resyncs a peer after a partition.
  syncMinIntervalMs: 60_000,
  // any peer that has been in the swarm holds the live book, and gossip keeps
  // ours current afterwards: a few peers cover one that answers badly or
  // holds a partial book, without re-validating the whole book once per
  // peer as the DHT connects us to everyone
  syncPeersPerInterval: 4,
  bidStreamTimeoutMs: 5_000,
  // a provider answers each request of a requester it hears from; a minute
  // keeps the stream across a requester's successive requests, and a quiet
  // requester holds no stream open for long (providers close theirs at half)
  bidStreamIdleMs: 60_000,
  // a bound on one stream's life (it is reopened at no cost but a dial)
  bidStreamMaxMessages: 10_000,
  // anvil mines in ~70 ms; 100 ms keeps the book within a block of the chain.
  // The node sets both from its chain's profile (node/chain/profile.ts)
  eventPollIntervalMs: 100,
  eventConfirmations: 0,
  // gossipsub delivers each message once, from the first peer that has it:
  // a peer is the source of a share of the swarm's traffic. 200 a second
  // with bursts of 2,000 is far above what one peer relays in the 50-node
  // market bench (a bid per provider per request), and a flood still costs
  // its sender its ban within seconds
  gossipRatePerSecond: 200,
  gossipBurst: 2_000,
  // an honest peer relays an unfunded request only when its view of the
  // hub's events is ahead of ours by a deposit: a handful, not hundreds
  spamLimit: 200,
  signerOffenceLimit: 50,
  maxOrders: 100_000,
  // a known account's estimate falls short when it earned (rewards carry no
  // per-account amount in the hub's events): one read each 30 s at most
  balanceRefreshMs: 30_000,
  // 0.01 RLC: a matchOrders costs ~300k gas; on a chain where that is worth more, raise it
  onchainMatchFee: 10_000_000n,
  // long enough that the first matcher's transaction is seen by the others on a dev chain's 1 s blocks
  onchainMatchJitterMs: 1_500
}
