// The tasks a transaction created, from its receipt (`task show --tx`,
// `result get --tx`): a matchOrders transaction's DealCreated events; a
// transaction that published a request on chain (presignRequestOrder, e.g. a
// DApp's submit) has none yet, so the request's deals are found from the hub:
// a request's n-th deal id is keccak256(requestHash, volume consumed before it).
import { getAddress, solidityPackedKeccak256 } from 'ethers'
import { hubEventsOfReceipt, isHubEvent } from '../chain/index.js'
import { HttpError } from '../common/http-error.js'
import { taskId } from '../../protocols/eip712.js'
import type { MarketService } from './service.js'

export interface TxTasksView {
  txHash: string
  blockNumber: number
  /** the requests the transaction published on chain (presigned), by hash */
  requests: string[]
  deals: Array<{ dealId: string, volume: number, taskIds: string[] }>
  /** every task, in deal order */
  taskIds: string[]
}

/** Bound on deals followed per published request (a request of volume n has at most n deals). */
const MAX_DEALS_PER_REQUEST = 1000

/**
 * Reads the receipt of `txHash` and lists its tasks. Only the hub's own logs
 * count: any contract can emit an event that looks like DealCreated.
 * @throws HttpError 404 TX_NOT_FOUND (unknown or not mined), 422 TX_REVERTED
 */
export async function tasksOfTransaction (m: MarketService, txHash: string): Promise<TxTasksView> {
  const receipt = await m.chain.provider.getTransactionReceipt(txHash)
  if (receipt === null) throw new HttpError(404, 'TX_NOT_FOUND', `no mined transaction ${txHash} on this chain (unknown, or still pending)`)
  if (receipt.status !== 1) throw new HttpError(422, 'TX_REVERTED', `transaction ${txHash} reverted: it created nothing`, { blockNumber: receipt.blockNumber })
  const hub = getAddress(await m.hub.getAddress())
  const deals: TxTasksView['deals'] = []
  const requests: string[] = []
  const seen = new Set<string>()
  const addDeal = (dealId: string, volume: number): void => {
    const id = dealId.toLowerCase()
    if (seen.has(id)) return
    seen.add(id)
    const taskIds: string[] = []
    for (let i = 0; i < volume; i++) taskIds.push(taskId(id, i))
    deals.push({ dealId: id, volume, taskIds })
  }
  for (const e of hubEventsOfReceipt(receipt, hub)) {
    if (isHubEvent(e, 'DealCreated')) addDeal(String(e.args.dealid), Number(e.args.info.volume))
    if (isHubEvent(e, 'RequestOrderPublished')) requests.push(String(e.args.requestHash).toLowerCase())
  }
  for (const requestHash of requests) {
    let consumed = 0n
    for (let n = 0; n < MAX_DEALS_PER_REQUEST; n++) {
      const dealId = solidityPackedKeccak256(['bytes32', 'uint256'], [requestHash, consumed])
      const deal = await m.hub.dealOf(dealId)
      if (deal.volume === 0n) break
      addDeal(dealId, Number(deal.volume))
      consumed += deal.volume
    }
  }
  return { txHash: receipt.hash.toLowerCase(), blockNumber: receipt.blockNumber, requests, deals, taskIds: deals.flatMap((d) => d.taskIds) }
}
