/**
 * Ethereum addresses, checked and checksummed with a memory of the ones
 * already seen.
 *
 * Why: ethers' isAddress and getAddress hash the address (keccak256) for its
 * EIP-55 checksum on every call, and every gossiped order names several
 * addresses, decoded again at every node and every orderbook read: that
 * checksumming shows in a busy node's profile (README, performance). A swarm
 * names few distinct addresses (its nodes, apps, datasets, the hub), so each
 * is hashed once.
 *
 * Same answers as ethers: a 0x address in lowercase, uppercase or with a
 * valid checksum is accepted; a mixed-case one with a wrong checksum is
 * refused. Only accepted inputs are remembered (garbage cannot fill the
 * memory), at most MAX_REMEMBERED of them.
 */
import { getAddress } from 'ethers'

const MAX_REMEMBERED = 4096
const seen = new Map<string, string>()

/** The checksummed form of `v`, or undefined when `v` is not an address. */
export function checksumAddress (v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined
  const hit = seen.get(v)
  if (hit !== undefined) return hit
  let out: string
  try {
    out = getAddress(v)
  } catch {
    return undefined
  }
  if (seen.size >= MAX_REMEMBERED) seen.clear()
  seen.set(v, out)
  return out
}

/** Whether `v` is an address (as ethers' isAddress). */
export function isAddressLike (v: unknown): v is string {
  return checksumAddress(v) !== undefined
}
