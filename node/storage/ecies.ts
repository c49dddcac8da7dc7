/**
 * ECIES over secp256k1 with Ethereum keys: seals a small secret (a content
 * key) so that only the holder of one Ethereum private key can open it.
 *
 * Every Ethereum account already has a secp256k1 key pair and its public key
 * can be recovered from any signature it made (a key-release request, a
 * request order), so no extra key distribution is needed.
 *
 * Envelope, version 1:
 *
 * ```
 * 0       version = 1
 * 1..34   ephemeral public key, compressed (33 bytes)
 * 34..46  AES-GCM nonce (12 random bytes)
 * 46..    AES-256-GCM ciphertext ‖ tag(16)
 * ```
 *
 * k = HKDF-SHA256(ikm = x(ECDH(ephemeral, recipient)), salt = ephemeral
 * pub ‖ recipient pub (both compressed), info = "iexec-p2p/ecies/v1" ‖ 0x00 ‖
 * context). The AAD is the envelope's first 34 bytes plus the context, so
 * an envelope made for one purpose (say, the key of dataset D for task T)
 * cannot be presented as another.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { SigningKey, getBytes, hexlify } from 'ethers'
import { StorageError } from './errors.js'

const VERSION = 1
const EPH_BYTES = 33
const NONCE_BYTES = 12
const TAG_BYTES = 16
const HEADER_BYTES = 1 + EPH_BYTES + NONCE_BYTES
const INFO = 'iexec-p2p/ecies/v1'

/** Something that can do ECDH with its private key: an ethers SigningKey (a Wallet's `signingKey`). */
export interface EciesPrivateKey {
  computeSharedSecret: (other: string | Uint8Array) => string
  readonly compressedPublicKey: string
}

/** Normalizes a secp256k1 public key (0x hex or bytes, compressed or not) to its compressed form; STORAGE_INVALID_ARGUMENT when it is not a curve point. */
export function compressPublicKey (publicKey: string | Uint8Array): Uint8Array {
  try {
    const bytes = getBytes(publicKey)
    if (bytes.byteLength !== 33 && bytes.byteLength !== 65) throw new Error('length')
    return getBytes(SigningKey.computePublicKey(bytes, true))
  } catch (err) {
    throw new StorageError('STORAGE_INVALID_ARGUMENT', 'not a secp256k1 public key', {}, { cause: err })
  }
}

/** Recovers the public key (uncompressed 0x hex) that made a signature over a 32-byte digest. */
export function recoverPublicKey (digest: string, signature: string): string {
  try {
    return SigningKey.recoverPublicKey(digest, signature)
  } catch (err) {
    throw new StorageError('STORAGE_INVALID_ARGUMENT', 'cannot recover a public key from this signature', {}, { cause: err })
  }
}

function deriveKey (sharedPoint: string, eph: Uint8Array, recipient: Uint8Array, context: Uint8Array): Buffer {
  // the x coordinate of the shared point: bytes 1..33 of the uncompressed encoding
  const x = getBytes(sharedPoint).subarray(1, 33)
  const salt = Buffer.concat([eph, recipient])
  const info = Buffer.concat([Buffer.from(INFO), Buffer.from([0]), context])
  return Buffer.from(hkdfSync('sha256', x, salt, info, 32))
}

function contextBytes (context: string | Uint8Array): Uint8Array {
  return typeof context === 'string' ? new TextEncoder().encode(context) : context
}

/** Seals `plaintext` to a recipient's secp256k1 public key, bound to `context`. */
export function eciesEncrypt (recipientPublicKey: string | Uint8Array, plaintext: Uint8Array, context: string | Uint8Array = ''): Uint8Array {
  const recipient = compressPublicKey(recipientPublicKey)
  const ephemeral = new SigningKey(randomBytes(32))
  const eph = getBytes(ephemeral.compressedPublicKey)
  const ctx = contextBytes(context)
  const key = deriveKey(ephemeral.computeSharedSecret(recipient), eph, recipient, ctx)
  const header = new Uint8Array(HEADER_BYTES)
  header[0] = VERSION
  header.set(eph, 1)
  header.set(randomBytes(NONCE_BYTES), 1 + EPH_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, header.subarray(1 + EPH_BYTES))
  cipher.setAAD(Buffer.concat([header.subarray(0, 1 + EPH_BYTES), ctx]))
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  const out = new Uint8Array(HEADER_BYTES + body.byteLength)
  out.set(header, 0)
  out.set(body, HEADER_BYTES)
  return out
}

/**
 * Opens an envelope with the recipient's private key. STORAGE_NOT_RECIPIENT
 * when it is malformed, was sealed to another key, for another context, or
 * was altered.
 */
export function eciesDecrypt (privateKey: EciesPrivateKey, envelope: Uint8Array, context: string | Uint8Array = ''): Uint8Array {
  if (envelope.byteLength < HEADER_BYTES + TAG_BYTES || envelope[0] !== VERSION) {
    throw new StorageError('STORAGE_NOT_RECIPIENT', 'malformed ECIES envelope')
  }
  const eph = envelope.subarray(1, 1 + EPH_BYTES)
  const ctx = contextBytes(context)
  let shared: string
  try {
    shared = privateKey.computeSharedSecret(hexlify(eph))
  } catch (err) {
    throw new StorageError('STORAGE_NOT_RECIPIENT', 'the envelope\'s ephemeral key is not a curve point', {}, { cause: err })
  }
  const key = deriveKey(shared, eph, getBytes(privateKey.compressedPublicKey), ctx)
  const decipher = createDecipheriv('aes-256-gcm', key, envelope.subarray(1 + EPH_BYTES, HEADER_BYTES))
  decipher.setAAD(Buffer.concat([envelope.subarray(0, 1 + EPH_BYTES), ctx]))
  decipher.setAuthTag(envelope.subarray(envelope.byteLength - TAG_BYTES))
  try {
    return new Uint8Array(Buffer.concat([decipher.update(envelope.subarray(HEADER_BYTES, envelope.byteLength - TAG_BYTES)), decipher.final()]))
  } catch (err) {
    throw new StorageError('STORAGE_NOT_RECIPIENT', 'this key cannot open the envelope (other recipient, other context, or altered)', {}, { cause: err })
  }
}
