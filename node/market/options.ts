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
}

export const defaultOrderbookOptions: OrderbookOptions = {
  // one API page; a requester looks for a handful of matching orders
  maxQueryResults: 1_000,
  // a tombstone is ~150 bytes: one pass over 100k touches ~15 MB at most,
  // and keeps a periodic prune from stalling the node's other writes for long
  maxTombstones: 100_000
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
