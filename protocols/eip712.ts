/**
 * EIP-712 typed data of the PoCo hub: the one source of truth for order and
 * bid hashing, signing and recovery, the scheduler's contribution
 * authorization, and the worker's commit values. The contracts
 * (contracts-abi/contracts/Hub.sol) declare the same type strings; the
 * contract tests check both sides agree.
 *
 * Order fields are iExec PoCo v5's. There is no workerpool in iexec-p2p:
 * `workerpool` and `workerpoolrestrict` restrict the bidding worker's address
 * and `workerpoolmaxprice` caps each bid's price per task.
 *
 * The order hash is the full EIP-712 digest (domain included), as in iExec:
 * it keys consumed volume and presigned flags on chain, and a Bid names the
 * request it answers by this hash.
 *
 * Scheduler authorization: to let `worker` contribute to `taskid`, the deal's
 * current scheduler signs the typed data `Authorization(address worker,
 * bytes32 taskid)` under the hub's domain (so it cannot be replayed on
 * another hub or chain). The worker passes the signature to `contribute` or
 * `contributeAndFinalize`.
 *
 * Commit values: `resultHash = keccak256(taskid ‖ digest)` and
 * `resultSeal = keccak256(worker ‖ taskid ‖ digest)` (abi.encodePacked), the
 * digest being the sha256 of the result (32 bytes).
 *
 * @example
 * ```ts
 * const domain = hubDomain(31337, hubAddress)
 * const signed = await signOrder(wallet, domain, 'AppOrder', appOrder)
 * const hash = hashOrder(domain, 'AppOrder', appOrder)
 * ```
 */
import { getAddress, id, isAddress, isHexString, keccak256, solidityPacked, toUtf8Bytes } from 'ethers'
import type { TypedDataDomain, TypedDataField } from 'ethers'
import { ProtocolError } from './errors.js'
import { privateKeyOf, recoverDigestSigner, signDigest } from './secp256k1.js'
import { isAddressLike } from './address.js'

export const HUB_DOMAIN_NAME = 'iExecP2P-Hub'
export const HUB_DOMAIN_VERSION = '1'

export const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000'
export const ZERO_BYTES32 = '0x0000000000000000000000000000000000000000000000000000000000000000'

/** Error codes of the EIP-712 helpers. */
export type Eip712ErrorCode = 'EIP712_INVALID_ORDER' | 'EIP712_INVALID_DOMAIN' | 'EIP712_INVALID_SIGNATURE'

/** The hub's EIP-712 domain. */
export interface HubDomain {
  name: string
  version: string
  chainId: bigint
  verifyingContract: string
}

export function hubDomain (chainId: number | bigint, verifyingContract: string): HubDomain {
  if (!isAddress(verifyingContract)) {
    throw new ProtocolError<Eip712ErrorCode>('EIP712_INVALID_DOMAIN', `verifyingContract is not an address: ${String(verifyingContract)}`)
  }
  const id = BigInt(chainId)
  if (id <= 0n) throw new ProtocolError<Eip712ErrorCode>('EIP712_INVALID_DOMAIN', `chainId must be positive, got ${id}`)
  return { name: HUB_DOMAIN_NAME, version: HUB_DOMAIN_VERSION, chainId: id, verifyingContract: getAddress(verifyingContract) }
}

export interface AppOrder {
  app: string
  appprice: bigint
  volume: bigint
  tag: string
  datasetrestrict: string
  workerpoolrestrict: string
  requesterrestrict: string
  salt: string
}

export interface DatasetOrder {
  dataset: string
  datasetprice: bigint
  volume: bigint
  tag: string
  apprestrict: string
  workerpoolrestrict: string
  requesterrestrict: string
  salt: string
}

export interface RequestOrder {
  app: string
  appmaxprice: bigint
  dataset: string
  datasetmaxprice: bigint
  workerpool: string
  workerpoolmaxprice: bigint
  requester: string
  volume: bigint
  tag: string
  category: bigint
  trust: bigint
  beneficiary: string
  callback: string
  params: string
  salt: string
}

export interface Bid {
  /** the EIP-712 hash of the RequestOrder this bid answers */
  requestHash: string
  worker: string
  /** asking price per task, nRLC */
  price: bigint
  /** how many tasks of the request the worker takes on */
  volume: bigint
  salt: string
}

/** The scheduler's permission for one worker to contribute to one task. */
export interface Authorization {
  worker: string
  taskid: string
}

export interface OrderByKind {
  AppOrder: AppOrder
  DatasetOrder: DatasetOrder
  RequestOrder: RequestOrder
  Bid: Bid
}
export type OrderKind = keyof OrderByKind

/** An order with its signature (`0x` when presigned on chain), the shape the hub's calls take. */
export type Signed<T> = T & { sign: string }

/** EIP-712 types of every order, the bid and the authorization (same strings as Hub.sol). */
export const HUB_TYPES: Record<OrderKind | 'Authorization', TypedDataField[]> = {
  AppOrder: [
    { name: 'app', type: 'address' },
    { name: 'appprice', type: 'uint256' },
    { name: 'volume', type: 'uint256' },
    { name: 'tag', type: 'bytes32' },
    { name: 'datasetrestrict', type: 'address' },
    { name: 'workerpoolrestrict', type: 'address' },
    { name: 'requesterrestrict', type: 'address' },
    { name: 'salt', type: 'bytes32' }
  ],
  DatasetOrder: [
    { name: 'dataset', type: 'address' },
    { name: 'datasetprice', type: 'uint256' },
    { name: 'volume', type: 'uint256' },
    { name: 'tag', type: 'bytes32' },
    { name: 'apprestrict', type: 'address' },
    { name: 'workerpoolrestrict', type: 'address' },
    { name: 'requesterrestrict', type: 'address' },
    { name: 'salt', type: 'bytes32' }
  ],
  RequestOrder: [
    { name: 'app', type: 'address' },
    { name: 'appmaxprice', type: 'uint256' },
    { name: 'dataset', type: 'address' },
    { name: 'datasetmaxprice', type: 'uint256' },
    { name: 'workerpool', type: 'address' },
    { name: 'workerpoolmaxprice', type: 'uint256' },
    { name: 'requester', type: 'address' },
    { name: 'volume', type: 'uint256' },
    { name: 'tag', type: 'bytes32' },
    { name: 'category', type: 'uint256' },
    { name: 'trust', type: 'uint256' },
    { name: 'beneficiary', type: 'address' },
    { name: 'callback', type: 'address' },
    { name: 'params', type: 'string' },
    { name: 'salt', type: 'bytes32' }
  ],
  Bid: [
    { name: 'requestHash', type: 'bytes32' },
    { name: 'worker', type: 'address' },
    { name: 'price', type: 'uint256' },
    { name: 'volume', type: 'uint256' },
    { name: 'salt', type: 'bytes32' }
  ],
  Authorization: [
    { name: 'worker', type: 'address' },
    { name: 'taskid', type: 'bytes32' }
  ]
}

/** The Solidity type string of each kind, e.g. `AppOrder(address app,...)`. */
export function typeString (kind: OrderKind | 'Authorization'): string {
  return `${kind}(${HUB_TYPES[kind].map((f) => `${f.type} ${f.name}`).join(',')})`
}

const UINT256_MAX = (1n << 256n) - 1n

/** Checks every field of `value` against its EIP-712 type; throws EIP712_INVALID_ORDER naming the field. */
export function validateTyped (kind: OrderKind | 'Authorization', value: Record<string, unknown>): void {
  const bad = (field: string, why: string): never => {
    throw new ProtocolError<Eip712ErrorCode>('EIP712_INVALID_ORDER', `${kind}.${field} ${why}`, { kind, field })
  }
  if (value === null || typeof value !== 'object') bad('(value)', 'is not an object')
  for (const { name, type } of HUB_TYPES[kind]) {
    const v = value[name]
    switch (type) {
      case 'address':
        if (!isAddressLike(v)) bad(name, 'is not an address')
        break
      case 'bytes32':
        if (typeof v !== 'string' || !isHexString(v, 32)) bad(name, 'is not 32 bytes of hex')
        break
      case 'uint256':
        if (typeof v !== 'bigint' || v < 0n || v > UINT256_MAX) bad(name, 'is not a uint256 bigint')
        break
      case 'string':
        if (typeof v !== 'string') bad(name, 'is not a string')
        break
    }
  }
}

function toEthersDomain (domain: HubDomain): TypedDataDomain {
  return { name: domain.name, version: domain.version, chainId: domain.chainId, verifyingContract: domain.verifyingContract }
}

/** Keeps only the typed fields (a `Signed<T>` may be passed: `sign` is not part of the hash). */
function typedValue<K extends OrderKind | 'Authorization'> (kind: K, value: Record<string, unknown>): Record<string, unknown> {
  validateTyped(kind, value)
  const out: Record<string, unknown> = {}
  for (const { name } of HUB_TYPES[kind]) out[name] = value[name]
  return out
}

/*
 * EIP-712 hashing, done here rather than by ethers' TypedDataEncoder: the
 * types are fixed (HUB_TYPES), so each struct is one buffer of 32-byte
 * words, typeHash first, hashed once; the domain separator is computed once
 * per domain. TypedDataEncoder rebuilds its encoder for every call (about
 * 0.5 ms a request order here, this 0.15 ms: `npm run bench -- signatures`). A unit test checks both agree on
 * every kind, and the contract tests check the hub agrees.
 */
const TYPE_HASH = Object.fromEntries(Object.keys(HUB_TYPES).map((k) => [k, Buffer.from(id(typeString(k as OrderKind)).slice(2), 'hex')])) as Record<OrderKind | 'Authorization', Buffer>
const DOMAIN_TYPE_HASH = Buffer.from(id('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)').slice(2), 'hex')
const domainSeparators = new Map<string, Buffer>()

function putUint (out: Buffer, at: number, v: bigint): void {
  out.write(v.toString(16).padStart(64, '0'), at, 32, 'hex')
}

/** `keccak256(domainSeparator ‖ ...)`'s first part, cached (a node has one domain). */
function domainSeparator (domain: HubDomain): Buffer {
  const key = `${domain.name}\u0000${domain.version}\u0000${domain.chainId}\u0000${domain.verifyingContract.toLowerCase()}`
  let sep = domainSeparators.get(key)
  if (sep === undefined) {
    if (!isAddress(domain.verifyingContract)) throw new ProtocolError<Eip712ErrorCode>('EIP712_INVALID_DOMAIN', 'verifyingContract is not an address')
    const buf = Buffer.alloc(32 * 5)
    DOMAIN_TYPE_HASH.copy(buf, 0)
    buf.write(keccak256(toUtf8Bytes(domain.name)).slice(2), 32, 32, 'hex')
    buf.write(keccak256(toUtf8Bytes(domain.version)).slice(2), 64, 32, 'hex')
    putUint(buf, 96, BigInt(domain.chainId))
    buf.write(domain.verifyingContract.slice(2), 140, 20, 'hex')
    sep = Buffer.from(keccak256(buf).slice(2), 'hex')
    // bounded: a node sees one domain, tests a few
    if (domainSeparators.size >= 64) domainSeparators.clear()
    domainSeparators.set(key, sep)
  }
  return sep
}

/** The EIP-712 digest `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(value))` of a hub type. */
function typedDigest (domain: HubDomain, kind: OrderKind | 'Authorization', value: Record<string, unknown>): string {
  validateTyped(kind, value)
  const fields = HUB_TYPES[kind]
  const struct = Buffer.alloc(32 * (fields.length + 1))
  TYPE_HASH[kind].copy(struct, 0)
  for (const [i, { name, type }] of fields.entries()) {
    const at = 32 * (i + 1)
    const v = value[name]
    switch (type) {
      case 'address': struct.write((v as string).slice(2), at + 12, 20, 'hex'); break
      case 'bytes32': struct.write((v as string).slice(2), at, 32, 'hex'); break
      case 'uint256': putUint(struct, at, v as bigint); break
      case 'string': struct.write(keccak256(toUtf8Bytes(v as string)).slice(2), at, 32, 'hex'); break
      default: throw new ProtocolError<Eip712ErrorCode>('EIP712_INVALID_ORDER', `unsupported field type ${type}`)
    }
  }
  const outer = Buffer.alloc(66)
  outer[0] = 0x19
  outer[1] = 0x01
  domainSeparator(domain).copy(outer, 2)
  outer.write(keccak256(struct).slice(2), 34, 32, 'hex')
  return keccak256(outer)
}

/** The EIP-712 digest of an order or bid: the hash the hub keys consumed volume on. */
export function hashOrder<K extends OrderKind> (domain: HubDomain, kind: K, order: OrderByKind[K]): string {
  return typedDigest(domain, kind, order as unknown as Record<string, unknown>)
}

/** Anything that signs EIP-712 typed data (an ethers Wallet or Signer). */
export interface TypedDataSigner {
  signTypedData: (domain: TypedDataDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>) => Promise<string>
}

/**
 * Signs a hub type: an ethers Wallet's key signs the digest here (the same
 * signature ethers would make, faster); any other signer gets the typed data.
 */
async function signTyped (signer: TypedDataSigner, domain: HubDomain, kind: OrderKind | 'Authorization', value: Record<string, unknown>): Promise<string> {
  const digest = typedDigest(domain, kind, value)
  const key = privateKeyOf(signer)
  if (key !== undefined) {
    try {
      return signDigest(key, digest)
    } finally {
      key.fill(0)
    }
  }
  return await signer.signTypedData(toEthersDomain(domain), { [kind]: HUB_TYPES[kind] }, typedValue(kind, value))
}

/** Signs an order or bid; returns it with its `sign` field. */
export async function signOrder<K extends OrderKind> (signer: TypedDataSigner, domain: HubDomain, kind: K, order: OrderByKind[K]): Promise<Signed<OrderByKind[K]>> {
  const sign = await signTyped(signer, domain, kind, order as unknown as Record<string, unknown>)
  return { ...order, sign }
}

/** The address that signed an order; throws EIP712_INVALID_SIGNATURE on a malformed signature. */
export function recoverOrderSigner<K extends OrderKind> (domain: HubDomain, kind: K, order: OrderByKind[K], sign: string): string {
  return recoverDigestSigner(hashOrder(domain, kind, order), sign)
}

/** The digest the scheduler signs to authorize `worker` on `taskid`. */
export function hashAuthorization (domain: HubDomain, auth: Authorization): string {
  return typedDigest(domain, 'Authorization', auth as unknown as Record<string, unknown>)
}

/** The scheduler signs an authorization for one worker and one task. */
export async function signAuthorization (signer: TypedDataSigner, domain: HubDomain, auth: Authorization): Promise<string> {
  return await signTyped(signer, domain, 'Authorization', auth as unknown as Record<string, unknown>)
}

export function recoverAuthorizationSigner (domain: HubDomain, auth: Authorization, sign: string): string {
  return recoverDigestSigner(hashAuthorization(domain, auth), sign)
}

function bytes32 (name: string, v: string): string {
  if (!isHexString(v, 32)) throw new ProtocolError<Eip712ErrorCode>('EIP712_INVALID_ORDER', `${name} is not 32 bytes of hex`, { field: name })
  return v
}

/** keccak256(taskid ‖ digest): what contributions agree on. */
export function resultHash (taskid: string, digest: string): string {
  return keccak256(solidityPacked(['bytes32', 'bytes32'], [bytes32('taskid', taskid), bytes32('digest', digest)]))
}

/** keccak256(worker ‖ taskid ‖ digest): binds the commit to its worker. */
export function resultSeal (worker: string, taskid: string, digest: string): string {
  if (!isAddressLike(worker)) throw new ProtocolError<Eip712ErrorCode>('EIP712_INVALID_ORDER', 'worker is not an address', { field: 'worker' })
  return keccak256(solidityPacked(['address', 'bytes32', 'bytes32'], [worker, bytes32('taskid', taskid), bytes32('digest', digest)]))
}

/** keccak256(dealid ‖ idx): task `idx` of a deal. */
export function taskId (dealid: string, idx: number | bigint): string {
  return keccak256(solidityPacked(['bytes32', 'uint256'], [bytes32('dealid', dealid), BigInt(idx)]))
}

/** keccak256(requestHash ‖ consumed before the match): the deal id, as iExec derives it. */
export function dealId (requestHash: string, consumedBefore: bigint): string {
  return keccak256(solidityPacked(['bytes32', 'uint256'], [bytes32('requestHash', requestHash), consumedBefore]))
}

/** The dataset order to pass to `matchOrders` when the request names no dataset (the hub ignores it). */
export function emptyDatasetOrder (): Signed<DatasetOrder> {
  return {
    dataset: ZERO_ADDRESS,
    datasetprice: 0n,
    volume: 0n,
    tag: ZERO_BYTES32,
    apprestrict: ZERO_ADDRESS,
    workerpoolrestrict: ZERO_ADDRESS,
    requesterrestrict: ZERO_ADDRESS,
    salt: ZERO_BYTES32,
    sign: '0x'
  }
}
