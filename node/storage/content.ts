/**
 * Content helpers over Helia: add bytes, streams and files through
 * @helia/unixfs with byte progress, fetch by CID to a file with a bound on
 * time and size, and announce content in the routing (the DHT).
 *
 * They take a narrow view of Helia (its blockstore, and its routing when
 * providing), so Network's Helia, a test's Helia, or a bare blockstore fit.
 * A blockstore backed by bitswap (Helia's) fetches missing blocks from
 * peers; a bare one only reads what it holds.
 */
import { setMaxListeners } from 'node:events'
import { createReadStream, createWriteStream } from 'node:fs'
import { rename, rm } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { unixfs } from '@helia/unixfs'
import type { UnixFSComponents } from '@helia/unixfs'
import { CID } from 'multiformats/cid'
import { StorageError } from './errors.js'
import { CONTENT_DEFAULTS } from './options.js'

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

/** Adds bytes held in memory (small content: app modules, test data). */
export async function addBytes (helia: ContentHelia, bytes: Uint8Array, options: AddOptions = {}): Promise<AddResult> {
  return await addStream(helia, (async function * () { yield bytes })(), options)
}

/** Adds a file, streaming (64 KiB reads). */
export async function addFile (helia: ContentHelia, path: string, options: AddOptions = {}): Promise<AddResult> {
  return await addStream(helia, createReadStream(path, { highWaterMark: 64 * 1024 }), options)
}

/** Options of the fetch helpers. */
export interface FetchOptions {
  /** bound on the whole fetch, ms */
  timeoutMs?: number
  signal?: AbortSignal
  /** called with the bytes received so far */
  onProgress?: (bytesSoFar: number) => void
  /** refuse content larger than this many bytes */
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

/**
 * Streams the content of a CID, fetching missing blocks through the
 * blockstore (bitswap). STORAGE_FETCH_FAILED on timeout, abort, a missing
 * block offline, or more than `maxBytes`.
 */
export async function * catContent (helia: ContentHelia, cid: CID | string, options: FetchOptions = {}): AsyncGenerator<Uint8Array> {
  const id = typeof cid === 'string' ? parseCid(cid) : cid
  const timeoutMs = options.timeoutMs ?? CONTENT_DEFAULTS.fetchTimeoutMs
  const timeout = AbortSignal.timeout(timeoutMs)
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout])
  // every block fetch of a large file listens on this one signal
  setMaxListeners(Infinity, signal)
  let bytes = 0
  try {
    for await (const chunk of unixfs(helia).cat(id, { signal, offline: options.offline })) {
      bytes += chunk.byteLength
      if (options.maxBytes !== undefined && bytes > options.maxBytes) {
        throw new StorageError('STORAGE_FETCH_FAILED', `${id.toString()} is larger than ${options.maxBytes} bytes`, { cid: id.toString(), maxBytes: options.maxBytes })
      }
      options.onProgress?.(bytes)
      yield chunk
    }
  } catch (err) {
    if (err instanceof StorageError) throw err
    const timedOut = timeout.aborted
    throw new StorageError('STORAGE_FETCH_FAILED', timedOut ? `fetching ${id.toString()} timed out after ${timeoutMs} ms` : `fetching ${id.toString()} failed: ${err instanceof Error ? err.message : String(err)}`, { cid: id.toString(), timedOut, bytes }, { cause: err })
  }
}

/**
 * Fetches a CID into a file, streaming. Writes `path.partial` and renames
 * it at the end, so `path` only ever holds complete content.
 */
export async function fetchToFile (helia: ContentHelia, cid: CID | string, path: string, options: FetchOptions = {}): Promise<{ bytes: number }> {
  const partial = `${path}.partial`
  let bytes = 0
  const onProgress = (n: number): void => {
    bytes = n
    options.onProgress?.(n)
  }
  try {
    await pipeline(Readable.from(catContent(helia, cid, { ...options, onProgress })), createWriteStream(partial, { mode: 0o600 }))
    await rename(partial, path)
  } catch (err) {
    await rm(partial, { force: true })
    throw err
  }
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
