import { Repository, jsonCodec } from '../db/index.js'
import type { DbController } from '../db/index.js'
import { ChainError } from './errors.js'
import { isCursor, type Cursor, type CursorStore } from './cursor-store.js'

function checkCursor (v: unknown): Cursor {
  if (!isCursor(v)) throw new ChainError('CURSOR_STORE_FAILED', 'stored event cursor is invalid', {})
  return v
}

/**
 * An event follower's cursor in the node's level store (node/db), under
 * `chain-cursor!<name>`: one store per node, so the cursor lives and dies
 * with the data it indexes (the orderbook), not in a separate file.
 *
 * @example
 * ```ts
 * const store = new LevelCursorStore(db, 'hub')
 * new EventFollower(client, { ..., cursorStore: store })
 * ```
 */
export class LevelCursorStore implements CursorStore {
  private readonly repo: Repository<Cursor>

  constructor (private readonly db: DbController, readonly name: string) {
    this.repo = new Repository(db, 'chain-cursor', jsonCodec(checkCursor))
  }

  async load (): Promise<Cursor | undefined> {
    try {
      return await this.repo.get(this.name)
    } catch (err) {
      throw new ChainError('CURSOR_STORE_FAILED', `cannot read the event cursor ${this.name} in the database at ${this.db.options.path} (damaged): start the node once with --resync-events to read the hub's events again from its deployment block`, { name: this.name, path: this.db.options.path }, { cause: err })
    }
  }

  /** Forgets the cursor: the follower starts again from its `fromBlock` (start --resync-events). */
  async clear (): Promise<void> {
    try {
      await this.repo.del(this.name)
    } catch (err) {
      throw new ChainError('CURSOR_STORE_FAILED', `cannot remove the event cursor ${this.name}`, { name: this.name }, { cause: err })
    }
  }

  async save (cursor: Cursor): Promise<void> {
    try {
      await this.repo.put(this.name, checkCursor(cursor))
    } catch (err) {
      throw new ChainError('CURSOR_STORE_FAILED', `cannot write the event cursor ${this.name}`, { name: this.name }, { cause: err })
    }
  }
}
