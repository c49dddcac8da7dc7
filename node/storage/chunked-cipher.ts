/**
 * Streaming authenticated encryption: AES-256-GCM over fixed-size chunks.
 *
 * One GCM pass over a huge stream could only authenticate at its very end,
 * and a 1 GiB dataset would have to be held or trusted blindly until then.
 * Sealing each chunk on its own keeps memory at one chunk and lets every
 * chunk be checked before its plaintext is released.
 *
 * Format, version 1 (all integers big-endian):
 *
 * ```
 * header (40 bytes)
 *   0..8    magic "IXP2PAEG"
 *   8       version = 1
 *   9       content kind: 0 = raw bytes (a file), 1 = a ustar archive (a folder, see archive.ts)
 *   10..12  reserved, zero
 *   12..16  chunk size C (plaintext bytes per chunk), 16 <= C <= 16 MiB
 *   16..24  nonce prefix P, 8 random bytes (fresh per stream)
 *   24..40  key check: HMAC-SHA256(Kc, header[0..24]) truncated to 16 bytes
 * chunks, i = 0, 1, ...
 *   AES-256-GCM(Ke, nonce = P ‖ u32(i), aad = header ‖ u8(final)) -> ciphertext ‖ tag(16)
 *   every chunk but the last holds exactly C plaintext bytes; the last holds
 *   0..C bytes and is sealed with final = 1 (an empty stream is one empty final chunk)
 * ```
 *
 * Ke and Kc are HKDF-SHA256 subkeys of the 32-byte content key, salted with
 * header[0..24]: each stream gets fresh subkeys even if a content key were
 * reused, the key check makes a wrong key a clear error (GCM alone cannot
 * tell a wrong key from a flipped byte) and commits the stream to one key.
 *
 * What each attack gives:
 * - a flipped byte in a chunk: its tag fails -> DATASET_DECRYPT_FAILED;
 * - reordered, duplicated or spliced chunks: the counter in the nonce no
 *   longer matches -> DATASET_DECRYPT_FAILED;
 * - truncation at a chunk boundary: the last chunk read was sealed with
 *   final = 0 -> STORAGE_TRUNCATED; mid-chunk truncation fails its tag;
 * - bytes appended after a full final chunk -> STORAGE_TRAILING_DATA (after
 *   a short final chunk they become part of it and its tag fails);
 * - a changed header (chunk size, prefix) -> key check or every tag fails.
 *
 * Plaintext is released one authenticated chunk at a time: a consumer that
 * must not act on a stream that later turns out truncated writes to a
 * temporary file and renames it at the end (as `decryptFile` does).
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { ByteReader } from './byte-reader.js'
import { StorageError } from './errors.js'
import { CIPHER_DEFAULTS } from './options.js'
import type { CipherOptions } from './options.js'
import { writeThroughPartial } from './partial-file.js'

export const CIPHER_MAGIC = new TextEncoder().encode('IXP2PAEG')
export const CIPHER_VERSION = 1
export const CIPHER_HEADER_BYTES = 40
export const CIPHER_TAG_BYTES = 16
/** Bytes of a content key (AES-256). */
export const CONTENT_KEY_BYTES = 32

const ENC_INFO = 'iexec-p2p/chunked-aes-256-gcm/v1/encryption'
const CHECK_INFO = 'iexec-p2p/chunked-aes-256-gcm/v1/key-check'
const MAX_CHUNKS = 0xffffffff

/** What the plaintext is: a file's bytes, or an archive of a folder. Authenticated with the rest of the header. */
export type ContentKind = 'raw' | 'archive'
const KIND_BYTE: Record<ContentKind, number> = { raw: 0, archive: 1 }

/** A fresh random 32-byte content key. */
export function generateContentKey (): Uint8Array {
  return new Uint8Array(randomBytes(CONTENT_KEY_BYTES))
}

function checkKey (key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.byteLength !== CONTENT_KEY_BYTES) {
    throw new StorageError('STORAGE_INVALID_ARGUMENT', `a content key is ${CONTENT_KEY_BYTES} bytes`)
  }
}

interface Subkeys { enc: Buffer, check: Buffer }

function subkeys (key: Uint8Array, salt: Uint8Array): Subkeys {
  return {
    enc: Buffer.from(hkdfSync('sha256', key, salt, ENC_INFO, 32)),
    check: Buffer.from(hkdfSync('sha256', key, salt, CHECK_INFO, 32))
  }
}

function keyCheck (check: Buffer, headerStart: Uint8Array): Buffer {
  return createHmac('sha256', check).update(headerStart).digest().subarray(0, 16)
}

function nonceFor (prefix: Uint8Array, counter: number): Buffer {
  const nonce = Buffer.alloc(12)
  nonce.set(prefix, 0)
  nonce.writeUInt32BE(counter, 8)
  return nonce
}

function aadFor (header: Uint8Array, final: boolean): Buffer {
  const aad = Buffer.alloc(header.byteLength + 1)
  aad.set(header, 0)
  aad[header.byteLength] = final ? 1 : 0
  return aad
}

function seal (enc: Buffer, header: Uint8Array, counter: number, final: boolean, plain: Uint8Array): Uint8Array {
  const cipher = createCipheriv('aes-256-gcm', enc, nonceFor(header.subarray(16, 24), counter))
  cipher.setAAD(aadFor(header, final))
  const body = cipher.update(plain)
  const tail = cipher.final()
  const out = new Uint8Array(body.byteLength + tail.byteLength + CIPHER_TAG_BYTES)
  out.set(body, 0)
  out.set(tail, body.byteLength)
  out.set(cipher.getAuthTag(), body.byteLength + tail.byteLength)
  return out
}

/** Opens one sealed chunk; undefined when its tag does not verify under these parameters. */
function open (enc: Buffer, header: Uint8Array, counter: number, final: boolean, record: Uint8Array): Uint8Array | undefined {
  const decipher = createDecipheriv('aes-256-gcm', enc, nonceFor(header.subarray(16, 24), counter))
  decipher.setAAD(aadFor(header, final))
  decipher.setAuthTag(record.subarray(record.byteLength - CIPHER_TAG_BYTES))
  const body = decipher.update(record.subarray(0, record.byteLength - CIPHER_TAG_BYTES))
  try {
    const tail = decipher.final()
    if (tail.byteLength === 0) return body
    return Buffer.concat([body, tail])
  } catch {
    return undefined
  }
}

/**
 * Encrypts a stream with a 32-byte content key. Yields the header, then one
 * sealed chunk at a time; holds at most two chunks of plaintext.
 */
export async function * encryptStream (source: AsyncIterable<Uint8Array>, key: Uint8Array, options: Partial<CipherOptions> & { kind?: ContentKind } = {}): AsyncGenerator<Uint8Array> {
  checkKey(key)
  const chunkSize = options.chunkSize ?? CIPHER_DEFAULTS.chunkSize
  if (!Number.isInteger(chunkSize) || chunkSize < CIPHER_DEFAULTS.minChunkSize || chunkSize > CIPHER_DEFAULTS.maxChunkSize) {
    throw new StorageError('STORAGE_INVALID_ARGUMENT', `chunk size must be an integer in [${CIPHER_DEFAULTS.minChunkSize}, ${CIPHER_DEFAULTS.maxChunkSize}]`)
  }
  const header = new Uint8Array(CIPHER_HEADER_BYTES)
  header.set(CIPHER_MAGIC, 0)
  header[8] = CIPHER_VERSION
  header[9] = KIND_BYTE[options.kind ?? 'raw']
  new DataView(header.buffer).setUint32(12, chunkSize)
  header.set(randomBytes(8), 16)
  const keys = subkeys(key, header.subarray(0, 24))
  header.set(keyCheck(keys.check, header.subarray(0, 24)), 24)
  yield header

  const reader = new ByteReader(source)
  try {
    for (let counter = 0; ; counter++) {
      if (counter >= MAX_CHUNKS) throw new StorageError('STORAGE_INVALID_ARGUMENT', 'stream too long for this chunk size')
      const plain = await reader.take(chunkSize)
      // the chunk is final when nothing follows it: a look-ahead of one byte
      const final = await reader.atEnd()
      yield seal(keys.enc, header, counter, final, plain)
      if (final) return
    }
  } finally {
    await reader.cancel()
  }
}

/** Parses and checks a header against a key; returns the chunk size and subkeys. */
function readHeader (header: Uint8Array, key: Uint8Array): { chunkSize: number, keys: Subkeys } {
  if (header.byteLength < CIPHER_HEADER_BYTES) throw new StorageError('STORAGE_BAD_HEADER', 'ciphertext shorter than its header')
  for (let i = 0; i < CIPHER_MAGIC.byteLength; i++) {
    if (header[i] !== CIPHER_MAGIC[i]) throw new StorageError('STORAGE_BAD_HEADER', 'not an iexec-p2p encrypted stream (bad magic)')
  }
  if (header[8] !== CIPHER_VERSION) throw new StorageError('STORAGE_BAD_HEADER', `unsupported version ${header[8]}`, { version: header[8] })
  if (header[9] > 1 || header[10] !== 0 || header[11] !== 0) throw new StorageError('STORAGE_BAD_HEADER', 'unknown content kind or non-zero reserved bytes')
  const chunkSize = new DataView(header.buffer, header.byteOffset, header.byteLength).getUint32(12)
  if (chunkSize < CIPHER_DEFAULTS.minChunkSize || chunkSize > CIPHER_DEFAULTS.maxChunkSize) {
    throw new StorageError('STORAGE_BAD_HEADER', `chunk size ${chunkSize} out of bounds`, { chunkSize })
  }
  const keys = subkeys(key, header.subarray(0, 24))
  if (!timingSafeEqual(keyCheck(keys.check, header.subarray(0, 24)), header.subarray(24, 40))) {
    throw new StorageError('STORAGE_WRONG_KEY', 'this key did not encrypt the stream')
  }
  return { chunkSize, keys }
}

/**
 * Decrypts a stream made by `encryptStream`. Yields each chunk's plaintext
 * once its tag verifies; throws a StorageError (STORAGE_BAD_HEADER,
 * STORAGE_WRONG_KEY, DATASET_DECRYPT_FAILED, STORAGE_TRUNCATED,
 * STORAGE_TRAILING_DATA) at the first bad byte.
 */
export async function * decryptStream (source: AsyncIterable<Uint8Array>, key: Uint8Array): AsyncGenerator<Uint8Array> {
  checkKey(key)
  const reader = new ByteReader(source)
  try {
    const header = new Uint8Array(await reader.take(CIPHER_HEADER_BYTES))
    const { chunkSize, keys } = readHeader(header, key)
    const recordSize = chunkSize + CIPHER_TAG_BYTES
    for (let counter = 0; ; counter++) {
      const record = await reader.take(recordSize)
      if (record.byteLength === 0) throw new StorageError('STORAGE_TRUNCATED', 'the stream ended before its final chunk', { chunk: counter })
      if (record.byteLength < CIPHER_TAG_BYTES) throw new StorageError('STORAGE_TRUNCATED', 'the stream ended inside a chunk', { chunk: counter })
      const last = await reader.atEnd()
      const plain = open(keys.enc, header, counter, last, record)
      if (plain !== undefined) {
        yield plain
        if (last) return
        continue
      }
      // Tell truncation and trailing bytes from tampering: the same record
      // opens under the other final flag only if it is intact.
      if (open(keys.enc, header, counter, !last, record) !== undefined) {
        if (last) throw new StorageError('STORAGE_TRUNCATED', 'the stream ended before its final chunk', { chunk: counter })
        throw new StorageError('STORAGE_TRAILING_DATA', 'bytes follow the final chunk', { chunk: counter })
      }
      throw new StorageError('DATASET_DECRYPT_FAILED', `chunk ${counter} failed authentication (tampered or reordered)`, { chunk: counter })
    }
  } finally {
    await reader.cancel()
  }
}

/**
 * The content kind a ciphertext header declares (not yet authenticated:
 * decryption fails if it was altered). STORAGE_BAD_HEADER when malformed.
 */
export function contentKindOf (header: Uint8Array): ContentKind {
  if (header.byteLength < CIPHER_HEADER_BYTES || !CIPHER_MAGIC.every((b, i) => header[i] === b) || header[8] !== CIPHER_VERSION) {
    throw new StorageError('STORAGE_BAD_HEADER', 'not an iexec-p2p encrypted stream')
  }
  if (header[9] === 0) return 'raw'
  if (header[9] === 1) return 'archive'
  throw new StorageError('STORAGE_BAD_HEADER', `unknown content kind ${header[9]}`)
}

/** The exact ciphertext size for a plaintext size (header + chunks + tags). */
export function ciphertextSize (plaintextBytes: number, chunkSize: number = CIPHER_DEFAULTS.chunkSize): number {
  const chunks = Math.max(1, Math.ceil(plaintextBytes / chunkSize))
  return CIPHER_HEADER_BYTES + plaintextBytes + chunks * CIPHER_TAG_BYTES
}

/** A pass-through that hashes and counts what flows through it. */
export interface HashingTap {
  stream: AsyncIterable<Uint8Array>
  /** sha256 as 0x-prefixed hex (the registry's checksum format); valid once the stream is consumed */
  digest: () => string
  /** bytes seen so far */
  bytes: () => number
}

/** Wraps a stream to compute its sha256 while it is read (no second pass). */
export function hashingTap (source: AsyncIterable<Uint8Array>, onBytes?: (bytesSoFar: number) => void): HashingTap {
  const hash = createHash('sha256')
  let bytes = 0
  let hex: string | undefined
  async function * pass (): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      hash.update(chunk)
      bytes += chunk.byteLength
      onBytes?.(bytes)
      yield chunk
    }
    hex = '0x' + hash.digest('hex')
  }
  return {
    stream: pass(),
    digest: () => {
      if (hex === undefined) throw new StorageError('STORAGE_INVALID_ARGUMENT', 'digest asked before the stream was fully read')
      return hex
    },
    bytes: () => bytes
  }
}

/** What `encryptFile` reports. */
export interface EncryptFileResult {
  /** sha256 of the plaintext, 0x hex */
  checksum: string
  plaintextBytes: number
  ciphertextBytes: number
}

/** Encrypts a file to another, streaming; the output is created 0600. */
export async function encryptFile (src: string, dst: string, key: Uint8Array, options: Partial<CipherOptions> & { onProgress?: (plaintextBytes: number) => void } = {}): Promise<EncryptFileResult> {
  return await encryptToFile(createReadStream(src, { highWaterMark: CIPHER_DEFAULTS.chunkSize }), dst, key, options)
}

/** Encrypts a stream into a file (0600), hashing the plaintext on the way. */
export async function encryptToFile (source: AsyncIterable<Uint8Array>, dst: string, key: Uint8Array, options: Partial<CipherOptions> & { kind?: ContentKind, onProgress?: (plaintextBytes: number) => void } = {}): Promise<EncryptFileResult> {
  const tap = hashingTap(source, options.onProgress)
  let ciphertextBytes = 0
  const counted = async function * (): AsyncGenerator<Uint8Array> {
    for await (const chunk of encryptStream(tap.stream, key, options)) {
      ciphertextBytes += chunk.byteLength
      yield chunk
    }
  }
  await pipeline(Readable.from(counted()), createWriteStream(dst, { mode: 0o600 }))
  return { checksum: tap.digest(), plaintextBytes: tap.bytes(), ciphertextBytes }
}

/**
 * Decrypts a file to another, streaming. The plaintext is written to
 * `dst.partial` and renamed only once the final chunk verified, so `dst`
 * never holds a truncated or tampered plaintext. Returns the plaintext sha256.
 */
export async function decryptFile (src: string, dst: string, key: Uint8Array): Promise<{ checksum: string, plaintextBytes: number }> {
  const tap = hashingTap(decryptStream(createReadStream(src, { highWaterMark: CIPHER_DEFAULTS.chunkSize + CIPHER_TAG_BYTES }), key))
  await writeThroughPartial(dst, tap.stream)
  return { checksum: tap.digest(), plaintextBytes: tap.bytes() }
}
