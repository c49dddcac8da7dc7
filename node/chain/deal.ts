import { getAddress } from 'ethers'
import type { ChainEvent } from './index.js'
import { ChainError } from './errors.js'

/** What a node keeps of a DealCreated event (JSON-safe: numbers fit, prices as decimal strings). */
export interface DealInfo {
  dealid: string
  /** EIP-712 hash of the request order (the market finds the signed order, hence the requester's public key, by it) */
  requestHash: string
  /** the scheduler elected at match time (the hub's dealOf says who it is now) */
  scheduler: string
  requester: string
  app: string
  /** zero address when none */
  dataset: string
  workers: string[]
  /** the request's callback contract (zero address: none; absent in records of earlier versions) */
  callback?: string
  params: string
  volume: number
  trust: number
  category: number
  workerPrice: string
  startTime: number
  contributionDeadline: number
  finalDeadline: number
}

/**
 * Reads a decoded `DealCreated` event of the hub.
 * @throws ChainError BAD_EVENT
 */
export function dealFromEvent (event: ChainEvent): DealInfo {
  const a = event.args
  if (event.name !== 'DealCreated' || a === undefined) throw new ChainError('BAD_EVENT', `not a decoded DealCreated event: ${event.name ?? 'unknown'}`)
  try {
    const info = a.info
    return {
      dealid: String(a.dealid).toLowerCase(),
      requestHash: String(info.requestHash).toLowerCase(),
      scheduler: getAddress(String(a.scheduler)),
      requester: getAddress(String(a.requester)),
      app: getAddress(String(info.app)),
      dataset: getAddress(String(info.dataset)),
      workers: [...(info.workers as string[])].map((w) => getAddress(w)),
      callback: getAddress(String(info.callback)),
      params: String(info.params),
      volume: Number(info.volume),
      trust: Number(info.trust),
      category: Number(info.category),
      workerPrice: (info.workerPrice as bigint).toString(),
      startTime: Number(info.startTime),
      contributionDeadline: Number(info.contributionDeadline),
      finalDeadline: Number(info.finalDeadline)
    }
  } catch (err) {
    throw new ChainError('BAD_EVENT', 'DealCreated does not decode', { transactionHash: event.transactionHash }, { cause: err })
  }
}
