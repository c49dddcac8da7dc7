/**
 * The live orders this node has seen, in its level store (through node/db's
 * repositories), so they survive restarts.
 *
 * Layout (three repositories):
 * - `mkt-order!<hash>`: the order as received (its wire JSON, re-validatable
 *   and re-sendable byte for byte to a late joiner), its signer, when it came,
 *   its expiry and its consumed volume.
 * - `mkt-idx!<field>:<value>:<hash>`: secondary indexes by type, app,
 *   dataset, category, requester, request (bids) and expiry; values are
 *   lowercase, numbers zero-padded so key order is numeric order.
 * - `mkt-dead!<hash>`: tombstones of cancelled/consumed/expired orders, so a
 *   late gossip copy is not taken back in; `mkt-deadt!<time>:<hash>` orders
 *   them by age for pruning.
 * - `mkt-used!<hash>`: volume the hub's DealCreated events consumed of a
 *   request order this book did not hold at the time (it came later, or
 *   never), so the validators know a request's state without a chain read;
 *   aged out with the tombstones (same time index).
 *
 * Only validated orders go in (the gossip adapter's onAccept, or the node's
 * own orders); the chain stays the source of truth, so the book is a hint:
 * hub events (OrderCancelled, DealCreated) drop or shrink entries.
 *
 * Size cap (options.maxOrders): a new order that finds the book full evicts
 * the oldest-received request or bid not signed by the node itself
 * (`mkt-idx!recv:<time>:<hash>`), tombstoned as 'evicted' so that its
 * copies are not taken back in before the tombstone ages out. App and
 * dataset orders are never evicted (each needs an asset registered on chain,
 * so they cannot be minted for free); when only they and our own orders are
 * left, the new order is refused instead.
 */
import { DbController, KeySetRepository, Repository, bytesCodec, jsonCodec } from '../db/index.js'
import { decodeMarketMessage, encodeMarketMessage } from '../../protocols/market.js'
import type { MarketMessageType, OrderMessage } from '../../protocols/market.js'
import type { RequestOrder } from '../../protocols/eip712.js'
import { MarketError } from './errors.js'
import { defaultOrderbookOptions } from './options.js'
import type { OrderbookOptions } from './options.js'
import type { Clock, OrderState, OrderStateHint, RequestLookup } from './lookups.js'
import { systemClock } from './lookups.js'
import type { ValidatedCancel, ValidatedOrder } from './validation.js'
import { BoundedCache } from '../common/bounded-cache.js'

export type OrderbookType = Exclude<MarketMessageType, 'cancel'>
export const ORDERBOOK_TYPES: readonly OrderbookType[] = ['apporder', 'datasetorder', 'requestorder', 'bid']

export type DropReason = 'cancelled' | 'consumed' | 'expired' | 'evicted'

/** One live order as the book returns it. */
export interface OrderbookEntry {
  type: OrderbookType
  hash: string
  message: OrderMessage
  /** the exact bytes received (what a late joiner gets) */
  wire: Uint8Array
  signer: string
  /** ms since epoch */
  receivedAt: number
  /** unix seconds, when the order has an expiry */
  expiresAt?: bigint
  consumed: bigint
  /** volume - consumed */
  remaining: bigint
}

/** Query by any combination of fields (all must match); addresses in any case. */
export interface OrderbookQuery {
  type?: OrderbookType
  app?: string
  dataset?: string
  category?: bigint | number
  requester?: string
  /** bids answering this request */
  requestHash?: string
  /** at most this many (default and cap: options.maxQueryResults) */
  limit?: number
  /** a further test, applied before the limit counts (order-search.ts: restriction fields) */
  filter?: (e: OrderbookEntry) => boolean
}

/** Hub events the book reacts to (names as in Hub.sol). */
export type MarketHubEvent =
  | { name: 'OrderCancelled', orderHash: string }
  | { name: 'DealCreated', dealid: string, requestHash: string, app: string, dataset: string, volume: bigint, workers: string[] }

interface OrderRecord {
  type: OrderbookType
  wire: string
  signer: string
  receivedAt: number
  expiresAt?: string
  consumed: string
}

interface DeadRecord { reason: DropReason, at: number }

interface UsedRecord { consumed: string, at: number }

const TYPES = new Set<string>(ORDERBOOK_TYPES)
const DROP_REASONS = new Set<string>(['cancelled', 'consumed', 'expired', 'evicted'])

function checkOrderRecord (v: unknown): OrderRecord {
  const r = v as Partial<OrderRecord>
  if (typeof r !== 'object' || r === null || typeof r.type !== 'string' || !TYPES.has(r.type) || typeof r.wire !== 'string' ||
    typeof r.signer !== 'string' || typeof r.receivedAt !== 'number' || typeof r.consumed !== 'string' ||
    (r.expiresAt !== undefined && typeof r.expiresAt !== 'string')) {
    throw new MarketError('MARKET_BAD_RECORD', 'not an orderbook record')
  }
  return r as OrderRecord
}

function checkDeadRecord (v: unknown): DeadRecord {
  const r = v as Partial<DeadRecord>
  if (typeof r !== 'object' || r === null || typeof r.reason !== 'string' || !DROP_REASONS.has(r.reason) || typeof r.at !== 'number') {
    throw new MarketError('MARKET_BAD_RECORD', 'not a tombstone record')
  }
  return r as DeadRecord
}

function checkUsedRecord (v: unknown): UsedRecord {
  const r = v as Partial<UsedRecord>
  if (typeof r !== 'object' || r === null || typeof r.consumed !== 'string' || !/^[0-9]+$/.test(r.consumed) || typeof r.at !== 'number') {
    throw new MarketError('MARKET_BAD_RECORD', 'not a consumption record')
  }
  return r as UsedRecord
}

const EMPTY = new Uint8Array(0)

/** The types the size cap evicts: free to sign, unlike app and dataset orders. */
const EVICTABLE = new Set<string>(['requestorder', 'bid'])

/** Records and entries the book keeps in memory (a few KB each at most). */
const CACHE_ENTRIES = 2_000

const utf8 = new TextEncoder()
const utf8d = new TextDecoder()

/** 20 digits: fits any uint64 (expiries, times) so string order is numeric order. */
function pad (n: bigint | number): string {
  return BigInt(n).toString(10).padStart(20, '0')
}

/** Category numbers beyond 2^64 cannot index; they still store and match by filter. */
const MAX_INDEXED = (1n << 64n) - 1n

function orderFields (m: OrderMessage): { app?: string, dataset?: string, category?: bigint, requester?: string, requestHash?: string, volume: bigint } {
  switch (m.type) {
    case 'apporder': return { app: m.order.app.toLowerCase(), volume: m.order.volume }
    case 'datasetorder': return { dataset: m.order.dataset.toLowerCase(), volume: m.order.volume }
    case 'requestorder': return { app: m.order.app.toLowerCase(), dataset: m.order.dataset.toLowerCase(), category: m.order.category, requester: m.order.requester.toLowerCase(), volume: m.order.volume }
    case 'bid': return { requestHash: m.order.requestHash.toLowerCase(), volume: m.order.volume }
  }
}

function indexKeys (type: OrderbookType, m: OrderMessage, hash: string, expiresAt: bigint | undefined): string[] {
  const f = orderFields(m)
  const keys = [`type:${type}:${hash}`]
  if (f.app !== undefined) keys.push(`app:${f.app}:${hash}`)
  if (f.dataset !== undefined) keys.push(`dataset:${f.dataset}:${hash}`)
  if (f.category !== undefined && f.category <= MAX_INDEXED) keys.push(`category:${pad(f.category)}:${hash}`)
  if (f.requester !== undefined) keys.push(`requester:${f.requester}:${hash}`)
  if (f.requestHash !== undefined) keys.push(`request:${f.requestHash}:${hash}`)
  if (expiresAt !== undefined && expiresAt <= MAX_INDEXED) keys.push(`exp:${pad(expiresAt)}:${hash}`)
  return keys
}

/**
 * The persistent orderbook.
 *
 * @example
 * ```ts
 * const book = new Orderbook(db)
 * await book.add(validated)               // from the gossip adapter's onAccept
 * const apps = await book.query({ type: 'apporder', app })
 * await book.applyHubEvent({ name: 'OrderCancelled', orderHash })
 * ```
 */
export class Orderbook implements RequestLookup {
  // the tables a new order is looked up in, where it usually is not: their
  // keys are held in memory so that a miss costs no level read (KeySetRepository)
  private readonly orders: KeySetRepository<OrderRecord>
  private readonly index: Repository<Uint8Array>
  private readonly dead: KeySetRepository<DeadRecord>
  private readonly deadByTime: Repository<Uint8Array>
  private readonly used: KeySetRepository<UsedRecord>
  private readonly options: OrderbookOptions
  private readonly clock: Clock
  /**
   * Write-through caches of the most recently used records and their decoded
   * entries: every write goes through this instance, so a cached record is
   * the stored one. They keep the level store (its thread pool, shared by
   * every store of the process) and the JSON decoding off the validators'
   * path: a bid's validation reads its request two or three times.
   */
  private readonly recordCache = new BoundedCache<string, OrderRecord>(CACHE_ENTRIES)
  private readonly entryCache = new BoundedCache<string, OrderbookEntry>(CACHE_ENTRIES)
  /** counts record writes, so a read that raced a write is not cached */
  private writes = 0
  /** orders evicted by the size cap since start */
  evictions = 0
  /** serializes writes: add/drop read-modify-write the indexes */
  private queue: Promise<unknown> = Promise.resolve()

  constructor (db: DbController, options: Partial<OrderbookOptions> & { clock?: Clock } = {}) {
    this.orders = new KeySetRepository(db, 'mkt-order', jsonCodec(checkOrderRecord))
    this.index = new Repository(db, 'mkt-idx', bytesCodec)
    this.dead = new KeySetRepository(db, 'mkt-dead', jsonCodec(checkDeadRecord))
    this.deadByTime = new Repository(db, 'mkt-deadt', bytesCodec)
    this.used = new KeySetRepository(db, 'mkt-used', jsonCodec(checkUsedRecord))
    this.options = { ...defaultOrderbookOptions, ...options }
    this.clock = options.clock ?? systemClock
  }

  private async getRecord (hash: string): Promise<OrderRecord | undefined> {
    const hit = this.recordCache.get(hash)
    if (hit !== undefined) return hit
    const gen = this.writes
    const r = await this.orders.get(hash)
    // not cached if any write came meanwhile: it may have changed or deleted this one
    if (r !== undefined && gen === this.writes) this.recordCache.set(hash, r)
    return r
  }

  private async putRecord (hash: string, r: OrderRecord): Promise<void> {
    this.writes++
    this.entryCache.delete(hash)
    this.recordCache.delete(hash)
    await this.orders.put(hash, r)
    // replaces whatever a read during the put may have cached
    this.writes++
    this.entryCache.delete(hash)
    this.recordCache.set(hash, r)
  }

  private async delRecord (hash: string): Promise<void> {
    this.writes++
    this.entryCache.delete(hash)
    this.recordCache.delete(hash)
    await this.orders.del(hash)
    // a read that ran during the delete may have cached the old record
    this.writes++
    this.entryCache.delete(hash)
    this.recordCache.delete(hash)
  }

  private async serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => {})
    return await run
  }

  /**
   * Adds a validated order or bid. Returns false when it is already in the
   * book or was dropped before (a tombstone), or when it is expired.
   */
  async add (v: ValidatedOrder, receivedAt: number = Date.now()): Promise<boolean> {
    return await this.serial(async () => {
      const hash = v.hash.toLowerCase()
      if (await this.getRecord(hash) !== undefined) return false
      if (await this.dead.has(hash)) return false
      if (v.expiresAt !== undefined && v.expiresAt <= BigInt(this.clock.nowSeconds())) return false
      if (v.consumed !== undefined && v.consumed >= v.message.order.volume) return false
      const type = v.message.type
      const record: OrderRecord = {
        type,
        // re-encoded canonically: the signature covers the typed fields, not the spelling
        wire: utf8d.decode(encodeMarketMessage(v.message)),
        signer: v.signer,
        receivedAt,
        consumed: (v.consumed ?? 0n).toString()
      }
      if (v.expiresAt !== undefined) record.expiresAt = v.expiresAt.toString()
      if (this.orders.size >= this.options.maxOrders && !(await this.evictOne())) return false
      const keys = indexKeys(type, v.message, hash, v.expiresAt)
      if (EVICTABLE.has(type)) keys.push(`recv:${pad(receivedAt)}:${hash}`)
      // indexes first, record last (and the reverse on drop): node/db batches
      // within one repository only, so a crash between the two writes leaves
      // at worst index keys without a record, which every reader skips
      await this.index.batch(keys.map((key) => ({ type: 'put' as const, key, value: EMPTY })))
      await this.putRecord(hash, record)
      return true
    })
  }

  /**
   * Volume consumed of a request order by the deals this node followed
   * (DealCreated), whether or not the book held the order; 0n when none.
   */
  async consumedByDeals (requestHash: string): Promise<bigint> {
    const h = requestHash.toLowerCase()
    const r = await this.getRecord(h)
    if (r !== undefined) return BigInt(r.consumed)
    const u = await this.used.get(h)
    return u === undefined ? 0n : BigInt(u.consumed)
  }

  /** The live order with this hash. */
  async get (hash: string): Promise<OrderbookEntry | undefined> {
    const h = hash.toLowerCase()
    const cached = this.entryCache.get(h)
    if (cached !== undefined) return cached
    const r = await this.getRecord(h)
    if (r === undefined) return undefined
    const e = this.entry(h, r)
    // a write during the read invalidated it: do not cache a stale entry
    if (this.recordCache.get(h) === r) this.entryCache.set(h, e)
    return e
  }

  /** Why an order left the book, if it did. */
  async dropped (hash: string): Promise<DropReason | undefined> {
    return (await this.dead.get(hash.toLowerCase()))?.reason
  }

  /** RequestLookup for bid validation: the live request order with this hash. */
  async requestOrder (requestHash: string): Promise<RequestOrder | undefined> {
    const e = await this.get(requestHash)
    return e?.message.type === 'requestorder' ? e.message.order : undefined
  }

  /**
   * What the book knows of an order's state from hub events it applied:
   * for the validators' OrderStateLookup, in front of the chain (undefined =
   * ask the chain).
   */
  async knownState (hash: string): Promise<Partial<OrderState> | undefined> {
    const h = hash.toLowerCase()
    const d = await this.dead.get(h)
    if (d !== undefined) return d.reason === 'cancelled' ? { cancelled: true } : d.reason === 'consumed' ? { cancelled: false, consumed: (1n << 256n) - 1n } : undefined
    const r = await this.getRecord(h)
    return r === undefined ? undefined : { consumed: BigInt(r.consumed) }
  }

  private entry (hash: string, r: OrderRecord): OrderbookEntry {
    let message: OrderMessage
    const wire = utf8.encode(r.wire)
    try {
      message = decodeMarketMessage(wire, r.type) as OrderMessage
    } catch (err) {
      throw new MarketError('MARKET_BAD_RECORD', `stored order ${hash} does not decode`, { hash }, { cause: err })
    }
    const consumed = BigInt(r.consumed)
    const volume = message.order.volume
    const e: OrderbookEntry = { type: r.type, hash, message, wire, signer: r.signer, receivedAt: r.receivedAt, consumed, remaining: volume > consumed ? volume - consumed : 0n }
    if (r.expiresAt !== undefined) e.expiresAt = BigInt(r.expiresAt)
    return e
  }

  /** Live orders matching every given field, oldest index key first, bounded. */
  async query (q: OrderbookQuery = {}): Promise<OrderbookEntry[]> {
    const limit = q.limit ?? this.options.maxQueryResults
    if (!Number.isInteger(limit) || limit < 1 || limit > this.options.maxQueryResults) {
      throw new MarketError('MARKET_BAD_QUERY', `limit must be an integer in [1, ${this.options.maxQueryResults}]`, { limit })
    }
    if (q.type !== undefined && !TYPES.has(q.type)) throw new MarketError('MARKET_BAD_QUERY', `unknown order type ${String(q.type)}`)
    const category = q.category !== undefined ? BigInt(q.category) : undefined
    if (category !== undefined && (category < 0n || category > MAX_INDEXED)) throw new MarketError('MARKET_BAD_QUERY', 'category out of range')
    // scan the most selective index given, filter on the rest
    const prefix = q.requestHash !== undefined
      ? `request:${q.requestHash.toLowerCase()}:`
      : q.requester !== undefined
        ? `requester:${q.requester.toLowerCase()}:`
        : q.dataset !== undefined
          ? `dataset:${q.dataset.toLowerCase()}:`
          : q.app !== undefined
            ? `app:${q.app.toLowerCase()}:`
            : category !== undefined
              ? `category:${pad(category)}:`
              : q.type !== undefined ? `type:${q.type}:` : undefined
    const now = BigInt(this.clock.nowSeconds())
    const out: OrderbookEntry[] = []
    const matches = (e: OrderbookEntry): boolean => {
      const f = orderFields(e.message)
      if (q.type !== undefined && e.type !== q.type) return false
      if (q.app !== undefined && f.app !== q.app.toLowerCase()) return false
      if (q.dataset !== undefined && f.dataset !== q.dataset.toLowerCase()) return false
      if (category !== undefined && f.category !== category) return false
      if (q.requester !== undefined && f.requester !== q.requester.toLowerCase()) return false
      if (q.requestHash !== undefined && f.requestHash !== q.requestHash.toLowerCase()) return false
      // expired orders wait for pruneExpired but are never returned
      if (e.expiresAt !== undefined && e.expiresAt <= now) return false
      if (q.filter !== undefined && !q.filter(e)) return false
      return e.remaining > 0n
    }
    if (prefix === undefined) {
      for await (const { key, value } of this.orders.entries()) {
        const e = this.entry(key, value)
        if (matches(e)) out.push(e)
        if (out.length >= limit) break
      }
      return out
    }
    for await (const { key } of this.index.entries({ prefix })) {
      const hash = key.slice(key.lastIndexOf(':') + 1)
      const r = await this.orders.get(hash)
      if (r === undefined) continue
      const e = this.entry(hash, r)
      if (matches(e)) out.push(e)
      if (out.length >= limit) break
    }
    return out
  }

  /** Removes an order (and, for a request, its bids) and leaves a tombstone. Returns whether it was in the book. */
  async drop (hash: string, reason: DropReason): Promise<boolean> {
    return await this.serial(async () => await this.dropNow(hash.toLowerCase(), reason))
  }

  private async dropNow (hash: string, reason: DropReason): Promise<boolean> {
    const at = Date.now()
    const had = await this.getRecord(hash)
    if (!(await this.dead.has(hash))) {
      await this.dead.put(hash, { reason, at })
      await this.deadByTime.put(`${pad(at)}:${hash}`, EMPTY)
    }
    if (had === undefined) return false
    const e = this.entry(hash, had)
    await this.delRecord(hash)
    const keys = indexKeys(e.type, e.message, hash, e.expiresAt)
    if (EVICTABLE.has(e.type)) keys.push(`recv:${pad(had.receivedAt)}:${hash}`)
    await this.index.batch(keys.map((key) => ({ type: 'del' as const, key })))
    if (e.type === 'requestorder') {
      // a bid for a dead request can never be matched
      const bids: string[] = []
      for await (const { key } of this.index.entries({ prefix: `request:${hash}:` })) bids.push(key.slice(key.lastIndexOf(':') + 1))
      for (const b of bids) await this.dropNow(b, reason)
    }
    return true
  }

  /** Inside serial(): drops the oldest-received evictable order; false when there is none. */
  private async evictOne (): Promise<boolean> {
    for await (const { key } of this.index.entries({ prefix: 'recv:', limit: this.options.maxEvictionScan })) {
      const hash = key.slice(key.lastIndexOf(':') + 1)
      const r = await this.getRecord(hash)
      if (r === undefined || (this.options.ownSigner !== undefined && r.signer.toLowerCase() === this.options.ownSigner.toLowerCase())) continue
      await this.dropNow(hash, 'evicted')
      this.evictions++
      return true
    }
    return false
  }

  /** Live orders in the book (its record keys, held in memory). */
  async size (): Promise<number> {
    await this.orders.load()
    return this.orders.size
  }

  /**
   * Records how much of an order the hub has consumed; drops it when nothing
   * remains. Returns whether the order was in the book.
   */
  async setConsumed (hash: string, consumed: bigint): Promise<boolean> {
    return await this.serial(async () => {
      const h = hash.toLowerCase()
      const r = await this.getRecord(h)
      if (r === undefined) return false
      const e = this.entry(h, r)
      if (consumed >= e.message.order.volume) {
        await this.dropNow(h, 'consumed')
      } else if (consumed > BigInt(r.consumed)) {
        await this.putRecord(h, { ...r, consumed: consumed.toString() })
      }
      return true
    })
  }

  /** Applies an accepted gossip cancel. */
  async applyCancel (c: ValidatedCancel): Promise<boolean> {
    return await this.drop(c.orderHash, 'cancelled')
  }

  /**
   * Applies a hub event. `consumedOf` (Hub.consumedOf) lets the book refresh
   * the app/dataset orders and bids a deal may have consumed: DealCreated
   * names the request and its volume, not the other orders' hashes.
   */
  async applyHubEvent (ev: MarketHubEvent, consumedOf?: (hash: string) => Promise<bigint>): Promise<void> {
    if (ev.name === 'OrderCancelled') {
      await this.drop(ev.orderHash, 'cancelled')
      return
    }
    const request = await this.get(ev.requestHash)
    if (request !== undefined) {
      const consumed = consumedOf !== undefined ? await consumedOf(request.hash) : request.consumed + ev.volume
      await this.setConsumed(request.hash, consumed)
    } else {
      // a request we do not hold (yet): remember what the deal consumed, so
      // a later copy of it is judged without a chain read (bookFirstOrderState)
      const consumed = consumedOf !== undefined ? await consumedOf(ev.requestHash) : await this.consumedByDeals(ev.requestHash) + ev.volume
      await this.serial(async () => {
        const at = Date.now()
        await this.used.put(ev.requestHash, { consumed: consumed.toString(), at })
        await this.deadByTime.put(`${pad(at)}:${ev.requestHash}`, EMPTY)
      })
    }
    if (consumedOf === undefined) return
    const touched = [
      ...await this.query({ type: 'apporder', app: ev.app }),
      ...(/^0x0{40}$/i.test(ev.dataset) ? [] : await this.query({ type: 'datasetorder', dataset: ev.dataset })),
      ...await this.query({ type: 'bid', requestHash: ev.requestHash })
    ]
    for (const e of touched) await this.setConsumed(e.hash, await consumedOf(e.hash))
  }

  /**
   * Takes back a hub event that a reorg removed (the follower's onRemoved).
   * For a DealCreated, what the request, the app/dataset orders and the
   * bids it touched consumed is read from the hub again (the new chain):
   * a live order's record follows it down as well as up; the record of a
   * request the book never held follows the hub; the request's 'consumed'
   * tombstone goes when the hub says nothing of it is consumed any more (a
   * copy by gossip or sync is then judged again; the book does not keep the
   * body of a dropped order). Not undone: the tombstone of a partly consumed
   * request, of app/dataset orders and bids the deal used up (the event does
   * not name them), and a cancel taken back: the book may miss an order the
   * hub would match, never hold one it refuses.
   */
  async takeBackHubEvent (ev: MarketHubEvent, consumedOf: (hash: string) => Promise<bigint>): Promise<void> {
    if (ev.name === 'OrderCancelled') return
    const touched = [
      ev.requestHash.toLowerCase(),
      ...(await this.query({ type: 'apporder', app: ev.app })).map((e) => e.hash),
      ...(/^0x0{40}$/i.test(ev.dataset) ? [] : (await this.query({ type: 'datasetorder', dataset: ev.dataset })).map((e) => e.hash)),
      ...(await this.query({ type: 'bid', requestHash: ev.requestHash })).map((e) => e.hash)
    ]
    for (const hash of touched) {
      const consumed = await consumedOf(hash)
      await this.serial(async () => {
        const h = hash.toLowerCase()
        const r = await this.getRecord(h)
        if (r !== undefined) {
          if (consumed >= this.entry(h, r).message.order.volume) await this.dropNow(h, 'consumed')
          else if (consumed !== BigInt(r.consumed)) await this.putRecord(h, { ...r, consumed: consumed.toString() })
          return
        }
        const u = await this.used.get(h)
        if (u !== undefined) await this.used.put(h, { ...u, consumed: consumed.toString() })
        if (consumed === 0n && (await this.dead.get(h))?.reason === 'consumed') await this.dead.del(h)
      })
    }
  }

  /** Drops every order whose expiry has passed; returns how many. Bounded by the index scan limit. */
  async pruneExpired (): Promise<number> {
    const now = BigInt(this.clock.nowSeconds())
    const expired: Array<{ key: string, hash: string }> = []
    for await (const { key } of this.index.entries({ prefix: 'exp:' })) {
      const [, at, hash] = key.split(':')
      if (at === undefined || hash === undefined || BigInt(at) > now) break
      expired.push({ key, hash })
    }
    let n = 0
    for (const { key, hash } of expired) {
      if (await this.drop(hash, 'expired')) n++
      // an index key left by a crash between two writes: clear it
      else await this.index.del(key)
    }
    return n
  }

  /** Forgets tombstones older than `maxAgeMs` (gossip stops carrying an order long before). Returns how many. */
  async pruneTombstones (maxAgeMs: number, nowMs: number = Date.now()): Promise<number> {
    return await this.serial(async () => {
      const cutoff = nowMs - maxAgeMs
      const old: string[] = []
      for await (const { key } of this.deadByTime.entries({ limit: this.options.maxTombstones })) {
        const [at] = key.split(':')
        if (at === undefined || Number(at) > cutoff) break
        old.push(key)
      }
      for (const key of old) {
        const hash = key.slice(key.indexOf(':') + 1)
        await this.dead.del(hash)
        await this.used.del(hash)
        await this.deadByTime.del(key)
      }
      return old.length
    })
  }

  /**
   * A page of live orders for the sync protocol: the wire bytes of up to
   * `limit` orders of the given types, after `cursor`; `next` is set when
   * more remain. The cursor is `<type>:<hash>`.
   */
  async syncPage (types: readonly OrderbookType[], limit: number, cursor?: string): Promise<{ messages: Uint8Array[], next?: string }> {
    if (!Number.isInteger(limit) || limit < 1 || limit > this.options.maxQueryResults) throw new MarketError('MARKET_BAD_QUERY', 'bad sync limit', { limit })
    const ordered = ORDERBOOK_TYPES.filter((t) => types.includes(t))
    let startType = 0
    let after: string | undefined
    if (cursor !== undefined) {
      const [t, h] = cursor.split(':')
      const i = ordered.indexOf(t as OrderbookType)
      if (i < 0 || h === undefined || !/^0x[0-9a-f]{64}$/.test(h)) throw new MarketError('MARKET_BAD_QUERY', 'bad sync cursor', { cursor })
      startType = i
      after = h
    }
    const now = BigInt(this.clock.nowSeconds())
    const messages: Uint8Array[] = []
    let last: string | undefined
    for (let i = startType; i < ordered.length; i++) {
      const t = ordered[i]!
      for await (const { key } of this.index.entries({ prefix: `type:${t}:` })) {
        const hash = key.slice(key.lastIndexOf(':') + 1)
        if (i === startType && after !== undefined && hash <= after) continue
        const r = await this.orders.get(hash)
        if (r === undefined) continue
        if (r.expiresAt !== undefined && BigInt(r.expiresAt) <= now) continue
        // one more order exists past a full page: point the cursor at the last one sent
        if (messages.length >= limit && last !== undefined) return { messages, next: last }
        messages.push(utf8.encode(r.wire))
        last = `${t}:${hash}`
      }
    }
    return { messages }
  }
}

/** A decoded chain log as node/chain's EventFollower hands it (only what the book reads). */
export interface DecodedHubLog {
  name?: string
  /** ethers' Result: fields by name */
  args?: unknown
}

function field (o: unknown, name: string): unknown {
  return typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[name] : undefined
}

function hex32 (v: unknown, what: string): string {
  if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(v)) throw new MarketError('MARKET_BAD_EVENT', `${what} is not a bytes32`, { what })
  return v.toLowerCase()
}

function addr (v: unknown, what: string): string {
  if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(v)) throw new MarketError('MARKET_BAD_EVENT', `${what} is not an address`, { what })
  return v
}

/**
 * The market's view of a hub log: OrderCancelled and DealCreated become
 * MarketHubEvents; other events are undefined (not the book's business).
 * @throws MarketError MARKET_BAD_EVENT when a known event lacks its fields
 */
export function marketEventFromHubLog (log: DecodedHubLog): MarketHubEvent | undefined {
  if (log.name === 'OrderCancelled') return { name: 'OrderCancelled', orderHash: hex32(field(log.args, 'orderHash'), 'orderHash') }
  if (log.name !== 'DealCreated') return undefined
  const info = field(log.args, 'info')
  const volume = field(info, 'volume')
  if (typeof volume !== 'bigint') throw new MarketError('MARKET_BAD_EVENT', 'DealCreated.info.volume is not a bigint')
  const workers = field(info, 'workers')
  if (workers === null || typeof workers !== 'object' || typeof (workers as { length?: unknown }).length !== 'number') throw new MarketError('MARKET_BAD_EVENT', 'DealCreated.info.workers is not a list')
  return {
    name: 'DealCreated',
    dealid: hex32(field(log.args, 'dealid'), 'dealid'),
    requestHash: hex32(field(info, 'requestHash'), 'info.requestHash'),
    app: addr(field(info, 'app'), 'info.app'),
    dataset: addr(field(info, 'dataset'), 'info.dataset'),
    volume,
    workers: Array.from(workers as ArrayLike<unknown>, (w, i) => addr(w, `info.workers[${i}]`))
  }
}

export interface BookFirstOrderStateOptions {
  /** how long the book keeps tombstones and consumption records, ms (pruneTombstones' maxAgeMs) */
  retentionMs: number
  clock?: Clock
  /** true for our own request orders published but not yet written to the book (nothing consumed yet) */
  ownPending?: (hash: string) => boolean
}

/**
 * The validators' OrderStateLookup on the gossip hot path: answers from what
 * the node already knows whenever that is as good as the chain, so a hop of
 * the gossip does not wait for an RPC round trip (one per node per message:
 * ~15-50 ms on anvil, more on a remote endpoint, and every hop of a gossip
 * waits for its validator before forwarding).
 *
 * - The book's tombstones first: a replay of an order the book saw
 *   cancelled or consumed costs no chain read.
 * - A signed request order with an expiry no later than the book's
 *   retention: its consumed volume is what the DealCreated events this node
 *   followed say (the book's record of them outlives the order), and a cancel
 *   is an OrderCancelled tombstone. No chain read. The view lags the chain by
 *   the follower's poll; an order consumed in that gap is dropped when the
 *   follower delivers the deal, and the hub refuses to match it anyway.
 * - A signed bid whose request is in the book with nothing consumed (or is
 *   our own request, still on its way into the book): a bid is only ever
 *   consumed by a deal on its request, so its consumed volume is 0. No chain
 *   read.
 * - Any other signed order: consumedOf only (a signature makes the presign
 *   irrelevant). A presigned order ('0x'), or a call without hint: both reads.
 */
export function bookFirstOrderState (book: Orderbook, chain: { consumedOf: (hash: string) => Promise<bigint>, presignedOf: (hash: string) => Promise<boolean> }, opts: BookFirstOrderStateOptions): { orderState: (hash: string, hint?: OrderStateHint) => Promise<OrderState> } {
  const clock = opts.clock ?? systemClock
  return {
    orderState: async (hash, hint) => {
      const reason = await book.dropped(hash)
      if (reason === 'cancelled') return { consumed: 0n, cancelled: true, presigned: false }
      if (reason === 'consumed') return { consumed: (1n << 256n) - 1n, cancelled: false, presigned: false }
      if (hint?.signed === true) {
        if (hint.kind === 'RequestOrder' && hint.expiresAt !== undefined &&
          hint.expiresAt <= BigInt(clock.nowSeconds()) + BigInt(Math.floor(opts.retentionMs / 1000))) {
          return { consumed: await book.consumedByDeals(hash), cancelled: false, presigned: false }
        }
        if (hint.kind === 'Bid') {
          const requestHash = (hint.order as { requestHash: string }).requestHash
          if (opts.ownPending?.(requestHash) === true) return { consumed: 0n, cancelled: false, presigned: false }
          const request = await book.get(requestHash)
          // in the book = not dropped (a drop removes it and leaves a tombstone)
          if (request !== undefined && request.consumed === 0n) {
            return { consumed: 0n, cancelled: false, presigned: false }
          }
        }
        return { consumed: await chain.consumedOf(hash), cancelled: false, presigned: false }
      }
      const [consumed, presigned] = await Promise.all([chain.consumedOf(hash), chain.presignedOf(hash)])
      return { consumed, cancelled: false, presigned }
    }
  }
}
