/**
 * A provider's resource record: what it offers (cpus, memory, executors,
 * category, price floor, tags), published in the DHT under
 * `/iexec-res/<peerId>`. It is signed twice over the same bytes: by the
 * libp2p peer key (so only that peer can publish under its key) and by the
 * node's Ethereum wallet (binding the peer id to the address that stakes and
 * gets paid on chain).
 *
 * Wire form (JSON, at most RESOURCE_RECORD_MAX_BYTES):
 * `{ "payload": "<record as JSON text>", "peerSig": "<base64>", "ethSig": "0x..." }`.
 * The signatures cover SIGNING_DOMAIN + payload exactly as sent, so no
 * canonical JSON is needed.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { getAddress, verifyMessage } from 'ethers'
import type { PrivateKey } from '@libp2p/interface'
import { ProtocolError } from './errors.js'
import type { Resources } from './resources.js'

export type ResourceRecordErrorCode =
  /** the encoded record exceeds RESOURCE_RECORD_MAX_BYTES */
  | 'RECORD_TOO_LARGE'
  /** not JSON, or not the wire shape */
  | 'RECORD_MALFORMED'
  /** a field is missing, of the wrong type or out of its limits; details.field */
  | 'RECORD_INVALID'
  /** the libp2p signature does not verify against the record's peer id */
  | 'RECORD_BAD_PEER_SIGNATURE'
  /** the Ethereum signature does not recover the record's address */
  | 'RECORD_BAD_ETH_SIGNATURE'
  /** the record's peer id is not the one expected (e.g. the DHT key's) */
  | 'RECORD_PEER_MISMATCH'

export class ResourceRecordError extends ProtocolError<ResourceRecordErrorCode> {}

/** A provider's resources with its identity, version and publication time. */
export interface ResourceRecord extends Resources {
  peerId: string
  /** checksummed Ethereum address of the node's wallet */
  address: string
  /** software version of the node */
  version: string
  /** ms since epoch when signed */
  timestamp: number
  /** increases on every re-publication; the DHT keeps the highest */
  seq: number
}

/** What signs a record's Ethereum half: an ethers Wallet fits. */
export interface EthMessageSigner {
  readonly address: string
  signMessage: (message: Uint8Array) => Promise<string>
}

/** 4 KiB: a record is a few hundred bytes; the bound caps what a DHT peer must store per key. */
export const RESOURCE_RECORD_MAX_BYTES = 4096

/** Prepended to the payload before signing, so the signatures cannot be replayed as another message type. */
export const SIGNING_DOMAIN = 'iexec-p2p/resource-record/1\n'

const LIMITS = {
  maxTags: 16,
  maxTagLength: 64,
  maxExecutors: 8,
  maxExecutorLength: 32,
  maxVersionLength: 32
}

const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })

function bad (field: string, why: string): ResourceRecordError {
  return new ResourceRecordError('RECORD_INVALID', `resource record: ${field} ${why}`, { field })
}

function int (v: unknown, field: string, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw bad(field, `must be an integer in [0, ${max}]`)
  return v
}

function strings (v: unknown, field: string, max: number, maxLen: number): string[] {
  if (!Array.isArray(v) || v.length > max) throw bad(field, `must be an array of at most ${max} strings`)
  for (const s of v) {
    if (typeof s !== 'string' || s.length === 0 || s.length > maxLen) throw bad(field, `entries must be 1-${maxLen} characters`)
  }
  return [...v] as string[]
}

/**
 * Checks the schema and limits of a record (no signatures).
 * @throws ResourceRecordError RECORD_INVALID
 */
export function validateResourceRecord (input: unknown): ResourceRecord {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw bad('(root)', 'must be an object')
  const v = input as Record<string, unknown>
  const allowed = new Set(['peerId', 'address', 'cpus', 'memoryMb', 'diskMb', 'gpus', 'executors', 'category', 'priceFloor', 'version', 'tags', 'timestamp', 'seq'])
  for (const k of Object.keys(v)) if (!allowed.has(k)) throw bad(k, 'is not a record field')
  if (typeof v.peerId !== 'string') throw bad('peerId', 'must be a string')
  try {
    const id = peerIdFromString(v.peerId)
    // only key types whose public key is inside the id can be verified offline
    if (id.publicKey === undefined) throw new Error('no inline public key')
  } catch {
    throw bad('peerId', 'must be an Ed25519 or secp256k1 peer id')
  }
  let address: string
  try {
    if (typeof v.address !== 'string') throw new Error('not a string')
    address = getAddress(v.address)
  } catch {
    throw bad('address', 'must be an Ethereum address')
  }
  if (typeof v.priceFloor !== 'string' || !/^(0|[1-9][0-9]{0,30})$/.test(v.priceFloor)) throw bad('priceFloor', 'must be a decimal integer string')
  if (typeof v.version !== 'string' || v.version.length === 0 || v.version.length > LIMITS.maxVersionLength) throw bad('version', `must be 1-${LIMITS.maxVersionLength} characters`)
  return {
    peerId: v.peerId,
    address,
    cpus: int(v.cpus, 'cpus', 4096),
    memoryMb: int(v.memoryMb, 'memoryMb', 64 * 1024 * 1024),
    ...(v.diskMb !== undefined ? { diskMb: int(v.diskMb, 'diskMb', 0xffffffff) } : {}),
    gpus: int(v.gpus, 'gpus', 1024),
    executors: strings(v.executors, 'executors', LIMITS.maxExecutors, LIMITS.maxExecutorLength),
    category: int(v.category, 'category', 1_000_000),
    priceFloor: v.priceFloor,
    version: v.version,
    tags: strings(v.tags, 'tags', LIMITS.maxTags, LIMITS.maxTagLength),
    timestamp: int(v.timestamp, 'timestamp', Number.MAX_SAFE_INTEGER),
    seq: int(v.seq, 'seq', Number.MAX_SAFE_INTEGER)
  }
}

function signingBytes (payload: string): Uint8Array {
  return enc.encode(SIGNING_DOMAIN + payload)
}

/**
 * Signs a record with the peer key and the wallet; returns the wire bytes.
 * @throws ResourceRecordError RECORD_INVALID, RECORD_PEER_MISMATCH (key is not the record's peer), RECORD_TOO_LARGE
 */
export async function signResourceRecord (record: ResourceRecord, peerKey: PrivateKey, wallet: EthMessageSigner): Promise<Uint8Array> {
  const checked = validateResourceRecord(record)
  if (peerKey.publicKey.toCID().toString() !== peerIdFromString(checked.peerId).toCID().toString()) {
    throw new ResourceRecordError('RECORD_PEER_MISMATCH', 'the signing key is not the record\'s peer id', { peerId: checked.peerId })
  }
  if (getAddress(wallet.address) !== checked.address) {
    throw new ResourceRecordError('RECORD_INVALID', 'the wallet is not the record\'s address', { field: 'address' })
  }
  const payload = JSON.stringify(checked)
  const bytes = signingBytes(payload)
  const peerSig = await peerKey.sign(bytes)
  const ethSig = await wallet.signMessage(bytes)
  const wire = enc.encode(JSON.stringify({ payload, peerSig: Buffer.from(peerSig).toString('base64'), ethSig }))
  if (wire.length > RESOURCE_RECORD_MAX_BYTES) {
    throw new ResourceRecordError('RECORD_TOO_LARGE', `record is ${wire.length} bytes, over ${RESOURCE_RECORD_MAX_BYTES}`, { size: wire.length })
  }
  return wire
}

interface WireRecord { payload: string, peerSig: string, ethSig: string }

function decodeWire (bytes: Uint8Array): WireRecord {
  if (bytes.length > RESOURCE_RECORD_MAX_BYTES) {
    throw new ResourceRecordError('RECORD_TOO_LARGE', `record is ${bytes.length} bytes, over ${RESOURCE_RECORD_MAX_BYTES}`, { size: bytes.length })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(dec.decode(bytes))
  } catch (err) {
    throw new ResourceRecordError('RECORD_MALFORMED', 'record is not UTF-8 JSON', undefined, { cause: err })
  }
  const w = parsed as Partial<WireRecord> | null
  if (w === null || typeof w !== 'object' || typeof w.payload !== 'string' || typeof w.peerSig !== 'string' || typeof w.ethSig !== 'string') {
    throw new ResourceRecordError('RECORD_MALFORMED', 'record must be { payload, peerSig, ethSig } strings')
  }
  return { payload: w.payload, peerSig: w.peerSig, ethSig: w.ethSig }
}

/**
 * Decodes the record WITHOUT checking signatures (for selectors that compare
 * already-validated records). Use verifyResourceRecord for anything received.
 */
export function decodeResourceRecordUnverified (bytes: Uint8Array): ResourceRecord {
  const w = decodeWire(bytes)
  let inner: unknown
  try {
    inner = JSON.parse(w.payload)
  } catch (err) {
    throw new ResourceRecordError('RECORD_MALFORMED', 'record payload is not JSON', undefined, { cause: err })
  }
  return validateResourceRecord(inner)
}

/**
 * Decodes and fully verifies wire bytes: size, schema, the peer signature
 * against the peer id's key, the Ethereum signature against the address, and
 * (when given) that the record belongs to `expectedPeerId`.
 * @throws ResourceRecordError with one of its codes
 */
export async function verifyResourceRecord (bytes: Uint8Array, expectedPeerId?: string): Promise<ResourceRecord> {
  const w = decodeWire(bytes)
  const record = decodeResourceRecordUnverified(bytes)
  if (expectedPeerId !== undefined && record.peerId !== expectedPeerId) {
    throw new ResourceRecordError('RECORD_PEER_MISMATCH', 'record is for another peer', { expected: expectedPeerId, got: record.peerId })
  }
  const signed = signingBytes(w.payload)
  const publicKey = peerIdFromString(record.peerId).publicKey
  let peerOk = false
  try {
    peerOk = publicKey !== undefined && await publicKey.verify(signed, Buffer.from(w.peerSig, 'base64'))
  } catch {
    peerOk = false
  }
  if (!peerOk) throw new ResourceRecordError('RECORD_BAD_PEER_SIGNATURE', 'peer signature does not verify', { peerId: record.peerId })
  let recovered: string | undefined
  try {
    recovered = verifyMessage(signed, w.ethSig)
  } catch {
    recovered = undefined
  }
  if (recovered !== record.address) {
    throw new ResourceRecordError('RECORD_BAD_ETH_SIGNATURE', 'Ethereum signature does not recover the record\'s address', { address: record.address })
  }
  return record
}

/** Higher seq wins; equal seq falls back to the later timestamp. Negative when `a` is older. */
export function compareResourceRecords (a: ResourceRecord, b: ResourceRecord): number {
  return a.seq !== b.seq ? a.seq - b.seq : a.timestamp - b.timestamp
}
