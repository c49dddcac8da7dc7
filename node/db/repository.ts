import { DbError } from './errors.js'
import { DEFAULT_ITERATE_LIMIT, KEY_SEPARATOR } from './options.js'
import type { DbController } from './controller.js'

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
      throw new DbError('DB_BAD_VALUE', `value at ${this.prefix}/${key} does not decode`, { prefix: this.prefix, key }, { cause: err })
    }
  }

  /** The value, or undefined when absent. */
  async get (key: string): Promise<T | undefined> {
    const bytes = await this.db.store().get(this.fullKey(key))
    return bytes === undefined ? undefined : this.decode(key, bytes)
  }

  async has (key: string): Promise<boolean> {
    return (await this.db.store().get(this.fullKey(key))) !== undefined
  }

  async put (key: string, value: T): Promise<void> {
    await this.db.store().put(this.fullKey(key), this.codec.encode(value))
  }

  async del (key: string): Promise<void> {
    await this.db.store().del(this.fullKey(key))
  }

  /** Several writes applied together or not at all. */
  async batch (ops: Array<{ type: 'put', key: string, value: T } | { type: 'del', key: string }>): Promise<void> {
    await this.db.store().batch(ops.map((op) => op.type === 'put'
      ? { type: 'put' as const, key: this.fullKey(op.key), value: this.codec.encode(op.value) }
      : { type: 'del' as const, key: this.fullKey(op.key) }))
  }

  /** Entries in key order, bounded by `limit`. */
  async * entries (options: IterateOptions = {}): AsyncGenerator<{ key: string, value: T }> {
    const start = this.keyPrefix + (options.prefix ?? '')
    // '\xff' sorts after any utf8 key character we write
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

  /** All values (bounded like entries()). */
  async values (options: IterateOptions = {}): Promise<T[]> {
    const out: T[] = []
    for await (const e of this.entries(options)) out.push(e.value)
    return out
  }
}
