/**
 * Block retention on workers: a provider that ran a task keeps the blocks it
 * fetched (the encrypted dataset, the app) for a while and provides them in
 * the DHT, so a popular dataset is served by the nodes that used it and not
 * by its owner alone; then it drops them.
 *
 * Kept content is pinned (Helia pins) while retained, so no garbage
 * collection takes it early, and each retention is recorded in the level
 * store (prefix `retained`) so a restart still drops it on time. Content
 * that was already on the node before the task (the node's own datasets,
 * an app it published) is provided but never retained, hence never dropped.
 * A block another pin still holds is never deleted.
 */
import type { CID } from 'multiformats/cid'
import { Repository, jsonCodec } from '../db/index.js'
import type { DbController } from '../db/index.js'
import { parseCid } from './content.js'
import { DATASET_DEFAULTS } from './options.js'
import { BoundedCache } from '../common/bounded-cache.js'

/** The part of Helia retention uses. */
export interface RetentionHelia {
  blockstore: {
    has: (cid: CID, options?: { signal?: AbortSignal }) => Promise<boolean> | boolean
    delete: (cid: CID, options?: { signal?: AbortSignal }) => Promise<void> | void
  }
  pins: {
    add: (cid: CID, options?: { signal?: AbortSignal }) => AsyncGenerator<CID, void, undefined>
    rm: (cid: CID, options?: { signal?: AbortSignal }) => AsyncGenerator<CID, void, undefined>
    isPinned: (cid: CID, options?: { signal?: AbortSignal }) => Promise<boolean>
  }
}

/** One retained content. */
export interface RetainedRecord {
  cid: string
  /** unix ms after which it is dropped */
  until: number
  /** every block of the DAG (so a drop works even if the pin is gone) */
  blocks: string[]
}

function check (v: unknown): RetainedRecord {
  const r = v as RetainedRecord
  if (typeof r !== 'object' || r === null || typeof r.cid !== 'string' || typeof r.until !== 'number' || !Array.isArray(r.blocks)) throw new Error('not a retention record')
  return r
}

export interface BlockRetentionInit {
  helia: RetentionHelia
  db: DbController
  /** announces a CID (best effort; Network.provide bounded by a timeout) */
  provide: (cid: CID) => Promise<void>
  retentionMs?: number
  sweepMs?: number
  /** a content is provided again at most this often (a failed provide is retried at the next use) */
  reprovideMs?: number
  now?: () => number
  log?: (msg: string, context?: Record<string, unknown>) => void
}

/**
 * @example
 * ```ts
 * const retention = new BlockRetention({ helia, db, provide: (cid) => network.provide(cid, { signal: AbortSignal.timeout(10_000) }) })
 * retention.start()
 * const keep = await retention.prepare([appCid, datasetCid]) // before fetching
 * // ... fetch ...
 * await keep() // pins, records, provides what was fetched
 * ```
 */
export class BlockRetention {
  private readonly repo: Repository<RetainedRecord>
  private readonly retentionMs: number
  private readonly sweepMs: number
  private readonly now: () => number
  private readonly reprovideMs: number
  private timer?: NodeJS.Timeout
  private sweeping?: Promise<number>
  /** when each content was last provided (successfully), and the provides in flight */
  private readonly provided = new BoundedCache<string, number>(10_000)
  private readonly providing = new Set<string>()

  constructor (private readonly init: BlockRetentionInit) {
    this.repo = new Repository(init.db, 'retained', jsonCodec(check))
    this.retentionMs = init.retentionMs ?? DATASET_DEFAULTS.retentionMs
    this.sweepMs = init.sweepMs ?? DATASET_DEFAULTS.retentionSweepMs
    this.reprovideMs = init.reprovideMs ?? DATASET_DEFAULTS.retentionReprovideMs
    this.now = init.now ?? Date.now
  }

  start (): void {
    if (this.timer !== undefined) return
    this.timer = setInterval(() => { void this.sweep() }, this.sweepMs)
    this.timer.unref()
    // content whose time ran out while the node was down goes now
    void this.sweep()
  }

  async stop (): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    await this.sweeping?.catch(() => 0)
  }

  /**
   * Call before fetching content for a task: notes which roots the node
   * does not hold yet (or already retains). Returns the function to call
   * once they are fetched: it retains and provides those, and only provides
   * the others. Never throws.
   */
  async prepare (cids: string[]): Promise<() => Promise<void>> {
    const toRetain: string[] = []
    const toProvide: string[] = []
    for (const text of cids) {
      try {
        const cid = parseCid(text)
        const held = await this.init.helia.blockstore.has(cid)
        if (!held || await this.repo.has(cid.toString())) toRetain.push(text)
        else toProvide.push(text)
      } catch {
        // an unparsable CID fails the fetch itself, with its own error
      }
    }
    return async () => {
      for (const c of toRetain) await this.keep(c).catch((err: unknown) => { this.init.log?.('retention failed', { cid: c, error: String(err) }) })
      for (const c of toProvide) this.announce(parseCid(c))
    }
  }

  /** Retains a fetched content for the retention period (extends a retention in progress) and provides it. */
  async keep (text: string): Promise<void> {
    const cid = parseCid(text)
    const key = cid.toString()
    const until = this.now() + this.retentionMs
    const existing = await this.repo.get(key)
    if (existing !== undefined) {
      await this.repo.put(key, { ...existing, until: Math.max(existing.until, until) })
    } else if (!await this.init.helia.pins.isPinned(cid)) {
      const blocks: string[] = []
      // the blocks are local (just fetched): the walk reads the blockstore only
      for await (const b of this.init.helia.pins.add(cid, { signal: AbortSignal.timeout(60_000) })) {
        // a DAG may repeat a block (identical chunks): record it once
        const t = b.toString()
        if (!blocks.includes(t)) blocks.push(t)
      }
      await this.repo.put(key, { cid: key, until, blocks })
      this.init.log?.('content retained', { cid: key, blocks: blocks.length, until })
    }
    // pinned by someone else (the node's own dataset): provided, never dropped.
    // Not awaited: a DHT walk must not hold up the task that fetched the content
    this.announce(cid)
  }

  /** Provides a content unless it was provided within reprovideMs or is being provided; never throws. */
  private announce (cid: CID): void {
    const key = cid.toString()
    const last = this.provided.get(key)
    if (this.providing.has(key) || (last !== undefined && this.now() - last < this.reprovideMs)) return
    this.providing.add(key)
    void this.init.provide(cid)
      .then(() => {
        this.provided.set(key, this.now())
      })
      .catch(() => {})
      .finally(() => { this.providing.delete(key) })
  }

  /** What is retained now. */
  async list (): Promise<RetainedRecord[]> {
    return await this.repo.values()
  }

  /** Drops every retained content whose time ran out; resolves with how many. */
  async sweep (): Promise<number> {
    if (this.sweeping !== undefined) return await this.sweeping
    this.sweeping = this.sweepOnce().finally(() => { this.sweeping = undefined })
    return await this.sweeping
  }

  private async sweepOnce (): Promise<number> {
    const now = this.now()
    let dropped = 0
    for (const r of await this.repo.values()) {
      if (r.until > now) continue
      try {
        await this.drop(r)
        dropped++
      } catch (err) {
        this.init.log?.('dropping retained content failed', { cid: r.cid, error: String(err) })
      }
    }
    return dropped
  }

  private async drop (r: RetainedRecord): Promise<void> {
    const h = this.init.helia
    const root = parseCid(r.cid)
    try {
      for await (const _ of h.pins.rm(root)) { /* unpins block by block */ }
    } catch {
      // the pin is gone already (a crash mid-drop): the recorded blocks still go
    }
    let deleted = 0
    for (const b of r.blocks) {
      const cid = parseCid(b)
      // a block another pin holds (the same bytes in other content) stays. Helia 7's
      // pin counts go wrong for a block repeated within one DAG (it stays marked
      // pinned after the rm): such a block is kept, which wastes a block, never data
      if (await h.pins.isPinned(cid)) continue
      await h.blockstore.delete(cid)
      deleted++
    }
    await this.repo.del(r.cid)
    this.init.log?.('retained content dropped', { cid: r.cid, blocks: deleted })
  }
}
