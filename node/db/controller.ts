import { Level } from 'level'
import { DbError } from './errors.js'
import type { DbOptions } from './options.js'

/**
 * What an operator does about a damaged store. An empty store reads the hub's
 * events again from the hub's deployment block (orderbook, deals), but a
 * worker's and a scheduler's task records are gone: a commit of this node
 * waiting for its reveal is then never revealed (its stake is lost).
 */
export const DB_FIX = 'restore it from a backup, or move it away and start again: the node reads the hub\'s events again, but forgets its task records (a commit not yet revealed loses its stake)'

/** The raw store under the repositories: strings as keys, bytes as values. */
export type RawStore = Level<string, Uint8Array>

/**
 * Owns the one `level` instance of a node. Repositories get their store from
 * here; nothing else in the node opens level.
 */
/** The kinds of level operation the repositories count (metrics). */
export type DbOp = 'get' | 'put' | 'del' | 'batch' | 'iterate'

export class DbController {
  private readonly db: RawStore
  private opened = false
  /** operations since start, by kind (a batch counts once) */
  readonly ops: Record<DbOp, number> = { get: 0, put: 0, del: 0, batch: 0, iterate: 0 }

  constructor (readonly options: DbOptions) {
    this.db = new Level<string, Uint8Array>(options.path, { keyEncoding: 'utf8', valueEncoding: 'view' })
  }

  async open (): Promise<void> {
    if (this.opened) return
    try {
      await this.db.open()
    } catch (err) {
      const path = this.options.path
      const cause = (err as { cause?: { code?: string, message?: string } }).cause
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new DbError('DB_OPEN_FAILED', `cannot open the database at ${path}: another process holds its lock (is another node using this data dir?)`, { path }, { cause: err })
      }
      if (cause?.code === 'LEVEL_CORRUPTION' || cause?.code === 'LEVEL_IO_ERROR') {
        // a damaged store (a truncated CURRENT, a missing table) never opens half-read: the node would act on records it lost
        throw new DbError('DB_CORRUPT', `the database at ${path} is damaged (${cause.message ?? cause.code}): ${DB_FIX}`, { path }, { cause: err })
      }
      throw new DbError('DB_OPEN_FAILED', `cannot open the database at ${path}: ${cause?.message ?? String(err)}`, { path }, { cause: err })
    }
    this.opened = true
  }

  async close (): Promise<void> {
    if (!this.opened) return
    this.opened = false
    await this.db.close()
  }

  get isOpen (): boolean {
    return this.opened
  }

  count (op: DbOp): void {
    this.ops[op]++
  }

  /** The raw store, for repositories. @throws DbError DB_CLOSED */
  store (): RawStore {
    if (!this.opened) throw new DbError('DB_CLOSED', 'the database is not open')
    return this.db
  }
}
