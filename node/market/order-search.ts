/**
 * `orderbook --app/--dataset/--requester`: which live orders concern a
 * party, as iexec-sdk's orderbook reads them. An order concerns an app,
 * dataset or requester when it names it as its subject (an app order's app,
 * a request's app, dataset and requester) or when it is usable by it: a
 * dataset order whose `apprestrict` is that app, an app order whose
 * `datasetrestrict` is that dataset, an app or dataset order whose
 * `requesterrestrict` is that requester. An unrestricted order (the zero
 * address) is usable by anyone, so it is listed too unless `strict` asks
 * for the orders that name the party only.
 *
 * Bids name none of these: they are listed only when no party is asked for.
 */
import type { AppOrder, DatasetOrder } from '../../protocols/eip712.js'
import { ORDERBOOK_TYPES } from './orderbook.js'
import type { Orderbook, OrderbookEntry, OrderbookType } from './orderbook.js'

export interface OrderSearch {
  type?: OrderbookType
  app?: string
  dataset?: string
  requester?: string
  category?: number
  /** only orders whose restriction names the party (not the unrestricted ones) */
  strict?: boolean
  /** every one of these tag bits set (bids have no tag: never listed) */
  tagBits?: bigint
}

const ZERO = '0x0000000000000000000000000000000000000000'

function allows (restriction: string, party: string, strict: boolean): boolean {
  const r = restriction.toLowerCase()
  return r === party.toLowerCase() || (!strict && r === ZERO)
}

/** Live orders matching every given filter, type by type (ORDERBOOK_TYPES' order), at most `limit` of each type. */
export async function searchOrderbook (book: Pick<Orderbook, 'query'>, s: OrderSearch, limit?: number): Promise<OrderbookEntry[]> {
  const strict = s.strict === true
  const tagged = (e: OrderbookEntry): boolean => {
    if (s.tagBits === undefined) return true
    const t = (e.message.order as { tag?: string }).tag
    return t !== undefined && (BigInt(t) & s.tagBits) === s.tagBits
  }
  const lim = limit !== undefined ? { limit } : {}
  const out: OrderbookEntry[] = []
  for (const type of s.type !== undefined ? [s.type] : ORDERBOOK_TYPES) {
    switch (type) {
      case 'apporder': {
        // an app order has no category: a category filter leaves none
        if (s.category !== undefined) break
        out.push(...await book.query({
          type, ...lim, ...(s.app !== undefined ? { app: s.app } : {}),
          filter: (e) => {
            const o = e.message.order as AppOrder
            return tagged(e) && (s.dataset === undefined || allows(o.datasetrestrict, s.dataset, strict)) &&
              (s.requester === undefined || allows(o.requesterrestrict, s.requester, strict))
          }
        }))
        break
      }
      case 'datasetorder': {
        if (s.category !== undefined) break
        out.push(...await book.query({
          type, ...lim, ...(s.dataset !== undefined ? { dataset: s.dataset } : {}),
          filter: (e) => {
            const o = e.message.order as DatasetOrder
            return tagged(e) && (s.app === undefined || allows(o.apprestrict, s.app, strict)) &&
              (s.requester === undefined || allows(o.requesterrestrict, s.requester, strict))
          }
        }))
        break
      }
      case 'requestorder':
        out.push(...await book.query({
          type, ...lim,
          ...(s.app !== undefined ? { app: s.app } : {}),
          ...(s.dataset !== undefined ? { dataset: s.dataset } : {}),
          ...(s.requester !== undefined ? { requester: s.requester } : {}),
          ...(s.category !== undefined ? { category: s.category } : {}),
          filter: tagged
        }))
        break
      case 'bid':
        if (s.app !== undefined || s.dataset !== undefined || s.requester !== undefined || s.category !== undefined || s.tagBits !== undefined) break
        out.push(...await book.query({ type, ...lim }))
        break
    }
  }
  return out
}
