/**
 * The node's libp2p datastore: level on disk, with the peer store's records
 * (keys under `/peers/`) also kept in memory.
 *
 * Why: libp2p reads the remote's peer record and writes it back on every
 * stream it opens or accepts (the negotiated protocol is merged in), and on
 * every identify. With 50 nodes in one process the idle swarm spent about a
 * tenth of a core in level reads and writes of those records. Reads of a
 * record this process already read or wrote are now answered from memory;
 * every write still goes to level first (a restart finds its peers), so the
 * memory copy is never newer than the disk. Only this process opens the
 * level store (level holds a lock), so nothing else can change a record
 * behind the cache.
 */
import { LevelDatastore } from 'datastore-level'

const PEERS = '/peers/'

type Key = Parameters<LevelDatastore['get']>[0]
type Options = Parameters<LevelDatastore['get']>[1]

export class PeerCachingDatastore extends LevelDatastore {
  private readonly cache = new Map<string, Uint8Array>()
  /** bumped by each write of a key: a read that raced a write does not cache what it read */
  private readonly versions = new Map<string, number>()

  constructor (path: string, private readonly maxEntries: number = 10_000) {
    super(path)
  }

  private bump (k: string): void {
    this.versions.set(k, (this.versions.get(k) ?? 0) + 1)
    if (this.versions.size > this.maxEntries * 2) this.versions.clear()
  }

  private remember (k: string, value: Uint8Array): void {
    this.cache.delete(k)
    this.cache.set(k, value)
    if (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value as string)
  }

  override async put (key: Key, value: Uint8Array, options?: Options): Promise<Key> {
    const k = key.toString()
    if (!k.startsWith(PEERS)) return await super.put(key, value, options)
    this.bump(k)
    this.cache.delete(k)
    const out = await super.put(key, value, options)
    this.bump(k)
    this.remember(k, value)
    return out
  }

  override async get (key: Key, options?: Options): Promise<Uint8Array> {
    const k = key.toString()
    if (!k.startsWith(PEERS)) return await super.get(key, options)
    const hit = this.cache.get(k)
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
    if (this.cache.has(key.toString())) return true
    return await super.has(key, options)
  }

  override async delete (key: Key, options?: Options): Promise<void> {
    const k = key.toString()
    if (k.startsWith(PEERS)) {
      this.bump(k)
      this.cache.delete(k)
    }
    await super.delete(key, options)
    if (k.startsWith(PEERS)) this.bump(k)
  }

  override batch (): ReturnType<LevelDatastore['batch']> {
    const inner = super.batch()
    const touched: string[] = []
    return {
      put: (key: Key, value: Uint8Array) => { touched.push(key.toString()); inner.put(key, value) },
      delete: (key: Key) => { touched.push(key.toString()); inner.delete(key) },
      commit: async (options?: Options) => {
        // a batch is rare here: its keys are simply read from level again
        for (const k of touched) if (k.startsWith(PEERS)) { this.bump(k); this.cache.delete(k) }
        try {
          await inner.commit(options)
        } finally {
          for (const k of touched) if (k.startsWith(PEERS)) { this.bump(k); this.cache.delete(k) }
        }
      }
    }
  }
}
