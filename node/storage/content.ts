/**
 * Content helpers over Helia: add bytes, streams and files through
 * @helia/unixfs with byte progress, fetch by CID to a file with bounds on
 * time (no progress, whole fetch scaled by size) and size, and announce
 * content in the routing (the DHT).
 *
 * They take a narrow view of Helia (its blockstore, and its routing when
 * providing), so Network's Helia, a test's Helia, or a bare blockstore fit.
 * A blockstore backed by bitswap (Helia's) fetches missing blocks from
 * peers; a bare one only reads what it holds.
 */
import { setMaxListeners } from 'node:events'
import { createReadStream } from 'node:fs'
import { unixfs } from '@helia/unixfs'
import type { UnixFSComponents } from '@helia/unixfs'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { StorageError } from './errors.js'
import { CONTENT_DEFAULTS } from './options.js'
import { writeThroughPartial } from './partial-file.js'

/** The part of Helia the helpers use. */
export interface ContentHelia {
  blockstore: UnixFSComponents['blockstore']
  routing?: { provide: (cid: CID, options?: { signal?: AbortSignal }) => Promise<void> }
}

/** Options of the add helpers. */
export interface AddOptions {
  /** called with the bytes read so far */
  onProgress?: (bytesSoFar: number) => void
  signal?: AbortSignal
}

/** What an add gives back. */
export interface AddResult {
  cid: CID
  bytes: number
}

async function * counting (source: AsyncIterable<Uint8Array>, onProgress: ((n: number) => void) | undefined, total: { bytes: number }): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    total.bytes += chunk.byteLength
    onProgress?.(total.bytes)
    yield chunk
  }
}

/**
 * Adds a stream as one UnixFS file (raw leaves, CIDv1: the defaults of
 * @helia/unixfs, so every node computes the same CID for the same bytes).
 */
export async function addStream (helia: ContentHelia, source: AsyncIterable<Uint8Array>, options: AddOptions = {}): Promise<AddResult> {
  const total = { bytes: 0 }
  try {
    const cid = await unixfs(helia).addByteStream(counting(source, options.onProgress, total), { signal: options.signal })
    return { cid, bytes: total.bytes }
  } catch (err) {
    if (err instanceof StorageError) throw err
    throw new StorageError('STORAGE_ADD_FAILED', `adding content failed: ${err instanceof Error ? err.message : String(err)}`, {}, { cause: err })
  }
}

/** The importer's chunk (@helia/unixfs's default): content up to this size is one raw block. */
const SINGLE_BLOCK_BYTES = 1_048_576

/**
 * Adds bytes held in memory (result archives, app modules, test data).
 * Content of one chunk or less is put as the one raw block the importer
 * would make of it (the same CID: raw leaves, a single leaf is the root),
 * without the importer's pipeline of async generators, which cost more than
 * the rest of a tiny task's upload. Larger content goes through addStream.
 */
export async function addBytes (helia: ContentHelia, bytes: Uint8Array, options: AddOptions = {}): Promise<AddResult> {
  if (bytes.byteLength > SINGLE_BLOCK_BYTES) return await addStream(helia, (async function * () { yield bytes })(), options)
  try {
    options.signal?.throwIfAborted()
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    await helia.blockstore.put(cid, bytes, { signal: options.signal })
    options.onProgress?.(bytes.byteLength)
    return { cid, bytes: bytes.byteLength }
  } catch (err) {
    throw new StorageError('STORAGE_ADD_FAILED', `adding content failed: ${err instanceof Error ? err.message : String(err)}`, {}, { cause: err })
  }
}

/** Adds a file, streaming (64 KiB reads). */
export async function addFile (helia: ContentHelia, path: string, options: AddOptions = {}): Promise<AddResult> {
  return await addStream(helia, createReadStream(path, { highWaterMark: 64 * 1024 }), options)
}

/** Options of the fetch helpers. */
export interface FetchOptions {
  /** bound on the whole fetch, ms; with `minBytesPerSecond`, the part of it that does not depend on the size */
  timeoutMs?: number
  /**
   * the whole-fetch bound grows by the content's size (read from its root
   * block) at this rate: big content gets time in proportion, a peer that
   * trickles bytes is still stopped
   */
  minBytesPerSecond?: number
  /** ends the fetch when no byte has arrived for this long, ms (the time the consumer holds a chunk does not count) */
  stallTimeoutMs?: number
  signal?: AbortSignal
  /** called with the bytes received so far */
  onProgress?: (bytesSoFar: number) => void
  /** refuse content larger than this many bytes (before its leaves are fetched when the root says its size) */
  maxBytes?: number
  /** do not ask the network: only local blocks */
  offline?: boolean
}

/** Parses a CID string; STORAGE_INVALID_ARGUMENT when it is not one. */
export function parseCid (text: string): CID {
  try {
    return CID.parse(text)
  } catch (err) {
    throw new StorageError('STORAGE_INVALID_ARGUMENT', `not a CID: ${text.slice(0, 100)}`, {}, { cause: err })
  }
}

function positive (name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new StorageError('STORAGE_INVALID_ARGUMENT', `${name} must be a positive number, got ${v}`, { [name]: v })
}

/**
 * Streams the content of a CID, fetching missing blocks through the
 * blockstore (bitswap). Two bounds stop a fetch: no byte for
 * `stallTimeoutMs` (STORAGE_FETCH_STALLED: the peers went away or never
 * had it), and the whole-fetch bound, `timeoutMs` plus the size at
 * `minBytesPerSecond` (STORAGE_FETCH_TIMEOUT: too slow to finish).
 * STORAGE_CONTENT_TOO_LARGE beyond `maxBytes`, checked against the size the
 * root block declares before any leaf is fetched, and again on the bytes
 * received. STORAGE_FETCH_FAILED on abort, a missing block offline, or
 * content that is not a file.
 */
export async function * catContent (helia: ContentHelia, cid: CID | string, options: FetchOptions = {}): AsyncGenerator<Uint8Array> {
  const id = typeof cid === 'string' ? parseCid(cid) : cid
  const timeoutMs = options.timeoutMs ?? CONTENT_DEFAULTS.fetchTimeoutMs
  const stallTimeoutMs = options.stallTimeoutMs ?? CONTENT_DEFAULTS.fetchStallTimeoutMs
  positive('timeoutMs', timeoutMs)
  positive('stallTimeoutMs', stallTimeoutMs)
  positive('minBytesPerSecond', options.minBytesPerSecond)
  positive('maxBytes', options.maxBytes)
  // one controller for both bounds, so the error can say which one fired
  const bounds = new AbortController()
  let fired: 'stalled' | 'timeout' | undefined
  const stop = (why: 'stalled' | 'timeout'): void => {
    if (bounds.signal.aborted) return
    fired = why
    bounds.abort()
  }
  const signal = options.signal === undefined ? bounds.signal : AbortSignal.any([options.signal, bounds.signal])
  // every block fetch of a large file listens on this one signal
  setMaxListeners(Infinity, signal)
  const started = Date.now()
  let allowedMs = timeoutMs
  let whole = setTimeout(() => { stop('timeout') }, allowedMs)
  let stall: NodeJS.Timeout | undefined
  const armStall = (): void => {
    clearTimeout(stall)
    stall = setTimeout(() => { stop('stalled') }, stallTimeoutMs)
  }
  let bytes = 0
  const tooLarge = (size: number): StorageError => new StorageError('STORAGE_CONTENT_TOO_LARGE', `${id.toString()} is larger than ${options.maxBytes ?? 0} bytes`, { cid: id.toString(), maxBytes: options.maxBytes, size })
  try {
    const fs = unixfs(helia)
    armStall()
    // the root block says the file's size: a too large content is refused, and the whole-fetch
    // bound is sized, before any leaf is asked for
    const root = await fs.stat(id, { signal, offline: options.offline })
    if (root.type !== 'file' && root.type !== 'raw') throw new StorageError('STORAGE_FETCH_FAILED', `${id.toString()} is a ${root.type}, not a file`, { cid: id.toString(), type: root.type })
    const declared = Number(root.size)
    if (options.maxBytes !== undefined && declared > options.maxBytes) throw tooLarge(declared)
    if (options.minBytesPerSecond !== undefined) {
      allowedMs = timeoutMs + Math.ceil(declared * 1000 / options.minBytesPerSecond)
      clearTimeout(whole)
      whole = setTimeout(() => { stop('timeout') }, Math.max(0, allowedMs - (Date.now() - started)))
    }
    armStall()
    // one window of the file at a time: the exporter asks for every block of what it is given at
    // once and queues them without waiting for its consumer; a whole-file cat of 512 MiB grew the
    // fetching process's anonymous memory by ~780 MiB, windowed a GiB grows it by < 100 MiB
    // (test/bench/dataset.bench.ts). A window's blocks are still fetched in parallel.
    // Windows are one byte short of CONTENT_DEFAULTS.fetchWindowBytes so that a window never
    // ends exactly where a leaf starts: the exporter also reads the leaf that starts at the end
    // of its range, and that read, left running, raced the next window's read of the same block;
    // on a level blockstore the second read then sometimes never completed
    const window = CONTENT_DEFAULTS.fetchWindowBytes - 1
    for (let offset = 0; offset < declared; offset += window) {
      const length = Math.min(window, declared - offset)
      for await (const chunk of fs.cat(id, { signal, offline: options.offline, offset, length })) {
        // a bound that fired is final, even when the exporter had read ahead
        if (bounds.signal.aborted) throw new Error(`${fired ?? 'a'} bound fired`)
        bytes += chunk.byteLength
        // the exporter checks the leaves against the root's sizes; this is the last line
        if (options.maxBytes !== undefined && bytes > options.maxBytes) throw tooLarge(bytes)
        options.onProgress?.(bytes)
        clearTimeout(stall)
        yield chunk
        armStall()
      }
    }
    if (bytes !== declared) throw new StorageError('STORAGE_FETCH_FAILED', `${id.toString()} gave ${bytes} bytes, its root declares ${declared}`, { cid: id.toString(), bytes, declared })
  } catch (err) {
    if (err instanceof StorageError) throw err
    const details = { cid: id.toString(), bytes }
    if (fired === 'stalled') {
      throw new StorageError('STORAGE_FETCH_STALLED', `fetching ${id.toString()} made no progress for ${stallTimeoutMs} ms (after ${bytes} bytes)`, { ...details, stallTimeoutMs }, { cause: err })
    }
    if (fired === 'timeout') {
      throw new StorageError('STORAGE_FETCH_TIMEOUT', `fetching ${id.toString()} did not end within ${allowedMs} ms (after ${bytes} bytes)`, { ...details, timeoutMs: allowedMs }, { cause: err })
    }
    throw new StorageError('STORAGE_FETCH_FAILED', `fetching ${id.toString()} failed: ${err instanceof Error ? err.message : String(err)}`, details, { cause: err })
  } finally {
    clearTimeout(whole)
    clearTimeout(stall)
  }
}

/**
 * Fetches a CID into a file, streaming. Writes `path.partial` and renames
 * it at the end, so `path` only ever holds complete content.
 */
export async function fetchToFile (helia: ContentHelia, cid: CID | string, path: string, options: FetchOptions = {}): Promise<{ bytes: number }> {
  let bytes = 0
  const onProgress = (n: number): void => {
    bytes = n
    options.onProgress?.(n)
  }
  await writeThroughPartial(path, catContent(helia, cid, { ...options, onProgress }))
  return { bytes }
}

/**
 * Announces that this node provides a CID (a DHT provider record). Returns
 * false when this Helia has no routing; STORAGE_ADD_FAILED when providing fails.
 */
export async function provideContent (helia: ContentHelia, cid: CID, options: { signal?: AbortSignal } = {}): Promise<boolean> {
  if (helia.routing === undefined) return false
  try {
    await helia.routing.provide(cid, options)
    return true
  } catch (err) {
    throw new StorageError('STORAGE_ADD_FAILED', `providing ${cid.toString()} failed: ${err instanceof Error ? err.message : String(err)}`, { cid: cid.toString() }, { cause: err })
  }
}
