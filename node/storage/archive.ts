/**
 * A deterministic ustar archive of a folder, written and read as streams.
 *
 * Datasets that are folders and result folders travel as one archive. The
 * same folder must give the same bytes on every host (its CID and checksum
 * depend on it), so entries are sorted by path (byte order of UTF-8) and
 * every header has mtime 0, uid/gid 0, empty user and group names, mode
 * 0644 for files and 0755 for folders. Symlinks and special files are
 * refused on both sides: a link inside a dataset or result could point at
 * anything on the host that unpacks it.
 *
 * Unpacking refuses entries that would land outside the target (absolute
 * paths, `..` components), link entries, duplicates, and archives beyond a
 * byte or entry bound, each with a typed error.
 */
import { createReadStream, lstatSync, readdirSync, readFileSync } from 'node:fs'
import { lstat, mkdir, open, readdir, readFile } from 'node:fs/promises'
import { isAbsolute, join, relative, resolve, sep } from 'node:path'
import { ByteReader } from './byte-reader.js'
import { StorageError } from './errors.js'
import { ARCHIVE_DEFAULTS } from './options.js'
import type { UnpackOptions } from './options.js'

const BLOCK = 512
const MAX_OCTAL_SIZE = 8 ** 11 - 1
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

interface Entry { path: string, abs: string, kind: 'file' | 'dir', size: number }

/** Entries in archive order: by the bytes of their UTF-8 paths. */
const byPath = (a: { path: string }, b: { path: string }): number => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path))

/**
 * An entry of a folder read into memory (readTreeSync): its path relative
 * to the folder ('/'-separated), its kind, its size and, for a file, its bytes.
 */
export interface TreeEntry {
  path: string
  kind: 'file' | 'dir'
  size: number
  content?: Uint8Array
}

/** What readTreeSync found. */
export interface ReadTree {
  /** bytes of all files together */
  bytes: number
  /** the first entry that is neither a regular file nor a folder (a link, a device...), if any: nothing was read then */
  odd?: string
  /** the entries in archive order, with their contents; absent when the files hold more than maxBytes (or there is an odd entry) */
  entries?: TreeEntry[]
}

/** Lists a folder recursively (lstat, so symlinks are seen as such); sorted by path bytes. */
async function listEntries (root: string): Promise<Entry[]> {
  const out: Entry[] = []
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const abs = join(dir, name)
      const st = await lstat(abs)
      const path = relative(root, abs).split(sep).join('/')
      if (st.isDirectory()) {
        out.push({ path, abs, kind: 'dir', size: 0 })
        await walk(abs)
      } else if (st.isFile()) {
        out.push({ path, abs, kind: 'file', size: st.size })
      } else {
        throw new StorageError('STORAGE_ARCHIVE_UNSUPPORTED_ENTRY', `cannot archive ${path}: only regular files and folders are allowed`, { path })
      }
    }
  }
  const st = await lstat(root)
  if (!st.isDirectory()) throw new StorageError('STORAGE_INVALID_ARGUMENT', `${root} is not a folder`)
  await walk(root)
  return out.sort(byPath)
}

/**
 * Reads a folder whole, synchronously: for a worker thread that has just
 * run an app into it (a sync call there blocks nobody, and is a fraction of
 * the cost of a promise-based one on the main thread). Stops at the first
 * link or special file, or past `maxEntries` (reported as odd); reads the
 * files only when together they hold at most `maxBytes`. The entries are
 * what packTree and the result digest are computed from.
 */
export function readTreeSync (root: string, maxBytes: number, maxEntries = ARCHIVE_DEFAULTS.maxEntries): ReadTree {
  const found: Array<TreeEntry & { abs: string }> = []
  let bytes = 0
  const stack = ['']
  while (stack.length > 0) {
    const rel = stack.pop() as string
    for (const name of readdirSync(rel === '' ? root : join(root, rel))) {
      const path = rel === '' ? name : `${rel}/${name}`
      if (found.length >= maxEntries) return { bytes, odd: `${rel}/… (more than ${maxEntries} entries)` }
      const abs = join(root, path)
      const st = lstatSync(abs)
      if (st.isDirectory()) {
        found.push({ path, abs, kind: 'dir', size: 0 })
        stack.push(path)
      } else if (st.isFile()) {
        found.push({ path, abs, kind: 'file', size: st.size })
        bytes += st.size
      } else {
        return { bytes, odd: path }
      }
    }
  }
  if (bytes > maxBytes) return { bytes }
  const entries: TreeEntry[] = found.sort(byPath).map(({ path, abs, kind, size }) => {
    if (kind === 'dir') return { path, kind, size }
    const content = readFileSync(abs)
    // a file that changed size since it was listed (nothing else writes there once the app ended)
    if (content.byteLength !== size) throw new StorageError('STORAGE_ARCHIVE_FILE_CHANGED', `${path} changed size while being read`, { path })
    return { path, kind, size, content }
  })
  return { bytes, entries }
}

function writeOctal (block: Uint8Array, offset: number, length: number, value: number): void {
  const digits = value.toString(8).padStart(length - 1, '0')
  block.set(encoder.encode(digits), offset)
  block[offset + length - 1] = 0
}

/** Splits a path into ustar's prefix (155) and name (100) fields. */
function splitName (path: string): { name: Uint8Array, prefix: Uint8Array } {
  const bytes = encoder.encode(path)
  if (bytes.byteLength <= 100) return { name: bytes, prefix: new Uint8Array(0) }
  // the split must fall on a '/' with the name part <= 100 and the prefix <= 155
  for (let i = bytes.byteLength - 1; i > 0; i--) {
    if (bytes[i] !== 0x2f) continue
    const prefix = bytes.subarray(0, i)
    const name = bytes.subarray(i + 1)
    if (name.byteLength > 100) break
    if (prefix.byteLength <= 155 && name.byteLength > 0) return { name, prefix }
  }
  throw new StorageError('STORAGE_ARCHIVE_NAME_TOO_LONG', `path too long for ustar: ${path}`, { path })
}

function header (entry: Pick<TreeEntry, 'path' | 'kind' | 'size'>): Uint8Array {
  const block = new Uint8Array(BLOCK)
  const { name, prefix } = splitName(entry.kind === 'dir' ? `${entry.path}/` : entry.path)
  block.set(name, 0)
  writeOctal(block, 100, 8, entry.kind === 'dir' ? 0o755 : 0o644)
  writeOctal(block, 108, 8, 0)
  writeOctal(block, 116, 8, 0)
  writeOctal(block, 124, 12, entry.size)
  writeOctal(block, 136, 12, 0)
  block[156] = entry.kind === 'dir' ? 0x35 : 0x30
  block.set(encoder.encode('ustar\0'), 257)
  block.set(encoder.encode('00'), 263)
  writeOctal(block, 329, 8, 0)
  writeOctal(block, 337, 8, 0)
  block.set(prefix, 345)
  // checksum: sum of the header bytes with the checksum field read as spaces
  block.fill(0x20, 148, 156)
  let sum = 0
  for (const b of block) sum += b
  writeOctal(block, 148, 7, sum)
  block[155] = 0x20
  return block
}

/** Options of `packFolder`. */
export interface PackOptions {
  /** called with the file bytes archived so far */
  onProgress?: (bytesSoFar: number) => void
}

/**
 * Packs a folder into a deterministic ustar stream. Reads one file at a time
 * in 64 KiB pieces. Throws STORAGE_ARCHIVE_UNSUPPORTED_ENTRY on a symlink or
 * special file, STORAGE_ARCHIVE_FILE_CHANGED if a file changes size meanwhile.
 */
export async function * packFolder (dir: string, options: PackOptions = {}): AsyncGenerator<Uint8Array> {
  const entries = await listEntries(dir)
  let total = 0
  for (const entry of entries) {
    if (entry.size > MAX_OCTAL_SIZE) throw new StorageError('STORAGE_ARCHIVE_TOO_LARGE', `${entry.path} is larger than ustar allows`, { path: entry.path })
    yield header(entry)
    if (entry.kind !== 'file') continue
    let seen = 0
    // a file that fits one read is read whole (a stream costs several reads and callbacks per file)
    const chunks: AsyncIterable<Buffer> | Buffer[] = entry.size <= ARCHIVE_DEFAULTS.readSize
      ? [await readFile(entry.abs)]
      : createReadStream(entry.abs, { highWaterMark: ARCHIVE_DEFAULTS.readSize }) as AsyncIterable<Buffer>
    for await (const chunk of chunks) {
      seen += chunk.byteLength
      if (seen > entry.size) break
      total += chunk.byteLength
      options.onProgress?.(total)
      yield chunk
    }
    if (seen !== entry.size) {
      throw new StorageError('STORAGE_ARCHIVE_FILE_CHANGED', `${entry.path} changed size while being archived`, { path: entry.path })
    }
    const pad = (BLOCK - (entry.size % BLOCK)) % BLOCK
    if (pad > 0) yield new Uint8Array(pad)
  }
  // end of archive: two zero blocks
  yield new Uint8Array(2 * BLOCK)
}

/**
 * The archive packFolder streams, built from a folder read into memory
 * (readTreeSync): the same bytes for the same tree, with no second read of
 * the disk. Every file entry needs its content.
 */
export function packTree (entries: TreeEntry[]): Uint8Array {
  const sorted = [...entries].sort(byPath)
  let length = 2 * BLOCK
  for (const e of sorted) length += BLOCK + (e.kind === 'file' ? Math.ceil(e.size / BLOCK) * BLOCK : 0)
  const out = new Uint8Array(length)
  let at = 0
  for (const e of sorted) {
    if (e.size > MAX_OCTAL_SIZE) throw new StorageError('STORAGE_ARCHIVE_TOO_LARGE', `${e.path} is larger than ustar allows`, { path: e.path })
    out.set(header(e), at)
    at += BLOCK
    if (e.kind !== 'file') continue
    if (e.content === undefined || e.content.byteLength !== e.size) throw new StorageError('STORAGE_INVALID_ARGUMENT', `${e.path}: a file entry needs its ${e.size} bytes`, { path: e.path })
    out.set(e.content, at)
    // the padding to the next block, and the end marker, are the zeros the array starts with
    at += Math.ceil(e.size / BLOCK) * BLOCK
  }
  return out
}

function readString (block: Uint8Array, offset: number, length: number): string {
  let end = offset
  while (end < offset + length && block[end] !== 0) end++
  try {
    return decoder.decode(block.subarray(offset, end))
  } catch {
    throw new StorageError('STORAGE_ARCHIVE_CORRUPT', 'a tar header holds invalid UTF-8')
  }
}

function readOctal (block: Uint8Array, offset: number, length: number, field: string): number {
  const text = readString(block, offset, length).trim()
  if (!/^[0-7]+$/.test(text)) throw new StorageError('STORAGE_ARCHIVE_CORRUPT', `bad tar ${field} field`, { field })
  return parseInt(text, 8)
}

function isZero (block: Uint8Array): boolean {
  for (const b of block) if (b !== 0) return false
  return true
}

/** Resolves an archive path inside `dest`; throws STORAGE_ARCHIVE_PATH_ESCAPE when it would leave it. */
export function safeEntryPath (dest: string, path: string): string {
  if (path.length === 0 || path.includes('\0')) throw new StorageError('STORAGE_ARCHIVE_PATH_ESCAPE', 'empty or NUL-containing entry name', { path })
  if (path.startsWith('/') || isAbsolute(path) || /^[A-Za-z]:/.test(path)) {
    throw new StorageError('STORAGE_ARCHIVE_PATH_ESCAPE', `absolute entry path ${path}`, { path })
  }
  const parts = path.split(/[/\\]/).filter((p) => p !== '' && p !== '.')
  if (parts.includes('..')) throw new StorageError('STORAGE_ARCHIVE_PATH_ESCAPE', `entry path with '..': ${path}`, { path })
  if (parts.length === 0) throw new StorageError('STORAGE_ARCHIVE_PATH_ESCAPE', `entry path names the root: ${path}`, { path })
  const root = resolve(dest)
  const target = resolve(root, ...parts)
  if (!target.startsWith(root + sep)) throw new StorageError('STORAGE_ARCHIVE_PATH_ESCAPE', `entry path leaves the target: ${path}`, { path })
  return target
}

/** What `unpackArchive` wrote. */
export interface UnpackResult {
  files: number
  dirs: number
  bytes: number
  /** link entries handed to onLink (none are created) */
  links: number
}

/**
 * Hears a link entry (hard: its target is a path in the archive; symbolic:
 * relative to the link's folder). Without one, links are refused.
 */
export type LinkHandler = (path: string, target: string, kind: 'hard' | 'symbolic') => void

async function prepareTarget (dest: string): Promise<void> {
  try {
    const st = await lstat(dest)
    if (!st.isDirectory() || (await readdir(dest)).length > 0) {
      throw new StorageError('STORAGE_ARCHIVE_TARGET_EXISTS', `${dest} exists and is not an empty folder`, { dest })
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    await mkdir(dest, { recursive: true })
  }
}

/**
 * Unpacks a ustar stream into `dest` (absent or an empty folder). Only
 * regular files and folders; everything is created by this function, so no
 * symlink can redirect a later entry.
 */
export async function unpackArchive (source: AsyncIterable<Uint8Array>, dest: string, options: Partial<UnpackOptions> & { onLink?: LinkHandler } = {}): Promise<UnpackResult> {
  const maxBytes = options.maxBytes ?? ARCHIVE_DEFAULTS.maxBytes
  const maxEntries = options.maxEntries ?? ARCHIVE_DEFAULTS.maxEntries
  await prepareTarget(dest)
  const reader = new ByteReader(source)
  const result: UnpackResult = { files: 0, dirs: 0, bytes: 0, links: 0 }
  try {
    for (;;) {
      const block = await reader.take(BLOCK)
      if (block.byteLength === 0) throw new StorageError('STORAGE_ARCHIVE_CORRUPT', 'the archive ends without its end marker')
      if (block.byteLength < BLOCK) throw new StorageError('STORAGE_ARCHIVE_CORRUPT', 'the archive ends inside a header')
      if (isZero(block)) {
        // end marker; what follows may only be zero padding
        for (;;) {
          const rest = await reader.take(BLOCK)
          if (rest.byteLength === 0) return result
          if (!isZero(rest)) throw new StorageError('STORAGE_ARCHIVE_CORRUPT', 'data after the end-of-archive marker')
        }
      }
      const stored = readOctal(block, 148, 8, 'checksum')
      let sum = 0
      for (let i = 0; i < BLOCK; i++) sum += (i >= 148 && i < 156) ? 0x20 : block[i]
      if (sum !== stored) throw new StorageError('STORAGE_ARCHIVE_CORRUPT', 'tar header checksum mismatch')
      if (result.files + result.dirs >= maxEntries) throw new StorageError('STORAGE_ARCHIVE_TOO_LARGE', `more than ${maxEntries} entries`, { maxEntries })

      const name = readString(block, 0, 100)
      const prefix = readString(block, 345, 155)
      const path = prefix.length > 0 ? `${prefix}/${name}` : name
      const type = block[156]
      const size = readOctal(block, 124, 12, 'size')
      // `tar -C dir .` archives the root itself as './': nothing to create
      if (type === 0x35 && /^(\.\/?)+$/.test(path)) continue
      const target = safeEntryPath(dest, path)
      if (type === 0x35) {
        await mkdir(target, { recursive: true }).catch((err: unknown) => {
          throw new StorageError('STORAGE_ARCHIVE_TARGET_EXISTS', `cannot create folder ${path}`, { path }, { cause: err })
        })
        result.dirs++
        if (size !== 0) throw new StorageError('STORAGE_ARCHIVE_CORRUPT', `folder entry ${path} has a size`, { path })
        continue
      }
      if ((type === 0x31 || type === 0x32) && options.onLink !== undefined) {
        // recorded for the caller, never created: nothing on disk can redirect a later entry
        if (size !== 0) throw new StorageError('STORAGE_ARCHIVE_CORRUPT', `link entry ${path} has a size`, { path })
        options.onLink(path, readString(block, 157, 100), type === 0x31 ? 'hard' : 'symbolic')
        if (++result.links > maxEntries) throw new StorageError('STORAGE_ARCHIVE_TOO_LARGE', `more than ${maxEntries} entries`, { maxEntries })
        continue
      }
      if (type !== 0x30 && type !== 0) {
        throw new StorageError('STORAGE_ARCHIVE_UNSUPPORTED_ENTRY', `entry ${path} has type '${String.fromCharCode(type)}': only files and folders are allowed`, { path, type })
      }
      if (result.bytes + size > maxBytes) throw new StorageError('STORAGE_ARCHIVE_TOO_LARGE', `the archive holds more than ${maxBytes} bytes`, { maxBytes })
      await mkdir(resolve(target, '..'), { recursive: true }).catch((err: unknown) => {
        throw new StorageError('STORAGE_ARCHIVE_TARGET_EXISTS', `cannot create the folder of ${path}`, { path }, { cause: err })
      })
      const handle = await open(target, 'wx', 0o644).catch((err: unknown) => {
        throw new StorageError('STORAGE_ARCHIVE_TARGET_EXISTS', `duplicate or blocked entry ${path}`, { path }, { cause: err })
      })
      try {
        let left = size
        while (left > 0) {
          const piece = await reader.take(Math.min(left, ARCHIVE_DEFAULTS.readSize))
          if (piece.byteLength === 0) throw new StorageError('STORAGE_ARCHIVE_CORRUPT', `the archive ends inside ${path}`, { path })
          await handle.write(piece)
          left -= piece.byteLength
        }
      } finally {
        await handle.close()
      }
      const pad = (BLOCK - (size % BLOCK)) % BLOCK
      if (pad > 0 && (await reader.take(pad)).byteLength !== pad) throw new StorageError('STORAGE_ARCHIVE_CORRUPT', 'the archive ends inside padding')
      result.files++
      result.bytes += size
    }
  } finally {
    await reader.cancel()
  }
}
