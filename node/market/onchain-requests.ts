/**
 * Requests published on chain (the hub's RequestOrderPublished: a presigned
 * request, e.g. a DApp's submit through P2PDapp.sol) have no requester node
 * to gossip them or collect bids. A provider picks them up from the event,
 * decides with its bid strategy as for a gossiped request, and matches the
 * request itself with its own bid and the cheapest fitting app (and dataset)
 * order of its book: the hub lets anyone match a presigned request.
 *
 * Who pays: the matching provider pays matchOrders' gas and gets it back in
 * the task price: it bids its usual price plus `onchainMatchFee` (capped at
 * the request's workerpoolmaxprice), which the requester's frozen payment
 * pays when the task is finalized. A match that reverts (another provider
 * was faster, the requester's balance is short) is dropped: its gas estimate
 * fails first, so no transaction is sent.
 *
 * Trust > 1 needs several providers' bids, and there is no requester node
 * to collect them: each provider that would bid presigns its bid on the hub
 * (`presignBid`, which publishes it in full: BidPublished) and pays that
 * transaction's gas, repaid the same way. Every bidder gathers the published
 * bids of the request; once there are enough for its trust (n with
 * 2^n >= trust, plus one spare when more came), each bidder waits a random
 * while and matches with the cheapest of them (its own among them or not):
 * the first match wins, the others fail their gas estimate.
 */
import { getAddress } from 'ethers'
import type { Result } from 'ethers'
import { emptyDatasetOrder, signOrder, ZERO_ADDRESS } from '../../protocols/eip712.js'
import type { AppOrder, Bid, DatasetOrder, RequestOrder, Signed } from '../../protocols/eip712.js'
import { HUB_RATIOS } from '../../contracts-abi/index.js'
import { saltWithExpiry } from '../../protocols/market.js'
import { isChainError } from '../chain/index.js'
import type { ChainEvent } from '../chain/index.js'
import type { MarketCore } from './market-core.js'
import { BoundedCache } from '../common/bounded-cache.js'

/** What became of one on-chain request (tests, log). */
export interface OnchainRequestRecord {
  requestHash: string
  requester: string
  outcome: 'matched' | 'bid' | 'declined' | 'skipped' | 'failed'
  reason?: string
  txHash?: string
}

const MAX_RECORDS = 1000
/** on-chain requests of trust > 1 this provider bid on, whose bids it gathers, at most */
const MAX_GATHERING = 1000
/** bids gathered per request, at most (the hub takes 32 per match) */
const MAX_BIDS_PER_REQUEST = 64

/** The workers a trust level's consensus needs: n with 2^n >= trust (Hub.matchOrders' NotEnoughBids). */
function bidsNeeded (trust: bigint): number {
  let n = 1
  while (2n ** BigInt(n) < trust && n < HUB_RATIOS.maxWorkers) n++
  return n
}

/** A trust > 1 request this provider bid on: the bids published for it so far. */
interface Gathering {
  request: RequestOrder
  appOrder: Signed<AppOrder>
  datasetOrder: Signed<DatasetOrder>
  bids: Map<string, Bid>
  matching: boolean
}

/** The Bid of a decoded BidPublished event. */
export function bidFromEvent (bid: Result): Bid {
  return {
    requestHash: String(bid.requestHash).toLowerCase(),
    worker: getAddress(String(bid.worker)),
    price: BigInt(bid.price),
    volume: BigInt(bid.volume),
    salt: String(bid.salt)
  }
}

/** The RequestOrder of a decoded RequestOrderPublished event. */
export function requestFromEvent (order: Result): RequestOrder {
  return {
    app: getAddress(String(order.app)),
    appmaxprice: BigInt(order.appmaxprice),
    dataset: getAddress(String(order.dataset)),
    datasetmaxprice: BigInt(order.datasetmaxprice),
    workerpool: getAddress(String(order.workerpool)),
    workerpoolmaxprice: BigInt(order.workerpoolmaxprice),
    requester: getAddress(String(order.requester)),
    volume: BigInt(order.volume),
    tag: String(order.tag),
    category: BigInt(order.category),
    trust: BigInt(order.trust),
    beneficiary: getAddress(String(order.beneficiary)),
    callback: getAddress(String(order.callback)),
    params: String(order.params),
    salt: String(order.salt)
  }
}

const restrictOk = (restriction: string, party: string): boolean => restriction === ZERO_ADDRESS || getAddress(restriction) === getAddress(party)

export class OnchainRequests {
  readonly records: OnchainRequestRecord[] = []
  private readonly seen = new Set<string>()
  private readonly gathering = new BoundedCache<string, Gathering>(MAX_GATHERING)

  constructor (private readonly market: MarketCore, private readonly log: (msg: string, fields: Record<string, unknown>) => void) {}

  /** A hub event: starts handling a RequestOrderPublished (does not wait for it: the follower goes on). */
  onHubEvent (event: ChainEvent): void {
    if (event.name === 'BidPublished' && event.args !== undefined) {
      this.onBid(event.args)
      return
    }
    if (event.name !== 'RequestOrderPublished' || event.args === undefined) return
    const hash = String(event.args.requestHash).toLowerCase()
    if (this.seen.has(hash)) return
    this.seen.add(hash)
    if (this.seen.size > 10 * MAX_RECORDS) this.seen.delete(this.seen.values().next().value as string)
    let request: RequestOrder
    try {
      request = requestFromEvent(event.args.order as Result)
    } catch (err) {
      this.record({ requestHash: hash, requester: '', outcome: 'skipped', reason: `does not decode: ${err instanceof Error ? err.message : String(err)}` })
      return
    }
    this.market.track(this.handle(hash, request))
  }

  private record (r: OnchainRequestRecord): void {
    this.records.push(r)
    if (this.records.length > MAX_RECORDS) this.records.shift()
    this.log('on-chain request', { ...r })
  }

  private async handle (requestHash: string, request: RequestOrder): Promise<void> {
    const m = this.market
    const base = { requestHash, requester: request.requester }
    try {
      const provider = m.provider
      if (provider === undefined) return
      if (request.trust < 1n || request.trust > BigInt(HUB_RATIOS.maxTrust)) {
        this.record({ ...base, outcome: 'skipped', reason: `trust ${request.trust} out of range` })
        return
      }
      if (!restrictOk(request.workerpool, m.address)) {
        this.record({ ...base, outcome: 'skipped', reason: `restricted to worker ${request.workerpool}` })
        return
      }
      let consumed = await m.hub.consumedOf(requestHash)
      if (consumed >= request.volume) return
      const decision = await provider.decide(request, consumed)
      if (!decision.bid) {
        this.record({ ...base, outcome: 'declined', reason: `${decision.code}: ${decision.reason}` })
        return
      }
      if (decision.price > request.workerpoolmaxprice) {
        this.record({ ...base, outcome: 'declined', reason: `price ${decision.price} over the request's ${request.workerpoolmaxprice}` })
        return
      }
      const withFee = decision.price + m.options.onchainMatchFee
      const price = withFee > request.workerpoolmaxprice ? request.workerpoolmaxprice : withFee
      const appOrder = await this.appOrder(request)
      if (appOrder === undefined) {
        this.record({ ...base, outcome: 'skipped', reason: `no live app order of ${request.app} fits the request` })
        return
      }
      let datasetOrder: Signed<DatasetOrder> = emptyDatasetOrder()
      if (request.dataset !== ZERO_ADDRESS) {
        const d = await this.datasetOrder(request)
        if (d === undefined) {
          this.record({ ...base, outcome: 'skipped', reason: `no live dataset order of ${request.dataset} fits the request` })
          return
        }
        datasetOrder = d
      }
      if (request.trust > 1n) {
        // published on chain for the other bidders to gather; the match comes once enough are in (onBid)
        this.gathering.set(requestHash, { request, appOrder, datasetOrder, bids: new Map(), matching: false })
        const expiresAt = Math.floor(Date.now() / 1000) + m.options.bidTtlSeconds
        const bid = await signOrder(m.signer, m.domain, 'Bid', { requestHash, worker: m.address, price, volume: request.volume - consumed, salt: saltWithExpiry(expiresAt) })
        // presigned: the hub checks the flag, not a signature
        const req = await m.hub.presignBid.populateTransaction({ ...bid, sign: '0x' })
        const sent = await m.chain.sender.send(req)
        this.record({ ...base, outcome: 'bid', txHash: sent.hash })
        return
      }
      // a random wait: the providers that heard the same event do not all send a match at once
      await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * m.options.onchainMatchJitterMs)))
      if (!m.started) return
      consumed = await m.hub.consumedOf(requestHash)
      if (consumed >= request.volume) {
        this.record({ ...base, outcome: 'skipped', reason: 'matched by another provider' })
        return
      }
      const volume = request.volume - consumed
      const expiresAt = Math.floor(Date.now() / 1000) + m.options.bidTtlSeconds
      const bid = await signOrder(m.signer, m.domain, 'Bid', { requestHash, worker: m.address, price, volume, salt: saltWithExpiry(expiresAt) })
      await this.match(base, appOrder, datasetOrder, request, [bid])
    } catch (err) {
      const reverted = isChainError(err, 'CONTRACT_REVERT')
      this.record({ ...base, outcome: 'failed', reason: `${reverted ? 'match reverted' : 'error'}: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300) })
    }
  }

  private async match (base: { requestHash: string, requester: string }, appOrder: Signed<AppOrder>, datasetOrder: Signed<DatasetOrder>, request: RequestOrder, bids: Array<Signed<Bid>>): Promise<void> {
    const m = this.market
    const req = await m.hub.matchOrders.populateTransaction(appOrder, datasetOrder, { ...request, sign: '0x' }, bids)
    // the scheduler draw reads prevrandao, which differs between the estimate and the mined block: 30 % on top
    const gasLimit = await m.chain.sender.estimateGas(req) * 13n / 10n
    const sent = await m.chain.sender.send({ ...req, gasLimit })
    this.record({ ...base, outcome: 'matched', txHash: sent.hash })
  }

  /** A bid published on chain: gathered when this provider bid on its request too; a match once there are enough. */
  private onBid (args: Result): void {
    let bid: Bid
    try {
      bid = bidFromEvent(args.bid as Result)
    } catch {
      return
    }
    const g = this.gathering.get(bid.requestHash)
    if (g === undefined || g.matching || g.bids.size >= MAX_BIDS_PER_REQUEST) return
    // a bid the hub would refuse with this request is not counted
    if (bid.price > g.request.workerpoolmaxprice || !restrictOk(g.request.workerpool, bid.worker)) return
    if ([...g.bids.values()].some((b) => b.worker === bid.worker)) return
    g.bids.set(String(args.bidHash).toLowerCase(), bid)
    const need = bidsNeeded(g.request.trust)
    if (g.bids.size < need) return
    g.matching = true
    this.market.track(this.matchGathered(bid.requestHash, g, need))
  }

  private async matchGathered (requestHash: string, g: Gathering, need: number): Promise<void> {
    const m = this.market
    const base = { requestHash, requester: g.request.requester }
    try {
      // a random wait, longer than a block: a spare bid may come, and the bidders do not all match at once
      await new Promise((resolve) => setTimeout(resolve, m.options.onchainMatchJitterMs + Math.floor(Math.random() * m.options.onchainMatchJitterMs)))
      if (!m.started) return
      const consumed = await m.hub.consumedOf(requestHash)
      if (consumed >= g.request.volume) {
        this.record({ ...base, outcome: 'skipped', reason: 'matched by another provider' })
        this.gathering.delete(requestHash)
        return
      }
      const sorted = [...g.bids.values()].sort((a, b) => a.price < b.price ? -1 : a.price > b.price ? 1 : 0)
      const picked = sorted.slice(0, Math.min(HUB_RATIOS.maxWorkers, need + 1))
      await this.match(base, g.appOrder, g.datasetOrder, g.request, picked.map((b) => ({ ...b, sign: '0x' })))
      this.gathering.delete(requestHash)
    } catch (err) {
      // another bidder matched first, or a bidder's stake is short: the next bid published tries again
      g.matching = false
      this.record({ ...base, outcome: 'failed', reason: `match of gathered bids: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300) })
    }
  }

  /** The cheapest live app order the hub would accept with this request. */
  private async appOrder (request: RequestOrder): Promise<Signed<AppOrder> | undefined> {
    const live = (await this.market.book.query({ type: 'apporder', app: request.app })).filter((e) => {
      const o = e.message.order as AppOrder
      return e.remaining > 0n && o.appprice <= request.appmaxprice && restrictOk(o.datasetrestrict, request.dataset) &&
        restrictOk(o.requesterrestrict, request.requester) && restrictOk(o.workerpoolrestrict, this.market.address) &&
        (BigInt(o.tag) & ~BigInt(request.tag)) === 0n
    })
    live.sort((a, b) => { const x = (a.message.order as AppOrder).appprice; const y = (b.message.order as AppOrder).appprice; return x < y ? -1 : x > y ? 1 : 0 })
    const e = live[0]
    return e === undefined ? undefined : { ...(e.message.order as AppOrder), sign: e.message.sign }
  }

  private async datasetOrder (request: RequestOrder): Promise<Signed<DatasetOrder> | undefined> {
    const live = (await this.market.book.query({ type: 'datasetorder', dataset: request.dataset })).filter((e) => {
      const o = e.message.order as DatasetOrder
      return e.remaining > 0n && o.datasetprice <= request.datasetmaxprice && restrictOk(o.apprestrict, request.app) &&
        restrictOk(o.requesterrestrict, request.requester) && restrictOk(o.workerpoolrestrict, this.market.address) &&
        (BigInt(o.tag) & ~BigInt(request.tag)) === 0n
    })
    live.sort((a, b) => { const x = (a.message.order as DatasetOrder).datasetprice; const y = (b.message.order as DatasetOrder).datasetprice; return x < y ? -1 : x > y ? 1 : 0 })
    const e = live[0]
    return e === undefined ? undefined : { ...(e.message.order as DatasetOrder), sign: e.message.sign }
  }
}
