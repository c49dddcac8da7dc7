/**
 * Persistence: one level store per node (DbController) and typed
 * repositories over key prefixes. Business code uses repositories only.
 *
 * @example
 * ```ts
 * const db = new DbController({ path: dataDirPaths(dir).db })
 * await db.open()
 * const tasks = new Repository(db, 'task', jsonCodec<TaskRecord>())
 * await tasks.put(taskId, record)
 * ```
 */
export { DbController } from './controller.js'
export { KeySetRepository, Repository, jsonCodec, bytesCodec } from './repository.js'
export type { ValueCodec, IterateOptions } from './repository.js'
export { DbError } from './errors.js'
export type { DbErrorCode } from './errors.js'
export type { DbOptions } from './options.js'
export { KEY_SEPARATOR, DEFAULT_ITERATE_LIMIT } from './options.js'
