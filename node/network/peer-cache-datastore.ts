/**
 * The node's libp2p datastore: level on disk, with the peer store's records
 * (keys under `/peers/`) kept in memory and written behind.
 *
 * Why: libp2p reads the remote's peer record and writes it back on every
 * stream it opens or accepts (the negotiated protocol is merged in, and the
 * record's `updated` time always changes), and on every identify; a new
 * stream waits for that write. With 50 nodes in one process the idle swarm
 * spent about a tenth of a core in level reads and writes of those records,
 * and a bag of tasks 5 % of its main thread.
 *
 * Reads of a record this process already read or wrote are answered from
 * memory. Writes of records go to memory at once and reach level in one
 * batch per FLUSH_MS (and on close): a peer record is a cache of what the
 * network told us, so a crash loses at most the last second of updates,
 * which the next identify re-learns; a clean stop loses nothing. Deletes,
 * batches and queries first wait for the writes pending before them, so
 * level never sees an older write after a newer one and a query lists every
 * record. Only this process opens the level store (level holds a lock), so
 * nothing else can change a record behind the cache.
 */
import { LevelDatastore } from 'datastore-level'
import type { Pair } from 'interface-datastore'
import { BoundedCache } from '../common/bounded-cache.js'

const PEERS = '/peers/'

/** How long a peer record's write may wait in memory before it reaches level. */
export const FLUSH_MS = 1_000

type Key = Parameters<LevelDatastore['get']>[0]
type Options = Parameters<LevelDatastore['get']>[1]
type Query = Parameters<LevelDatastore['query']>[0]
type KeyQuery = Parameters<LevelDatastore['queryKeys']>[0]

export class PeerCachingDatastore extends LevelDatastore {
  private readonly cache: BoundedCache<string, Uint8Array>
  /** bumped by each write of a key: a read that raced a write does not cache what it read */
  private readonly versions = new Map<string, number>()
  /** peer records written to memory, not yet to level (the newest value of each key) */
  private pending = new Map<string, { key: Key, value: Uint8Array }>()
  private flushTimer?: ReturnType<typeof setTimeout>
  /** the flush writing to level now, and the records it writes */
  private flushing?: Promise<void>
  private inFlight?: Map<string, { key: Key, value: Uint8Array }>
  /** why the last flush failed (its records stay pending for the next one) */
  lastFlushError?: Error

  constructor (path: string, private readonly maxEntries: number = 10_000) {
    super(path)
    this.cache = new BoundedCache(maxEntries)
  }

  private bump (k: string): void {
    this.versions.set(k, (this.versions.get(k) ?? 0) + 1)
    if (this.versions.size > this.maxEntries * 2) this.versions.clear()
  }

  private remember (k: string, value: Uint8Array): void {
    this.cache.set(k, value)
  }

  /** Peer records written to memory and not yet to level (waiting, or in the batch being written). */
  get pendingWrites (): number {
    const inFlight = this.inFlight
    if (inFlight === undefined) return this.pending.size
    let n = inFlight.size
    for (const k of this.pending.keys()) if (!inFlight.has(k)) n++
    return n
  }

  /**
   * Writes every pending peer record to level (one batch), after any flush
   * already running. Records that fail stay pending (unless written again
   * meanwhile) and the error is thrown.
   */
  async flush (): Promise<void> {
    if (this.flushTimer !== undefined) {
      clearTimeout(this.flushTimer)
      this.flushTimer = undefined
    }
    await this.afterFlush()
    if (this.pending.size === 0) return
    const taken = this.pending
    this.pending = new Map()
    this.inFlight = taken
    const b = super.batch()
    for (const { key, value } of taken.values()) b.put(key, value)
    const run = (async () => {
      try {
        await b.commit()
        this.lastFlushError = undefined
      } catch (err) {
        this.lastFlushError = err instanceof Error ? err : new Error(String(err))
        // back in the queue, behind nothing newer: a later put of a key wins,
        // and a key deleted meanwhile has left `taken` (forget)
        for (const [k, v] of taken) if (!this.pending.has(k)) this.pending.set(k, v)
        this.schedule()
        throw err
      }
    })()
    this.flushing = run
    try {
      await run
    } finally {
      if (this.flushing === run) {
        this.flushing = undefined
        this.inFlight = undefined
      }
    }
  }

  /** Waits for the flush in flight (and any that follows at once), whatever its outcome. */
  private async afterFlush (): Promise<void> {
    while (this.flushing !== undefined) await this.flushing.catch(() => {})
  }

  /** A record deleted or replaced by a batch: nothing of it still waiting may reach level after. */
  private forget (k: string): void {
    this.bump(k)
    this.cache.delete(k)
    this.pending.delete(k)
    // a failed flush puts its records back: not this one
    this.inFlight?.delete(k)
  }

  private schedule (): void {
    if (this.flushTimer !== undefined || this.status !== 'open') return
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined
      // a failure is kept in lastFlushError; the failed flush set the next timer
      this.flush().catch(() => {})
    }, FLUSH_MS)
    this.flushTimer.unref?.()
  }

  /** Whether the level store is open (LevelDatastore keeps its db's status). */
  private get status (): string {
    return (this as unknown as { db: { status: string } }).db.status
  }

  override async put (key: Key, value: Uint8Array, options?: Options): Promise<Key> {
    const k = key.toString()
    // a closed store refuses the write as level does
    if (!k.startsWith(PEERS) || this.status !== 'open') return await super.put(key, value, options)
    options?.signal?.throwIfAborted()
    this.bump(k)
    this.remember(k, value)
    this.pending.set(k, { key, value })
    this.schedule()
    return key
  }

  override async get (key: Key, options?: Options): Promise<Uint8Array> {
    const k = key.toString()
    if (!k.startsWith(PEERS)) return await super.get(key, options)
    const hit = this.cache.get(k) ?? this.pending.get(k)?.value
    if (hit !== undefined) {
      options?.signal?.throwIfAborted()
      return hit
    }
    const version = this.versions.get(k)
    const value = await super.get(key, options)
    if (this.versions.get(k) === version) this.remember(k, value)
    return value
  }

  override async has (key: Key, options?: Options): Promise<boolean> {
    const k = key.toString()
    if (this.cache.has(k) || this.pending.has(k)) return true
    return await super.has(key, options)
  }

  override async delete (key: Key, options?: Options): Promise<void> {
    const k = key.toString()
    if (!k.startsWith(PEERS)) return await super.delete(key, options)
    this.forget(k)
    // a flush in flight may hold an older put of this key: the delete lands after it
    await this.afterFlush()
    await super.delete(key, options)
    this.bump(k)
  }

  override batch (): ReturnType<LevelDatastore['batch']> {
    const inner = super.batch()
    const touched: string[] = []
    return {
      put: (key: Key, value: Uint8Array) => { touched.push(key.toString()); inner.put(key, value) },
      delete: (key: Key) => { touched.push(key.toString()); inner.delete(key) },
      commit: async (options?: Options) => {
        // a batch is rare here: its keys are simply read from level again,
        // and nothing pending of them may land after it
        const drop = (): void => {
          for (const k of touched) if (k.startsWith(PEERS)) this.forget(k)
        }
        drop()
        await this.afterFlush()
        try {
          await inner.commit(options)
        } finally {
          drop()
        }
      }
    }
  }

  override async * query (q: Query, options?: Options): AsyncGenerator<Pair> {
    await this.flush()
    yield * super.query(q, options)
  }

  override async * queryKeys (q: KeyQuery, options?: Options): AsyncGenerator<Key> {
    await this.flush()
    yield * super.queryKeys(q, options)
  }

  /** Writes the pending records, then closes; a failed last write is kept in lastFlushError (the store closes anyway). */
  override async close (): Promise<void> {
    if (this.status === 'open') await this.flush().catch(() => {})
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    await super.close()
  }
}
