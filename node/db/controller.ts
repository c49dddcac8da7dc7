import { Level } from 'level'
import { DbError } from './errors.js'
import type { DbOptions } from './options.js'

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
      throw new DbError('DB_OPEN_FAILED', `cannot open the database at ${this.options.path} (is another node using this data dir?)`, { path: this.options.path }, { cause: err })
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
