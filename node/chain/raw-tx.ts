/**
 * Signed transaction bytes, made here rather than by ethers' Transaction:
 * RLP over Buffers, one hex decode of the calldata, keccak over bytes. A
 * worker's group commit carries several kilobytes of calldata, and ethers
 * parsed that hex byte by byte, twice, and RLP-encoded it twice (its
 * unsigned hash, then its serialization): about 4 % of a worker's main
 * thread in a bag of tiny tasks. The bytes are ethers' own (a unit test
 * compares both on random transactions of both types).
 */
import { keccak256 } from 'ethers'
import { signDigest } from '../../protocols/secp256k1.js'
import { ChainError } from './errors.js'

/** What a transaction says, before its signature. */
export interface UnsignedTx {
  chainId: number
  nonce: number
  gasLimit: bigint
  /** the contract called: 0x and 40 hex digits */
  to: string
  value: bigint
  /** calldata, 0x-prefixed hex */
  data: string
  /** EIP-1559 fees (type 2), or a legacy gas price (type 0, EIP-155) */
  fees: { maxFeePerGas: bigint, maxPriorityFeePerGas: bigint } | { gasPrice: bigint }
}

type Rlp = Buffer | Rlp[]

/** An unsigned integer as RLP wants it: big-endian, no leading zero bytes (0 is empty). */
function uint (v: bigint | number): Buffer {
  const n = BigInt(v)
  if (n < 0n) throw new ChainError('INVALID_ARGUMENT', 'a transaction field is negative', {})
  if (n === 0n) return Buffer.alloc(0)
  let hex = n.toString(16)
  if (hex.length % 2 === 1) hex = '0' + hex
  return Buffer.from(hex, 'hex')
}

function hexBytes (hex: string, what: string, length?: number): Buffer {
  const bytes = Buffer.from(hex.slice(2), 'hex')
  // Buffer.from stops quietly at the first character that is not hex
  if (!hex.startsWith('0x') || hex.length % 2 !== 0 || bytes.byteLength !== (hex.length - 2) / 2 || (length !== undefined && bytes.byteLength !== length)) {
    throw new ChainError('INVALID_ARGUMENT', `${what} is not ${length === undefined ? '' : `${length} bytes of `}hex`, {})
  }
  return bytes
}

function lengthPrefix (length: number, short: number): Buffer {
  if (length <= 55) return Buffer.from([short + length])
  const len = uint(length)
  return Buffer.concat([Buffer.from([short + 55 + len.byteLength]), len])
}

function encode (item: Rlp): Buffer {
  if (Buffer.isBuffer(item)) {
    if (item.byteLength === 1 && item[0] < 0x80) return item
    return Buffer.concat([lengthPrefix(item.byteLength, 0x80), item])
  }
  const payload = Buffer.concat(item.map(encode))
  return Buffer.concat([lengthPrefix(payload.byteLength, 0xc0), payload])
}

/**
 * Signs `tx` with a 32-byte private key: the raw transaction for
 * eth_sendRawTransaction and its hash.
 * @throws ChainError INVALID_ARGUMENT on a malformed address or calldata
 */
export function signTransaction (tx: UnsignedTx, privateKey: Uint8Array): { serialized: string, hash: string } {
  const common: Rlp[] = [uint(tx.gasLimit), hexBytes(tx.to, 'the recipient', 20), uint(tx.value), hexBytes(tx.data, 'the calldata')]
  let unsigned: Buffer
  let signedOf: (yParity: number, r: Buffer, s: Buffer) => Buffer
  if ('maxFeePerGas' in tx.fees) {
    const fields: Rlp[] = [uint(tx.chainId), uint(tx.nonce), uint(tx.fees.maxPriorityFeePerGas), uint(tx.fees.maxFeePerGas), ...common, []]
    unsigned = Buffer.concat([Buffer.from([2]), encode(fields)])
    signedOf = (yParity, r, s) => Buffer.concat([Buffer.from([2]), encode([...fields, uint(yParity), r, s])])
  } else {
    const fields: Rlp[] = [uint(tx.nonce), uint(tx.fees.gasPrice), ...common]
    unsigned = encode([...fields, uint(tx.chainId), Buffer.alloc(0), Buffer.alloc(0)])
    signedOf = (yParity, r, s) => encode([...fields, uint(BigInt(tx.chainId) * 2n + 35n + BigInt(yParity)), r, s])
  }
  const sig = Buffer.from(signDigest(privateKey, keccak256(unsigned)).slice(2), 'hex')
  // r and s are integers to RLP: their leading zero bytes go
  const signed = signedOf(sig[64] - 27, uint(BigInt('0x' + sig.subarray(0, 32).toString('hex'))), uint(BigInt('0x' + sig.subarray(32, 64).toString('hex'))))
  return { serialized: '0x' + signed.toString('hex'), hash: keccak256(signed) }
}
