import { BoundedCache } from './bounded-cache.js'

/**
 * One read per key, shared by concurrent callers: the promise is kept in
 * `map`, a failed read is forgotten (the next caller reads again). A plain
 * Map is emptied when it reaches `maxEntries` (a bound, not an LRU); a
 * BoundedCache keeps its own bound (the oldest entry goes first). For
 * facts that never change once read (a registered app, a deal's fields) or
 * that may be a little stale (a score within one scheduler tick).
 */
export async function memoAsync<T> (map: Map<string, Promise<T>> | BoundedCache<string, Promise<T>>, key: string, read: () => Promise<T>, maxEntries = 10_000): Promise<T> {
  let p = map.get(key)
  if (p === undefined) {
    p = read()
    if (!(map instanceof BoundedCache) && map.size >= maxEntries) map.clear()
    map.set(key, p)
    const kept = p
    kept.catch(() => { if (map.get(key) === kept) map.delete(key) })
  }
  return await p
}

/**
 * A value read again once it is older than `maxAgeMs`; concurrent callers
 * share one read, and a failed read is not kept. For facts that may be a
 * little stale: the latest block's time, fee data, a worker's score.
 */
export class FreshValue<T> {
  private read: { value: Promise<T>, at: number } | undefined

  constructor (private readonly maxAgeMs: number, private readonly load: () => Promise<T>) {}

  async get (): Promise<T> {
    const r = this.read
    if (r !== undefined && Date.now() - r.at < this.maxAgeMs) return await r.value
    const value = this.load()
    const entry = { value, at: Date.now() }
    this.read = entry
    value.catch(() => { if (this.read === entry) this.read = undefined })
    return await value
  }

  /** The next `get` reads again (the value is known to have changed). */
  forget (): void {
    this.read = undefined
  }
}
