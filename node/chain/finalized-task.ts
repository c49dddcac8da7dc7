import type { Hub } from '../../contracts-abi/index.js'
import { lastHubLog } from './hub-logs.js'
import type { HubLogReader } from './hub-logs.js'

/** A task's TaskFinalized event: its results CID, agreed result hash and deal. */
export interface FinalizedTaskLog {
  resultsCid: string
  resultHash: string
  dealid: string
}

/**
 * The hub's TaskFinalized event of a task, newest first in ranges of at
 * most `maxBlockRange` blocks from the head back to `fromBlock` (a result
 * is asked for soon after its task ends: one request); undefined when the
 * task is not finalized. `headHint` (the head the node's follower last saw) saves
 * the head's request (lastHubLog).
 */
export async function findFinalizedTask (
  hub: HubLogReader & Pick<Hub, 'filters'>, taskId: string, options: { fromBlock: number, maxBlockRange: number, headHint?: number }
): Promise<FinalizedTaskLog | undefined> {
  const last = await lastHubLog(hub, hub.filters.TaskFinalized(taskId), options.fromBlock, undefined, options.maxBlockRange,
    options.headHint !== undefined ? { headHint: options.headHint } : {})
  if (last === undefined) return undefined
  return { resultsCid: last.args.resultsCid, resultHash: last.args.resultHash, dealid: last.args.dealid }
}
