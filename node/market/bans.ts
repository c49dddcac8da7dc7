/**
 * Bans that survive restarts, keyed by peer id and by Ethereum address, and
 * the per-peer rate limit of the market's gossip.
 *
 * A peer id is free to mint, an address that signs orders is not always
 * (a worker's stake, a requester's deposit): a peer banned for what it sent
 * keeps its id banned, and an address banned for what it signed has its
 * orders refused whoever relays them. Both live in the node's level store
 * (`mkt-ban!peer:<id>`, `mkt-ban!addr:<address>`), loaded at start.
 */
import { Repository, jsonCodec } from '../db/index.js'
import type { DbController } from '../db/index.js'
import { MarketError } from './errors.js'
import { BoundedCache } from '../common/bounded-cache.js'

export interface BanRecord {
  /** what earned it: 'rejects' (invalid messages), 'spam' (unfunded or rate-limited messages), 'signer' */
  reason: string
  /** ms since epoch */
  at: number
}

function checkBanRecord (v: unknown): BanRecord {
  const r = v as Partial<BanRecord>
  if (typeof r !== 'object' || r === null || typeof r.reason !== 'string' || typeof r.at !== 'number') {
    throw new MarketError('MARKET_BAD_RECORD', 'not a ban record')
  }
  return r as BanRecord
}

/** Persisted bans; reads are synchronous (the connection gater and the validators ask on every message). */
export class BanList {
  private readonly repo: Repository<BanRecord>
  private readonly peers = new Set<string>()
  private readonly addresses = new Set<string>()
  private loaded = false

  constructor (db: DbController) {
    this.repo = new Repository(db, 'mkt-ban', jsonCodec(checkBanRecord))
  }

  /** Loads the stored bans (call before the network starts, so the gater refuses banned peers from the first dial). */
  async load (): Promise<void> {
    if (this.loaded) return
    this.loaded = true
    for await (const { key } of this.repo.entries({ limit: Number.MAX_SAFE_INTEGER })) {
      if (key.startsWith('peer:')) this.peers.add(key.slice(5))
      else if (key.startsWith('addr:')) this.addresses.add(key.slice(5))
    }
  }

  isPeerBanned (peer: string): boolean {
    return this.peers.has(peer)
  }

  isAddressBanned (address: string): boolean {
    return this.addresses.has(address.toLowerCase())
  }

  async banPeer (peer: string, reason: string): Promise<void> {
    if (this.peers.has(peer)) return
    this.peers.add(peer)
    await this.repo.put(`peer:${peer}`, { reason, at: Date.now() })
  }

  async banAddress (address: string, reason: string): Promise<void> {
    const a = address.toLowerCase()
    if (this.addresses.has(a)) return
    this.addresses.add(a)
    await this.repo.put(`addr:${a}`, { reason, at: Date.now() })
  }

  get size (): { peers: number, addresses: number } {
    return { peers: this.peers.size, addresses: this.addresses.size }
  }
}

/**
 * A token bucket per relaying peer: `ratePerSecond` messages a second on
 * average, bursts of `burst`. Bounded: past `maxPeers` the least recently
 * seen peer is forgotten (it comes back with a full bucket, which is what a
 * new peer gets anyway).
 */
export class PeerRateLimiter {
  private readonly buckets: BoundedCache<string, { tokens: number, at: number }>

  constructor (readonly ratePerSecond: number, readonly burst: number, maxPeers = 10_000, private readonly now: () => number = Date.now) {
    this.buckets = new BoundedCache(maxPeers)
  }

  /** Takes one token for `peer`; false when its bucket is empty. */
  take (peer: string): boolean {
    const t = this.now()
    const b = this.buckets.get(peer) ?? { tokens: this.burst, at: t }
    b.tokens = Math.min(this.burst, b.tokens + (t - b.at) * this.ratePerSecond / 1000)
    b.at = t
    const ok = b.tokens >= 1
    if (ok) b.tokens -= 1
    this.buckets.set(peer, b)
    return ok
  }
}

/**
 * Offences per key (a peer id or an address), counted toward a limit and
 * never decayed; bounded like the REJECT tracker (oldest forgotten first).
 * `onLimit` runs once, when a key reaches the limit.
 */
export class OffenceCounter {
  private readonly counts: BoundedCache<string, number>

  constructor (readonly limit: number, private readonly onLimit: (key: string) => void, maxKeys = 10_000) {
    this.counts = new BoundedCache(maxKeys)
  }

  record (key: string): void {
    const n = (this.counts.get(key) ?? 0) + 1
    this.counts.set(key, n)
    if (n === this.limit) {
      try { this.onLimit(key) } catch {}
    }
  }

  count (key: string): number {
    return this.counts.get(key) ?? 0
  }
}
