import { DbError } from './errors.js'
import { DEFAULT_ITERATE_LIMIT, KEY_SEPARATOR } from './options.js'
import { DB_FIX, type DbController } from './controller.js'

/** How a repository turns values into bytes and back. */
export interface ValueCodec<T> {
  encode: (value: T) => Uint8Array
  /** throws on bytes that are not a T */
  decode: (bytes: Uint8Array) => T
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** JSON values; `check` validates the decoded shape (a repository never returns an unchecked object). */
export function jsonCodec<T> (check?: (value: unknown) => T): ValueCodec<T> {
  return {
    encode: (value) => encoder.encode(JSON.stringify(value)),
    decode: (bytes) => {
      const parsed: unknown = JSON.parse(decoder.decode(bytes))
      return check !== undefined ? check(parsed) : parsed as T
    }
  }
}

/** Values stored as they are. */
export const bytesCodec: ValueCodec<Uint8Array> = {
  encode: (value) => value,
  decode: (bytes) => bytes
}

export interface IterateOptions {
  /** only keys starting with this (within the repository) */
  prefix?: string
  /** at most this many entries (default DEFAULT_ITERATE_LIMIT) */
  limit?: number
  reverse?: boolean
}

function checkKeyPart (part: string, what: string): void {
  if (part.length === 0 || part.includes(KEY_SEPARATOR)) {
    throw new DbError('DB_BAD_KEY', `${what} must be non-empty and must not contain '${KEY_SEPARATOR}'`, { [what]: part })
  }
}

/**
 * A typed table: every key lives under `<prefix>!`. Subclass it per kind of
 * record (orders, tasks, contributions...) and give it a codec.
 */
export class Repository<T> {
  private readonly keyPrefix: string

  constructor (private readonly db: DbController, readonly prefix: string, private readonly codec: ValueCodec<T>) {
    checkKeyPart(prefix, 'prefix')
    this.keyPrefix = prefix + KEY_SEPARATOR
  }

  private fullKey (key: string): string {
    if (key.length === 0) throw new DbError('DB_BAD_KEY', 'a key must be non-empty')
    return this.keyPrefix + key
  }

  private decode (key: string, bytes: Uint8Array): T {
    try {
      // level hands back Buffers; callers get plain Uint8Arrays
      return this.codec.decode(Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes)
    } catch (err) {
      throw new DbError('DB_BAD_VALUE', `value at ${this.prefix}/${key} in the database at ${this.db.options.path} does not decode: ${DB_FIX}`, { prefix: this.prefix, key, path: this.db.options.path }, { cause: err })
    }
  }

  /** The value, or undefined when absent. */
  async get (key: string): Promise<T | undefined> {
    this.db.count('get')
    const bytes = await this.db.store().get(this.fullKey(key))
    return bytes === undefined ? undefined : this.decode(key, bytes)
  }

  async has (key: string): Promise<boolean> {
    this.db.count('get')
    return (await this.db.store().get(this.fullKey(key))) !== undefined
  }

  async put (key: string, value: T): Promise<void> {
    this.db.count('put')
    await this.db.store().put(this.fullKey(key), this.codec.encode(value))
  }

  async del (key: string): Promise<void> {
    this.db.count('del')
    await this.db.store().del(this.fullKey(key))
  }

  /** Several writes applied together or not at all. */
  async batch (ops: Array<{ type: 'put', key: string, value: T } | { type: 'del', key: string }>): Promise<void> {
    this.db.count('batch')
    await this.db.store().batch(ops.map((op) => op.type === 'put'
      ? { type: 'put' as const, key: this.fullKey(op.key), value: this.codec.encode(op.value) }
      : { type: 'del' as const, key: this.fullKey(op.key) }))
  }

  /** Entries in key order, bounded by `limit`. */
  async * entries (options: IterateOptions = {}): AsyncGenerator<{ key: string, value: T }> {
    const start = this.keyPrefix + (options.prefix ?? '')
    // '\xff' sorts after any utf8 key character we write
    this.db.count('iterate')
    const it = this.db.store().iterator({ gte: start, lt: start + '\xff', limit: options.limit ?? DEFAULT_ITERATE_LIMIT, reverse: options.reverse ?? false })
    try {
      for await (const [fullKey, bytes] of it) {
        const key = fullKey.slice(this.keyPrefix.length)
        yield { key, value: this.decode(key, bytes) }
      }
    } finally {
      await it.close()
    }
  }

  /** Every key, in order (not bounded: for an index of the table's keys). */
  async * keys (options: { prefix?: string } = {}): AsyncGenerator<string> {
    const start = this.keyPrefix + (options.prefix ?? '')
    this.db.count('iterate')
    const it = this.db.store().keys({ gte: start, lt: start + '\xff' })
    try {
      for await (const fullKey of it) yield fullKey.slice(this.keyPrefix.length)
    } finally {
      await it.close()
    }
  }

  /** All values (bounded like entries()). */
  async values (options: IterateOptions = {}): Promise<T[]> {
    const out: T[] = []
    for await (const e of this.entries(options)) out.push(e.value)
    return out
  }
}

/**
 * A Repository that also holds the set of its keys in memory (read once, on
 * first use), so that a get or has of a key it does not hold answers without
 * a level read.
 *
 * Why: the market's validators look every new order up in tables where it
 * is not (tombstones, consumed volumes, the book itself). Each such read
 * went to level's thread pool and back, and each return to the event loop
 * let the rest of the swarm's queued work run first: with 50 nodes in one
 * process, a request reached its first bidder ~170 ms after its publication
 * even with the swarm idle. Keys present still read level (the values are
 * not kept).
 *
 * The set may hold a key level does not (a put in flight, a delete that
 * failed): that costs a read. It never lacks a key level holds: a put adds
 * its key before writing, a delete removes it only after level confirms and
 * only if no later write of the key has started. Only this instance may
 * write its prefix.
 */
export class KeySetRepository<T> extends Repository<T> {
  private readonly known = new Set<string>()
  private loaded = false
  private loading?: Promise<void>
  /** ticket of the latest write in flight, per key */
  private readonly lastWrite = new Map<string, number>()
  private tickets = 0

  /** Reads every key once; later calls return at once. */
  async load (): Promise<void> {
    if (this.loaded) return
    this.loading ??= (async () => {
      for await (const key of this.keys()) this.known.add(key)
      this.loaded = true
    })()
    try {
      await this.loading
    } catch (err) {
      // the next call tries again
      this.loading = undefined
      throw err
    }
  }

  /** Keys held in memory (for tests and metrics). */
  get size (): number {
    return this.known.size
  }

  override async get (key: string): Promise<T | undefined> {
    if (!this.loaded) await this.load()
    if (!this.known.has(key)) return undefined
    return await super.get(key)
  }

  override async has (key: string): Promise<boolean> {
    if (!this.loaded) await this.load()
    if (!this.known.has(key)) return false
    return await super.has(key)
  }

  private ticket (key: string): number {
    const t = ++this.tickets
    this.lastWrite.set(key, t)
    return t
  }

  /** After a write of `key` with ticket `t`: forget the ticket; `deleted`: drop the key unless a later write started. */
  private settle (key: string, t: number, deleted: boolean): void {
    if (this.lastWrite.get(key) !== t) return
    this.lastWrite.delete(key)
    if (deleted) this.known.delete(key)
  }

  override async put (key: string, value: T): Promise<void> {
    const t = this.ticket(key)
    this.known.add(key)
    try {
      await super.put(key, value)
    } finally {
      this.settle(key, t, false)
    }
  }

  override async del (key: string): Promise<void> {
    const t = this.ticket(key)
    let done = false
    try {
      await super.del(key)
      done = true
    } finally {
      this.settle(key, t, done)
    }
  }

  override async batch (ops: Array<{ type: 'put', key: string, value: T } | { type: 'del', key: string }>): Promise<void> {
    const tickets = ops.map((op) => this.ticket(op.key))
    for (const op of ops) if (op.type === 'put') this.known.add(op.key)
    let done = false
    try {
      await super.batch(ops)
      done = true
    } finally {
      // a key both put and deleted in one batch: level applies the ops in order, the last one counts
      ops.forEach((op, i) => { this.settle(op.key, tickets[i], done && op.type === 'del') })
    }
  }
}
