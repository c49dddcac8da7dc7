/**
 * What the validators need to know beyond the message: injected lookups, so
 * the validation functions stay pure and testable. The node backs them with
 * the chain client and the orderbook; tests back them with maps.
 */
import type { AppOrder, Bid, DatasetOrder, OrderKind, RequestOrder } from '../../protocols/eip712.js'
import { defaultMarketValidationOptions } from './options.js'

export type AssetKind = 'app' | 'dataset'

/** The registered owner of an app or dataset (`Hub.appOf(app).owner`), or undefined when not registered. */
export interface AssetOwnerLookup {
  ownerOf: (kind: AssetKind, asset: string) => Promise<string | undefined>
}

/** What the hub (or the orderbook's record of hub events) says about an order hash. */
export interface OrderState {
  /** `Hub.consumedOf(hash)`: a cancel sets it to the order's volume */
  consumed: bigint
  /** an `OrderCancelled(hash)` event was seen */
  cancelled: boolean
  /** `Hub.presignedOf(hash)` */
  presigned: boolean
}

/**
 * What the validator already knows of the order whose state it asks: lets a
 * lookup answer from local knowledge (the book's record of hub events)
 * instead of a chain read, and skip the presign read of a signed order.
 */
export interface OrderStateHint {
  kind: OrderKind
  order: AppOrder | DatasetOrder | RequestOrder | Bid
  /** true when the order carries a signature (so its presign is never read) */
  signed: boolean
  /** unix seconds from the salt, when the order has an expiry */
  expiresAt?: bigint
}

export interface OrderStateLookup {
  /** `hint` is optional: a lookup without it answers from the chain's view as before */
  orderState: (orderHash: string, hint?: OrderStateHint) => Promise<OrderState>
}

/** The request orders this node holds, by hash (bids are checked against them). */
export interface RequestLookup {
  requestOrder: (requestHash: string) => Promise<RequestOrder | undefined>
}

/** Keys already accepted (order hashes, cancel keys). */
export interface SeenSet {
  has: (key: string) => boolean
  add: (key: string) => void
}

/** Wall-clock source, injected so expiry tests need no sleeping. */
export interface Clock {
  /** unix time in seconds */
  nowSeconds: () => number
}

export const systemClock: Clock = { nowSeconds: () => Math.floor(Date.now() / 1000) }

/** A de-duplication set that forgets its oldest keys past `max` (insertion order). */
export class BoundedSeenSet implements SeenSet {
  private readonly keys = new Set<string>()

  constructor (private readonly max: number = defaultMarketValidationOptions.seenCacheSize) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError('max must be a positive integer')
  }

  has (key: string): boolean {
    return this.keys.has(key)
  }

  add (key: string): void {
    if (this.keys.has(key)) return
    this.keys.add(key)
    // Set iterates in insertion order: the first key is the oldest
    if (this.keys.size > this.max) {
      const oldest = this.keys.values().next()
      if (oldest.done !== true) this.keys.delete(oldest.value)
    }
  }

  get size (): number {
    return this.keys.size
  }
}

export interface CachedAssetOwnersOptions {
  maxEntries?: number
  negativeTtlMs?: number
  /** ms clock for the negative TTL */
  nowMs?: () => number
}

/**
 * Caches an owner lookup: owners never change on the hub, so a found owner is
 * kept (LRU-bounded); a miss is kept for a short TTL so forged orders naming
 * random assets cost one RPC call per asset and TTL, not one per message;
 * concurrent lookups of one asset share a single call.
 */
export class CachedAssetOwners implements AssetOwnerLookup {
  private readonly found = new Map<string, string>()
  private readonly missing = new Map<string, number>()
  private readonly inflight = new Map<string, Promise<string | undefined>>()
  private readonly maxEntries: number
  private readonly negativeTtlMs: number
  private readonly nowMs: () => number
  /** calls made to the source (for tests and metrics) */
  sourceCalls = 0

  constructor (private readonly source: AssetOwnerLookup, options: CachedAssetOwnersOptions = {}) {
    this.maxEntries = options.maxEntries ?? defaultMarketValidationOptions.ownerCacheSize
    this.negativeTtlMs = options.negativeTtlMs ?? defaultMarketValidationOptions.ownerNegativeTtlMs
    this.nowMs = options.nowMs ?? Date.now
  }

  async ownerOf (kind: AssetKind, asset: string): Promise<string | undefined> {
    const key = `${kind}:${asset.toLowerCase()}`
    const hit = this.found.get(key)
    if (hit !== undefined) {
      // refresh its LRU position
      this.found.delete(key)
      this.found.set(key, hit)
      return hit
    }
    const missAt = this.missing.get(key)
    if (missAt !== undefined && this.nowMs() - missAt < this.negativeTtlMs) return undefined
    const pending = this.inflight.get(key)
    if (pending !== undefined) return await pending
    const call = (async () => {
      this.sourceCalls++
      const owner = await this.source.ownerOf(kind, asset)
      if (owner === undefined) {
        this.remember(this.missing, key, this.nowMs())
      } else {
        this.missing.delete(key)
        this.remember(this.found, key, owner)
      }
      return owner
    })()
    this.inflight.set(key, call)
    try {
      return await call
    } finally {
      this.inflight.delete(key)
    }
  }

  private remember<V> (map: Map<string, V>, key: string, value: V): void {
    map.delete(key)
    map.set(key, value)
    if (map.size > this.maxEntries) {
      const oldest = map.keys().next()
      if (oldest.done !== true) map.delete(oldest.value)
    }
  }
}
