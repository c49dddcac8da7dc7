/**
 * Ids derived from the hub's types, as iExec derives them: the order hash,
 * the deal and task ids, and the commit values.
 *
 * The order hash is the full EIP-712 digest (domain included), as in iExec:
 * it keys consumed volume and presigned flags on chain, and a Bid names the
 * request it answers by this hash.
 *
 * Commit values: `resultHash = keccak256(taskid ‖ digest)` and
 * `resultSeal = keccak256(worker ‖ taskid ‖ digest)` (abi.encodePacked), the
 * digest being the sha256 of the result (32 bytes).
 */
import { isHexString, keccak256, solidityPacked } from 'ethers'
import { ProtocolError } from './errors.js'
import { isAddressLike } from './address.js'
import { hubTypedDigest } from './typed-data.js'
import type { Eip712ErrorCode, HubDomain, OrderByKind, OrderKind } from './hub-types.js'

/** The EIP-712 digest of an order or bid: the hash the hub keys consumed volume on. */
export function hashOrder<K extends OrderKind> (domain: HubDomain, kind: K, order: OrderByKind[K]): string {
  return hubTypedDigest(domain, kind, order as unknown as Record<string, unknown>)
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
