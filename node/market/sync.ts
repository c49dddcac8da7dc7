/**
 * Late-joiner sync (protocols/market.ts `marketSyncProtocol`): a node that
 * connects to a peer asks it for the live orders it holds, page by page, and
 * runs every order through the same validators as gossip (a peer's book is a
 * hint, never trusted).
 */
import { lpStream } from '@libp2p/utils'
import type { Stream, StreamHandler } from '@libp2p/interface'
import {
  MARKET_WIRE_VERSION, MAX_MESSAGE_BYTES, SYNC_MAX_ORDERS, SYNC_REQUEST_MAX_BYTES,
  decodeSyncFrame, decodeSyncRequest, encodeSyncFrame, encodeSyncRequest
} from '../../protocols/market.js'
import type { MarketOrderType } from '../../protocols/market.js'
import type { Orderbook } from './orderbook.js'

/** Largest frame: an order message plus its tag byte. */
const MAX_FRAME = Math.max(...Object.values(MAX_MESSAGE_BYTES)) + 1

export interface SyncHandlerOptions {
  book: Orderbook
  /** bound on one exchange, ms */
  timeoutMs: number
  /** orders per page the responder sends at most */
  pageSize: number
}

/** The responder: one request, up to `limit` order frames, one end frame. */
export function createSyncHandler (opts: SyncHandlerOptions): StreamHandler {
  return async (stream: Stream) => {
    const signal = AbortSignal.timeout(opts.timeoutMs)
    const lp = lpStream(stream, { maxDataLength: Math.max(SYNC_REQUEST_MAX_BYTES, MAX_FRAME) })
    try {
      const req = decodeSyncRequest((await lp.read({ signal })).subarray())
      const limit = Math.min(req.limit, opts.pageSize, SYNC_MAX_ORDERS)
      const page = await opts.book.syncPage(req.types, limit, req.cursor)
      for (const m of page.messages) await lp.write(encodeSyncFrame({ kind: 'order', message: m }), { signal })
      await lp.write(encodeSyncFrame(page.next !== undefined ? { kind: 'end', cursor: page.next } : { kind: 'end' }), { signal })
      await stream.close({ signal })
    } catch (err) {
      // a malformed request, a bad cursor or a peer gone: nothing to answer
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }
}

export interface SyncClientOptions {
  dial: (protocol: string, options: { signal: AbortSignal }) => Promise<Stream>
  protocol: string
  types: MarketOrderType[]
  /** each received order's bytes; the caller validates and stores it */
  onOrder: (bytes: Uint8Array, type: MarketOrderType) => Promise<void>
  timeoutMs: number
  pageSize: number
  /** pages asked at most (bounds the whole sync) */
  maxPages: number
}

/** Pulls a peer's live orders; returns how many frames were received. */
export async function syncFromPeer (opts: SyncClientOptions): Promise<number> {
  let cursor: string | undefined
  let received = 0
  for (let page = 0; page < opts.maxPages; page++) {
    const signal = AbortSignal.timeout(opts.timeoutMs)
    const stream = await opts.dial(opts.protocol, { signal })
    let next: string | undefined
    try {
      const lp = lpStream(stream, { maxDataLength: Math.max(SYNC_REQUEST_MAX_BYTES, MAX_FRAME) })
      await lp.write(encodeSyncRequest({ v: MARKET_WIRE_VERSION, types: opts.types, limit: opts.pageSize, ...(cursor !== undefined ? { cursor } : {}) }), { signal })
      // bounded: the responder sends at most pageSize orders then an end frame
      for (let i = 0; i <= opts.pageSize; i++) {
        const frame = decodeSyncFrame((await lp.read({ signal })).subarray())
        if (frame.kind === 'end') {
          next = frame.cursor
          break
        }
        received++
        const type = typeOf(frame.message)
        if (type !== undefined && opts.types.includes(type)) await opts.onOrder(frame.message, type)
      }
      await stream.close({ signal }).catch(() => {})
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
    if (next === undefined) break
    cursor = next
  }
  return received
}

/** The type an order frame claims (the validator checks it against the bytes). */
function typeOf (bytes: Uint8Array): MarketOrderType | undefined {
  // cheap peek: the validator decodes and checks everything afterwards
  const m = /"type":"(apporder|datasetorder|requestorder)"/.exec(new TextDecoder().decode(bytes.subarray(0, 64)))
  return m?.[1] as MarketOrderType | undefined
}
