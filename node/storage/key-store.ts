/**
 * Dataset keys in the owner's data dir: one file per dataset, mode 0600 in
 * a 0700 folder, written atomically (temp file + rename). Keys never leave
 * this store except sealed to an authorized worker (key release); they are
 * never put in gossip, the DHT, Helia, the chain or a log line, and the
 * `DatasetKey` object redacts itself when printed or serialized.
 *
 * A key is filed under the dataset's id: its registry address once known,
 * or its CID before registration (the publish flow encrypts and adds the
 * content before the hub gives the dataset an address).
 */
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, readFile, readdir, rm } from 'node:fs/promises'
import { writeFileDurable } from '../common/durable-file.js'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { CONTENT_KEY_BYTES } from './chunked-cipher.js'
import { StorageError } from './errors.js'

const ID_PATTERN = /^(0x[0-9a-fA-F]{40}|[A-Za-z0-9]{16,128})$/
const FILE_SUFFIX = '.key'

/** A dataset's content key. Prints and serializes as `[redacted]`. */
export class DatasetKey {
  readonly #bytes: Uint8Array

  constructor (bytes: Uint8Array) {
    if (!(bytes instanceof Uint8Array) || bytes.byteLength !== CONTENT_KEY_BYTES) {
      throw new StorageError('STORAGE_INVALID_ARGUMENT', `a dataset key is ${CONTENT_KEY_BYTES} bytes`)
    }
    this.#bytes = Uint8Array.from(bytes)
  }

  /** A copy of the raw key; the caller should `fill(0)` it when done. */
  bytes (): Uint8Array {
    return Uint8Array.from(this.#bytes)
  }

  toString (): string {
    return 'DatasetKey([redacted])'
  }

  toJSON (): string {
    return '[redacted]'
  }

  [inspect.custom] (): string {
    return 'DatasetKey([redacted])'
  }
}

/** Where the owner's node keeps dataset keys; `decideKeyRelease` reads it. */
export interface KeyStore {
  get: (dataset: string) => Promise<DatasetKey | undefined>
  put: (dataset: string, key: DatasetKey) => Promise<void>
  delete: (dataset: string) => Promise<boolean>
  list: () => Promise<string[]>
}

function normalizeId (id: string): string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw new StorageError('STORAGE_INVALID_ARGUMENT', 'a dataset id is an address (0x + 40 hex) or a CID', { id: String(id).slice(0, 80) })
  }
  // addresses are case-insensitive (checksum casing varies); CIDs are not
  return id.startsWith('0x') ? id.toLowerCase() : id
}

/** A `KeyStore` of files in one folder (e.g. `<dataDir>/dataset-keys`). */
export class FileKeyStore implements KeyStore {
  private readonly dir: string

  constructor (dir: string) {
    this.dir = dir
  }

  private async ensureDir (): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    // mkdir's mode is masked by the umask and ignored for an existing folder
    await chmod(this.dir, 0o700)
  }

  private file (id: string): string {
    return join(this.dir, normalizeId(id) + FILE_SUFFIX)
  }

  async get (dataset: string): Promise<DatasetKey | undefined> {
    const file = this.file(dataset)
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new StorageError('STORAGE_KEY_CORRUPT', 'cannot read a dataset key file', { dataset }, { cause: err })
    }
    const hex = text.trim()
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new StorageError('STORAGE_KEY_CORRUPT', 'a dataset key file is malformed', { dataset })
    return new DatasetKey(Buffer.from(hex, 'hex'))
  }

  async put (dataset: string, key: DatasetKey): Promise<void> {
    const target = this.file(dataset)
    await this.ensureDir()
    const tmp = `${target}.${randomBytes(6).toString('hex')}.tmp`
    const raw = key.bytes()
    try {
      // fsynced before the rename: a crash leaves the old key or the new one, never an empty file
      await writeFileDurable(target, Buffer.from(raw).toString('hex') + '\n', { mode: 0o600, tmp, exclusive: true })
    } catch (err) {
      await rm(tmp, { force: true })
      throw err
    } finally {
      raw.fill(0)
    }
  }

  async delete (dataset: string): Promise<boolean> {
    const file = this.file(dataset)
    try {
      await rm(file)
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw err
    }
  }

  async list (): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((f) => f.endsWith(FILE_SUFFIX)).map((f) => f.slice(0, -FILE_SUFFIX.length)).sort()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
  }
}

/** A `KeyStore` in memory (tests, and a node that must not persist keys). */
export class MemoryKeyStore implements KeyStore {
  private readonly keys = new Map<string, DatasetKey>()

  async get (dataset: string): Promise<DatasetKey | undefined> {
    return this.keys.get(normalizeId(dataset))
  }

  async put (dataset: string, key: DatasetKey): Promise<void> {
    this.keys.set(normalizeId(dataset), key)
  }

  async delete (dataset: string): Promise<boolean> {
    return this.keys.delete(normalizeId(dataset))
  }

  async list (): Promise<string[]> {
    return [...this.keys.keys()].sort()
  }
}
