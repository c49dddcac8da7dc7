import type { ContractRunner } from 'ethers'
import { ChainError } from './errors.js'
import { defaultEventFollowerOptions } from './options.js'

/** Where the head is read from: a provider, or a contract binding's runner's provider. */
export interface HeadSource {
  getBlockNumber: () => Promise<number>
}

export interface LogRangesOptions<T> {
  /** first block of interest (the hub's deploy block) */
  fromBlock: number
  /** last block; 'latest' (the default) reads the head once, and the range that reaches it asks for 'latest' */
  toBlock?: number | 'latest'
  /** largest range of one query; the chain options' eth_getLogs limit by default */
  maxRange?: number
  /** read the newest range first (and each range's logs newest first) */
  newestFirst?: boolean
  /** stop once this says the logs found so far are enough (checked after each range) */
  enough?: (found: T[]) => boolean
  /** where the head comes from with toBlock 'latest' */
  head?: HeadSource
}

/**
 * Reads logs between two blocks in ranges of at most `maxRange` blocks:
 * public endpoints refuse an eth_getLogs over more than a few thousand
 * blocks, and a node started long after the hub's deploy block would
 * otherwise ask for its whole history in one query. `read` is one query
 * (e.g. `(a, b) => hub.queryFilter(hub.filters.DealCreated(id), a, b)`, so
 * typed bindings keep their types). The range that reaches the head asks
 * for 'latest', as a single open-ended query would: a block mined after
 * the head was read is not missed.
 *
 * @example
 * ```ts
 * const logs = await queryLogsInRanges((a, b) => hub.queryFilter(hub.filters.TaskFinalized(id), a, b),
 *   { fromBlock, head: provider })
 * ```
 */
export async function queryLogsInRanges<T> (read: (fromBlock: number, toBlock: number | 'latest') => Promise<T[]>, o: LogRangesOptions<T>): Promise<T[]> {
  const maxRange = o.maxRange ?? defaultEventFollowerOptions.maxBlockRange
  if (!(Number.isSafeInteger(maxRange) && maxRange >= 1 && Number.isSafeInteger(o.fromBlock) && o.fromBlock >= 0)) {
    throw new ChainError('INVALID_ARGUMENT', 'log ranges need fromBlock >= 0 and maxRange >= 1', { fromBlock: o.fromBlock, maxRange })
  }
  const open = o.toBlock === undefined || o.toBlock === 'latest'
  let last: number
  if (open) {
    if (o.head === undefined) throw new ChainError('INVALID_ARGUMENT', 'log ranges up to the latest block need a head source', {})
    last = await o.head.getBlockNumber()
  } else {
    last = o.toBlock as number
  }
  const found: T[] = []
  if (last < o.fromBlock) return found
  const ask = (to: number): number | 'latest' => (open && to >= last ? 'latest' : to)
  if (o.newestFirst === true) {
    for (let to = last; to >= o.fromBlock; to -= maxRange) {
      const from = Math.max(o.fromBlock, to - maxRange + 1)
      found.push(...(await read(from, ask(to))).reverse())
      if (o.enough?.(found) === true) break
    }
  } else {
    for (let from = o.fromBlock; from <= last; from += maxRange) {
      found.push(...await read(from, ask(Math.min(from + maxRange - 1, last))))
      if (o.enough?.(found) === true) break
    }
  }
  return found
}

/** The provider behind a contract binding's runner, as a head source. */
export function headOf (runner: ContractRunner | null | undefined): HeadSource {
  const provider = runner?.provider
  if (provider == null) throw new ChainError('INVALID_ARGUMENT', 'the binding has no provider to read the head from', {})
  return provider
}
