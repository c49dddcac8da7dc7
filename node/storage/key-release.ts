/**
 * Key release, both sides: the owner's decision (a pure-ish async function
 * over injected views of the chain, the key store, the clock and the nonce
 * registry), the owner's stream handler, and the worker's request.
 * Wire format and signing: protocols/key-release.ts.
 */
import { randomBytes } from 'node:crypto'
import { getAddress, hexlify, getBytes } from 'ethers'
import { lpStream } from '@libp2p/utils'
import type { Stream, StreamHandler } from '@libp2p/interface'
import { recoverAuthorizationSigner, taskId } from '../../protocols/eip712.js'
import type { HubDomain, TypedDataSigner } from '../../protocols/eip712.js'
import {
  KEY_RELEASE_PROTOCOL, decodeKeyReleaseRequest, decodeKeyReleaseResponse, encodeKeyReleaseRequest,
  encodeKeyReleaseResponse, hashKeyRequest, keyReleaseContext, recoverKeyRequestSigner, signKeyRequest
} from '../../protocols/key-release.js'
import type { KeyReleaseRefusalCode, KeyReleaseRequest, KeyReleaseResponse } from '../../protocols/key-release.js'
import { CONTENT_KEY_BYTES } from './chunked-cipher.js'
import { eciesDecrypt, eciesEncrypt, recoverPublicKey } from './ecies.js'
import type { EciesPrivateKey } from './ecies.js'
import { StorageError } from './errors.js'
import type { DatasetKey, KeyStore } from './key-store.js'
import { KEY_RELEASE_DEFAULTS } from './options.js'
import type { KeyReleaseOptions } from './options.js'

/** What the owner needs to know about a deal (read from the hub). */
export interface DealView {
  /** the dataset the deal uses (zero address when none) */
  dataset: string
  /** the deal's current scheduler (it signs authorizations) */
  scheduler: string
  /** tasks in the deal */
  volume: bigint
  /** the app the deal runs */
  app: string
  /** who asked (and pays) */
  requester: string
  /** the request's tag (bytes32 hex): every requirement the deal accepted */
  tag: string
}

/** The rules of one dataset order the owner signed (its restrictions and its tag). */
export interface DatasetOrderRules {
  apprestrict: string
  requesterrestrict: string
  workerpoolrestrict: string
  /** bytes32 hex */
  tag: string
}

/**
 * The chain as key release sees it: injected so the decision is
 * unit-testable; `createHubKeyReleaseView` implements it over the hub.
 */
export interface KeyReleaseChainView {
  /** a deal, undefined when no such deal exists */
  deal: (dealid: string) => Promise<DealView | undefined>
  /** whether `worker` is one of the deal's accepted bidders */
  isDealWorker: (dealid: string, worker: string) => Promise<boolean>
  /** whether the worker has a contribution on chain for the task (optional: without it, only a scheduler authorization proves it) */
  hasContributed?: (taskid: string, worker: string) => Promise<boolean>
}

/** Remembers nonces until their request could no longer be fresh. */
export interface NonceRegistry {
  /** true when (worker, nonce) is new (and now remembered), false when already seen */
  remember: (worker: string, nonce: string, expiresAtMs: number, nowMs: number) => boolean
}

/**
 * An in-memory nonce registry bounded in entries. Entries expire when their
 * request would be stale anyway. When full of live entries the oldest is
 * evicted: a replay is then possible within the freshness window, but a
 * replayed request only gets a key sealed to the worker that signed it
 * again, useless to anyone else; the bound keeps a flood of self-signed
 * requests from growing memory.
 */
export class MemoryNonceRegistry implements NonceRegistry {
  private readonly seen = new Map<string, number>()
  private readonly maxEntries: number

  constructor (maxEntries = 100_000) {
    this.maxEntries = maxEntries
  }

  remember (worker: string, nonce: string, expiresAtMs: number, nowMs: number): boolean {
    const id = `${worker.toLowerCase()}:${nonce.toLowerCase()}`
    const until = this.seen.get(id)
    if (until !== undefined && until > nowMs) return false
    // prune expired entries from the oldest end (insertion order ~ time order)
    for (const [k, exp] of this.seen) {
      if (exp > nowMs && this.seen.size < this.maxEntries) break
      this.seen.delete(k)
    }
    this.seen.set(id, expiresAtMs)
    return true
  }

  get size (): number {
    return this.seen.size
  }
}

/** What `decideKeyRelease` reads. */
export interface KeyReleaseOwnerContext {
  /** the hub's EIP-712 domain (requests and authorizations are signed under it) */
  domain: HubDomain
  /** the owner's clock, unix ms */
  now: () => number
  seenNonces: NonceRegistry
  chain: KeyReleaseChainView
  keyStore: KeyStore
  /**
   * The dataset orders this node signed for a dataset, cancelled and
   * consumed ones included (a deal made before a cancel consumed one of
   * them). Empty or undefined: the owner allowed nothing it knows of.
   */
  datasetOrders: (dataset: string) => Promise<readonly DatasetOrderRules[] | undefined>
  maxRequestAgeSeconds?: number
}

/** A decision: the response to send, plus the refusal code for logs and metrics. */
export interface KeyReleaseDecision {
  response: KeyReleaseResponse
  /** undefined when the key was released */
  refused?: KeyReleaseRefusalCode
}

const RULE_WORDS: Partial<Record<KeyReleaseRefusalCode, string>> = {
  NO_DATASET_ORDER: 'the owner signed no order for this dataset',
  APP_NOT_ALLOWED: 'the owner allows no such app on this dataset',
  REQUESTER_NOT_ALLOWED: 'the owner does not allow this requester on this dataset with this app',
  TAG_NOT_ALLOWED: 'the deal does not accept the tags the owner requires',
  WORKER_NOT_ALLOWED: 'the owner restricts this dataset to other workers'
}

function refuse (code: KeyReleaseRefusalCode, reason: string): KeyReleaseDecision {
  return { response: { ok: false, code, reason }, refused: code }
}

const sameAddress = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()
const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000'
const allows = (restriction: string, party: string): boolean => sameAddress(restriction, ZERO_ADDRESS) || sameAddress(restriction, party)

/**
 * Whether one of the owner's dataset orders allows what a deal computes:
 * the deal's app, its requester and its tag, for this worker — the rules
 * the hub's matchOrders applied to the order the deal consumed. The hub
 * does not record which order that was, so the owner asks whether any
 * order it signed would have let the deal through. Undefined when one
 * does; otherwise the first rule every order broke, in the order app,
 * requester, tag, worker, so the refusal names the owner's decision
 * closest to the deal (an app allow-list first).
 */
export function dealAllowedBy (orders: readonly DatasetOrderRules[] | undefined, deal: Pick<DealView, 'app' | 'requester' | 'tag'>, worker: string): KeyReleaseRefusalCode | undefined {
  if (orders === undefined || orders.length === 0) return 'NO_DATASET_ORDER'
  let left = orders.filter((o) => allows(o.apprestrict, deal.app))
  if (left.length === 0) return 'APP_NOT_ALLOWED'
  left = left.filter((o) => allows(o.requesterrestrict, deal.requester))
  if (left.length === 0) return 'REQUESTER_NOT_ALLOWED'
  const dealTag = BigInt(deal.tag)
  left = left.filter((o) => (BigInt(o.tag) & ~dealTag) === 0n)
  if (left.length === 0) return 'TAG_NOT_ALLOWED'
  left = left.filter((o) => allows(o.workerpoolrestrict, worker))
  if (left.length === 0) return 'WORKER_NOT_ALLOWED'
  return undefined
}

/**
 * The owner's decision on one request. Checks, cheapest first so a flood
 * of bad requests costs no chain calls:
 * 1. the timestamp is within `maxRequestAgeSeconds` of the owner's clock (STALE_REQUEST);
 * 2. the EIP-712 signature recovers to the request's worker (BAD_SIGNATURE);
 * 3. the task id is task `idx` of deal `dealid` (UNKNOWN_TASK);
 * 4. this worker never used this nonce (REPLAYED_NONCE);
 *    then, on chain: deal `dealid` exists with more than `idx` tasks (UNKNOWN_TASK);
 * 5. that deal uses this dataset (WRONG_DATASET): a worker of another deal
 *    cannot borrow a task of its own to get someone else's key;
 * 6. the worker is one of the deal's workers AND is authorized for this
 *    task: the deal's scheduler signed Authorization(worker, taskid), or the
 *    worker has a contribution on chain (NOT_A_WORKER);
 * 7. the computation is one the owner allowed: an order it signed for the
 *    dataset allows the deal's app, requester and tag, and this worker
 *    (NO_DATASET_ORDER, APP_NOT_ALLOWED, REQUESTER_NOT_ALLOWED,
 *    TAG_NOT_ALLOWED, WORKER_NOT_ALLOWED; see {@link dealAllowedBy});
 * 8. this node holds the dataset's key (UNKNOWN_DATASET).
 * Then the key is sealed to the public key recovered from the signature, so
 * only the worker's Ethereum private key opens it.
 */
export async function decideKeyRelease (request: KeyReleaseRequest, ctx: KeyReleaseOwnerContext): Promise<KeyReleaseDecision> {
  const nowMs = ctx.now()
  const maxAge = ctx.maxRequestAgeSeconds ?? KEY_RELEASE_DEFAULTS.maxRequestAgeSeconds
  if (Math.abs(nowMs / 1000 - request.timestamp) > maxAge) {
    return refuse('STALE_REQUEST', `timestamp more than ${maxAge} s from the owner's clock`)
  }

  const signer = recoverKeyRequestSigner(ctx.domain, request, request.signature)
  if (signer === undefined || !sameAddress(signer, request.worker)) {
    return refuse('BAD_SIGNATURE', 'the request is not signed by its worker')
  }

  if (taskId(request.dealid, request.idx) !== request.taskid.toLowerCase()) return refuse('UNKNOWN_TASK', 'taskid is not task idx of dealid')

  if (!ctx.seenNonces.remember(request.worker, request.nonce, (request.timestamp + maxAge) * 1000 + 1000, nowMs)) {
    return refuse('REPLAYED_NONCE', 'nonce already used')
  }

  let deal: DealView | undefined
  let member: boolean
  try {
    deal = await ctx.chain.deal(request.dealid)
    member = deal !== undefined && await ctx.chain.isDealWorker(request.dealid, request.worker)
  } catch {
    return refuse('INTERNAL_ERROR', 'the owner cannot read the chain now')
  }
  if (deal === undefined || BigInt(request.idx) >= deal.volume) return refuse('UNKNOWN_TASK', 'no deal has this task')
  if (!sameAddress(deal.dataset, request.dataset)) return refuse('WRONG_DATASET', 'the task\'s deal does not use this dataset')

  if (!member) return refuse('NOT_A_WORKER', 'not a worker of the task\'s deal')
  let authorized = false
  if (request.authorization !== undefined) {
    try {
      authorized = sameAddress(recoverAuthorizationSigner(ctx.domain, { worker: request.worker, taskid: request.taskid }, request.authorization), deal.scheduler)
    } catch {
      authorized = false
    }
  }
  if (!authorized && ctx.chain.hasContributed !== undefined) {
    try {
      authorized = await ctx.chain.hasContributed(request.taskid, request.worker)
    } catch {
      return refuse('INTERNAL_ERROR', 'the owner cannot read the chain now')
    }
  }
  if (!authorized) return refuse('NOT_A_WORKER', 'no scheduler authorization or contribution for this task')

  let orders: readonly DatasetOrderRules[] | undefined
  try {
    orders = await ctx.datasetOrders(request.dataset)
  } catch {
    return refuse('INTERNAL_ERROR', 'the owner cannot read its orders now')
  }
  const broken = dealAllowedBy(orders, deal, request.worker)
  if (broken !== undefined) return refuse(broken, RULE_WORDS[broken] ?? broken)

  let key: DatasetKey | undefined
  try {
    key = await ctx.keyStore.get(request.dataset)
  } catch {
    // a corrupt or unreadable key file: the operator sees it in the key store's own error, the worker only that it may retry
    return refuse('INTERNAL_ERROR', 'the owner cannot read its key store now')
  }
  if (key === undefined) return refuse('UNKNOWN_DATASET', 'this node holds no key for the dataset')
  const raw = key.bytes()
  try {
    const publicKey = recoverPublicKey(hashKeyRequest(ctx.domain, request), request.signature)
    return { response: { ok: true, encryptedKey: hexlify(eciesEncrypt(publicKey, raw, keyReleaseContext(request))) } }
  } finally {
    raw.fill(0)
  }
}

/** Options of the owner's stream handler. */
export interface KeyReleaseHandlerOptions extends KeyReleaseOwnerContext, Partial<Omit<KeyReleaseOptions, 'maxRequestAgeSeconds'>> {
  /** called after each decision (logs, metrics); never sees the key */
  onDecision?: (info: { remotePeer: string, dataset?: string, taskid?: string, worker?: string, refused?: KeyReleaseRefusalCode }) => void
}

/**
 * The owner's handler for {@link KEY_RELEASE_PROTOCOL}: one request, one
 * answer, bounded in size and time. A malformed request gets BAD_REQUEST.
 */
export function createKeyReleaseHandler (options: KeyReleaseHandlerOptions): StreamHandler {
  const maxDataLength = options.maxMessageBytes ?? KEY_RELEASE_DEFAULTS.maxMessageBytes
  const timeoutMs = options.timeoutMs ?? KEY_RELEASE_DEFAULTS.timeoutMs
  return async (stream, connection) => {
    const signal = AbortSignal.timeout(timeoutMs)
    const lp = lpStream(stream, { maxDataLength })
    const remotePeer = connection.remotePeer.toString()
    try {
      const bytes = await lp.read({ signal })
      let decision: KeyReleaseDecision
      let request: KeyReleaseRequest | undefined
      try {
        request = decodeKeyReleaseRequest(bytes.subarray())
      } catch {
        request = undefined
      }
      if (request === undefined) {
        decision = refuse('BAD_REQUEST', 'malformed key-release request')
      } else {
        decision = await decideKeyRelease(request, options).catch(() => refuse('INTERNAL_ERROR', 'the owner failed to decide'))
      }
      options.onDecision?.({ remotePeer, dataset: request?.dataset, taskid: request?.taskid, worker: request?.worker, refused: decision.refused })
      await lp.write(encodeKeyReleaseResponse(decision.response), { signal })
      await stream.close({ signal })
    } catch (err) {
      // oversize, timeout or a peer that went away: nothing to answer
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }
}

/** Opens a stream to the dataset owner on a protocol (a closure over Network.dialProtocol or libp2p.dialProtocol). */
export type KeyReleaseDialer = (protocol: string, options: { signal: AbortSignal }) => Promise<Stream>

/** Builds and signs a request (worker side). */
export async function buildKeyReleaseRequest (
  signer: TypedDataSigner & { address: string },
  domain: HubDomain,
  fields: { dataset: string, dealid: string, idx: number, authorization?: string, nowMs?: number }
): Promise<KeyReleaseRequest> {
  const base = {
    dataset: getAddress(fields.dataset),
    taskid: taskId(fields.dealid, fields.idx).toLowerCase(),
    worker: getAddress(signer.address),
    nonce: hexlify(randomBytes(32)),
    timestamp: Math.floor((fields.nowMs ?? Date.now()) / 1000)
  }
  const signature = await signKeyRequest(signer, domain, base)
  const req: KeyReleaseRequest = { ...base, dealid: fields.dealid.toLowerCase(), idx: fields.idx, signature }
  if (fields.authorization !== undefined) req.authorization = fields.authorization
  return req
}

/** Sends a request and returns the owner's answer (worker side). */
export async function sendKeyReleaseRequest (dial: KeyReleaseDialer, request: KeyReleaseRequest, options: Partial<Omit<KeyReleaseOptions, 'maxRequestAgeSeconds'>> & { signal?: AbortSignal } = {}): Promise<KeyReleaseResponse> {
  const timeoutMs = options.timeoutMs ?? KEY_RELEASE_DEFAULTS.timeoutMs
  const signal = options.signal === undefined ? AbortSignal.timeout(timeoutMs) : AbortSignal.any([options.signal, AbortSignal.timeout(timeoutMs)])
  let stream: Stream | undefined
  try {
    stream = await dial(KEY_RELEASE_PROTOCOL, { signal })
    const lp = lpStream(stream, { maxDataLength: options.maxMessageBytes ?? KEY_RELEASE_DEFAULTS.maxMessageBytes })
    await lp.write(encodeKeyReleaseRequest(request), { signal })
    const answer = decodeKeyReleaseResponse((await lp.read({ signal })).subarray())
    await stream.close({ signal }).catch(() => {})
    return answer
  } catch (err) {
    stream?.abort(err instanceof Error ? err : new Error(String(err)))
    throw new StorageError('KEY_RELEASE_PROTOCOL_ERROR', `key release exchange failed: ${err instanceof Error ? err.message : String(err)}`, { timeoutMs }, { cause: err })
  }
}

/**
 * Opens a granted key with the worker's private key (a Wallet's
 * `signingKey`). KEY_RELEASE_REFUSED (details.code = the owner's code) on a
 * refusal; STORAGE_NOT_RECIPIENT when the envelope is not for this key,
 * dataset, task and nonce.
 */
export function openReleasedKey (response: KeyReleaseResponse, request: KeyReleaseRequest, workerKey: EciesPrivateKey): Uint8Array {
  if (!response.ok) {
    throw new StorageError('KEY_RELEASE_REFUSED', `the dataset owner refused the key: ${response.code} (${response.reason})`, { code: response.code, reason: response.reason })
  }
  const key = eciesDecrypt(workerKey, getBytes(response.encryptedKey), keyReleaseContext(request))
  if (key.byteLength !== CONTENT_KEY_BYTES) throw new StorageError('STORAGE_NOT_RECIPIENT', 'the released key has the wrong size')
  return key
}

/** The worker's whole exchange: build, send, open. Returns the 32-byte content key. */
export async function fetchDatasetKey (
  dial: KeyReleaseDialer,
  wallet: TypedDataSigner & { address: string, signingKey: EciesPrivateKey },
  domain: HubDomain,
  fields: { dataset: string, dealid: string, idx: number, authorization?: string },
  options: Partial<Omit<KeyReleaseOptions, 'maxRequestAgeSeconds'>> & { signal?: AbortSignal } = {}
): Promise<Uint8Array> {
  const request = await buildKeyReleaseRequest(wallet, domain, fields)
  const response = await sendKeyReleaseRequest(dial, request, options)
  return openReleasedKey(response, request, wallet.signingKey)
}
