/**
 * Results for the requester's eyes only: a result archive encrypted to the
 * requester's Ethereum public key. A fresh content key seals the archive
 * with the chunked cipher; the content key travels in an ECIES envelope
 * that only the requester's private key opens. Workers and the scheduler
 * see the plaintext only before upload (without a TEE, the host that
 * computes sees what it computes); once uploaded, nobody else can read it.
 *
 * Format, version 1:
 *
 * ```
 * 0..8    magic "IXP2PRES"
 * 8       version = 1
 * 9..11   envelope length L (u16, big-endian)
 * 11..    ECIES envelope (L bytes) of the 32-byte content key,
 *         context "iexec-p2p/result/v1" ‖ 0x00 ‖ task id
 * then    the chunked-cipher stream of the archive (see chunked-cipher.ts)
 * ```
 *
 * The requester's public key can be recovered from the signature of its
 * request order, or published in the request's params.
 */
import { rm } from 'node:fs/promises'
import { packFolder, unpackArchive } from './archive.js'
import type { UnpackResult } from './archive.js'
import { ByteReader } from './byte-reader.js'
import { decryptStream, encryptStream, generateContentKey } from './chunked-cipher.js'
import { eciesDecrypt, eciesEncrypt } from './ecies.js'
import type { EciesPrivateKey } from './ecies.js'
import { StorageError } from './errors.js'
import type { CipherOptions, UnpackOptions } from './options.js'

export const RESULT_MAGIC = new TextEncoder().encode('IXP2PRES')
const VERSION = 1
const PREFIX_BYTES = 11
const MAX_ENVELOPE_BYTES = 1024

function context (taskid: string): string {
  return `iexec-p2p/result/v1\u0000${taskid.toLowerCase()}`
}

/** Options of result encryption: the task id binds the envelope to one task. */
export interface ResultCipherOptions extends Partial<CipherOptions> {
  taskid?: string
}

/** Encrypts a stream (a result archive) to a secp256k1 public key. */
export async function * encryptResult (source: AsyncIterable<Uint8Array>, recipientPublicKey: string | Uint8Array, options: ResultCipherOptions = {}): AsyncGenerator<Uint8Array> {
  const key = generateContentKey()
  try {
    const envelope = eciesEncrypt(recipientPublicKey, key, context(options.taskid ?? ''))
    const prefix = new Uint8Array(PREFIX_BYTES + envelope.byteLength)
    prefix.set(RESULT_MAGIC, 0)
    prefix[8] = VERSION
    new DataView(prefix.buffer).setUint16(9, envelope.byteLength)
    prefix.set(envelope, PREFIX_BYTES)
    yield prefix
    yield * encryptStream(source, key, options)
  } finally {
    key.fill(0)
  }
}

/**
 * Decrypts an encrypted result with the recipient's key (a Wallet's
 * `signingKey`). STORAGE_NOT_RECIPIENT for any other key; the chunked
 * cipher's codes for a tampered or truncated body.
 */
export async function * decryptResult (source: AsyncIterable<Uint8Array>, privateKey: EciesPrivateKey, options: { taskid?: string } = {}): AsyncGenerator<Uint8Array> {
  const reader = new ByteReader(source)
  try {
    const prefix = await reader.take(PREFIX_BYTES)
    if (prefix.byteLength < PREFIX_BYTES || !RESULT_MAGIC.every((b, i) => prefix[i] === b)) {
      throw new StorageError('STORAGE_BAD_HEADER', 'not an iexec-p2p encrypted result')
    }
    if (prefix[8] !== VERSION) throw new StorageError('STORAGE_BAD_HEADER', `unsupported result version ${prefix[8]}`)
    const length = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength).getUint16(9)
    if (length > MAX_ENVELOPE_BYTES) throw new StorageError('STORAGE_BAD_HEADER', 'result key envelope too large')
    const envelope = await reader.take(length)
    if (envelope.byteLength < length) throw new StorageError('STORAGE_TRUNCATED', 'the result ends inside its key envelope')
    const key = eciesDecrypt(privateKey, envelope, context(options.taskid ?? ''))
    try {
      yield * decryptStream(reader.remaining(), key)
    } finally {
      key.fill(0)
    }
  } finally {
    await reader.cancel()
  }
}

/** Packs a result folder and encrypts it to the requester. */
export function encryptResultFolder (dir: string, recipientPublicKey: string | Uint8Array, options: ResultCipherOptions = {}): AsyncGenerator<Uint8Array> {
  return encryptResult(packFolder(dir), recipientPublicKey, options)
}

/**
 * Decrypts and unpacks an encrypted result into `dest` (absent or empty).
 * On any failure `dest` is removed, so a tampered result leaves no files.
 */
export async function decryptResultToFolder (source: AsyncIterable<Uint8Array>, privateKey: EciesPrivateKey, dest: string, options: { taskid?: string } & Partial<UnpackOptions> = {}): Promise<UnpackResult> {
  try {
    return await unpackArchive(decryptResult(source, privateKey, options), dest, options)
  } catch (err) {
    // unpackArchive refused a non-empty target before writing anything: keep it
    if (!(err instanceof StorageError && err.code === 'STORAGE_ARCHIVE_TARGET_EXISTS' && err.details?.dest !== undefined)) {
      await rm(dest, { recursive: true, force: true })
    }
    throw err
  }
}
