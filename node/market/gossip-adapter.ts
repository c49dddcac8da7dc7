/**
 * The one adapter between the pure validators and gossipsub: it runs a
 * validator on a message's bytes, maps the outcome to gossipsub's
 * TopicValidatorResult, counts it per type and code, logs it at debug, hands
 * accepted messages to the consumer, and never throws.
 *
 * How gossipsub 17 uses it: the node registers one function per topic in
 * `pubsub.topicValidators` (node/network's `setTopicValidator(topic, fn)`).
 * For every message received (not for its own publishes), gossipsub awaits
 * it before delivering or forwarding:
 * - Accept: delivered to subscribers and forwarded to the mesh.
 * - Ignore: dropped, no score change for anyone.
 * - Reject: dropped, and PeerScore.rejectMessage marks an invalid delivery
 *   (P4) for the propagation source and for every peer that delivered the
 *   same message while it was being validated. P4's value is the square of
 *   the decaying counter, times the topic's invalidMessageDeliveriesWeight
 *   and topicWeight (node/market/scoring.ts), so a forger falls below the
 *   graylist threshold after a few. Without per-topic score params, Reject
 *   punishes nobody: the params must be passed at construction.
 * gossipsub asks validators to answer fast (< 100 ms) lest mesh-delivery
 * scoring suffer; the validators' only slow step is a cached lookup.
 */
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { TopicValidatorFn } from '@libp2p/gossipsub'
import type { MarketMessageType } from '../../protocols/market.js'
import { isGossipValidationError } from './errors.js'
import type { GossipValidationCode } from './errors.js'
import { validateMarketGossip } from './validation.js'
import type { OffenceCounter, PeerRateLimiter } from './bans.js'
import type { MarketValidationContext, ValidatedMessage } from './validation.js'

/** Debug logging of the market; never given raw message bytes. */
export interface MarketLogger {
  debug: (msg: string, context?: Record<string, unknown>) => void
}

export const silentMarketLogger: MarketLogger = { debug: () => {} }

export type GossipOutcome = 'accept' | 'ignore' | 'reject'

/** Refusals whose signer the signature proves, counted toward the signer address's ban. */
const SIGNER_OFFENCES = new Set<string>(['GOSSIP_UNFUNDED', 'GOSSIP_BID_PRICE_ABOVE_MAX', 'GOSSIP_BID_WORKER_RESTRICTED'])

/** Unexpected failure inside a validator (a bug): counted under this code, IGNOREd so no honest peer is punished for our bug. */
export const INTERNAL_ERROR_CODE = 'GOSSIP_INTERNAL_ERROR'

/**
 * Outcome counters: `type/outcome/code` (bounded: 5 types x 3 outcomes x the
 * fixed code list). Metrics read `snapshot()`.
 */
export class GossipValidationStats {
  private readonly counts = new Map<string, number>()

  record (type: MarketMessageType, outcome: GossipOutcome, code: GossipValidationCode | typeof INTERNAL_ERROR_CODE | 'OK'): void {
    const key = `${type}/${outcome}/${code}`
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
  }

  /** Count for one key, e.g. `get('bid', 'reject', 'GOSSIP_BAD_SIGNATURE')`. */
  get (type: MarketMessageType, outcome: GossipOutcome, code?: string): number {
    let n = 0
    for (const [k, v] of this.counts) {
      const [t, o, c] = k.split('/')
      if (t === type && o === outcome && (code === undefined || c === code)) n += v
    }
    return n
  }

  snapshot (): Record<string, number> {
    return Object.fromEntries(this.counts)
  }
}

export interface GossipAdapterInit<T extends MarketMessageType> {
  type: T
  ctx: MarketValidationContext
  stats?: GossipValidationStats
  /** counts REJECTs per sending peer */
  rejects?: PeerRejectTracker
  /**
   * per relaying peer, gossip only (sync pages and bid streams have their own
   * bounds): a message over the peer's rate is dropped before any work
   */
  limiter?: PeerRateLimiter
  /** counts, per relaying peer, messages dropped as spam: unfunded requests and messages over the rate */
  spam?: OffenceCounter
  /** counts, per signer address, refusals its own signature proves: unfunded requests, bids the hub can never accept */
  signerOffences?: OffenceCounter
  logger?: MarketLogger
  /**
   * Called with each accepted message (e.g. to put it in the orderbook),
   * the relaying peer and the message's author (gossipsub's signed `from`).
   * Not awaited by gossipsub; its failure is logged, never thrown.
   */
  onAccept?: (validated: ValidatedMessage<T>, from: string, author: string) => void | Promise<void>
  /** called with the rule a refused message broke (the bid stream tells the provider and the requester's user why) */
  onRefuse?: (code: GossipValidationCode | typeof INTERNAL_ERROR_CODE, reason: string) => void
}

/**
 * Validates one message's bytes and returns gossipsub's verdict. Exported
 * apart from the TopicValidatorFn so the sync and bid-stream handlers (which
 * have bytes and a peer id, not a gossip Message) share the same path.
 */
export async function runGossipValidation<T extends MarketMessageType> (init: GossipAdapterInit<T>, bytes: Uint8Array, from: string, author: string = from): Promise<TopicValidatorResult> {
  const { type, ctx } = init
  const log = (msg: string, context: Record<string, unknown>): void => {
    // a logger's failure must not change the verdict
    try { (init.logger ?? silentMarketLogger).debug(msg, context) } catch {}
  }
  let validated: ValidatedMessage<T>
  try {
    validated = await validateMarketGossip(type, bytes, ctx)
  } catch (err) {
    if (isGossipValidationError(err)) {
      const outcome: GossipOutcome = err.action === 'REJECT' ? 'reject' : 'ignore'
      init.stats?.record(type, outcome, err.code)
      if (outcome === 'reject') init.rejects?.record(from)
      // no honest node forwards a request it holds unfunded, so the peer that hands us one is its source
      if (err.code === 'GOSSIP_UNFUNDED') init.spam?.record(from)
      const signer = err.details?.signer
      if (typeof signer === 'string' && SIGNER_OFFENCES.has(err.code)) init.signerOffences?.record(signer.toLowerCase())
      log('market gossip refused', { type, from, outcome, code: err.code, reason: err.message })
      try { init.onRefuse?.(err.code, err.message) } catch {}
      return err.action === 'REJECT' ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
    }
    init.stats?.record(type, 'ignore', INTERNAL_ERROR_CODE)
    log('market gossip validator failed', { type, from, error: err instanceof Error ? err.message : String(err) })
    try { init.onRefuse?.(INTERNAL_ERROR_CODE, 'the validator failed') } catch {}
    return TopicValidatorResult.Ignore
  }
  init.stats?.record(type, 'accept', 'OK')
  if (init.onAccept !== undefined) {
    const onAccept = init.onAccept
    try {
      const r = onAccept(validated, from, author)
      if (r instanceof Promise) {
        r.catch((err: unknown) => { log('market onAccept failed', { type, from, error: err instanceof Error ? err.message : String(err) }) })
      }
    } catch (err) {
      log('market onAccept failed', { type, from, error: err instanceof Error ? err.message : String(err) })
    }
  }
  return TopicValidatorResult.Accept
}

/** The TopicValidatorFn for one market topic: `network.setTopicValidator(topic, createTopicValidator({...}))`. */
export function createTopicValidator<T extends MarketMessageType> (init: GossipAdapterInit<T>): TopicValidatorFn {
  return async (peer, message) => {
    try {
      const relay = peer.toString()
      // Rule: each peer's messages within its rate, valid ones included; the excess is dropped before any work
      if (init.limiter !== undefined && !init.limiter.take(relay)) {
        init.stats?.record(init.type, 'ignore', 'GOSSIP_RATE_LIMITED')
        init.spam?.record(relay)
        return TopicValidatorResult.Ignore
      }
      // `peer` relayed the message (it is the one scored); a signed message's
      // `from` is its author (the one to answer, e.g. with a bid)
      return await runGossipValidation(init, message.data, peer.toString(), message.type === 'signed' ? message.from.toString() : peer.toString())
    } catch {
      // only a throwing logger, stats or getter gets here: still never throw into gossipsub
      return TopicValidatorResult.Ignore
    }
  }
}

/**
 * The default ban limit: REJECTed messages a peer may send before the node
 * refuses it. Why 10:
 * - No honest peer should ever send us one. Every node validates before it
 *   forwards, and every REJECT rule depends only on the message and our
 *   domain (whatever depends on chain state or timing is IGNORE); the sender
 *   counted is the peer that handed the message to us. What is left is a
 *   peer on another wire version or with a bug: a few mistakes must not cut
 *   it off for good, since the ban does not decay.
 * - It is not gossipsub's graylist (three REJECTs, scoring.ts), which
 *   forgets: it decays below the threshold within a minute and gossipsub
 *   17.1.1 resets a peer's score when it reconnects. 10 is about three
 *   graylistings washed by reconnecting, or one burst (gossipsub validates
 *   up to 128 messages a second from a peer in good standing before it
 *   looks at its score again).
 */
export const DEFAULT_REJECT_LIMIT = 10

/**
 * REJECT counts per peer id, kept apart from gossipsub's score (which
 * gossipsub 17.1.1 resets when a peer reconnects), never decayed. The node
 * refuses connections from and to peers over `limit` (node/network's
 * `denyPeer`, a libp2p connection gater) and hangs up on a peer as it
 * crosses it (`onBanned`). Bounded: the oldest peers are forgotten past
 * `maxPeers`.
 */
export class PeerRejectTracker {
  private readonly counts = new Map<string, number>()
  private readonly bannedHandlers = new Set<(peer: string) => void>()

  constructor (readonly limit: number = DEFAULT_REJECT_LIMIT, private readonly maxPeers: number = 10_000) {}

  record (peer: string): void {
    const n = (this.counts.get(peer) ?? 0) + 1
    this.counts.delete(peer)
    this.counts.set(peer, n)
    if (this.counts.size > this.maxPeers) {
      const oldest = this.counts.keys().next()
      if (oldest.done !== true) this.counts.delete(oldest.value)
    }
    // once, at the crossing: later REJECTs (messages already in flight) change nothing
    if (n === this.limit) {
      for (const h of this.bannedHandlers) {
        // a handler's failure must not reach the validator that recorded the REJECT
        try { h(peer) } catch {}
      }
    }
  }

  count (peer: string): number {
    return this.counts.get(peer) ?? 0
  }

  /** True once a peer sent `limit` rejected messages. */
  isBanned (peer: string): boolean {
    return this.count(peer) >= this.limit
  }

  /** Called once when a peer reaches `limit` (synchronously, inside a validator: do not block); returns the unsubscribe function. */
  onBanned (handler: (peer: string) => void): () => void {
    this.bannedHandlers.add(handler)
    return () => { this.bannedHandlers.delete(handler) }
  }
}
