/**
 * A dataset on disk, encrypted and back: a file is encrypted as it is; a
 * folder is first packed into a deterministic archive (archive.ts), and
 * the header's content kind says which, so the worker knows whether to
 * unpack. The checksum the registry records is the sha256 of the
 * plaintext stream: the file's bytes, or the archive's.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { open, rm, stat } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { packFolder, unpackArchive } from './archive.js'
import {
  CIPHER_HEADER_BYTES, CIPHER_TAG_BYTES, contentKindOf, decryptFile, decryptStream, encryptFile, encryptToFile, hashingTap
} from './chunked-cipher.js'
import type { ContentKind, EncryptFileResult } from './chunked-cipher.js'
import { StorageError } from './errors.js'
import { CIPHER_DEFAULTS } from './options.js'
import type { CipherOptions, UnpackOptions } from './options.js'

/** What `encryptDataset` reports. */
export interface EncryptDatasetResult extends EncryptFileResult {
  kind: ContentKind
}

/** Encrypts a file or a folder at `src` into the file `dst` (0600), streaming. */
export async function encryptDataset (src: string, dst: string, key: Uint8Array, options: Partial<CipherOptions> & { onProgress?: (plaintextBytes: number) => void } = {}): Promise<EncryptDatasetResult> {
  const st = await stat(src).catch((err: unknown) => {
    throw new StorageError('STORAGE_INVALID_ARGUMENT', `cannot read ${src}`, { src }, { cause: err })
  })
  if (st.isDirectory()) return { kind: 'archive', ...await encryptToFile(packFolder(src), dst, key, { ...options, kind: 'archive' }) }
  if (st.isFile()) return { kind: 'raw', ...await encryptFile(src, dst, key, options) }
  throw new StorageError('STORAGE_INVALID_ARGUMENT', `${src} is neither a file nor a folder`, { src })
}

async function readHeader (path: string): Promise<Uint8Array> {
  const handle = await open(path, 'r')
  try {
    const buf = new Uint8Array(CIPHER_HEADER_BYTES)
    const { bytesRead } = await handle.read(buf, 0, CIPHER_HEADER_BYTES, 0)
    return buf.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

/**
 * Decrypts an encrypted dataset file to `dest`: the file itself (raw), or
 * the unpacked folder (archive; `dest` absent or empty). Nothing is left at
 * `dest` when decryption or unpacking fails.
 */
export async function decryptDataset (src: string, dest: string, key: Uint8Array, options: Partial<UnpackOptions> = {}): Promise<{ kind: ContentKind, checksum: string, plaintextBytes: number }> {
  const kind = contentKindOf(await readHeader(src))
  if (kind === 'raw') return { kind, ...await decryptFile(src, dest, key) }
  const tap = hashingTap(decryptStream(createReadStream(src, { highWaterMark: CIPHER_DEFAULTS.chunkSize + CIPHER_TAG_BYTES }), key))
  try {
    await unpackArchive(tap.stream, dest, options)
  } catch (err) {
    // a non-empty target was refused before anything was written: leave it alone
    if (!(err instanceof StorageError && err.code === 'STORAGE_ARCHIVE_TARGET_EXISTS' && err.details?.dest !== undefined)) {
      await rm(dest, { recursive: true, force: true })
    }
    throw err
  }
  return { kind, checksum: tap.digest(), plaintextBytes: tap.bytes() }
}

/** True when the file starts with this package's cipher header (an encrypted dataset). */
export async function isEncryptedContent (path: string): Promise<boolean> {
  try {
    contentKindOf(await readHeader(path))
    return true
  } catch (err) {
    if (err instanceof StorageError && err.code === 'STORAGE_BAD_HEADER') return false
    throw err
  }
}

/** ustar's magic, at offset 257 of an archive's first header block. */
const USTAR_MAGIC = 'ustar'

/**
 * A dataset published in clear (`--no-encrypt`), fetched to `src`: a folder's
 * archive is unpacked to `dest`, a file is moved there. Returns the sha256
 * (0x hex) of what was published, the registry's checksum.
 */
export async function placePlainDataset (src: string, dest: string, options: Partial<UnpackOptions> = {}): Promise<string> {
  const handle = await open(src, 'r')
  let head: Buffer
  try {
    head = Buffer.alloc(512)
    await handle.read(head, 0, 512, 0)
  } finally {
    await handle.close()
  }
  const tap = hashingTap(createReadStream(src))
  if (head.subarray(257, 257 + USTAR_MAGIC.length).toString('latin1') === USTAR_MAGIC) {
    try {
      await unpackArchive(tap.stream, dest, options)
    } catch (err) {
      await rm(dest, { recursive: true, force: true })
      throw err
    }
  } else {
    await pipeline(tap.stream, createWriteStream(dest, { mode: 0o600 }))
  }
  await rm(src, { force: true })
  return tap.digest().toLowerCase()
}
