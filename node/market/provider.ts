/**
 * The provider side: on each accepted request order, decide with the bid
 * strategy and answer the requester, a signed Bid or a decline with the
 * reason, over the direct bid stream (or a bid on the bid topic, when the
 * service's bidTransport is 'gossip'; declines always go by stream, since
 * gossiping every "no" would flood the swarm).
 */
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { signOrder } from '../../protocols/eip712.js'
import type { RequestOrder } from '../../protocols/eip712.js'
import {
  MARKET_WIRE_VERSION, bidStreamProtocol, decodeBidStreamAck, encodeBidStreamMessage, orderMessage, saltWithExpiry
} from '../../protocols/market.js'
import type { BidDecline, BidMessage, BidStreamAck, RequestOrderMessage } from '../../protocols/market.js'
import { HUB_RATIOS } from '../../contracts-abi/index.js'
import { defaultBidStrategy } from './bid-strategy.js'
import type { BidContext, BidDecision, BidStrategy } from './bid-strategy.js'
import type { ValidatedOrder } from './validation.js'
import type { MarketService } from './service.js'

/** What the provider offers (from the node's config). */
export interface ProviderSettings {
  cpus: number
  memoryMb: number
  category: number
  priceFloor: bigint
  tags: string[]
  executors: string[]
  /** the decision; the default strategy when absent */
  strategy?: BidStrategy
}

/** One decision this provider made (for tests, metrics and the log). */
export interface ProviderDecisionRecord {
  requestHash: string
  requester: string
  decision: BidDecision
  /** how the answer went out, and whether the requester acknowledged it */
  sent: 'pending' | 'stream' | 'gossip' | 'failed'
  ack?: BidStreamAck
  /** ms since epoch: request accepted, decision made, answer acknowledged */
  receivedAt: number
  decidedAt?: number
  answeredAt?: number
}

/** Most decisions kept in memory. */
const MAX_DECISIONS = 1000

export class Provider {
  readonly decisions: ProviderDecisionRecord[] = []

  constructor (private readonly market: MarketService, readonly settings: ProviderSettings) {}

  /** Decides on a request and answers its requester (peer `from`). Never throws. */
  async onRequest (v: ValidatedOrder<RequestOrderMessage>, from: string): Promise<void> {
    const request = v.message.order
    const receivedAt = Date.now()
    let decision: BidDecision
    try {
      decision = await (this.settings.strategy ?? defaultBidStrategy)(request, await this.context(request, v))
    } catch (err) {
      decision = { bid: false, code: 'NO_CAPACITY', reason: `provider error: ${err instanceof Error ? err.message : String(err)}`.slice(0, 200) }
    }
    const record: ProviderDecisionRecord = { requestHash: v.hash, requester: request.requester, decision, sent: 'pending', receivedAt, decidedAt: Date.now() }
    this.decisions.push(record)
    if (this.decisions.length > MAX_DECISIONS) this.decisions.shift()
    try {
      if (decision.bid) {
        const bid = await this.signBid(v.hash, decision.price, decision.volume)
        if (this.market.options.bidTransport === 'gossip') {
          await this.market.publishOwn('bid', bid)
          record.sent = 'gossip'
        } else {
          record.ack = await this.send(from, bid)
          record.sent = 'stream'
        }
      } else {
        const decline: BidDecline = { v: MARKET_WIRE_VERSION, type: 'decline', requestHash: v.hash, worker: this.market.address, code: decision.code, reason: decision.reason.slice(0, 200) }
        record.ack = await this.send(from, decline)
        record.sent = 'stream'
      }
      record.answeredAt = Date.now()
    } catch {
      // the requester may be gone: its loss, nothing to retry (its window is short)
      record.sent = 'failed'
    }
  }

  private async signBid (requestHash: string, price: bigint, volume: bigint): Promise<BidMessage> {
    const expiresAt = Math.floor(Date.now() / 1000) + this.market.options.bidTtlSeconds
    const signed = await signOrder(this.market.signer, this.market.domain, 'Bid', {
      requestHash, worker: this.market.address, price, volume, salt: saltWithExpiry(expiresAt)
    })
    const { sign, ...order } = signed
    return orderMessage('bid', this.market.domain, order, sign)
  }

  /** Facts the strategy needs: the provider's profile, its free stake, the app's executor. */
  private async context (request: RequestOrder, v: ValidatedOrder<RequestOrderMessage>): Promise<BidContext> {
    const s = this.settings
    const [stake, appOwner] = await Promise.all([
      this.market.hub.stakeOf(this.market.address),
      this.market.ctx.owners.ownerOf('app', request.app)
    ])
    const [amount, locked, pending] = stake
    return {
      provider: { categories: [s.category], tags: s.tags, priceFloor: s.priceFloor, executors: s.executors, cpus: s.cpus, memoryMb: s.memoryMb },
      worker: this.market.address,
      // every registered app is a WASI module in this version (issue 5)
      ...(appOwner !== undefined ? { appExecutor: 'wasi' } : {}),
      freeStake: amount - locked - pending,
      workerStakeRatio: BigInt(HUB_RATIOS.workerStakePercent),
      // one task per cpu; running tasks are the execution issue's to count
      freeSlots: s.cpus,
      remainingVolume: request.volume - (v.consumed ?? 0n)
    }
  }

  private async send (peer: string, msg: BidMessage | BidDecline): Promise<BidStreamAck> {
    const signal = AbortSignal.timeout(this.market.options.bidStreamTimeoutMs)
    let stream: Stream | undefined
    try {
      stream = await this.market.network.dialProtocol(peer, bidStreamProtocol(this.market.init.swarmId), { signal })
      const lp = lpStream(stream, { maxDataLength: 256 })
      await lp.write(encodeBidStreamMessage(msg), { signal })
      const ack = decodeBidStreamAck((await lp.read({ signal })).subarray())
      await stream.close({ signal }).catch(() => {})
      return ack
    } catch (err) {
      stream?.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }
}
