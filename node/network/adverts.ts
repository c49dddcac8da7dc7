import { setMaxListeners } from 'node:events'
import { lpStream } from '@libp2p/utils'
import type { PrivateKey, Stream } from '@libp2p/interface'
import type { SelectFn, ValidateFn } from '@libp2p/kad-dht'
import { categoryCid, nodeAddressCid, peerIdOfResourceKey, resourceKey, resourceRecordProtocol, RESOURCE_NAMESPACE } from '../../protocols/topics.js'
import {
  compareResourceRecords, decodeResourceRecordUnverified, RESOURCE_RECORD_MAX_BYTES, signResourceRecord, verifyResourceRecord
} from '../../protocols/resource-record.js'
import type { EthMessageSigner, ResourceRecord } from '../../protocols/resource-record.js'
import type { Resources } from '../../protocols/resources.js'
import { isIexecError } from '../common/errors.js'
import { categoryShardCid, categoryShardOf, CATEGORY_SHARDS, walkCategoryProviders } from './category-shards.js'
import type { Network } from './network.js'
import { silentLogger } from './options.js'
import type { NetworkLogger } from './options.js'

/** What a provider offers; the advert adds identity, time and seq. */
export interface AdvertisedResources extends Resources {
  /** software version of the node */
  version: string
}

/** What adverts use of the network. */
export type AdvertsNetwork = Pick<Network, 'peerId' | 'kBucketSize' | 'dhtPut' | 'dhtGet' | 'provide' | 'findProviders' |
'dhtPeerCount' | 'connectionCount' | 'waitForDhtPeers' | 'bootstrapSettled' | 'handle' | 'unhandle' | 'dialProtocol'>

export interface AdvertsOptions {
  network: AdvertsNetwork
  swarmId: string
  privateKey: PrivateKey
  wallet: EthMessageSigner
  resources: AdvertisedResources
  /** false for a requester: it looks up, never advertises */
  publish: boolean
  intervalMs: number
  /** records older than this are stale (provider gone); default 3 × intervalMs, at least 15 min */
  maxAgeMs?: number
  /** bound on one findResources call, ms */
  lookupTimeoutMs?: number
  /** bound on one publication (put + provide), ms */
  publishTimeoutMs?: number
  /** at most this many providers are read per lookup */
  maxProviders?: number
  logger?: NetworkLogger
  /** injectable clock (ms since epoch) */
  now?: () => number
}

export const ADVERT_DEFAULTS = {
  // a lookup on a LAN swarm takes tens of ms; 10 s bounds a slow or partitioned DHT
  lookupTimeoutMs: 10_000,
  // asking a provider for its record: past this (a provider slow, gone, or
  // reachable only through a relay) the record is read from the DHT
  directFetchMs: 3_000,
  // a provider answering its record: one small frame
  serveTimeoutMs: 5_000,
  // put + provide each walk the DHT once
  publishTimeoutMs: 30_000,
  // more than a requester can use in one bidding round
  maxProviders: 200,
  // share of a lookup's remaining budget the shard walks may use (see
  // findResources): the record gets keep at least the rest
  shardWalkShare: 0.5,
  // after bootstrap, wait this long for a first DHT peer before publishing
  // (a put or provide with an empty routing table stays local)
  firstPeerWaitMs: 10_000,
  // a record published while alone is re-published when a first DHT peer
  // appears, or after this wait (then doubling)
  lonelyRetryMs: 1_000,
  // a failed publication is retried after 2 s, 4 s, 8 s... (capped by the
  // refresh interval) instead of leaving the provider invisible for a whole interval
  failureRetryMinMs: 2_000,
  // three missed refreshes = gone; the floor keeps short test intervals from hiding live nodes
  maxAgeFactor: 3,
  minMaxAgeMs: 15 * 60_000,
  // providers of one address CID whose adverts are read: the address's own
  // node is one; more only come from peers providing a CID not theirs
  maxAddressCandidates: 5
} as const

export interface ResourceQueryOptions {
  category: number
  /** every tag must be on the record */
  tags?: string[]
  signal?: AbortSignal
}

/**
 * kad-dht validator and selector for the `/iexec-res/` namespace: a record
 * must verify (both signatures) and belong to the peer of its key; the
 * highest seq (then timestamp) wins. Give these to createNetwork.
 */
export function resourceDhtRules (): { validators: Record<string, ValidateFn>, selectors: Record<string, SelectFn> } {
  const validate: ValidateFn = async (key, value) => {
    const peerId = peerIdOfResourceKey(key)
    if (peerId === undefined) throw new Error('not a resource key')
    await verifyResourceRecord(value, peerId)
  }
  const select: SelectFn = (_key, records) => {
    let best = 0
    let bestRec: ResourceRecord | undefined
    records.forEach((bytes, i) => {
      try {
        const r = decodeResourceRecordUnverified(bytes)
        if (bestRec === undefined || compareResourceRecords(r, bestRec) > 0) { best = i; bestRec = r }
      } catch {
        // an undecodable candidate never wins
      }
    })
    return best
  }
  return { validators: { [RESOURCE_NAMESPACE]: validate }, selectors: { [RESOURCE_NAMESPACE]: select } }
}

/**
 * Publishes this node's signed resource record in the DHT and provides its
 * category CID and its address CID, on start and every intervalMs; finds
 * other providers through the DHT alone (findProviders, then one DHT get per
 * provider), and one provider by its wallet address.
 */
export class ResourceAdverts {
  private timer?: NodeJS.Timeout
  private running = false
  private seq = 0
  private inFlight?: Promise<void>
  private readonly log: NetworkLogger
  private readonly now: () => number
  private last?: ResourceRecord
  /** the signed bytes of the record last signed, answered on resourceRecordProtocol */
  private lastBytes?: Uint8Array
  private serving = false
  private lastError?: string
  private lonelyTimer?: NodeJS.Timeout
  private failures = 0
  private lonelyRetries = 0
  private readonly abort = new AbortController()

  constructor (private readonly opts: AdvertsOptions) {
    this.log = opts.logger ?? silentLogger
    this.now = opts.now ?? Date.now
  }

  /**
   * Starts periodic publication and answers the record on
   * resourceRecordProtocol (providers only). The first publication runs
   * once bootstrap dials settle.
   */
  async start (): Promise<void> {
    if (this.running || !this.opts.publish) return
    this.running = true
    const network = this.opts.network
    await network.handle(resourceRecordProtocol(this.opts.swarmId), this.serveRecord)
    this.serving = true
    this.inFlight = network.bootstrapSettled().then(async (status) => {
      if (status.some((s) => s.state === 'connected')) {
        await network.waitForDhtPeers(1, ADVERT_DEFAULTS.firstPeerWaitMs, this.abort.signal)
      }
      await this.refresh()
    })
    this.timer = setInterval(() => {
      // skip a tick rather than stack publications on a slow DHT
      if (this.inFlight !== undefined) return
      this.inFlight = this.refresh()
    }, this.opts.intervalMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    this.running = false
    this.abort.abort()
    if (this.timer !== undefined) clearInterval(this.timer)
    if (this.lonelyTimer !== undefined) clearTimeout(this.lonelyTimer)
    this.timer = undefined
    this.lonelyTimer = undefined
    await this.inFlight?.catch(() => {})
    if (this.serving) {
      this.serving = false
      // the network may have stopped first: its handlers went with it
      await this.opts.network.unhandle(resourceRecordProtocol(this.opts.swarmId)).catch(() => {})
    }
  }

  private readonly serveRecord = async (stream: Stream): Promise<void> => {
    const bytes = this.lastBytes
    try {
      if (bytes === undefined) throw new Error('no record signed yet')
      const signal = AbortSignal.timeout(ADVERT_DEFAULTS.serveTimeoutMs)
      await lpStream(stream, { maxDataLength: RESOURCE_RECORD_MAX_BYTES }).write(bytes, { signal })
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  /** The record last published, if any. */
  lastPublished (): ResourceRecord | undefined {
    return this.last
  }

  /** The error of the last publication, if it failed. */
  lastPublishError (): string | undefined {
    return this.lastError
  }

  private async refresh (): Promise<void> {
    try {
      const alone = this.opts.network.dhtPeerCount() === 0
      await this.publishNow()
      this.failures = 0
      if (alone) {
        // published to nobody: try again soon rather than after a full
        // interval, backing off (1 s, 2 s, 4 s...) so a node left alone does
        // not re-sign and log every second
        this.lonelyRetries++
        this.refreshWhenPeered(Math.min(this.opts.intervalMs, ADVERT_DEFAULTS.lonelyRetryMs * 2 ** Math.min(this.lonelyRetries - 1, 16)))
      } else {
        this.lonelyRetries = 0
      }
    } catch (err) {
      this.failures++
      this.lastError = err instanceof Error ? err.message : String(err)
      this.log.warn('resource advert failed', { error: this.lastError, failures: this.failures })
      this.retrySoon(Math.min(this.opts.intervalMs, ADVERT_DEFAULTS.failureRetryMinMs * 2 ** Math.min(this.failures - 1, 16)))
    } finally {
      this.inFlight = undefined
    }
  }

  // Re-publishes as soon as a first DHT peer appears, or after maxWaitMs.
  private refreshWhenPeered (maxWaitMs: number): void {
    if (!this.running || this.lonelyTimer !== undefined) return
    // next macrotask: refresh()'s finally has then cleared inFlight
    this.lonelyTimer = setTimeout(() => {
      this.lonelyTimer = undefined
      if (this.inFlight !== undefined || !this.running) return
      this.inFlight = this.opts.network.waitForDhtPeers(1, maxWaitMs, this.abort.signal).then(async () => {
        if (this.running) await this.refresh()
        else this.inFlight = undefined
      })
    }, 0)
    this.lonelyTimer.unref()
  }

  private retrySoon (delayMs: number): void {
    if (!this.running || this.lonelyTimer !== undefined) return
    this.lonelyTimer = setTimeout(() => {
      this.lonelyTimer = undefined
      if (this.inFlight === undefined && this.running) this.inFlight = this.refresh()
    }, delayMs)
    this.lonelyTimer.unref()
  }

  /** Signs and publishes the record now (put + provide); resolves with it. */
  async publishNow (): Promise<ResourceRecord> {
    const o = this.opts
    const ts = this.now()
    // seq from the clock: strictly increasing across restarts without storing it
    this.seq = Math.max(this.seq + 1, ts)
    const record: ResourceRecord = {
      peerId: o.network.peerId,
      address: o.wallet.address,
      ...o.resources,
      timestamp: ts,
      seq: this.seq
    }
    const bytes = await signResourceRecord(record, o.privateKey, o.wallet)
    // answered directly from now on, whether or not the DHT takes it
    this.lastBytes = bytes
    const signal = AbortSignal.timeout(o.publishTimeoutMs ?? ADVERT_DEFAULTS.publishTimeoutMs)
    // put and the provides each attach a listener per query path to the one signal
    setMaxListeners(96, signal)
    await o.network.dhtPut(resourceKey(record.peerId), bytes, { signal })
    // the category provide makes this node a provider; the address provide
    // only speeds up findByAddress, so it runs beside it and a failure of it
    // is logged (the next publication tries again), not a failed publication
    const byAddress = o.network.provide(await nodeAddressCid(o.swarmId, record.address), { signal }).catch((err: unknown) => {
      this.log.info('address provide failed', { error: err instanceof Error ? err.message : String(err) })
    })
    // the category CID lists at most k providers to a lookup; the shard CID
    // lists this node to lookups that go past that cap (category-shards.ts)
    const shard = await categoryShardCid(o.swarmId, record.category, categoryShardOf(record.peerId))
    await Promise.all([
      o.network.provide(await categoryCid(o.swarmId, record.category), { signal }),
      o.network.provide(shard, { signal })
    ])
    await byAddress
    this.last = record
    this.lastError = undefined
    this.log.info('resource advert published', { category: record.category, seq: record.seq })
    return record
  }

  /**
   * The fresh, verified advert of the provider whose wallet is `address`:
   * the providers of its address CID (anyone can provide any CID: they are
   * only candidates), then each candidate's advert, which must be signed by
   * that wallet and that peer. Undefined when none is.
   */
  async findByAddress (address: string, options: { signal?: AbortSignal } = {}): Promise<ResourceRecord | undefined> {
    const o = this.opts
    const timeout = AbortSignal.timeout(o.lookupTimeoutMs ?? ADVERT_DEFAULTS.lookupTimeoutMs)
    const signal = options.signal !== undefined ? AbortSignal.any([timeout, options.signal]) : timeout
    setMaxListeners(64, signal)
    const cid = await nodeAddressCid(o.swarmId, address)
    const maxAge = o.maxAgeMs ?? Math.max(ADVERT_DEFAULTS.minMaxAgeMs, ADVERT_DEFAULTS.maxAgeFactor * o.intervalMs)
    let tried = 0
    try {
      for await (const p of o.network.findProviders(cid, { signal })) {
        // a few candidates at most: the real one answers, squatters only cost a get each
        if (++tried > ADVERT_DEFAULTS.maxAddressCandidates) break
        try {
          const r = await this.readRecord(p.peerId, signal)
          if (r.address.toLowerCase() === address.toLowerCase() && this.now() - r.timestamp <= maxAge) return r
        } catch (err) {
          this.log.info('address candidate unusable', { peerId: p.peerId, code: isIexecError(err) ? err.code : 'ERROR' })
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err
    }
    return undefined
  }

  /**
   * A provider's verified record: asked of the provider itself (one round
   * trip), else read from the DHT (a walk of the key space; it also holds the
   * records of providers unreachable now). Either way the record must be the
   * provider's own and verify: a provider can only withhold or date its own
   * record. This node's own record is read from memory.
   * @throws NetworkError or ResourceRecordError when neither way gives one
   */
  private async readRecord (peerId: string, signal: AbortSignal): Promise<ResourceRecord> {
    const network = this.opts.network
    if (peerId === network.peerId) {
      if (this.lastBytes !== undefined) return await verifyResourceRecord(this.lastBytes, peerId)
    } else {
      try {
        return await verifyResourceRecord(await this.askRecord(peerId, signal), peerId)
      } catch (err) {
        if (signal.aborted) throw err
        this.log.info('provider did not answer its record: reading the DHT', { peerId, code: isIexecError(err) ? err.code : (err as { name?: string }).name ?? 'ERROR' })
      }
    }
    return await verifyResourceRecord(await network.dhtGet(resourceKey(peerId), { signal }), peerId)
  }

  /** The bytes a provider answers on resourceRecordProtocol, within directFetchMs. */
  private async askRecord (peerId: string, signal: AbortSignal): Promise<Uint8Array> {
    const direct = AbortSignal.any([signal, AbortSignal.timeout(ADVERT_DEFAULTS.directFetchMs)])
    const stream = await this.opts.network.dialProtocol(peerId, resourceRecordProtocol(this.opts.swarmId), { signal: direct })
    try {
      const bytes = (await lpStream(stream, { maxDataLength: RESOURCE_RECORD_MAX_BYTES }).read({ signal: direct })).subarray()
      await stream.close({ signal: direct }).catch(() => {})
      return bytes
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }

  /**
   * Providers of a category found through the DHT, verified, fresh, and
   * carrying every requested tag. Unverifiable or stale records are dropped.
   * The category CID is walked first; only when it lists k providers (the
   * most one findProviders returns) are its shard CIDs walked too.
   */
  async findResources (query: ResourceQueryOptions): Promise<ResourceRecord[]> {
    const o = this.opts
    const lookupMs = o.lookupTimeoutMs ?? ADVERT_DEFAULTS.lookupTimeoutMs
    const lookupEnds = Date.now() + lookupMs
    const timeout = AbortSignal.timeout(lookupMs)
    const signal = query.signal !== undefined ? AbortSignal.any([timeout, query.signal]) : timeout
    const maxProviders = o.maxProviders ?? ADVERT_DEFAULTS.maxProviders
    // one signal bounds the walk and every record get: not a listener leak
    setMaxListeners(4 * maxProviders + 16, signal)
    const cid = await categoryCid(o.swarmId, query.category)
    if (o.network.dhtPeerCount() === 0 && o.network.connectionCount() > 0) {
      // just connected: the routing table fills after identify; a lookup now
      // would ask nobody and wrongly answer "no providers"
      await o.network.waitForDhtPeers(1, ADVERT_DEFAULTS.firstPeerWaitMs, signal)
    }
    // each record get starts as soon as its provider is found, so the gets
    // of the category walk's providers run while the shard walks go on
    const gets: Array<Promise<ResourceRecord | undefined>> = []
    const getRecord = async (peerId: string): Promise<ResourceRecord | undefined> => {
      try {
        return await this.readRecord(peerId, signal)
      } catch (err) {
        this.log.info('provider record unusable', { peerId, code: isIexecError(err) ? err.code : 'ERROR' })
        return undefined
      }
    }
    const walk = await walkCategoryProviders({
      findProviders: (c, opts) => o.network.findProviders(c, opts),
      main: cid,
      shards: await Promise.all(Array.from({ length: CATEGORY_SHARDS }, async (_, s) => await categoryShardCid(o.swarmId, query.category, s))),
      cap: o.network.kBucketSize,
      maxProviders,
      signal,
      // One budget bounds the walks and the gets. A shard walk that finds
      // fewer than k providers runs to the end of its DHT query, the slowest
      // part of a lookup on a large or slow DHT; bounded to a share of the
      // time left, it cannot leave the gets of the providers it found (and
      // of the category walk's) without time to answer.
      shardSignal: () => AbortSignal.timeout(Math.max(0, Math.floor((lookupEnds - Date.now()) * ADVERT_DEFAULTS.shardWalkShare))),
      onProvider: (peerId) => { gets.push(getRecord(peerId)) },
      onShardError: (err) => { this.log.info('category shard walk failed', { error: err instanceof Error ? err.message : String(err) }) }
    })
    if (walk.sharded) this.log.info('category lookup walked its shards', { category: query.category, providers: walk.providers.length })
    const records = await Promise.all(gets)
    const maxAge = o.maxAgeMs ?? Math.max(ADVERT_DEFAULTS.minMaxAgeMs, ADVERT_DEFAULTS.maxAgeFactor * o.intervalMs)
    const now = this.now()
    const wanted = query.tags ?? []
    return records.filter((r): r is ResourceRecord => r !== undefined &&
      r.category === query.category &&
      now - r.timestamp <= maxAge &&
      wanted.every((t) => r.tags.includes(t)))
  }
}
