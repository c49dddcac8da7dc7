/**
 * The requester side: sign and gossip a request order, collect bids and
 * declines for the bidding window, pick the cheapest bids that meet the trust
 * level, match on chain and report the deal.
 */
import { isAddress, getAddress, SigningKey, toBeHex, TypedDataEncoder, zeroPadValue } from 'ethers'
import { emptyDatasetOrder, hashOrder, signOrder, taskId, ZERO_ADDRESS } from '../../protocols/eip712.js'
import type { AppOrder, Bid, DatasetOrder, RequestOrder, Signed } from '../../protocols/eip712.js'
import { MAX_PARAMS_BYTES, parseSweepDocument, TAG_BITS, decodeTags, encodeTags, orderMessage, saltWithExpiry } from '../../protocols/market.js'
import type { BidDecline, BidMessage, RequestParams } from '../../protocols/market.js'
import { splitArgs } from '../../protocols/args.js'
import { createHash } from 'node:crypto'
import { addBytes, provideContent } from '../storage/content.js'
import { hubEventsNamed } from '../chain/index.js'
import type { LogLike } from '../chain/index.js'
import { HUB_RATIOS, TaskStatus } from '../../contracts-abi/index.js'
import { MarketError } from './errors.js'
import { BoundedSeenSet } from './lookups.js'
import type { OrderbookEntry } from './orderbook.js'
import type { ValidatedOrder } from './validation.js'
import type { MarketCore } from './market-core.js'

/** What `POST /v1/tasks` and `task submit` ask for. */
export interface SubmitRequestParams {
  /** app address, or the name it was registered under */
  app: string
  dataset?: string
  args?: string
  inputs?: string[]
  /** a sweep: task i's arguments (replacing `args`); one entry per task, `volume` defaults to their number */
  taskArgs?: string[]
  /** a sweep: task i's own input files (after `inputs`); one entry per task */
  taskInputs?: string[][]
  category?: number
  trust?: number
  volume?: number
  /** most nRLC per task for the workers; default: the market's defaultMaxPrice (config.json defaultMaxPrice) */
  maxPrice?: bigint
  /** required tags: named tag bits (region:eu ...) and free-form ones */
  tags?: string[]
  biddingWindowMs?: number
  /** encrypt the result archive to this node's wallet key (iExec's `iexec_result_encryption`) */
  encryptResult?: boolean
  /** bids of workers whose score on the hub (`scoreOf`) is lower are not counted (declined SCORE_TOO_LOW) */
  minScore?: number
  /** who the result is for, recorded in the request order and the deal (default: this node) */
  beneficiary?: string
  /** a contract the hub calls at finalize with `receiveResult(taskid, callbackData)` (EIP-1154); the app must write computed.json's callback-data */
  callback?: string
  /** `order publish request`: request order fields the node would otherwise choose */
  order?: RequestOrderOverrides
}

/** Fields of a request order `order publish request` sets itself (checked by its route). */
export interface RequestOrderOverrides {
  /** the only worker that may bid (the hub's workerpool restriction) */
  workerpool?: string
  /** most nRLC per task for the app: at least the app order's price */
  appmaxprice?: bigint
  /** most nRLC per task for the dataset: at least the dataset order's price */
  datasetmaxprice?: bigint
  callback?: string
  /** 32 bytes; the first 8 are the expiry (saltWithExpiry) */
  salt?: string
}

export interface SubmittedTask { taskId: string, status: string }

/** The `task submit --json` shape. */
export interface SubmitResult {
  dealId: string
  scheduler: string
  workers: string[]
  tasks: SubmittedTask[]
  requestHash: string
  txHash: string
  /** the max price per task the request was signed with, nRLC */
  maxPrice: bigint
  /** ms from the request's gossip to its first bid and to the mined deal */
  timings: { firstBidMs: number | null, dealMs: number }
}

/** Why a provider did not bid, as the requester reports it (`peerId` repeats `peer` for the CLI's client). */
export interface DeclineReason { peer: string | null, peerId: string | null, code: string, reason: string }

interface Collector {
  requestHash: string
  bids: Map<string, { message: BidMessage, from: string, at: number }>
  declines: DeclineReason[]
  enough: number
  /** resolves when enough bids arrived (or on abort) */
  done: () => void
  publishedAt: number
  firstBidAt?: number
  /** bids below this hub score are declined; 0: every bid counts at once */
  minScore: bigint
  /** workers whose score or advert is being read */
  pending: Set<string>
  /** every tag the request requires (named and free-form): the bidder's advert must declare them too */
  requiredTags: string[]
}

/** Task status names (Hub.TaskStatus). */
export function taskStatusName (s: bigint | number): string {
  return TaskStatus[Number(s)] ?? 'UNKNOWN'
}

/**
 * Workers the hub's consensus needs at a trust level when all agree with the
 * starting score: each weighs 2, a group of n weighs 2^n, the task total is
 * 2^n + 1, and consensus holds when 2^n * trust > (2^n + 1) * (trust - 1),
 * that is 2^n >= trust.
 */
export function workersForTrust (trust: number): number {
  let n = 1
  while (2 ** n < trust && n < HUB_RATIOS.maxWorkers) n++
  return n
}

/**
 * A worker's weight in the hub's consensus at a score: max(floor(score / 3), 3) - 1
 * (Hub.contribute), so 2 for a new worker, more for one that won many consensuses.
 */
export function consensusWeight (score: bigint): bigint {
  const w = score / 3n
  return (w > 3n ? w : 3n) - 1n
}

/**
 * The bids a deal takes, at most `count` (the workers the consensus needs
 * plus spares). The rule: the lowest price per unit of consensus weight
 * (price / {@link consensusWeight} of the worker's hub score), so a worker
 * whose contribution counts twice is worth up to twice the price; then the
 * lower price, then the earliest bid. Without scores (all unknown) every
 * weight is 2 and this is the cheapest bid first.
 */
export function pickBids<B extends { message: { order: { price: bigint, worker: string } }, at: number }> (bids: readonly B[], count: number, scores: ReadonlyMap<string, bigint> = new Map()): B[] {
  const weight = (b: B): bigint => consensusWeight(scores.get(b.message.order.worker.toLowerCase()) ?? 0n)
  return [...bids]
    .sort((a, b) => {
      // a.price / wa < b.price / wb, without division
      const x = a.message.order.price * weight(b)
      const y = b.message.order.price * weight(a)
      if (x !== y) return x < y ? -1 : 1
      if (a.message.order.price !== b.message.order.price) return a.message.order.price < b.message.order.price ? -1 : 1
      return a.at - b.at
    })
    .slice(0, count)
}

/** Bids whose worker's score is read for the choice, at most (the earliest ones). */
const MAX_SCORED_BIDS = 64

const MAX_U48 = (1n << 48n) - 1n

function fail (code: ConstructorParameters<typeof MarketError>[0], message: string, details?: Record<string, unknown>): MarketError {
  return new MarketError(code, message, details)
}

function intParam (v: number | undefined, field: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt
  if (!Number.isInteger(v) || v < min || v > max) throw fail('MARKET_BAD_ARGUMENT', `${field} must be an integer in [${min}, ${max}]`, { field })
  return v
}

export class Requester {
  private readonly collectors = new Map<string, Collector>()
  /** our requests whose bidding window has ended (bids for them are answered without being checked) */
  private readonly closedWindows = new BoundedSeenSet(1024)
  private publicKey?: string

  /** bids since start by `received/OK` or `declined/CODE` (metrics) */
  readonly bidCounts = new Map<string, number>()

  constructor (private readonly market: MarketCore) {}

  private countBid (key: string): void {
    this.bidCounts.set(key, (this.bidCounts.get(key) ?? 0) + 1)
  }

  /**
   * A bid accepted by the validators (stream or gossip): counted if it answers
   * one of our open requests. True when it is in that window's bids (a
   * window that closed while the bid was being checked does not count it).
   */
  onBid (v: ValidatedOrder<BidMessage>, from: string): boolean {
    const c = this.collectors.get(v.message.order.requestHash.toLowerCase())
    if (c === undefined) return false
    const worker = v.message.order.worker.toLowerCase()
    const had = c.bids.get(worker)
    if (had !== undefined) return had.message.sign === v.message.sign
    const count = (): void => {
      c.bids.set(worker, { message: v.message, from, at: Date.now() })
      this.countBid('received/OK')
      c.firstBidAt ??= Date.now()
      if (c.bids.size >= c.enough) c.done()
    }
    if (c.minScore === 0n && (c.requiredTags.length === 0 || this.market.init.advertisedTags === undefined)) {
      count()
      return true
    }
    // the bid counts once the hub says its worker has the score, and its
    // signed advert declares the tags (a bid alone is the bidder's word)
    if (c.pending.has(worker)) return true
    c.pending.add(worker)
    const decline = (code: string, reason: string): void => {
      this.countBid(`declined/${code}`)
      if (c.declines.length < 256) c.declines.push({ peer: from, peerId: from, code, reason })
    }
    const who = v.message.order.worker
    const check = async (): Promise<{ code: string, reason: string } | undefined> => {
      if (c.minScore > 0n) {
        let score: bigint
        try {
          score = await this.market.hub.scoreOf(who)
        } catch {
          return { code: 'SCORE_UNKNOWN', reason: `the score of worker ${who} could not be read` }
        }
        if (score < c.minScore) return { code: 'SCORE_TOO_LOW', reason: `worker ${who} has score ${score}, the request needs ${c.minScore}` }
      }
      const advertised = this.market.init.advertisedTags
      if (c.requiredTags.length > 0 && advertised !== undefined) {
        const tags = await advertised(who).catch(() => undefined)
        if (tags === undefined) return { code: 'TAG_NOT_ADVERTISED', reason: `no fresh signed advert of worker ${who} to check its tags against` }
        const missing = c.requiredTags.filter((t) => !tags.includes(t))
        if (missing.length > 0) return { code: 'TAG_NOT_ADVERTISED', reason: `worker ${who} bid but its advert does not declare ${missing.join(', ')}` }
      }
      return undefined
    }
    void check().then((broken) => {
      if (this.collectors.get(c.requestHash) !== c) return
      if (broken !== undefined) decline(broken.code, broken.reason)
      else count()
    })
      .finally(() => { c.pending.delete(worker) })
    return true
  }

  /** A decline on the bid stream; false when it answers no open request of ours. */
  onDecline (d: BidDecline, from: string): boolean {
    const c = this.collectors.get(d.requestHash.toLowerCase())
    if (c === undefined) return false
    this.countBid(`declined/${d.code}`)
    if (c.declines.length < 256) c.declines.push({ peer: from, peerId: from, code: d.code, reason: d.reason })
    return true
  }

  /** A bid of a provider that the validators refused: its reason is told like a decline's, if it answers an open request of ours. */
  onRefusedBid (requestHash: string, from: string, code: string, reason: string): void {
    const c = this.collectors.get(requestHash.toLowerCase())
    if (c === undefined) return
    this.countBid('declined/BID_REFUSED')
    if (c.declines.length < 256) c.declines.push({ peer: from, peerId: from, code: 'BID_REFUSED', reason: `bid refused (${code}): ${reason}`.slice(0, 240) })
  }

  /** True when `requestHash` is a request of ours whose bidding window has ended. */
  windowClosed (requestHash: string): boolean {
    return this.closedWindows.has(requestHash.toLowerCase())
  }

  /** True when `requestHash` is a request of ours whose bidding window is open. */
  windowOpen (requestHash: string): boolean {
    return this.collectors.has(requestHash.toLowerCase())
  }

  /**
   * Why a valid bid for `requestHash` did not count: its window closed while
   * it was being checked, its worker had already bid in the open window, or
   * it answers no request of ours.
   */
  whyNotCounted (requestHash: string): 'BID_TOO_LATE' | 'BID_NOT_COUNTED' | 'UNKNOWN_REQUEST' {
    if (this.windowClosed(requestHash)) return 'BID_TOO_LATE'
    return this.windowOpen(requestHash) ? 'BID_NOT_COUNTED' : 'UNKNOWN_REQUEST'
  }

  /** Ends every open bidding window now (node stopping). */
  abortAll (): void {
    for (const c of this.collectors.values()) c.done()
  }

  /**
   * Builds, signs and gossips a request order, collects bids, matches the
   * cheapest on chain.
   * @throws MarketError MARKET_BAD_ARGUMENT, APP_NOT_FOUND, NO_APP_ORDER, NO_DATASET_ORDER,
   *   DATASET_APP_NOT_ALLOWED, DATASET_REQUESTER_NOT_ALLOWED, APP_DATASET_NOT_ALLOWED, APP_REQUESTER_NOT_ALLOWED, INSUFFICIENT_BALANCE, NO_BIDS, NOT_ENOUGH_BIDS
   * @throws ChainError from matchOrders (e.g. CONTRACT_REVERT)
   */
  async submit (p: SubmitRequestParams): Promise<SubmitResult> {
    const m = this.market
    const me = m.address
    const sweep = p.taskArgs?.length ?? p.taskInputs?.length
    const volume = BigInt(intParam(p.volume, 'volume', 1, 10_000, sweep ?? 1))
    for (const [field, list] of [['taskArgs', p.taskArgs], ['taskInputs', p.taskInputs]] as const) {
      // the workers refuse a sweep that is not one entry per task (DUTY_SWEEP_MISMATCH): said before signing
      if (list !== undefined && BigInt(list.length) !== volume) throw fail('MARKET_BAD_ARGUMENT', `${field} has ${list.length} entries for a volume of ${volume}: a sweep needs one per task`, { field })
    }
    const trust = intParam(p.trust, 'trust', 1, HUB_RATIOS.maxTrust, 1)
    const category = BigInt(intParam(p.category, 'category', 0, 1_000_000, m.init.provider.category))
    const windowMs = intParam(p.biddingWindowMs, 'biddingWindowMs', 1, 600_000, m.options.biddingWindowMs)
    if (p.maxPrice !== undefined && (p.maxPrice < 0n || p.maxPrice > MAX_U48)) throw fail('MARKET_BAD_ARGUMENT', 'maxPrice must be in [0, 2^48)', { field: 'maxPrice' })
    const minScore = BigInt(intParam(p.minScore, 'minScore', 0, 1_000_000_000, 0))
    if (p.beneficiary !== undefined && !isAddress(p.beneficiary)) throw fail('MARKET_BAD_ARGUMENT', 'beneficiary must be an address', { field: 'beneficiary' })
    const beneficiary = p.beneficiary !== undefined ? getAddress(p.beneficiary) : me
    if (p.callback !== undefined && !isAddress(p.callback)) throw fail('MARKET_BAD_ARGUMENT', 'callback must be an address', { field: 'callback' })
    const callback = p.callback !== undefined ? getAddress(p.callback) : ZERO_ADDRESS

    const app = await this.resolveApp(p.app)
    const appEntry = await this.bestAppOrder(app, p.dataset)
    const appOrder = appEntry.message.order as AppOrder
    let datasetOrder: Signed<DatasetOrder> = emptyDatasetOrder()
    let dataset = ZERO_ADDRESS
    if (p.dataset !== undefined) {
      if (!isAddress(p.dataset)) throw fail('MARKET_BAD_ARGUMENT', 'dataset must be an address', { field: 'dataset' })
      dataset = getAddress(p.dataset)
      const owner = await m.ctx.owners.ownerOf('dataset', dataset)
      if (owner === undefined) throw fail('DATASET_NOT_FOUND', `dataset ${dataset} is not registered on the hub`, { dataset })
      const e = await this.bestDatasetOrder(dataset, app)
      datasetOrder = { ...(e.message.order as DatasetOrder), sign: e.message.sign }
    }

    // tags: named ones become bits, the rest travel in params (required all the same)
    const tags = p.tags ?? []
    const named = tags.filter((t) => TAG_BITS[t] !== undefined)
    const free = tags.filter((t) => TAG_BITS[t] === undefined)
    let tag = BigInt(encodeTags(named)) | BigInt(appOrder.tag) | BigInt(datasetOrder.tag)
    tag = BigInt.asUintN(256, tag)
    const params: RequestParams = {}
    if (p.args !== undefined) {
      // before signing: a string the workers could not split would only fail the deal (ArgsError codes)
      splitArgs(p.args)
      params.iexec_args = p.args
    }
    if (p.inputs !== undefined && p.inputs.length > 0) params.iexec_input_files = p.inputs
    if (p.taskArgs !== undefined) {
      p.taskArgs.forEach((a) => splitArgs(a))
      params.iexec_p2p_task_args = p.taskArgs
    }
    if (p.taskInputs !== undefined) params.iexec_p2p_task_inputs = p.taskInputs
    if (free.length > 0) params.iexec_p2p_tags = free
    if (p.encryptResult === true) {
      params.iexec_result_encryption = true
      params.iexec_p2p_result_key = await this.resultPublicKey()
    }
    let paramsText = Object.keys(params).length > 0 ? JSON.stringify(params) : ''
    if (new TextEncoder().encode(paramsText).length > MAX_PARAMS_BYTES && (p.taskArgs !== undefined || p.taskInputs !== undefined)) {
      // a sweep too large for params: its lists go to Helia, and params carry their CID and sha256
      const doc = new TextEncoder().encode(JSON.stringify({ ...(p.taskArgs !== undefined ? { args: p.taskArgs } : {}), ...(p.taskInputs !== undefined ? { inputs: p.taskInputs } : {}) }))
      try {
        // what every worker will check it against
        parseSweepDocument(doc)
      } catch (err) {
        throw fail('MARKET_BAD_ARGUMENT', `the sweep's lists: ${err instanceof Error ? err.message : String(err)}`, { field: 'taskArgs' })
      }
      const helia = m.init.network.helia
      const { cid } = await addBytes(helia, doc)
      await provideContent(helia, cid).catch(() => false)
      delete params.iexec_p2p_task_args
      delete params.iexec_p2p_task_inputs
      params.iexec_p2p_sweep = { cid: cid.toString(), checksum: `0x${createHash('sha256').update(doc).digest('hex')}` }
      paramsText = JSON.stringify(params)
    }
    if (new TextEncoder().encode(paramsText).length > MAX_PARAMS_BYTES) throw fail('MARKET_BAD_ARGUMENT', `args and inputs (a sweep's included) exceed ${MAX_PARAMS_BYTES} bytes of params`, { field: 'args' })

    // the requester pays volume x (app + dataset + task price) when matched: check it first
    const [balance] = await m.hub.accountOf(me)
    const fixed = appOrder.appprice + (dataset !== ZERO_ADDRESS ? datasetOrder.datasetprice : 0n)
    const affordable = balance / volume - fixed
    // without a price named, the configured cap: never the whole balance (a lone expensive provider would get it all)
    const maxPrice = p.maxPrice ?? m.options.defaultMaxPrice
    const needed = volume * (fixed + maxPrice)
    if (affordable < 0n || balance < needed) {
      throw fail('INSUFFICIENT_BALANCE', `hub balance ${balance} nRLC cannot pay ${volume} task(s) at up to ${fixed + maxPrice} nRLC each (${needed}): deposit more or lower the max price`, { balance: balance.toString(), needed: needed.toString() })
    }

    const expiresAt = Math.floor(Date.now() / 1000) + m.options.requestTtlSeconds
    const fields: RequestOrder = {
      app, appmaxprice: appOrder.appprice, dataset, datasetmaxprice: dataset !== ZERO_ADDRESS ? datasetOrder.datasetprice : 0n,
      workerpool: ZERO_ADDRESS, workerpoolmaxprice: maxPrice, requester: me, volume,
      tag: zeroPadValue(toBeHex(tag), 32), category, trust: BigInt(trust), beneficiary, callback,
      params: paramsText, salt: saltWithExpiry(expiresAt)
    }
    if (p.order !== undefined) overrideRequest(fields, p.order)
    const signed = await signOrder(m.signer, m.domain, 'RequestOrder', fields)
    const { sign, ...order } = signed
    const message = orderMessage('requestorder', m.domain, order, sign)

    const enough = Math.min(HUB_RATIOS.maxWorkers, workersForTrust(trust) + (trust > 1 ? m.options.spareWorkers : 0))
    let resolve: () => void = () => {}
    const enoughBids = new Promise<void>((r) => { resolve = r })
    const collector: Collector = { requestHash: '', bids: new Map(), declines: [], enough, done: resolve, publishedAt: 0, minScore, pending: new Set(), requiredTags: [...decodeTags(zeroPadValue(toBeHex(tag), 32)).names, ...free] }
    // register before publishing: the first bid can beat publish()'s return
    const requestHash = hashOrder(m.domain, 'RequestOrder', order).toLowerCase()
    collector.requestHash = requestHash
    this.collectors.set(requestHash, collector)
    let timer: NodeJS.Timeout | undefined
    try {
      collector.publishedAt = Date.now()
      await m.publishOwn('requestorder', message)
      // the window: ends at its deadline, or early once enough bids are in
      await Promise.race([enoughBids, new Promise<void>((resolve) => { timer = setTimeout(resolve, windowMs) })])
    } finally {
      clearTimeout(timer)
      this.collectors.delete(requestHash)
      this.closedWindows.add(requestHash)
    }

    if (collector.bids.size === 0) {
      const reasons: DeclineReason[] = [...collector.declines]
      if (reasons.length === 0) reasons.push({ peer: null, peerId: null, code: 'NO_ANSWER', reason: 'no provider answered' })
      throw fail('NO_BIDS', `no bid within ${windowMs} ms: ${reasons.map((r) => r.reason).join('; ')}`, { requestHash, reasons })
    }
    // a deal with fewer workers than the consensus needs could never complete:
    // the payment would stay locked until the final deadline, then come back
    const consensusWorkers = workersForTrust(trust)
    if (collector.bids.size < consensusWorkers) {
      // the providers that did bid are named too: one line each, then why the others did not
      const reasons: DeclineReason[] = [...collector.bids.values()].map((b) => ({
        peer: b.from, peerId: b.from, code: 'BID_RECEIVED', reason: `bid ${b.message.order.price} nRLC a task (worker ${getAddress(b.message.order.worker)})`
      }))
      reasons.push(...collector.declines)
      if (collector.declines.length === 0) reasons.push({ peer: null, peerId: null, code: 'NO_ANSWER', reason: 'no other provider answered' })
      throw fail('NOT_ENOUGH_BIDS', `${collector.bids.size} bid(s) within ${windowMs} ms, trust ${trust} needs ${consensusWorkers} workers: ${reasons.map((r) => r.reason).join('; ')}`,
        { requestHash, bids: collector.bids.size, needed: consensusWorkers, reasons })
    }

    // the choice weighs each worker's score (pickBids): read for the earliest bids, unknown reads as 0
    const received = [...collector.bids.values()].sort((a, b) => a.at - b.at).slice(0, MAX_SCORED_BIDS)
    const scores = new Map<string, bigint>()
    await Promise.all(received.map(async (b) => {
      const w = b.message.order.worker
      scores.set(w.toLowerCase(), await m.hub.scoreOf(w).catch(() => 0n))
    }))
    const bids: Array<Signed<Bid>> = pickBids(received, enough, scores).map((b) => ({ ...b.message.order, sign: b.message.sign }))
    const tx = await this.match({ ...appOrder, sign: appEntry.message.sign }, datasetOrder, signed, bids)
    const receipt = tx.receipt
    for (const created of hubEventsNamed(receipt, m.domain.verifyingContract, 'DealCreated')) {
      const dealId = String(created.args.dealid).toLowerCase()
      const info = created.args.info
      const tasks: SubmittedTask[] = []
      for (let i = 0n; i < info.volume; i++) {
        tasks.push({ taskId: taskId(dealId, i), status: taskStatusName(await m.hub.taskStatus(dealId, i)) })
      }
      return {
        dealId,
        // drawn from the hash of the deal's block: readable from the next one (the pending tag)
        scheduler: getAddress(await m.hub.schedulerOf(dealId, { blockTag: 'pending' })),
        workers: [...info.workers].map((w) => getAddress(w)),
        tasks,
        requestHash,
        txHash: tx.hash,
        maxPrice,
        timings: { firstBidMs: collector.firstBidAt !== undefined ? collector.firstBidAt - collector.publishedAt : null, dealMs: Date.now() - collector.publishedAt }
      }
    }
    throw fail('DEAL_NOT_FOUND', `matchOrders ${tx.hash} emitted no DealCreated`, { txHash: tx.hash })
  }

  /**
   * This node's compressed public key, for results encrypted to it. The
   * signer only signs typed data, so the key is recovered from one signature
   * (made once, over a constant message) instead of reaching into the wallet.
   */
  private async resultPublicKey (): Promise<string> {
    if (this.publicKey !== undefined) return this.publicKey
    const domain = { name: 'iexec-p2p result key', version: '1' }
    const types = { ResultKey: [{ name: 'owner', type: 'address' }] }
    const value = { owner: this.market.address }
    const sig = await this.market.signer.signTypedData(domain, types, value)
    const key = SigningKey.computePublicKey(SigningKey.recoverPublicKey(TypedDataEncoder.hash(domain, types, value), sig), true)
    this.publicKey = key
    return key
  }

  private async match (appOrder: Signed<AppOrder>, datasetOrder: Signed<DatasetOrder>, request: Signed<RequestOrder>, bids: Array<Signed<Bid>>): Promise<{ hash: string, receipt: { logs: readonly LogLike[] } }> {
    const m = this.market
    const req = await m.hub.matchOrders.populateTransaction(appOrder, datasetOrder, request, bids)
    // the scheduler draw reads prevrandao, which differs between the estimate
    // and the mined block (contracts-abi/README.md): 30 % more on top of the sender's own
    const gasLimit = await m.chain.sender.estimateGas(req) * 13n / 10n
    const sent = await m.chain.sender.send({ ...req, gasLimit })
    return { hash: sent.hash, receipt: sent.receipt }
  }

  /** An app address, or the name of a registered app (ours first, then anyone's). */
  async resolveApp (appOrName: string): Promise<string> {
    const m = this.market
    if (typeof appOrName !== 'string' || appOrName.length === 0) throw fail('MARKET_BAD_ARGUMENT', 'app is required', { field: 'app' })
    if (isAddress(appOrName)) {
      const app = getAddress(appOrName)
      if (await m.ctx.owners.ownerOf('app', app) === undefined) throw fail('APP_NOT_FOUND', `app ${app} is not registered on the hub`, { app })
      return app
    }
    let named = await m.appsNamed(appOrName)
    if (named.length === 0) {
      // the app's order can come by gossip before our follower read its
      // AppRegistered event: catch up with the chain once before saying no
      await m.hubEvents.poll()
      named = await m.appsNamed(appOrName)
    }
    if (named.length === 0) throw fail('APP_NOT_FOUND', `no app named '${appOrName}' is registered on the hub`, { app: appOrName })
    const mine = named.find((a) => a.owner.toLowerCase() === m.address.toLowerCase())
    return getAddress((mine ?? named[0]).app)
  }

  private restrictOk (restriction: string, party: string): boolean {
    return restriction === ZERO_ADDRESS || restriction.toLowerCase() === party.toLowerCase()
  }

  private async bestAppOrder (app: string, dataset: string | undefined): Promise<OrderbookEntry> {
    const me = this.market.address
    const live = (await this.market.book.query({ type: 'apporder', app })).filter((e) => e.remaining > 0n &&
      // a provider-restricted app order cannot be matched with open bids
      (e.message.order as AppOrder).workerpoolrestrict === ZERO_ADDRESS)
    if (live.length === 0) throw fail('NO_APP_ORDER', `no live app order for ${app} in the orderbook`, { app })
    const forDataset = live.filter((e) => this.restrictOk((e.message.order as AppOrder).datasetrestrict, dataset ?? ZERO_ADDRESS))
    if (forDataset.length === 0) {
      throw fail('APP_DATASET_NOT_ALLOWED', `the owner of app ${app} allows it only with dataset(s) ${restrictions(live, 'datasetrestrict')}${dataset === undefined ? ', and this request names none' : `, not ${dataset}`}`, { app, allowed: restrictions(live, 'datasetrestrict').split(', ') })
    }
    const orders = forDataset.filter((e) => this.restrictOk((e.message.order as AppOrder).requesterrestrict, me))
    if (orders.length === 0) throw fail('APP_REQUESTER_NOT_ALLOWED', `the owner of app ${app} allows it only for requester(s) ${restrictions(forDataset, 'requesterrestrict')}, not ${me}`, { app, requester: me })
    orders.sort((a, b) => { const x = (a.message.order as AppOrder).appprice; const y = (b.message.order as AppOrder).appprice; return x < y ? -1 : x > y ? 1 : 0 })
    return orders[0]
  }

  /**
   * The cheapest live order of the dataset that allows this app and this
   * requester (the hub would revert Restricted on any other). When orders
   * exist but none allows them, the error names the owner's rule.
   */
  private async bestDatasetOrder (dataset: string, app: string): Promise<OrderbookEntry> {
    const me = this.market.address
    const live = (await this.market.book.query({ type: 'datasetorder', dataset })).filter((e) => e.remaining > 0n &&
      (e.message.order as DatasetOrder).workerpoolrestrict === ZERO_ADDRESS)
    if (live.length === 0) throw fail('NO_DATASET_ORDER', `no live dataset order for ${dataset} in the orderbook`, { dataset })
    const forApp = live.filter((e) => this.restrictOk((e.message.order as DatasetOrder).apprestrict, app))
    if (forApp.length === 0) {
      throw fail('DATASET_APP_NOT_ALLOWED', `the owner of dataset ${dataset} allows only app(s) ${restrictions(live, 'apprestrict')}, not ${app}`, { dataset, app, allowed: restrictions(live, 'apprestrict').split(', ') })
    }
    const orders = forApp.filter((e) => this.restrictOk((e.message.order as DatasetOrder).requesterrestrict, me))
    if (orders.length === 0) {
      throw fail('DATASET_REQUESTER_NOT_ALLOWED', `the owner of dataset ${dataset} allows app ${app} only for requester(s) ${restrictions(forApp, 'requesterrestrict')}, not ${me}`, { dataset, app, requester: me })
    }
    orders.sort((a, b) => { const x = (a.message.order as DatasetOrder).datasetprice; const y = (b.message.order as DatasetOrder).datasetprice; return x < y ? -1 : x > y ? 1 : 0 })
    return orders[0]
  }
}

/**
 * Applies `order publish request`'s own fields; a max price below the price
 * of the order the node picked is refused before signing (the hub would
 * revert the match).
 */
function overrideRequest (fields: RequestOrder, o: RequestOrderOverrides): void {
  if (o.appmaxprice !== undefined) {
    if (o.appmaxprice < fields.appmaxprice) throw fail('MARKET_BAD_ARGUMENT', `appmaxprice ${o.appmaxprice} nRLC is below the app order's price of ${fields.appmaxprice} nRLC`, { field: 'appmaxprice', price: fields.appmaxprice.toString() })
    fields.appmaxprice = o.appmaxprice
  }
  if (o.datasetmaxprice !== undefined) {
    if (o.datasetmaxprice < fields.datasetmaxprice) throw fail('MARKET_BAD_ARGUMENT', `datasetmaxprice ${o.datasetmaxprice} nRLC is below the dataset order's price of ${fields.datasetmaxprice} nRLC`, { field: 'datasetmaxprice', price: fields.datasetmaxprice.toString() })
    fields.datasetmaxprice = o.datasetmaxprice
  }
  if (o.workerpool !== undefined) fields.workerpool = getAddress(o.workerpool)
  if (o.callback !== undefined) fields.callback = getAddress(o.callback)
  if (o.salt !== undefined) fields.salt = o.salt
}

/** The distinct restriction addresses of some orders, for an error message. */
function restrictions (entries: OrderbookEntry[], field: 'apprestrict' | 'requesterrestrict' | 'datasetrestrict'): string {
  return [...new Set(entries.map((e) => getAddress(String((e.message.order as unknown as Record<string, string>)[field]))))].join(', ')
}
