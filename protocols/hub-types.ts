/**
 * The PoCo hub's EIP-712 types: its domain, the orders, the bid and the
 * scheduler's authorization, with the same type strings as the contracts
 * (contracts-abi/contracts/Hub.sol; the contract tests check both sides
 * agree). Hashing and signing them is typed-data.ts; the ids derived from
 * them (order hashes, deal and task ids, commit values) are ids.ts.
 *
 * Order fields are iExec PoCo v5's. There is no workerpool in iexec-p2p:
 * `workerpool` and `workerpoolrestrict` restrict the bidding worker's address
 * and `workerpoolmaxprice` caps each bid's price per task.
 *
 * Scheduler authorization: to let `worker` contribute to `taskid`, the deal's
 * current scheduler signs the typed data `Authorization(address worker,
 * bytes32 taskid)` under the hub's domain (so it cannot be replayed on
 * another hub or chain). The worker passes the signature to `contribute` or
 * `contributeAndFinalize`.
 */
import { getAddress, isAddress, isHexString } from 'ethers'
import type { TypedDataField } from 'ethers'
import { ProtocolError } from './errors.js'
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
