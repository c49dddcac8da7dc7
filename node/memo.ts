/**
 * One read per key, shared by concurrent callers: the promise is kept in
 * `map`, a failed read is forgotten (the next caller reads again), and the
 * map is emptied when it reaches `maxEntries` (a bound, not an LRU). For
 * facts that never change once read (a registered app, a deal's fields) or
 * that may be a little stale (a score within one scheduler tick).
 */
export async function memoAsync<T> (map: Map<string, Promise<T>>, key: string, read: () => Promise<T>, maxEntries = 10_000): Promise<T> {
  let p = map.get(key)
  if (p === undefined) {
    p = read()
    if (map.size >= maxEntries) map.clear()
    map.set(key, p)
    const kept = p
    kept.catch(() => { if (map.get(key) === kept) map.delete(key) })
  }
  return await p
}
