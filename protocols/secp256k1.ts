/**
 * ECDSA over secp256k1 on 32-byte digests, the hot path of the market and
 * of execution: every node recovers the signer of every order and bid it
 * relays, every provider signs its bids, every scheduler signs one
 * authorization per task and every worker recovers it.
 *
 * ethers does the same in JavaScript (@noble/curves): about 2.5 ms to
 * recover on this machine, which at 50 nodes in one process was a large part
 * of a request's time to its first bid. Here it is libsecp256k1 compiled to
 * WebAssembly (tiny-secp256k1): about 0.4 ms to recover, 0.1 ms to sign a
 * digest (`npm run bench -- signatures`). Both sign deterministically (RFC 6979, low s), so the signatures
 * are byte for byte those ethers makes (a unit test checks it).
 *
 * Recovery is as strict as the hub (OpenZeppelin's ECDSA.tryRecover on 65
 * bytes): v is 27 or 28 and s is in the lower half of the curve order.
 * Anything else would be refused by `matchOrders` or `contribute`, so it is
 * refused here too.
 */
import * as ecc from 'tiny-secp256k1'
import { keccak256 } from 'ethers'
import { ProtocolError } from './errors.js'
import { checksumAddress } from './address.js'

/** n / 2: a larger s is the malleable twin of a valid signature (EIP-2) */
const HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n

const HEX = /^0x[0-9a-fA-F]*$/

function bytesOf (hex: string, length: number, what: string): Buffer {
  if (typeof hex !== 'string' || hex.length !== 2 + length * 2 || !HEX.test(hex)) {
    throw new ProtocolError('EIP712_INVALID_SIGNATURE', `${what} is not ${length} bytes of hex`)
  }
  return Buffer.from(hex.slice(2), 'hex')
}

/** The address of an uncompressed public key (65 bytes, 0x04 first). */
function addressOf (publicKey: Uint8Array): string {
  return checksumAddress('0x' + keccak256(publicKey.subarray(1)).slice(26)) as string
}

/**
 * The address whose key signed `digest` (32 bytes hex) with `sign` (65
 * bytes hex: r ‖ s ‖ v). @throws ProtocolError EIP712_INVALID_SIGNATURE when
 * the signature is malformed, malleable (high s), has another v, or
 * recovers nothing.
 */
export function recoverDigestSigner (digest: string, sign: string): string {
  const h = bytesOf(digest, 32, 'the digest')
  const sig = bytesOf(sign, 65, 'the signature')
  const v = sig[64]
  if (v !== 27 && v !== 28) throw new ProtocolError('EIP712_INVALID_SIGNATURE', `the signature's v is ${v}, not 27 or 28`)
  const s = BigInt('0x' + sig.subarray(32, 64).toString('hex'))
  if (s === 0n || s > HALF_ORDER) throw new ProtocolError('EIP712_INVALID_SIGNATURE', 'the signature\'s s is not in the lower half of the curve order')
  let key: Uint8Array | null
  try {
    key = ecc.recover(h, sig.subarray(0, 64), (v - 27) as 0 | 1, false)
  } catch (err) {
    // r or s out of range, or r not on the curve
    throw new ProtocolError('EIP712_INVALID_SIGNATURE', 'the signature does not recover', undefined, { cause: err })
  }
  if (key === null) throw new ProtocolError('EIP712_INVALID_SIGNATURE', 'the signature does not recover')
  return addressOf(key)
}

/** Signs a 32-byte digest with a 32-byte private key: 65 bytes hex, r ‖ s ‖ v (v = 27 | 28), as ethers' `SigningKey.sign(...).serialized`. */
export function signDigest (privateKey: Uint8Array, digest: string): string {
  const { signature, recoveryId } = ecc.signRecoverable(bytesOf(digest, 32, 'the digest'), privateKey)
  const out = Buffer.alloc(65)
  out.set(signature, 0)
  out[64] = 27 + recoveryId
  return '0x' + out.toString('hex')
}

/**
 * The private key of an ethers Wallet (`signingKey.privateKey`), so that a
 * digest can be signed here rather than through `signTypedData`; undefined
 * for any other signer (a remote or hardware signer keeps its own path).
 */
export function privateKeyOf (signer: unknown): Uint8Array | undefined {
  const key = (signer as { signingKey?: { privateKey?: unknown } } | null)?.signingKey?.privateKey
  if (typeof key !== 'string' || key.length !== 66 || !HEX.test(key)) return undefined
  return Buffer.from(key.slice(2), 'hex')
}
