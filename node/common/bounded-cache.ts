/**
 * A Map with a bound: past `maxSize` entries, the one written longest ago
 * goes first. `set` writes a key as the newest (an existing key moves to
 * the end too), `get` leaves the order alone: the node's caches keep what
 * was last learned, not what was last read.
 *
 * For memory bounds on caches and trackers fed by the network or the
 * chain (compiled modules, peer records, rate-limit buckets, offence
 * counts...): a hostile or long-running input cannot grow them without end.
 *
 * @example
 * ```ts
 * const modules = new BoundedCache<string, WasmModule>(16)
 * modules.set(hash, module) // the 17th distinct hash drops the oldest
 * ```
 */
export class BoundedCache<K, V> implements Iterable<[K, V]> {
  private readonly map = new Map<K, V>()

  /** `maxSize` 0 keeps nothing (a cache switched off). */
  constructor (readonly maxSize: number) {
    if (Number.isNaN(maxSize) || maxSize < 0) throw new RangeError(`maxSize must be 0 or more, got ${maxSize}`)
  }

  get size (): number {
    return this.map.size
  }

  get (key: K): V | undefined {
    return this.map.get(key)
  }

  has (key: K): boolean {
    return this.map.has(key)
  }

  /** Writes `key` as the newest entry, then drops the oldest ones past maxSize. */
  set (key: K, value: V): this {
    this.map.delete(key)
    this.map.set(key, value)
    while (this.map.size > this.maxSize) {
      const oldest = this.map.keys().next()
      if (oldest.done === true) break
      this.map.delete(oldest.value)
    }
    return this
  }

  delete (key: K): boolean {
    return this.map.delete(key)
  }

  clear (): void {
    this.map.clear()
  }

  /** Oldest first. */
  keys (): IterableIterator<K> {
    return this.map.keys()
  }

  values (): IterableIterator<V> {
    return this.map.values()
  }

  entries (): IterableIterator<[K, V]> {
    return this.map.entries()
  }

  [Symbol.iterator] (): IterableIterator<[K, V]> {
    return this.map.entries()
  }
}
