/**
 * Where the node's live events and the explorer's index come from: the
 * hub's events as the node's HubEvents delivers them (one follower, one
 * cursor: no second poll of the chain), the orders, bids and cancels the
 * market accepts, the provider's answers to requests, and libp2p's peer
 * connections. A bounded-range read of the blocks the node followed before
 * its index existed fills the index in the background.
 */
import type { Result } from 'ethers'
import type { ChainEvent, HubEvents } from '../../chain/index.js'
import { hubInterface } from '../../chain/index.js'
import type { MarketService } from '../../market/service.js'
import type { NodeEvents, TaskEventState } from '../events.js'
import type { ExplorerStore, HubEventLike } from './store.js'

const TASK_STATES: Record<string, TaskEventState> = {
  TaskInitialized: 'INITIALIZED',
  TaskContributed: 'CONTRIBUTED',
  TaskConsensus: 'CONSENSUS',
  TaskRevealed: 'REVEALED',
  TaskFinalized: 'COMPLETED',
  TaskClaimed: 'FAILED'
}

/** ethers' Result (nested structs included) as plain values: bigints as decimal strings. */
function plain (v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString()
  if (Array.isArray(v)) {
    const r = v as unknown as Result
    if (typeof r.toObject === 'function') {
      let keyed: Record<string, unknown> | undefined
      try {
        keyed = r.toObject()
      } catch {
        keyed = undefined
      }
      // a struct has a name per field; an array's items (workers) have none, and toObject names them '_' or by index
      const keys = keyed !== undefined ? Object.keys(keyed) : []
      if (keyed !== undefined && keys.length === v.length && keys.every((k) => k !== '_' && !/^\d+$/.test(k))) {
        return Object.fromEntries(Object.entries(keyed).map(([k, x]) => [k, plain(x)]))
      }
    }
    return Array.from(v, plain)
  }
  return v
}

export function hubEventLike (event: ChainEvent): HubEventLike | undefined {
  if (event.name === undefined || event.args === undefined) return undefined
  return { name: event.name, block: event.blockNumber, logIndex: event.logIndex, txHash: event.transactionHash, args: plain(event.args) as Record<string, unknown> }
}

/** The typed live event a hub event makes, if any. */
export function emitHubEvent (events: NodeEvents, e: HubEventLike): void {
  const a = e.args
  const state = TASK_STATES[e.name]
  if (state !== undefined) {
    events.emit('task', {
      taskId: String(a.taskid).toLowerCase(),
      ...(a.dealid !== undefined ? { dealId: String(a.dealid).toLowerCase() } : {}),
      state,
      block: e.block,
      txHash: e.txHash,
      ...(a.worker !== undefined ? { worker: String(a.worker) } : {}),
      ...(a.resultsCid !== undefined ? { resultCid: String(a.resultsCid) } : {})
    })
  } else if (e.name === 'DealCreated') {
    const info = a.info as Record<string, unknown>
    events.emit('deal', { dealId: String(a.dealid).toLowerCase(), change: 'created', block: e.block, txHash: e.txHash, requester: String(a.requester), app: String(info.app), volume: String(info.volume), requestHash: String(info.requestHash).toLowerCase() })
  } else if (e.name === 'SchedulerDrawn' || e.name === 'SchedulerReelected') {
    events.emit('deal', { dealId: String(a.dealid).toLowerCase(), change: e.name === 'SchedulerDrawn' ? 'scheduler-drawn' : 'scheduler-reelected', block: e.block, txHash: e.txHash, scheduler: String(a.scheduler) })
  } else if (e.name === 'OrderCancelled') {
    events.emit('order', { change: 'cancelled', type: 'unknown', orderHash: String(a.orderHash).toLowerCase() })
  }
}

export interface ExplorerFeedInit {
  events: NodeEvents
  store: ExplorerStore
  market: MarketService
  /** the node's follower of the hub, not started yet: its stored cursor is where it starts (none with --resync-events) */
  hubEvents: Pick<HubEvents, 'on' | 'storedPosition'>
  /** the hub's first block of interest (the node's fromBlock) */
  fromBlock: number
  /** blocks per eth_getLogs of the backfill */
  maxBlockRange?: number
  warn: (msg: string, context?: Record<string, unknown>) => void
}

/**
 * Wires the market and the hub's events into the event bus and the index.
 * Call after the market subscribed and before `hubEvents.start()` (the
 * cursor read here is where the follower starts). Returns a stop function.
 */
export async function startExplorerFeed (init: ExplorerFeedInit): Promise<() => Promise<void>> {
  const { events, store, market } = init
  await store.start()
  // where the node's follower will start: what it delivered before this index existed is read back
  const followed = (await init.hubEvents.storedPosition())?.blockNumber
  const stopHub = init.hubEvents.on('*', (event) => {
    const e = hubEventLike(event)
    if (e === undefined) return
    // not awaited: the follower (and the scheduler behind it) never waits for the explorer
    // the live event goes out once the index has it (a page re-read then shows it), and even when the index failed
    store.apply(e).then(() => { store.markThrough(e.block - 1) }, (err: unknown) => {
      init.warn('explorer index update failed', { event: e.name, error: String(err) })
    }).finally(() => { emitHubEvent(events, e) }).catch((err: unknown) => { init.warn('live event not sent', { event: e.name, error: String(err) }) })
  })
  // these run inside the market's accept path and the provider's decision: they must never throw there
  market.onAccepted = (type, v, from) => {
    try {
      if (type === 'cancel') {
        events.emit('order', { change: 'cancelled', type: 'unknown', orderHash: String((v as { orderHash: unknown }).orderHash).toLowerCase() })
        return
      }
      const o = v as unknown as { hash: string, signer: string, message: { order: Record<string, unknown> } }
      if (type === 'bid') events.emit('bid', { change: 'received', requestHash: String(o.message.order.requestHash).toLowerCase(), worker: String(o.message.order.worker), from })
      else events.emit('order', { change: 'added', type, orderHash: o.hash.toLowerCase(), signer: o.signer })
    } catch (err) {
      init.warn('live event not sent', { type, error: String(err) })
    }
  }
  if (market.provider !== undefined) {
    market.provider.onDecision = (r) => {
      try {
        events.emit('bid', { change: r.decision.bid ? 'sent' : 'declined', requestHash: r.requestHash.toLowerCase(), code: r.decision.code, reason: r.decision.reason })
      } catch (err) {
        init.warn('live event not sent', { type: 'bid', error: String(err) })
      }
    }
  }
  // this node's own orders never come back through the validators: told as they are published
  const publishOwn = market.publishOwn.bind(market)
  market.publishOwn = async (type, message) => {
    const r = await publishOwn(type, message)
    if (type !== 'bid') events.emit('order', { change: 'added', type, orderHash: r.hash, signer: market.address })
    return r
  }
  // the requester's own submissions and why one made no deal (NO_BIDS and the providers' reasons):
  // recorded around the one entry point every request goes through
  const requester = market.requester
  const submit = requester.submit.bind(requester)
  requester.submit = async (p) => {
    const at = Date.now()
    const base = { at, app: String(p.app), volume: p.volume ?? 1, trust: p.trust ?? 1 }
    try {
      const r = await submit(p)
      store.recordRequest({ ...base, requestHash: r.requestHash, dealId: r.dealId.toLowerCase() })
      return r
    } catch (err) {
      const e = err as { code?: unknown, message?: unknown, details?: { requestHash?: unknown, reasons?: unknown } }
      const reasons = Array.isArray(e.details?.reasons) ? (e.details.reasons as Array<{ code?: unknown, reason?: unknown }>).slice(0, 20).map((x) => ({ code: String(x.code), reason: String(x.reason) })) : []
      store.recordRequest({ ...base, ...(typeof e.details?.requestHash === 'string' ? { requestHash: e.details.requestHash } : {}), error: { code: String(e.code ?? 'ERROR'), message: String(e.message ?? err).slice(0, 500), reasons } })
      events.emit('order', { change: 'consumed', type: 'requestorder', orderHash: typeof e.details?.requestHash === 'string' ? e.details.requestHash : '' })
      throw err
    }
  }
  let stopped = false
  let backfilling: Promise<void> = Promise.resolve()
  if (followed !== undefined && store.indexedThrough < followed) {
    const iface = hubInterface()
    const hub = market.domain.verifyingContract
    const range = init.maxBlockRange ?? 2_000
    backfilling = store.backfill(Math.max(store.indexedThrough + 1, init.fromBlock), followed, range, async (from, to) => {
      if (stopped) return undefined
      const logs = await market.chain.provider.getLogs({ address: hub, fromBlock: from, toBlock: to })
      const out: HubEventLike[] = []
      for (const log of logs) {
        const parsed = iface.parseLog({ topics: [...log.topics], data: log.data })
        if (parsed === null) continue
        out.push({ name: parsed.name, block: log.blockNumber, logIndex: log.index, txHash: log.transactionHash, args: plain(parsed.args) as Record<string, unknown> })
      }
      return out
    }).catch((err: unknown) => { init.warn('explorer backfill stopped', { error: String(err) }) })
  }
  return async () => {
    stopped = true
    stopHub()
    requester.submit = submit
    market.publishOwn = publishOwn
    market.onAccepted = undefined
    if (market.provider !== undefined) market.provider.onDecision = undefined
    await backfilling
    await store.stop()
  }
}

/** libp2p's connections as peer events. Returns the unsubscribe function. */
export function peerEvents (events: NodeEvents, libp2p: { addEventListener: (t: string, fn: (e: { detail: unknown }) => void) => void, removeEventListener: (t: string, fn: (e: { detail: unknown }) => void) => void }): () => void {
  const on = (change: 'connected' | 'disconnected') => (e: { detail: unknown }): void => {
    events.emit('peer', { change, peerId: String(e.detail) })
  }
  const connect = on('connected')
  const disconnect = on('disconnected')
  libp2p.addEventListener('peer:connect', connect)
  libp2p.addEventListener('peer:disconnect', disconnect)
  return () => {
    libp2p.removeEventListener('peer:connect', connect)
    libp2p.removeEventListener('peer:disconnect', disconnect)
  }
}
