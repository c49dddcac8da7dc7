export interface DbOptions {
  /** folder of the level store (dataDirPaths(dir).db) */
  path: string
}

/**
 * Separator between a repository's prefix and its keys. '!' is what level's
 * sublevels use, and it sorts before every printable key character, so a
 * prefix scan never spills into a neighbouring repository.
 */
export const KEY_SEPARATOR = '!'

/** Upper bound of one iterate() call when the caller gives no limit: every loop is bounded. */
export const DEFAULT_ITERATE_LIMIT = 100_000
