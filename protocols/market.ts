/**
 * The market's wire formats: what crosses gossip topics and market streams.
 * The node and the tests import them from here (one source of truth).
 *
 * ## Encoding: JSON, UTF-8, size-checked before parsing
 * - Orders are a few hundred bytes of addresses, hex and integers; JSON keeps
 *   them readable in logs and in `orderbook --json`, and needs no codec
 *   dependency (no CBOR library is a direct dependency of the project).
 * - uint256 fields travel as canonical decimal strings (`"0"`, `"12"`; no
 *   sign, no leading zero, at most 78 digits): JSON numbers lose precision
 *   past 2^53 and a canonical form leaves a single spelling per value.
 * - Every message is size-checked before `JSON.parse` (so a hostile peer
 *   cannot make us parse megabytes), then schema-checked with exact key sets
 *   (an unknown key is malformed, so two spellings of one message cannot
 *   coexist under one version).
 * - `v` is the wire version: a node drops versions it does not speak.
 *
 * ## Envelope of an order message
 * `{ "v": 1, "type": "apporder", "chainId": "31337", "hub": "0x..", "order": {..}, "sign": "0x.." }`
 * `chainId` and `hub` are the EIP-712 domain the publisher claims: a receiver
 * rejects any other domain before spending a signature recovery on it.
 *
 * ## Expiry lives in the salt
 * PoCo orders have no expiry field and the EIP-712 types are fixed by the
 * hub. The first 8 bytes of an order's or bid's `salt` are its gossip expiry
 * (unix seconds, big-endian); the other 24 stay random. The hub treats the
 * salt as opaque, so matching is unaffected, and the expiry is covered by the
 * order's signature: a relay cannot extend it. A zero prefix means "no
 * expiry" (the order lives until consumed or cancelled, as in iExec).
 *
 * ## Cancellation
 * Either a signed cancel (the full order, so any node can recompute its hash
 * and who may cancel it, plus that party's EIP-712
 * `OrderCancel(bytes32 orderHash)` signature), or a pointer to the on-chain cancel (`orderHash`; the receiver
 * checks the hub's `OrderCancelled` state). A gossip cancel only clears
 * orderbooks; to be sure nobody matches the order, cancel it on chain too.
 *
 * ## Tags
 * The request's `tag` (bytes32) is a bit set of requirements, as in iExec:
 * the hub checks that the app's and dataset's tags are a subset of it, and a
 * provider bids only when it offers every required bit. {@link TAG_BITS} is
 * the registry of named bits (`region:eu`, `energy:green`, ...). Free-form
 * tags that have no bit travel in the request's params (`iexec_p2p_tags`).
 *
 * @example
 * ```ts
 * const salt = saltWithExpiry(Math.floor(Date.now() / 1000) + 3600)
 * const signed = await signOrder(wallet, domain, 'RequestOrder', { ...request, salt })
 * const bytes = encodeMarketMessage({ v: 1, type: 'requestorder', chainId: domain.chainId,
 *   hub: domain.verifyingContract, order: signed, sign: signed.sign })
 * const msg = decodeMarketMessage(bytes, 'requestorder')
 * ```
 */
import { hexlify, isHexString, randomBytes, zeroPadValue, toBeHex } from 'ethers'
import { ProtocolError } from './errors.js'
import { HUB_TYPES, validateTyped } from './hub-types.js'
import { hashTypedData, recoverTypedDataSigner, signTypedData } from './typed-data.js'
import { checksumAddress } from './address.js'
import { ArgsError, splitArgs } from './args.js'
import type { AppOrder, Bid, DatasetOrder, HubDomain, OrderKind, RequestOrder } from './hub-types.js'
import type { TypedDataSigner } from './typed-data.js'

/** The wire version this code speaks. */
export const MARKET_WIRE_VERSION = 1

/** The kinds of gossip message; each has its own topic (protocols/topics.ts names them the same). */
export type MarketMessageType = 'apporder' | 'datasetorder' | 'requestorder' | 'bid' | 'cancel'
export const MARKET_MESSAGE_TYPES: readonly MarketMessageType[] = ['apporder', 'datasetorder', 'requestorder', 'bid', 'cancel']

/** Order types carried by the order topics. */
export type MarketOrderType = 'apporder' | 'datasetorder' | 'requestorder'

/** EIP-712 kind of each order-carrying message type. */
export const KIND_OF_TYPE = {
  apporder: 'AppOrder',
  datasetorder: 'DatasetOrder',
  requestorder: 'RequestOrder',
  bid: 'Bid'
} as const satisfies Record<Exclude<MarketMessageType, 'cancel'>, OrderKind>

/** Largest `params` string of a request order, in UTF-8 bytes (args + input CIDs fit easily). */
export const MAX_PARAMS_BYTES = 4096

/**
 * Largest encoded message per type, in bytes. An app/dataset order encodes to
 * ~700 bytes and a bid to ~450; the bounds leave headroom without letting a
 * peer make us parse kilobytes of junk. A request order also carries params
 * (at most MAX_PARAMS_BYTES; params are JSON text themselves, and JSON
 * escaping of their quotes can double them on the wire). A signed cancel
 * carries a whole order plus a second signature.
 */
export const MAX_MESSAGE_BYTES: Readonly<Record<MarketMessageType, number>> = {
  apporder: 2048,
  datasetorder: 2048,
  requestorder: 2048 + 2 * MAX_PARAMS_BYTES,
  bid: 1024,
  cancel: 2560 + 2 * MAX_PARAMS_BYTES
}

/** Error codes of the wire codecs. */
export type MarketWireErrorCode =
  /** larger than the type's MAX_MESSAGE_BYTES */
  | 'WIRE_TOO_LARGE'
  /** not UTF-8 JSON, or not an object */
  | 'WIRE_MALFORMED'
  /** a `v` this node does not speak */
  | 'WIRE_BAD_VERSION'
  /** the `type` is not the one the topic or stream carries */
  | 'WIRE_WRONG_TYPE'
  /** a field is missing, unknown, of the wrong type or out of range; details.field */
  | 'WIRE_INVALID'

export class MarketWireError extends ProtocolError<MarketWireErrorCode> {}

// ------------------------------------------------------------------ messages

interface EnvelopeBase {
  v: typeof MARKET_WIRE_VERSION
  /** the chain id of the EIP-712 domain the order is signed under */
  chainId: bigint
  /** the hub (verifyingContract) of that domain, checksummed */
  hub: string
}

export interface AppOrderMessage extends EnvelopeBase { type: 'apporder', order: AppOrder, sign: string }
export interface DatasetOrderMessage extends EnvelopeBase { type: 'datasetorder', order: DatasetOrder, sign: string }
export interface RequestOrderMessage extends EnvelopeBase { type: 'requestorder', order: RequestOrder, sign: string }
export interface BidMessage extends EnvelopeBase { type: 'bid', order: Bid, sign: string }

/** Kinds a cancel may name (the hub can cancel all four). */
export type CancellableKind = OrderKind

/** A cancel proven by the order's signer. */
export interface SignedCancelProof {
  kind: 'signed'
  orderKind: CancellableKind
  /**
   * the full order, so the receiver recomputes its hash and knows who may
   * cancel it (the app's or dataset's owner, the requester, the worker);
   * the order's own signature is not needed: the cancel signature by that
   * party is the proof
   */
  order: AppOrder | DatasetOrder | RequestOrder | Bid
  /** the rightful signer's OrderCancel(orderHash) signature */
  cancelSign: string
}

/** A cancel proven by the hub's state (`OrderCancelled(orderHash)` was emitted). */
export interface OnChainCancelProof {
  kind: 'onchain'
  orderHash: string
}

export interface CancelMessage extends EnvelopeBase { type: 'cancel', proof: SignedCancelProof | OnChainCancelProof }

export type OrderMessage = AppOrderMessage | DatasetOrderMessage | RequestOrderMessage | BidMessage
export type MarketMessage = OrderMessage | CancelMessage

export interface MessageByType {
  apporder: AppOrderMessage
  datasetorder: DatasetOrderMessage
  requestorder: RequestOrderMessage
  bid: BidMessage
  cancel: CancelMessage
}

// ------------------------------------------------------------------ codec

const utf8 = new TextEncoder()
const utf8Strict = new TextDecoder('utf-8', { fatal: true })

const UINT_RE = /^(0|[1-9][0-9]{0,77})$/
const UINT256_MAX = (1n << 256n) - 1n

function invalid (field: string, why: string): MarketWireError {
  return new MarketWireError('WIRE_INVALID', `${field} ${why}`, { field })
}

function asObject (v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(field, 'must be an object')
  return v as Record<string, unknown>
}

function exactKeys (o: Record<string, unknown>, keys: readonly string[], field: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw invalid(`${field}.${k}`, 'is not a known field')
  for (const k of keys) if (!Object.hasOwn(o, k)) throw invalid(`${field}.${k}`, 'is missing')
}

function decodeUint (v: unknown, field: string): bigint {
  if (typeof v !== 'string' || !UINT_RE.test(v)) throw invalid(field, 'must be a canonical decimal string')
  const n = BigInt(v)
  if (n > UINT256_MAX) throw invalid(field, 'exceeds uint256')
  return n
}

function decodeAddress (v: unknown, field: string): string {
  // as ethers' isAddress: lowercase and valid checksums pass, a wrong mixed-case checksum does not
  const out = typeof v === 'string' && v.startsWith('0x') ? checksumAddress(v) : undefined
  if (out === undefined) throw invalid(field, 'must be a 0x address')
  return out
}

function decodeBytes32 (v: unknown, field: string): string {
  if (typeof v !== 'string' || !isHexString(v, 32)) throw invalid(field, 'must be 32 bytes of 0x hex')
  return v.toLowerCase()
}

/** A 65-byte ECDSA signature as hex (what signTypedData returns). '0x' marks an order presigned on chain. */
function decodeSignature (v: unknown, field: string): string {
  if (typeof v !== 'string' || (v !== '0x' && !isHexString(v, 65))) throw invalid(field, 'must be a 65-byte 0x signature (or 0x when presigned)')
  return v.toLowerCase()
}

/** Order fields of one kind from their wire form (uint256 as decimal strings). */
function decodeOrder<K extends OrderKind> (kind: K, raw: unknown, field: string): Record<string, unknown> {
  const o = asObject(raw, field)
  const fields = HUB_TYPES[kind]
  exactKeys(o, fields.map((f) => f.name), field)
  const out: Record<string, unknown> = {}
  for (const { name, type } of fields) {
    const v = o[name]
    const f = `${field}.${name}`
    switch (type) {
      case 'uint256': out[name] = decodeUint(v, f); break
      case 'address': out[name] = decodeAddress(v, f); break
      case 'bytes32': out[name] = decodeBytes32(v, f); break
      case 'string':
        if (typeof v !== 'string') throw invalid(f, 'must be a string')
        if (utf8.encode(v).length > MAX_PARAMS_BYTES) throw invalid(f, `exceeds ${MAX_PARAMS_BYTES} bytes`)
        out[name] = v
        break
      default: throw invalid(f, `has unsupported type ${type}`)
    }
  }
  // the shared EIP-712 check, so the codec can never hand out a value the hasher refuses
  try {
    validateTyped(kind, out)
  } catch (err) {
    throw new MarketWireError('WIRE_INVALID', `${field} is not a valid ${kind}`, { field }, { cause: err })
  }
  return out
}

/** Order fields to their wire form. */
function encodeOrder (kind: OrderKind, order: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const { name, type } of HUB_TYPES[kind]) {
    const v = order[name]
    if (type === 'uint256' && typeof v !== 'bigint') throw invalid(`${kind}.${name}`, 'must be a bigint')
    out[name] = typeof v === 'bigint' ? v.toString(10) : v
  }
  return out
}

const ENVELOPE_KEYS = {
  apporder: ['v', 'type', 'chainId', 'hub', 'order', 'sign'],
  datasetorder: ['v', 'type', 'chainId', 'hub', 'order', 'sign'],
  requestorder: ['v', 'type', 'chainId', 'hub', 'order', 'sign'],
  bid: ['v', 'type', 'chainId', 'hub', 'order', 'sign'],
  cancel: ['v', 'type', 'chainId', 'hub', 'proof']
} as const satisfies Record<MarketMessageType, readonly string[]>

const ORDER_KINDS: readonly OrderKind[] = ['AppOrder', 'DatasetOrder', 'RequestOrder', 'Bid']

function parseJson (bytes: Uint8Array, max: number, what: string): Record<string, unknown> {
  if (!(bytes instanceof Uint8Array)) throw new MarketWireError('WIRE_MALFORMED', `${what} is not bytes`)
  if (bytes.length > max) throw new MarketWireError('WIRE_TOO_LARGE', `${what} is ${bytes.length} bytes, more than ${max}`, { size: bytes.length, max })
  let parsed: unknown
  try {
    parsed = JSON.parse(utf8Strict.decode(bytes))
  } catch (err) {
    throw new MarketWireError('WIRE_MALFORMED', `${what} is not UTF-8 JSON`, undefined, { cause: err })
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new MarketWireError('WIRE_MALFORMED', `${what} is not a JSON object`)
  return parsed as Record<string, unknown>
}

function checkVersion (o: Record<string, unknown>): void {
  if (o.v !== MARKET_WIRE_VERSION) throw new MarketWireError('WIRE_BAD_VERSION', `wire version ${String(o.v)} is not ${MARKET_WIRE_VERSION}`, { v: typeof o.v === 'number' ? o.v : String(o.v) })
}

/**
 * Decodes and schema-checks a gossip message. `expected` is the type the
 * topic carries: another type there is refused (WIRE_WRONG_TYPE).
 * @throws MarketWireError
 */
export function decodeMarketMessage<T extends MarketMessageType> (bytes: Uint8Array, expected: T): MessageByType[T]
export function decodeMarketMessage (bytes: Uint8Array): MarketMessage
export function decodeMarketMessage (bytes: Uint8Array, expected?: MarketMessageType): MarketMessage {
  // the largest bound of all types when the caller does not say which
  const max = expected !== undefined ? MAX_MESSAGE_BYTES[expected] : Math.max(...Object.values(MAX_MESSAGE_BYTES))
  const o = parseJson(bytes, max, expected ?? 'market message')
  checkVersion(o)
  const type = o.type
  if (typeof type !== 'string' || !(MARKET_MESSAGE_TYPES as readonly string[]).includes(type)) throw invalid('type', 'is not a market message type')
  if (expected !== undefined && type !== expected) throw new MarketWireError('WIRE_WRONG_TYPE', `expected ${expected}, got ${type}`, { expected, type })
  const t = type as MarketMessageType
  if (bytes.length > MAX_MESSAGE_BYTES[t]) throw new MarketWireError('WIRE_TOO_LARGE', `${t} is ${bytes.length} bytes, more than ${MAX_MESSAGE_BYTES[t]}`, { size: bytes.length, max: MAX_MESSAGE_BYTES[t] })
  exactKeys(o, ENVELOPE_KEYS[t], '(envelope)')
  const chainId = decodeUint(o.chainId, 'chainId')
  if (chainId === 0n) throw invalid('chainId', 'must be positive')
  const hub = decodeAddress(o.hub, 'hub')
  const base = { v: MARKET_WIRE_VERSION, chainId, hub } as const
  if (t === 'cancel') {
    const p = asObject(o.proof, 'proof')
    if (p.kind === 'onchain') {
      exactKeys(p, ['kind', 'orderHash'], 'proof')
      return { ...base, type: 'cancel', proof: { kind: 'onchain', orderHash: decodeBytes32(p.orderHash, 'proof.orderHash') } }
    }
    if (p.kind === 'signed') {
      exactKeys(p, ['kind', 'orderKind', 'order', 'cancelSign'], 'proof')
      const orderKind = p.orderKind
      if (typeof orderKind !== 'string' || !(ORDER_KINDS as readonly string[]).includes(orderKind)) throw invalid('proof.orderKind', 'is not an order kind')
      const k = orderKind as OrderKind
      const order = decodeOrder(k, p.order, 'proof.order') as unknown as SignedCancelProof['order']
      const cancelSign = decodeSignature(p.cancelSign, 'proof.cancelSign')
      if (cancelSign === '0x') throw invalid('proof.cancelSign', 'must be a signature')
      return { ...base, type: 'cancel', proof: { kind: 'signed', orderKind: k, order, cancelSign } }
    }
    throw invalid('proof.kind', "must be 'signed' or 'onchain'")
  }
  const kind = KIND_OF_TYPE[t]
  const order = decodeOrder(kind, o.order, 'order')
  const sign = decodeSignature(o.sign, 'sign')
  return { ...base, type: t, order, sign } as unknown as OrderMessage
}

/**
 * Encodes a message (the inverse of decodeMarketMessage; the output is
 * checked against the same limits so a node never publishes what its peers
 * would refuse).
 * @throws MarketWireError
 */
export function encodeMarketMessage (msg: MarketMessage): Uint8Array {
  const base = { v: MARKET_WIRE_VERSION, type: msg.type, chainId: msg.chainId.toString(10), hub: msg.hub }
  let wire: Record<string, unknown>
  if (msg.type === 'cancel') {
    const p = msg.proof
    wire = {
      ...base,
      proof: p.kind === 'onchain'
        ? { kind: 'onchain', orderHash: p.orderHash }
        : { kind: 'signed', orderKind: p.orderKind, order: encodeOrder(p.orderKind, p.order as unknown as Record<string, unknown>), cancelSign: p.cancelSign }
    }
  } else {
    wire = { ...base, order: encodeOrder(KIND_OF_TYPE[msg.type], msg.order as unknown as Record<string, unknown>), sign: msg.sign }
  }
  const bytes = utf8.encode(JSON.stringify(wire))
  // round-trip through the decoder: what we send is exactly what a peer accepts
  decodeMarketMessage(bytes, msg.type)
  return bytes
}

/** Builds an order message under a domain. */
export function orderMessage<T extends Exclude<MarketMessageType, 'cancel'>> (type: T, domain: HubDomain, order: MessageByType[T]['order'], sign: string): MessageByType[T] {
  return { v: MARKET_WIRE_VERSION, type, chainId: domain.chainId, hub: domain.verifyingContract, order, sign } as unknown as MessageByType[T]
}

// ------------------------------------------------------------------ cancel signatures

/** EIP-712 type of a gossip cancel, signed under the hub's domain (so it cannot be replayed on another hub). */
export const CANCEL_TYPES = { OrderCancel: [{ name: 'orderHash', type: 'bytes32' }] }

/** The digest an order's signer signs to cancel it over gossip. */
export function hashCancel (domain: HubDomain, orderHash: string): string {
  return hashTypedData(domain, CANCEL_TYPES, { orderHash: decodeBytes32(orderHash, 'orderHash') })
}

export async function signCancel (signer: TypedDataSigner, domain: HubDomain, orderHash: string): Promise<string> {
  return await signTypedData(signer, domain, CANCEL_TYPES, { orderHash: decodeBytes32(orderHash, 'orderHash') })
}

/**
 * Who signed a cancel; throws MarketWireError WIRE_INVALID on a malformed
 * signature or one the hub would refuse (its cause: typed-data.ts's strict
 * recovery, EIP712_INVALID_SIGNATURE, as for an order).
 */
export function recoverCancelSigner (domain: HubDomain, orderHash: string, sign: string): string {
  try {
    return recoverTypedDataSigner(domain, CANCEL_TYPES, { orderHash: decodeBytes32(orderHash, 'orderHash') }, sign)
  } catch (err) {
    throw new MarketWireError('WIRE_INVALID', 'cannot recover the cancel signer', { field: 'cancelSign' }, { cause: err })
  }
}

// ------------------------------------------------------------------ expiry in the salt

const EXPIRY_BYTES = 8
const MAX_EXPIRY = (1n << 64n) - 1n

/**
 * A fresh salt whose first 8 bytes are `expiresAt` (unix seconds; 0 = never)
 * and whose other 24 bytes are random (so two orders with equal fields still
 * hash apart).
 */
export function saltWithExpiry (expiresAt: number | bigint, random: Uint8Array = randomBytes(32 - EXPIRY_BYTES)): string {
  const e = BigInt(expiresAt)
  if (e < 0n || e > MAX_EXPIRY) throw invalid('expiresAt', 'must fit in 64 bits')
  if (random.length !== 32 - EXPIRY_BYTES) throw invalid('random', `must be ${32 - EXPIRY_BYTES} bytes`)
  return zeroPadValue(toBeHex(e), EXPIRY_BYTES) + hexlify(random).slice(2)
}

/** The expiry a salt carries (unix seconds), or undefined when it has none. */
export function expiryOfSalt (salt: string): bigint | undefined {
  const s = decodeBytes32(salt, 'salt')
  const e = BigInt('0x' + s.slice(2, 2 + EXPIRY_BYTES * 2))
  return e === 0n ? undefined : e
}

// ------------------------------------------------------------------ tags

/**
 * Registry of named tag bits. Bit 0 is iExec's TEE bit (kept so iExec tags
 * read the same); regions and energy get their own byte each so a request
 * can require several. A request requires every bit it sets; a provider
 * bids only when it offers all of them.
 */
export const TAG_BITS: Readonly<Record<string, number>> = {
  tee: 0,
  gpu: 8,
  'region:eu': 16,
  'region:us': 17,
  'region:asia': 18,
  'region:africa': 19,
  'region:oceania': 20,
  'region:south-america': 21,
  'energy:green': 24
}

/** The bytes32 tag with the bits of the named tags. Throws WIRE_INVALID on a name with no bit. */
export function encodeTags (names: readonly string[]): string {
  let bits = 0n
  for (const n of names) {
    const bit = TAG_BITS[n]
    if (bit === undefined) throw invalid('tag', `'${n}' has no tag bit (known: ${Object.keys(TAG_BITS).join(', ')})`)
    bits |= 1n << BigInt(bit)
  }
  return zeroPadValue(toBeHex(bits), 32)
}

/** The named tags of a bytes32 tag, and the bits no name covers. */
export function decodeTags (tag: string): { names: string[], unknownBits: bigint } {
  let bits = BigInt(decodeBytes32(tag, 'tag'))
  const names: string[] = []
  for (const [name, bit] of Object.entries(TAG_BITS)) {
    const mask = 1n << BigInt(bit)
    if ((bits & mask) !== 0n) {
      names.push(name)
      bits &= ~mask
    }
  }
  return { names, unknownBits: bits }
}

// ------------------------------------------------------------------ request params

/**
 * The request's `params` string: iExec's JSON (`iexec_args`,
 * `iexec_input_files`, `iexec_result_encryption`) plus free-form tags that
 * have no bit (`iexec_p2p_tags`, required like the tag bits).
 */
export interface RequestParams {
  iexec_args?: string
  iexec_input_files?: string[]
  iexec_result_encryption?: boolean
  /**
   * The requester's compressed secp256k1 public key (0x02/0x03 + 32 bytes)
   * the result is encrypted to. iExec keeps it in its SMS; here it travels in
   * the signed request, and the scheduler checks it belongs to the requester.
   */
  iexec_p2p_result_key?: string
  iexec_p2p_tags?: string[]
  /**
   * A parameter sweep: task i of the deal runs with `iexec_p2p_task_args[i]`
   * (split as `iexec_args`, which it replaces) and the input files
   * `iexec_input_files` then `iexec_p2p_task_inputs[i]`. Each list, when
   * present, has one entry per task of the deal (its volume): being in the
   * params, they are covered by the request order's signature and hash, so
   * every worker reads the same parameters for the same task.
   */
  iexec_p2p_task_args?: string[]
  iexec_p2p_task_inputs?: string[][]
  /**
   * A sweep too large for params: the same lists in a JSON document
   * (`{ "args": [...], "inputs": [[...]] }`, see parseSweepDocument) named
   * by its CID and bound by its sha256, which the params (so the signed
   * order) carry. Never with the inline lists.
   */
  iexec_p2p_sweep?: { cid: string, checksum: string }
}

/** Tasks a sweep may list in params (their whole text stays within MAX_PARAMS_BYTES too). */
export const MAX_SWEEP_TASKS = 1024

/** Tasks a sweep document may list (a deal's volume is at most 10,000), and its size. */
export const MAX_SWEEP_DOCUMENT_TASKS = 10_000
export const MAX_SWEEP_DOCUMENT_BYTES = 4 * 1024 * 1024

const SWEEP_CID = /^[A-Za-z0-9]{8,128}$/

function checkTaskArgs (x: unknown, field: string, max: number): string[] {
  if (!Array.isArray(x) || x.length === 0 || x.length > max || !x.every((s) => typeof s === 'string')) throw invalid(field, `must be 1-${max} strings`)
  for (const [i, a] of (x as string[]).entries()) {
    try {
      splitArgs(a)
    } catch (err) {
      if (!(err instanceof ArgsError)) throw err
      throw new MarketWireError('WIRE_INVALID', `${field}[${i}] ${err.message}`, { field, index: i, argsCode: err.code }, { cause: err })
    }
  }
  return x as string[]
}

function checkTaskInputs (x: unknown, field: string, max: number): string[][] {
  if (!Array.isArray(x) || x.length === 0 || x.length > max || !x.every((l) => Array.isArray(l) && l.length <= 64 && l.every((s) => typeof s === 'string' && SWEEP_CID.test(s)))) {
    throw invalid(field, `must be 1-${max} arrays of at most 64 CIDs`)
  }
  return x as string[][]
}

/**
 * A sweep document's lists (the bytes its params' checksum was checked
 * against). Throws WIRE_INVALID.
 */
export function parseSweepDocument (bytes: Uint8Array): { args?: string[], inputs?: string[][] } {
  if (bytes.byteLength > MAX_SWEEP_DOCUMENT_BYTES) throw invalid('sweep', `exceeds ${MAX_SWEEP_DOCUMENT_BYTES} bytes`)
  let v: unknown
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (err) {
    throw new MarketWireError('WIRE_INVALID', 'the sweep document is not UTF-8 JSON', { field: 'sweep' }, { cause: err })
  }
  const o = asObject(v, 'sweep')
  const out: { args?: string[], inputs?: string[][] } = {}
  if (o.args !== undefined) out.args = checkTaskArgs(o.args, 'sweep.args', MAX_SWEEP_DOCUMENT_TASKS)
  if (o.inputs !== undefined) out.inputs = checkTaskInputs(o.inputs, 'sweep.inputs', MAX_SWEEP_DOCUMENT_TASKS)
  if (out.args === undefined && out.inputs === undefined) throw invalid('sweep', 'lists neither args nor inputs')
  return out
}

const MAX_FREE_TAGS = 16
const MAX_FREE_TAG_LENGTH = 64

/** Parses a request's params ('' = none). Throws WIRE_INVALID. */
export function parseRequestParams (params: string): RequestParams {
  if (params === '') return {}
  let v: unknown
  try {
    v = JSON.parse(params)
  } catch (err) {
    throw new MarketWireError('WIRE_INVALID', 'params is not JSON', { field: 'params' }, { cause: err })
  }
  const o = asObject(v, 'params')
  const out: RequestParams = {}
  for (const [k, x] of Object.entries(o)) {
    switch (k) {
      case 'iexec_args':
        if (typeof x !== 'string') throw invalid('params.iexec_args', 'must be a string')
        // every worker splits them the same way (args.ts): a string that does not split is refused here
        try {
          splitArgs(x)
        } catch (err) {
          if (!(err instanceof ArgsError)) throw err
          throw new MarketWireError('WIRE_INVALID', `params.iexec_args ${err.message}`, { field: 'params.iexec_args', argsCode: err.code }, { cause: err })
        }
        out.iexec_args = x
        break
      case 'iexec_input_files':
        if (!Array.isArray(x) || !x.every((s) => typeof s === 'string')) throw invalid('params.iexec_input_files', 'must be an array of strings')
        out.iexec_input_files = x as string[]
        break
      case 'iexec_result_encryption':
        if (typeof x !== 'boolean') throw invalid('params.iexec_result_encryption', 'must be a boolean')
        out.iexec_result_encryption = x
        break
      case 'iexec_p2p_result_key':
        if (typeof x !== 'string' || !/^0x0[23][0-9a-fA-F]{64}$/.test(x)) throw invalid('params.iexec_p2p_result_key', 'must be a compressed secp256k1 public key (0x02/0x03 and 64 hex digits)')
        out.iexec_p2p_result_key = x
        break
      case 'iexec_p2p_tags':
        if (!Array.isArray(x) || x.length > MAX_FREE_TAGS || !x.every((s) => typeof s === 'string' && s.length > 0 && s.length <= MAX_FREE_TAG_LENGTH)) {
          throw invalid('params.iexec_p2p_tags', `must be at most ${MAX_FREE_TAGS} strings of 1-${MAX_FREE_TAG_LENGTH} characters`)
        }
        out.iexec_p2p_tags = x as string[]
        break
      case 'iexec_p2p_task_args':
        out.iexec_p2p_task_args = checkTaskArgs(x, 'params.iexec_p2p_task_args', MAX_SWEEP_TASKS)
        break
      case 'iexec_p2p_task_inputs':
        out.iexec_p2p_task_inputs = checkTaskInputs(x, 'params.iexec_p2p_task_inputs', MAX_SWEEP_TASKS)
        break
      case 'iexec_p2p_sweep': {
        const r = asObject(x, 'params.iexec_p2p_sweep')
        if (typeof r.cid !== 'string' || !SWEEP_CID.test(r.cid)) throw invalid('params.iexec_p2p_sweep.cid', 'must be a CID')
        if (typeof r.checksum !== 'string' || !/^0x[0-9a-f]{64}$/.test(r.checksum)) throw invalid('params.iexec_p2p_sweep.checksum', 'must be 0x and the 64 lower-case hex digits of a sha256')
        out.iexec_p2p_sweep = { cid: r.cid, checksum: r.checksum }
        break
      }
      // iExec defines more keys (e.g. iexec_developer_logger); unknown keys are kept out, not refused
      default: break
    }
  }
  if (out.iexec_p2p_sweep !== undefined && (out.iexec_p2p_task_args !== undefined || out.iexec_p2p_task_inputs !== undefined)) {
    throw invalid('params.iexec_p2p_sweep', 'goes without iexec_p2p_task_args and iexec_p2p_task_inputs')
  }
  return out
}

// ------------------------------------------------------------------ streams

/**
 * Late-joiner sync: a node that connects asks a peer for the live orders it
 * holds. Request: one length-prefixed JSON {@link SyncRequest}. Response:
 * length-prefixed frames, each a {@link SyncFrame} (first byte 1 = an order
 * message in the gossip encoding, validated by the same validators; 0 = the
 * end, with a cursor when more remain).
 */
export function marketSyncProtocol (swarmId: string): string {
  return `/iexec-p2p/${swarmId}/market/sync/1.0.0`
}

/**
 * Bids straight to the requester (the alternative to the bid topic; the
 * market benchmark measures both). The provider writes one length-prefixed
 * {@link BidStreamMessage}; the requester answers one {@link BidStreamAck}.
 */
export function bidStreamProtocol (swarmId: string): string {
  return `/iexec-p2p/${swarmId}/market/bid/1.0.0`
}

export interface SyncRequest {
  v: typeof MARKET_WIRE_VERSION
  /** which order types to send */
  types: MarketOrderType[]
  /** resume after this cursor (from the previous response's end frame) */
  cursor?: string
  /** at most this many orders (the responder caps it at SYNC_MAX_ORDERS) */
  limit: number
}

/** Orders per sync response: bounds the responder's work per request. */
export const SYNC_MAX_ORDERS = 1000
export const SYNC_REQUEST_MAX_BYTES = 1024
const MAX_CURSOR_LENGTH = 256

export type SyncFrame = { kind: 'order', message: Uint8Array } | { kind: 'end', cursor?: string }

export function encodeSyncRequest (req: SyncRequest): Uint8Array {
  const bytes = utf8.encode(JSON.stringify(req))
  decodeSyncRequest(bytes)
  return bytes
}

export function decodeSyncRequest (bytes: Uint8Array): SyncRequest {
  const o = parseJson(bytes, SYNC_REQUEST_MAX_BYTES, 'sync request')
  checkVersion(o)
  for (const k of Object.keys(o)) if (!['v', 'types', 'cursor', 'limit'].includes(k)) throw invalid(k, 'is not a known field')
  const types = o.types
  const orderTypes: readonly string[] = ['apporder', 'datasetorder', 'requestorder']
  if (!Array.isArray(types) || types.length === 0 || types.length > 3 || !types.every((t) => typeof t === 'string' && orderTypes.includes(t))) {
    throw invalid('types', 'must list 1-3 order types')
  }
  const limit = o.limit
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > SYNC_MAX_ORDERS) throw invalid('limit', `must be an integer in [1, ${SYNC_MAX_ORDERS}]`)
  const out: SyncRequest = { v: MARKET_WIRE_VERSION, types: types as MarketOrderType[], limit }
  if (o.cursor !== undefined) {
    if (typeof o.cursor !== 'string' || o.cursor.length === 0 || o.cursor.length > MAX_CURSOR_LENGTH) throw invalid('cursor', `must be 1-${MAX_CURSOR_LENGTH} characters`)
    out.cursor = o.cursor
  }
  return out
}

export function encodeSyncFrame (frame: SyncFrame): Uint8Array {
  if (frame.kind === 'order') {
    const out = new Uint8Array(frame.message.length + 1)
    out[0] = 1
    out.set(frame.message, 1)
    return out
  }
  const body = utf8.encode(JSON.stringify(frame.cursor !== undefined ? { cursor: frame.cursor } : {}))
  const out = new Uint8Array(body.length + 1)
  out[0] = 0
  out.set(body, 1)
  return out
}

/** Splits a frame; the order bytes are NOT validated here (the gossip validators do that). */
export function decodeSyncFrame (bytes: Uint8Array): SyncFrame {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new MarketWireError('WIRE_MALFORMED', 'empty sync frame')
  const max = Math.max(...Object.values(MAX_MESSAGE_BYTES))
  if (bytes[0] === 1) {
    if (bytes.length - 1 > max) throw new MarketWireError('WIRE_TOO_LARGE', 'sync frame too large', { size: bytes.length - 1, max })
    return { kind: 'order', message: bytes.subarray(1) }
  }
  if (bytes[0] === 0) {
    const o = parseJson(bytes.subarray(1), MAX_CURSOR_LENGTH + 32, 'sync end frame')
    for (const k of Object.keys(o)) if (k !== 'cursor') throw invalid(k, 'is not a known field')
    if (o.cursor === undefined) return { kind: 'end' }
    if (typeof o.cursor !== 'string' || o.cursor.length === 0 || o.cursor.length > MAX_CURSOR_LENGTH) throw invalid('cursor', `must be 1-${MAX_CURSOR_LENGTH} characters`)
    return { kind: 'end', cursor: o.cursor }
  }
  throw new MarketWireError('WIRE_MALFORMED', `unknown sync frame tag ${bytes[0]}`)
}

/**
 * The cpus a worker needs to serve a task of a category, by the category's
 * name on the hub. The hub defines each category's time, memory and disk
 * bounds (categoryOf); cpus are not a per-run bound the executor enforces,
 * so they stay a convention of the default categories' names (one for
 * another name).
 */
export const CATEGORY_NEEDS: Readonly<Record<string, { cpus: number }>> = {
  XS: { cpus: 1 },
  S: { cpus: 1 },
  M: { cpus: 2 },
  L: { cpus: 4 }
}

/**
 * Why a provider does not bid: the codes a requester shows ("no bid: price
 * too low" ...). The bid strategy returns them; a decline carries them.
 */
export type BidDeclineCode =
  | 'NO_CATEGORY'
  | 'RESOURCES_TOO_SMALL'
  | 'TAG_MISSING'
  | 'PRICE_TOO_LOW'
  | 'APP_NOT_RUNNABLE'
  | 'STAKE_TOO_LOW'
  | 'NO_CAPACITY'
  | 'WORKER_RESTRICTED'
  | 'BAD_PARAMS'

export const BID_DECLINE_CODES: readonly BidDeclineCode[] = ['NO_CATEGORY', 'RESOURCES_TOO_SMALL', 'TAG_MISSING', 'PRICE_TOO_LOW', 'APP_NOT_RUNNABLE', 'STAKE_TOO_LOW', 'NO_CAPACITY', 'WORKER_RESTRICTED', 'BAD_PARAMS']

/** A provider's "no" to a request, sent on the bid stream (the stream's peer id authenticates it). */
export interface BidDecline {
  v: typeof MARKET_WIRE_VERSION
  type: 'decline'
  requestHash: string
  /** the provider's wallet address */
  worker: string
  code: BidDeclineCode
  reason: string
}

export type BidStreamMessage = BidMessage | BidDecline

export interface BidStreamAck {
  v: typeof MARKET_WIRE_VERSION
  ok: boolean
  /** when not ok: the validation code (e.g. BID_UNKNOWN_REQUEST) */
  code?: string
}

const MAX_REASON_LENGTH = 200

export function encodeBidStreamMessage (msg: BidStreamMessage): Uint8Array {
  if (msg.type === 'bid') return encodeMarketMessage(msg)
  const bytes = utf8.encode(JSON.stringify(msg))
  decodeBidStreamMessage(bytes)
  return bytes
}

/** A bid (decoded like the bid topic's) or a decline. @throws MarketWireError */
export function decodeBidStreamMessage (bytes: Uint8Array): BidStreamMessage {
  const o = parseJson(bytes, MAX_MESSAGE_BYTES.bid, 'bid stream message')
  if (o.type === 'bid') return decodeMarketMessage(bytes, 'bid')
  checkVersion(o)
  if (o.type !== 'decline') throw new MarketWireError('WIRE_WRONG_TYPE', "expected 'bid' or 'decline'", { type: String(o.type) })
  exactKeys(o, ['v', 'type', 'requestHash', 'worker', 'code', 'reason'], '(decline)')
  if (typeof o.code !== 'string' || !(BID_DECLINE_CODES as readonly string[]).includes(o.code)) throw invalid('code', 'is not a decline code')
  if (typeof o.reason !== 'string' || o.reason.length > MAX_REASON_LENGTH) throw invalid('reason', `must be a string of at most ${MAX_REASON_LENGTH} characters`)
  return {
    v: MARKET_WIRE_VERSION,
    type: 'decline',
    requestHash: decodeBytes32(o.requestHash, 'requestHash'),
    worker: decodeAddress(o.worker, 'worker'),
    code: o.code as BidDeclineCode,
    reason: o.reason
  }
}

export function encodeBidStreamAck (ack: BidStreamAck): Uint8Array {
  return utf8.encode(JSON.stringify(ack))
}

export function decodeBidStreamAck (bytes: Uint8Array): BidStreamAck {
  const o = parseJson(bytes, 256, 'bid ack')
  checkVersion(o)
  for (const k of Object.keys(o)) if (k !== 'v' && k !== 'ok' && k !== 'code') throw invalid(k, 'is not a known field')
  if (typeof o.ok !== 'boolean') throw invalid('ok', 'must be a boolean')
  if (o.code !== undefined && (typeof o.code !== 'string' || o.code.length > 64)) throw invalid('code', 'must be a short string')
  return o.code !== undefined ? { v: MARKET_WIRE_VERSION, ok: o.ok, code: o.code as string } : { v: MARKET_WIRE_VERSION, ok: o.ok }
}
