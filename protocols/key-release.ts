/**
 * Key release: how a worker asks a dataset owner's node for a dataset key.
 *
 * One direct libp2p stream per request on {@link KEY_RELEASE_PROTOCOL}: the
 * worker writes one length-prefixed JSON {@link KeyReleaseRequest}, the
 * owner answers one length-prefixed JSON {@link KeyReleaseResponse} and
 * closes the stream.
 *
 * The request is signed by the worker's Ethereum key as EIP-712 typed data
 * `KeyRequest(address dataset,bytes32 taskid,address worker,bytes32 nonce,uint256 timestamp)`
 * under the hub's domain (protocols/eip712.ts). Why EIP-712 rather than a
 * personal_sign of a hand-made digest: the domain (chain id + hub address)
 * keeps a request from being replayed against another hub or chain, the
 * typed encoding is unambiguous without a home-made concatenation rule, and
 * it is the scheme the worker already uses for bids, so one signer and one
 * recovery path serve both. The type hash differs from every order's, so a
 * request can never be mistaken for an order signature.
 *
 * The request also names the task's deal and index (`taskid` =
 * keccak256(dealid ‖ idx), checked by the owner): the hub cannot map a task
 * id back to its deal before the task is initialized, and a trust-1 task
 * finalized by contribute-and-finalize never is, while the worker needs the
 * key before it computes.
 *
 * The request may carry the scheduler's `Authorization(worker, taskid)`
 * signature (the one the worker will pass to `contribute`): the owner then
 * needs no contribution on chain to know the worker is authorized.
 *
 * The granted key is sealed with ECIES to the public key recovered from the
 * request's signature, bound by {@link keyReleaseContext} to the dataset,
 * the task and the nonce.
 */
import { getAddress, isAddress, isHexString } from 'ethers'
import type { TypedDataField } from 'ethers'
import { ProtocolError } from './errors.js'
import type { HubDomain } from './hub-types.js'
import { hashTypedData, recoverTypedDataSigner, signTypedData } from './typed-data.js'
import type { TypedDataSigner } from './typed-data.js'

/** The stream protocol id. */
export const KEY_RELEASE_PROTOCOL = '/iexec-p2p/key-release/1.0.0'

/** Why an owner refuses a key; sent to the worker as `code`. */
export type KeyReleaseRefusalCode =
  /** the worker is not authorized for this task (not a deal worker, no scheduler authorization, no contribution) */
  | 'NOT_A_WORKER'
  /** the task's deal does not use the dataset named in the request */
  | 'WRONG_DATASET'
  /** the task id is not task `idx` of deal `dealid`, or that deal does not exist or has fewer tasks */
  | 'UNKNOWN_TASK'
  /** the signature does not verify or its signer is not the request's worker */
  | 'BAD_SIGNATURE'
  /** this nonce was already used by this worker */
  | 'REPLAYED_NONCE'
  /** the timestamp is too far from the owner's clock */
  | 'STALE_REQUEST'
  /** malformed request (fields, sizes) */
  | 'BAD_REQUEST'
  /** this node holds no key for the dataset */
  | 'UNKNOWN_DATASET'
  /** the owner could not decide (chain unreachable...); the worker may retry */
  | 'INTERNAL_ERROR'
  /** the owner signed no dataset order for this dataset that it knows of */
  | 'NO_DATASET_ORDER'
  /** no dataset order of the owner allows the deal's app (its `apprestrict`) */
  | 'APP_NOT_ALLOWED'
  /** an order allows the app, but none of those allows the deal's requester (`requesterrestrict`) */
  | 'REQUESTER_NOT_ALLOWED'
  /** orders allow the app and the requester, but the deal's tag lacks a bit they require */
  | 'TAG_NOT_ALLOWED'
  /** the orders that allow the app, requester and tag restrict workers to someone else (`workerpoolrestrict`) */
  | 'WORKER_NOT_ALLOWED'

export const KEY_RELEASE_REFUSAL_CODES: readonly KeyReleaseRefusalCode[] = [
  'NOT_A_WORKER', 'WRONG_DATASET', 'UNKNOWN_TASK', 'BAD_SIGNATURE', 'REPLAYED_NONCE', 'STALE_REQUEST', 'BAD_REQUEST', 'UNKNOWN_DATASET', 'INTERNAL_ERROR',
  'NO_DATASET_ORDER', 'APP_NOT_ALLOWED', 'REQUESTER_NOT_ALLOWED', 'TAG_NOT_ALLOWED', 'WORKER_NOT_ALLOWED'
]

/** The signed part of a request. */
export interface KeyRequestFields {
  /** dataset address (registry id) */
  dataset: string
  /** task id, bytes32 hex */
  taskid: string
  /** the worker's Ethereum address */
  worker: string
  /** 32 random bytes, hex */
  nonce: string
  /** unix seconds when the worker signed */
  timestamp: number
}

/** What the worker sends. */
export interface KeyReleaseRequest extends KeyRequestFields {
  /** the task's deal (bytes32 hex); bound by the signature through taskid */
  dealid: string
  /** the task's index in its deal */
  idx: number
  /** EIP-712 signature of the KeyRequest by `worker` */
  signature: string
  /** the deal scheduler's EIP-712 Authorization(worker, taskid) signature, when the worker has one */
  authorization?: string
}

/** What the owner answers. */
export type KeyReleaseResponse =
  | { ok: true, encryptedKey: string }
  | { ok: false, code: KeyReleaseRefusalCode, reason: string }

/** Wire-format errors of the key-release messages. */
export type KeyReleaseWireErrorCode = 'KEY_RELEASE_BAD_MESSAGE'
export class KeyReleaseWireError extends ProtocolError<KeyReleaseWireErrorCode> {}

/** EIP-712 type of the request (same domain as the hub's orders). */
export const KEY_REQUEST_TYPES: Record<string, TypedDataField[]> = {
  KeyRequest: [
    { name: 'dataset', type: 'address' },
    { name: 'taskid', type: 'bytes32' },
    { name: 'worker', type: 'address' },
    { name: 'nonce', type: 'bytes32' },
    { name: 'timestamp', type: 'uint256' }
  ]
}

/** Bound on a request and a response, bytes. */
export const KEY_RELEASE_MAX_MESSAGE_BYTES = 16 * 1024
const MAX_REASON_CHARS = 500

function typedValue (f: KeyRequestFields): Record<string, unknown> {
  return { dataset: f.dataset, taskid: f.taskid, worker: f.worker, nonce: f.nonce, timestamp: BigInt(f.timestamp) }
}

/** The EIP-712 digest the worker signs (its public key is recovered from a signature over it). */
export function hashKeyRequest (domain: HubDomain, fields: KeyRequestFields): string {
  return hashTypedData(domain, KEY_REQUEST_TYPES, typedValue(fields))
}

/** The worker signs a request. */
export async function signKeyRequest (signer: TypedDataSigner, domain: HubDomain, fields: KeyRequestFields): Promise<string> {
  return await signTypedData(signer, domain, KEY_REQUEST_TYPES, typedValue(fields))
}

/** The address that signed a request; undefined when the signature is malformed or one the hub would refuse (typed-data.ts: the strict recovery of every signed type). */
export function recoverKeyRequestSigner (domain: HubDomain, fields: KeyRequestFields, signature: string): string | undefined {
  try {
    return recoverTypedDataSigner(domain, KEY_REQUEST_TYPES, typedValue(fields), signature)
  } catch {
    return undefined
  }
}

/** The ECIES context that binds a released key to one dataset, task and nonce. */
export function keyReleaseContext (fields: Pick<KeyRequestFields, 'dataset' | 'taskid' | 'nonce'>): string {
  return `iexec-p2p/key-release/v1\u0000${fields.dataset.toLowerCase()}\u0000${fields.taskid.toLowerCase()}\u0000${fields.nonce.toLowerCase()}`
}

const bad = (why: string): never => {
  throw new KeyReleaseWireError('KEY_RELEASE_BAD_MESSAGE', why)
}

function parseJson (bytes: Uint8Array): Record<string, unknown> {
  if (bytes.byteLength > KEY_RELEASE_MAX_MESSAGE_BYTES) bad('message too large')
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch {
    bad('message is not UTF-8 JSON')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) bad('message is not a JSON object')
  return value as Record<string, unknown>
}

const isSignature = (v: unknown): v is string => typeof v === 'string' && isHexString(v, 65)

/** Encodes a request for the wire. */
export function encodeKeyReleaseRequest (req: KeyReleaseRequest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(req))
}

/** Decodes and validates a request; KEY_RELEASE_BAD_MESSAGE when malformed. Addresses come back checksummed. */
export function decodeKeyReleaseRequest (bytes: Uint8Array): KeyReleaseRequest {
  const o = parseJson(bytes)
  if (typeof o.dataset !== 'string' || !isAddress(o.dataset)) bad('dataset is not an address')
  if (typeof o.worker !== 'string' || !isAddress(o.worker)) bad('worker is not an address')
  if (typeof o.taskid !== 'string' || !isHexString(o.taskid, 32)) bad('taskid is not 32 bytes of hex')
  if (typeof o.nonce !== 'string' || !isHexString(o.nonce, 32)) bad('nonce is not 32 bytes of hex')
  if (typeof o.dealid !== 'string' || !isHexString(o.dealid, 32)) bad('dealid is not 32 bytes of hex')
  if (typeof o.idx !== 'number' || !Number.isSafeInteger(o.idx) || o.idx < 0) bad('idx is not a task index')
  if (typeof o.timestamp !== 'number' || !Number.isSafeInteger(o.timestamp) || o.timestamp < 0) bad('timestamp is not unix seconds')
  if (!isSignature(o.signature)) bad('signature is not 65 bytes of hex')
  if (o.authorization !== undefined && !isSignature(o.authorization)) bad('authorization is not 65 bytes of hex')
  const req: KeyReleaseRequest = {
    dataset: getAddress(o.dataset as string),
    taskid: (o.taskid as string).toLowerCase(),
    dealid: (o.dealid as string).toLowerCase(),
    idx: o.idx as number,
    worker: getAddress(o.worker as string),
    nonce: (o.nonce as string).toLowerCase(),
    timestamp: o.timestamp as number,
    signature: o.signature as string
  }
  if (o.authorization !== undefined) req.authorization = o.authorization as string
  return req
}

/** Encodes a response for the wire. */
export function encodeKeyReleaseResponse (res: KeyReleaseResponse): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(res))
}

/** Decodes and validates a response; KEY_RELEASE_BAD_MESSAGE when malformed. */
export function decodeKeyReleaseResponse (bytes: Uint8Array): KeyReleaseResponse {
  const o = parseJson(bytes)
  if (o.ok === true) {
    if (typeof o.encryptedKey !== 'string' || !isHexString(o.encryptedKey) || o.encryptedKey.length > 2 + 2 * 1024) bad('encryptedKey is not hex')
    return { ok: true, encryptedKey: o.encryptedKey as string }
  }
  if (o.ok === false) {
    if (typeof o.code !== 'string' || !(KEY_RELEASE_REFUSAL_CODES as readonly string[]).includes(o.code)) bad('unknown refusal code')
    const reason = typeof o.reason === 'string' ? o.reason.slice(0, MAX_REASON_CHARS) : ''
    return { ok: false, code: o.code as KeyReleaseRefusalCode, reason }
  }
  return bad('ok is not a boolean')
}
