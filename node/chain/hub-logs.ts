import type { Hub } from '../../contracts-abi/index.js'
import type { TypedContractEvent, TypedDeferredTopicFilter, TypedEventLog } from '../../contracts-abi/types/common.js'
import { ChainError } from './errors.js'

/** What a bounded log query needs of the hub: its log query and, for an open range, the chain's head. */
export interface HubLogReader {
  queryFilter: Hub['queryFilter']
  readonly runner: { provider?: { getBlockNumber: () => Promise<number> } | null } | null
}

/**
 * The hub's logs matching a filter from `fromBlock` to `toBlock` (the head
 * when undefined), oldest first, read in ranges of at most `maxRange`
 * blocks: public endpoints refuse or truncate a larger `eth_getLogs`. The
 * number of requests is ceil((toBlock - fromBlock + 1) / maxRange).
 *
 * @example
 * ```ts
 * const logs = await queryHubLogs(hub, hub.filters.DealCreated(dealid), fromBlock, undefined, defaultEventFollowerOptions.maxBlockRange)
 * ```
 * @throws ChainError INVALID_ARGUMENT when maxRange is not a positive integer or the hub has no provider for an open range
 */
export async function queryHubLogs<E extends TypedContractEvent> (
  hub: HubLogReader, filter: TypedDeferredTopicFilter<E>, fromBlock: number, toBlock: number | undefined, maxRange: number
): Promise<Array<TypedEventLog<E>>> {
  checkRange(maxRange)
  const to = toBlock ?? await headOf(hub)
  const out: Array<TypedEventLog<E>> = []
  for (let from = Math.max(0, fromBlock); from <= to; from += maxRange) {
    out.push(...await hub.queryFilter(filter, from, Math.min(from + maxRange - 1, to)))
  }
  return out
}

/**
 * The newest of the hub's logs matching a filter, reading ranges of at most
 * `maxRange` blocks from `toBlock` (the head when undefined) back to
 * `fromBlock`: a recent event is found in one request, an absent one costs
 * as many requests as queryHubLogs.
 *
 * `headHint` (a block the caller knows is at or near the head, such as its
 * event follower's position) saves the head's own request, a round trip on
 * every call: the first range is then read up to `latest` from
 * `headHint - maxRange / 2`, so it stays within `maxRange` while the hint
 * lags the head by at most half of it. A hinted read that fails (a hint
 * past a shorter chain's head) falls back to reading the head.
 * @throws ChainError INVALID_ARGUMENT as queryHubLogs
 */
export async function lastHubLog<E extends TypedContractEvent> (
  hub: HubLogReader, filter: TypedDeferredTopicFilter<E>, fromBlock: number, toBlock: number | undefined, maxRange: number,
  options: { headHint?: number } = {}
): Promise<TypedEventLog<E> | undefined> {
  checkRange(maxRange)
  const first = Math.max(0, fromBlock)
  let to: number | undefined = toBlock
  const hint = options.headHint
  if (to === undefined && hint !== undefined && Number.isSafeInteger(hint) && hint >= first) {
    const lower = Math.max(first, hint + 1 - Math.ceil(maxRange / 2))
    const logs = await hub.queryFilter(filter, lower, 'latest').catch(() => undefined)
    if (logs !== undefined) {
      const last = logs[logs.length - 1]
      if (last !== undefined) return last
      to = lower - 1
    }
  }
  for (to = to ?? await headOf(hub); to >= first; to -= maxRange) {
    const logs = await hub.queryFilter(filter, Math.max(first, to - maxRange + 1), to)
    const last = logs[logs.length - 1]
    if (last !== undefined) return last
  }
  return undefined
}

function checkRange (maxRange: number): void {
  if (!Number.isSafeInteger(maxRange) || maxRange < 1) throw new ChainError('INVALID_ARGUMENT', 'a log query needs maxRange >= 1', { maxRange })
}

async function headOf (hub: HubLogReader): Promise<number> {
  const provider = hub.runner?.provider
  if (provider === undefined || provider === null) throw new ChainError('INVALID_ARGUMENT', 'the hub has no provider to read the head block from')
  return await provider.getBlockNumber()
}
