/**
 * The market's HTTP routes (the CLI's `orderbook`, `order cancel`, `wallet
 * show`, `account`, `stake`, `app`, `deal show`, `task submit` commands call
 * them). Amounts are decimal strings of nRLC (wei for ETH). Errors are
 * HttpErrors with the module's codes; NO_BIDS carries `details.reasons`.
 */
import { getAddress, isAddress, isHexString } from 'ethers'
import { HttpError } from '../errors.js'
import { bad, bodyOf } from '../route-helpers.js'
import type { ApiRequest, ApiRoute } from '../router.js'
import { isIexecError } from '../../common/errors.js'
import { hubEventsNamed, isChainError, queryLogsInRanges } from '../../chain/index.js'
import { ZERO_ADDRESS, signOrder, taskId } from '../../../protocols/eip712.js'
import type { AppOrder, Bid, DatasetOrder, OrderKind, RequestOrder } from '../../../protocols/eip712.js'
import { KIND_OF_TYPE, orderMessage, saltWithExpiry } from '../../../protocols/market.js'
import { ORDERBOOK_TYPES } from '../../market/orderbook.js'
import type { OrderbookEntry, OrderbookType } from '../../market/orderbook.js'
import { searchOrderbook } from '../../market/order-search.js'
import type { OrderSearch } from '../../market/order-search.js'
import { taskStatusName } from '../../market/requester.js'
import type { SubmitRequestParams } from '../../market/requester.js'
import type { MarketService } from '../../market/service.js'
import { RequestedTasks, readTaskStatus } from '../../market/task-status.js'
import type { FailureCollector } from '../../worker/failure-reports.js'
import { tasksOfTransaction } from '../../market/tx-tasks.js'
import { addressList, checkDatasets, restrictionPairs, tagList } from '../../market/order-policy.js'

/** `orderbook --json` row. */
export interface OrderView {
  /** app | dataset | request | bid (the CLI's words) */
  type: 'app' | 'dataset' | 'request' | 'bid'
  orderHash: string
  signer: string
  order: Record<string, string>
  remaining: string
  receivedAt: number
}

const MAX_U64 = (1n << 64n) - 1n
/** The hub's cap on a price per task (contracts-abi/README.md). */
const MAX_PRICE = (1n << 48n) - 1n

function amount (v: unknown, field: string, max: bigint = MAX_U64, min: bigint = 1n): bigint {
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]{0,30})$/.test(v)) throw bad(field, 'must be a decimal string of nRLC')
  const n = BigInt(v)
  if (n < min || n > max) throw bad(field, `must be in [${min}, ${max}]`)
  return n
}

function optString (v: unknown, field: string, max: number): string | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string' || v.length > max) throw bad(field, `must be a string of at most ${max} characters`)
  return v
}

function optInt (v: unknown, field: string): number | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(field, 'must be an integer')
  return v
}

function optStrings (v: unknown, field: string, maxItems: number, maxLen: number): string[] | undefined {
  if (v === undefined) return undefined
  if (!Array.isArray(v) || v.length > maxItems || !v.every((s) => typeof s === 'string' && s.length > 0 && s.length <= maxLen)) {
    throw bad(field, `must be a list of at most ${maxItems} strings of 1-${maxLen} characters`)
  }
  return v as string[]
}

const SHORT_TYPE = { apporder: 'app', datasetorder: 'dataset', requestorder: 'request', bid: 'bid' } as const

export function orderView (e: OrderbookEntry): OrderView {
  const order: Record<string, string> = {}
  for (const [k, v] of Object.entries(e.message.order)) order[k] = typeof v === 'bigint' ? v.toString(10) : String(v)
  order.sign = e.message.sign
  return { type: SHORT_TYPE[e.type], orderHash: e.hash, signer: e.signer, order, remaining: e.remaining.toString(10), receivedAt: e.receivedAt }
}

/** Maps the market's and the chain's typed errors to HTTP statuses; keeps codes and details. */
function httpError (err: unknown): unknown {
  if (err instanceof HttpError || !isIexecError(err)) return err
  const status: Record<string, number> = {
    CHAIN_NOT_CONFIGURED: 503,
    MARKET_BAD_ARGUMENT: 400,
    MARKET_BAD_QUERY: 400,
    ARGS_UNTERMINATED_QUOTE: 400,
    ARGS_TRAILING_BACKSLASH: 400,
    ARGS_NUL_CHARACTER: 400,
    NO_BIDS: 422,
    NOT_ENOUGH_BIDS: 422,
    INSUFFICIENT_BALANCE: 422,
    APP_NOT_FOUND: 404,
    DATASET_NOT_FOUND: 404,
    NO_APP_ORDER: 422,
    NO_DATASET_ORDER: 422,
    DATASET_APP_NOT_ALLOWED: 403,
    DATASET_REQUESTER_NOT_ALLOWED: 403,
    APP_DATASET_NOT_ALLOWED: 403,
    APP_REQUESTER_NOT_ALLOWED: 403,
    ORDER_NOT_FOUND: 404,
    DEAL_NOT_FOUND: 404,
    TASK_NOT_FOUND: 404,
    NOT_ORDER_OWNER: 403,
    CONTRACT_REVERT: 422,
    RPC_UNREACHABLE: 502,
    TX_TIMEOUT: 504
  }
  const s = status[err.code]
  if (s === undefined) return err
  const details = { ...err.details, ...(isChainError(err) && err.reason !== undefined ? { reason: err.reason } : {}) }
  return new HttpError(s, err.code, err.message, Object.keys(details).length > 0 ? details : undefined)
}

export function wrap (fn: (req: ApiRequest) => Promise<unknown>): (req: ApiRequest) => Promise<unknown> {
  return async (req) => {
    try {
      return await fn(req)
    } catch (err) {
      throw httpError(err)
    }
  }
}

/** An app order's price and volume from a request body (`POST /v1/apps`, `POST /v1/apps/publish`). */
/** The terms of an app's orders, from a request body: price, volume and who may use it (checked before anything is registered). */
export function appTerms (b: Record<string, unknown>): AppTerms {
  const price = amount(b.price, 'price', MAX_PRICE, 0n)
  // the CLI sends a number, scripts may send a decimal string: both are fine
  const volume = b.volume === undefined ? 1_000_000n : amount(typeof b.volume === 'number' && Number.isSafeInteger(b.volume) ? String(b.volume) : b.volume, 'volume', MAX_U64)
  const datasets = addressList(b.datasets, 'datasets') ?? []
  const requesters = addressList(b.requesters, 'requesters') ?? []
  const tags = tagList(b.tags)
  return { price, volume, datasets, requesters, tags }
}

export interface AppTerms {
  price: bigint
  volume: bigint
  /** datasets the app may run on (none: any) */
  datasets: string[]
  /** requesters that may use it (none: any) */
  requesters: string[]
  tags: ReturnType<typeof tagList>
}

/**
 * Registers an app on chain (unless this node registered the same name, CID
 * and checksum already) and gossips its app orders: one per allowed
 * (dataset, requester) pair, as the hub's restrictions hold one address each.
 */
export async function offerApp (m: MarketService, app: { name: string, cid: string, checksum: string } & AppTerms): Promise<OfferedApp> {
  const { name, cid, price, volume, datasets, requesters, tags } = app
  const checksum = app.checksum.toLowerCase()
  // every restriction is checked before anything goes on chain
  await checkDatasets(m, datasets)
  const pairs = restrictionPairs(datasets, requesters)
  let address = (await m.appsNamed(name, m.address)).find((a) => a.cid === cid && a.checksum.toLowerCase() === checksum)?.app
  if (address === undefined) {
    const tx = await m.chain.sender.send(m.hub.registerApp.populateTransaction(name, cid, checksum))
    for (const e of hubEventsNamed(tx.receipt, m.domain.verifyingContract, 'AppRegistered')) address = getAddress(e.args.app)
    if (address === undefined) throw new HttpError(502, 'APP_NOT_FOUND', `registerApp ${tx.hash} emitted no AppRegistered`)
    await m.rememberApp({ app: address, owner: m.address, name, cid, checksum })
  }
  const hashes: string[] = []
  for (const [datasetrestrict, requesterrestrict] of pairs) {
    const signed = await signOrder(m.signer, m.domain, 'AppOrder', {
      app: address, appprice: price, volume, tag: tags.tag,
      datasetrestrict, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict,
      // no expiry: an app order lives until consumed or cancelled, as in iExec
      salt: saltWithExpiry(0)
    })
    const { sign, ...order } = signed
    hashes.push((await m.publishOwn('apporder', orderMessage('apporder', m.domain, order, sign))).hash)
  }
  return { address, cid, checksum, orderHash: hashes[0], orderHashes: hashes, policy: { datasets, requesters, tags: tags.names, volume: volume.toString() } }
}

export interface OfferedApp {
  address: string
  cid: string
  checksum: string
  /** the first of orderHashes */
  orderHash: string
  orderHashes: string[]
  policy: { datasets: string[], requesters: string[], tags: string[], volume: string }
}

/**
 * The market routes. `market` is undefined when the node has no chain
 * settings: every route then answers 503 CHAIN_NOT_CONFIGURED.
 */
export function marketRoutes (getMarket: () => MarketService | undefined, deps: { failures?: () => FailureCollector | undefined } = {}): ApiRoute[] {
  const need = (): MarketService => {
    const m = getMarket()
    if (m === undefined || !m.started) {
      throw new HttpError(503, 'CHAIN_NOT_CONFIGURED', 'this node has no chain settings (config.json chain.rpc and chain.hub): the market is off')
    }
    return m
  }
  // the requester's own tasks (bidding and deal times), one table per market
  const requestedByMarket = new WeakMap<MarketService, RequestedTasks>()
  const requested = (m: MarketService): RequestedTasks => {
    let r = requestedByMarket.get(m)
    if (r === undefined) {
      r = new RequestedTasks(m.init.db)
      requestedByMarket.set(m, r)
    }
    return r
  }
  const route = (method: 'GET' | 'POST', path: string, fn: (m: MarketService, req: ApiRequest) => Promise<unknown>): ApiRoute =>
    ({ method, path, handler: wrap(async (req) => await fn(need(), req)) })

  return [
    route('GET', '/v1/orderbook', async (m, req) => {
      const q: OrderSearch = {}
      const type = req.query.get('type')
      if (type !== null) {
        if (!(ORDERBOOK_TYPES as readonly string[]).includes(type) && !['app', 'dataset', 'request'].includes(type)) throw bad('type', 'must be app, dataset, request or bid')
        q.type = (type === 'app' ? 'apporder' : type === 'dataset' ? 'datasetorder' : type === 'request' ? 'requestorder' : type) as OrderbookType
      }
      // app/dataset/requester: orders naming the party, or usable by it (order-search.ts)
      for (const f of ['app', 'dataset', 'requester'] as const) {
        const v = req.query.get(f)
        if (v === null) continue
        if (!isAddress(v)) throw bad(f, 'must be an address')
        q[f] = v
      }
      const strict = req.query.get('strict')
      if (strict !== null) {
        if (strict !== 'true' && strict !== 'false') throw bad('strict', 'must be true or false')
        q.strict = strict === 'true'
      }
      const category = req.query.get('category')
      if (category !== null) {
        if (!/^\d{1,7}$/.test(category)) throw bad('category', 'must be a small integer')
        q.category = Number(category)
      }
      // tag=region:eu,gpu: only orders whose tag has every one of these bits (bids have no tag)
      const tagParam = req.query.get('tag')
      if (tagParam !== null) q.tagBits = BigInt(tagList(tagParam.split(',')).tag)
      return { orders: (await searchOrderbook(m.book, q)).map(orderView) }
    }),

    route('GET', '/v1/orders/:orderHash', async (m, req) => {
      const orderHash = req.params.orderHash ?? ''
      if (!isHexString(orderHash, 32)) throw bad('orderHash', 'must be a 32-byte 0x hex string')
      const e = await m.book.get(orderHash)
      if (e === undefined) throw new HttpError(404, 'ORDER_NOT_FOUND', `no live order ${orderHash} in this node's orderbook`)
      // the hub's count: used by deals, or the whole volume once cancelled
      return { ...orderView(e), consumed: (await m.hub.consumedOf(e.hash)).toString(10) }
    }),

    route('POST', '/v1/orders/cancel', async (m, req) => {
      const orderHash = bodyOf(req).orderHash
      if (typeof orderHash !== 'string' || !isHexString(orderHash, 32)) throw bad('orderHash', 'must be a 32-byte 0x hex string')
      const e = await m.book.get(orderHash)
      if (e === undefined) throw new HttpError(404, 'ORDER_NOT_FOUND', `no live order ${orderHash} in this node's orderbook`)
      return await cancelOrderOnChain(m, e)
    }),

    route('GET', '/v1/wallet', async (m) => {
      const me = m.address
      const rlc = m.chain.rlc
      const [eth, rlcBalance, [balance, frozen], [stake, stakeLocked]] = await Promise.all([
        m.chain.ethBalance(), rlc !== undefined ? rlc.balanceOf(me) : Promise.resolve(0n), m.hub.accountOf(me), m.hub.stakeOf(me)
      ])
      return { address: me, eth: eth.toString(), rlc: rlcBalance.toString(), balance: balance.toString(), frozen: frozen.toString(), stake: stake.toString(), stakeLocked: stakeLocked.toString() }
    }),

    route('POST', '/v1/account/deposit', async (m, req) => {
      const n = amount(bodyOf(req).amount, 'amount')
      const rlc = m.chain.rlc
      if (rlc === undefined) throw new HttpError(503, 'CHAIN_NOT_CONFIGURED', 'the RLC token is unknown')
      await m.chain.sender.send(rlc.approve.populateTransaction(m.domain.verifyingContract, n))
      const tx = await m.chain.sender.send(m.hub.deposit.populateTransaction(n))
      const [balance] = await m.hub.accountOf(m.address)
      return { txHash: tx.hash, balance: balance.toString() }
    }),

    route('POST', '/v1/account/withdraw', async (m, req) => {
      const n = amount(bodyOf(req).amount, 'amount')
      const tx = await m.chain.sender.send(m.hub.withdraw.populateTransaction(n))
      const [balance] = await m.hub.accountOf(m.address)
      return { txHash: tx.hash, balance: balance.toString() }
    }),

    route('POST', '/v1/stake', async (m, req) => {
      const n = amount(bodyOf(req).amount, 'amount')
      const stakeTx = await m.hub.stake.populateTransaction(n)
      // a stake's gas depends on the sortition tree's shape, which other
      // nodes' first stakes mined before ours change: our leaf moves right,
      // its Fenwick path gets longer and writes zero slots (~22k gas each).
      // Bound: 12 more slots (trees up to 4096 stakers) on top of the
      // estimate; out-of-gas reverts were seen with 20 nodes staking at once.
      // Unused gas is refunded.
      const gasLimit = await m.chain.sender.estimateGas(stakeTx) + 12n * 25_000n
      const tx = await m.chain.sender.send({ ...stakeTx, gasLimit })
      const [stake] = await m.hub.stakeOf(m.address)
      return { txHash: tx.hash, stake: stake.toString() }
    }),

    route('POST', '/v1/apps', async (m, req) => {
      const b = bodyOf(req)
      const name = optString(b.name, 'name', 64)
      const cid = optString(b.cid, 'cid', 128)
      if (name === undefined || name.length === 0) throw bad('name', 'is required')
      if (cid === undefined || cid.length === 0) throw bad('cid', 'is required')
      if (typeof b.checksum !== 'string' || !isHexString(b.checksum, 32)) throw bad('checksum', 'must be a 32-byte 0x hex string')
      return await offerApp(m, { name, cid, checksum: b.checksum, ...appTerms(b) })
    }),

    route('GET', '/v1/deals/:dealId', async (m, req) => {
      const dealId = req.params.dealId
      if (!isHexString(dealId, 32)) throw bad('dealId', 'must be a 32-byte 0x hex string')
      const logs = await queryLogsInRanges(async (a, b) => await m.hub.queryFilter(m.hub.filters.DealCreated(dealId), a, b), { fromBlock: m.init.fromBlock, head: m.chain.provider })
      const log = logs[0]
      if (log === undefined) throw new HttpError(404, 'DEAL_NOT_FOUND', `no deal ${dealId} on the hub`)
      const deal = await m.hub.dealOf(dealId, { blockTag: 'pending' })
      const info = log.args.info
      const tasks = []
      for (let i = 0n; i < info.volume; i++) {
        tasks.push({ taskId: taskId(dealId, i), status: taskStatusName(await m.hub.taskStatus(dealId, i)) })
      }
      return {
        dealId: dealId.toLowerCase(),
        scheduler: getAddress(deal.scheduler),
        workers: [...info.workers].map((w) => getAddress(w)),
        app: getAddress(info.app),
        dataset: getAddress(info.dataset),
        requester: getAddress(log.args.requester),
        beneficiary: getAddress(info.beneficiary),
        volume: info.volume.toString(),
        trust: info.trust.toString(),
        category: info.category.toString(),
        params: info.params,
        prices: { app: info.appPrice.toString(), dataset: info.datasetPrice.toString(), worker: info.workerPrice.toString() },
        deadlines: { start: Number(info.startTime), contribution: Number(info.contributionDeadline), final: Number(info.finalDeadline) },
        tasks
      }
    }),

    route('POST', '/v1/tasks', async (m, req) => {
      const b = bodyOf(req)
      if (typeof b.app !== 'string' || b.app.length === 0 || b.app.length > 64) throw bad('app', 'must be an app address or name')
      const p: SubmitRequestParams = { app: b.app }
      if (b.dataset !== undefined) {
        if (typeof b.dataset !== 'string' || !isAddress(b.dataset)) throw bad('dataset', 'must be an address')
        p.dataset = b.dataset
      }
      const args = optString(b.args, 'args', 4096)
      if (args !== undefined) p.args = args
      const inputs = optStrings(b.inputs, 'inputs', 64, 256)
      if (inputs !== undefined) p.inputs = inputs
      if (b.taskArgs !== undefined) {
        // a task of a sweep may have no arguments: empty strings are fine here
        if (!Array.isArray(b.taskArgs) || b.taskArgs.length === 0 || b.taskArgs.length > 10_000 || !b.taskArgs.every((a) => typeof a === 'string' && a.length <= 4096)) throw bad('taskArgs', 'must be a list of 1-10000 strings of at most 4096 characters')
        p.taskArgs = b.taskArgs as string[]
      }
      if (b.taskInputs !== undefined) {
        if (!Array.isArray(b.taskInputs) || b.taskInputs.length > 10_000) throw bad('taskInputs', 'must be a list of at most 10000 lists of CIDs')
        p.taskInputs = b.taskInputs.map((l, i) => optStrings(l, `taskInputs[${i}]`, 64, 256) ?? [])
      }
      const tags = optStrings(b.tags, 'tags', 16, 64)
      if (tags !== undefined) p.tags = tags
      for (const f of ['category', 'trust', 'volume', 'biddingWindowMs', 'minScore'] as const) {
        const v = optInt(b[f], f)
        if (v !== undefined) p[f] = v
      }
      if (b.maxPrice !== undefined) p.maxPrice = amount(b.maxPrice, 'maxPrice', MAX_PRICE, 0n)
      if (b.beneficiary !== undefined) {
        if (typeof b.beneficiary !== 'string' || !isAddress(b.beneficiary)) throw bad('beneficiary', 'must be an address')
        p.beneficiary = b.beneficiary
      }
      if (b.callback !== undefined) {
        if (typeof b.callback !== 'string' || !isAddress(b.callback)) throw bad('callback', 'must be an address')
        p.callback = b.callback
      }
      if (b.encryptResult !== undefined) {
        if (typeof b.encryptResult !== 'boolean') throw bad('encryptResult', 'must be a boolean')
        p.encryptResult = b.encryptResult
      }
      const r = await m.requester.submit(p)
      const requestedAt = Date.now() - r.timings.dealMs
      for (const [idx, t] of r.tasks.entries()) {
        await requested(m).put({ taskId: t.taskId, dealId: r.dealId, idx, requestedAt, firstBidMs: r.timings.firstBidMs, dealMs: r.timings.dealMs })
      }
      return { dealId: r.dealId, scheduler: r.scheduler, workers: r.workers, tasks: r.tasks, maxPrice: r.maxPrice.toString(), timings: r.timings }
    }),

    route('GET', '/v1/transactions/:txHash/tasks', async (m, req) => {
      const txHash = req.params.txHash
      if (!isHexString(txHash, 32)) throw bad('txHash', 'must be a 32-byte 0x hex string')
      return await tasksOfTransaction(m, txHash)
    }),

    route('GET', '/v1/tasks/:taskId', async (m, req) => {
      const id = req.params.taskId
      if (!isHexString(id, 32)) throw bad('taskId', 'must be a 32-byte 0x hex string')
      const collector = deps.failures?.()
      return await readTaskStatus(m, requested(m), id, collector !== undefined ? async (t, w) => await collector.collect(t, w) : undefined)
    }),

    // each worker's failure code, exit code and stderr tail (task logs)
    route('GET', '/v1/tasks/:taskId/logs', async (m, req) => {
      const id = req.params.taskId
      if (!isHexString(id, 32)) throw bad('taskId', 'must be a 32-byte 0x hex string')
      const collector = deps.failures?.()
      let errors: Array<{ worker: string, code: string, reason: string }> = []
      let reports: Awaited<ReturnType<FailureCollector['collect']>>['reports'] = []
      const view = await readTaskStatus(m, requested(m), id, collector !== undefined
        ? async (t, w) => {
          const got = await collector.collect(t, w)
          errors = got.errors
          reports = got.reports
          return got
        }
        : undefined)
      return { taskId: view.taskId, phase: view.phase, status: view.status, workers: view.workers, failure: view.failure === null ? null : { ...view.failure, reports }, errors }
    })
  ]
}

/**
 * Cancels one live order of the book on chain (the hub's cancel of its
 * kind) and gossips the cancel. An order whose asset changed hands since it
 * was signed is NOT_ORDER_OWNER.
 */
export async function cancelOrderOnChain (m: MarketService, e: OrderbookEntry): Promise<{ orderHash: string, txHash: string }> {
  const kind = KIND_OF_TYPE[e.type] as OrderKind
  const signed = { ...e.message.order, sign: e.message.sign }
  let tx
  try {
    switch (kind) {
      case 'AppOrder': tx = await m.chain.sender.send(m.hub.cancelAppOrder.populateTransaction(signed as AppOrder & { sign: string })); break
      case 'DatasetOrder': tx = await m.chain.sender.send(m.hub.cancelDatasetOrder.populateTransaction(signed as DatasetOrder & { sign: string })); break
      case 'RequestOrder': tx = await m.chain.sender.send(m.hub.cancelRequestOrder.populateTransaction(signed as RequestOrder & { sign: string })); break
      case 'Bid': tx = await m.chain.sender.send(m.hub.cancelBid.populateTransaction(signed as Bid & { sign: string })); break
    }
  } catch (err) {
    if (isChainError(err, 'CONTRACT_REVERT') && (err.reason === 'NotOwner' || err.reason === 'Restricted')) {
      throw new HttpError(403, 'NOT_ORDER_OWNER', `order ${e.hash} is not this node's to cancel`, { orderHash: e.hash })
    }
    throw err
  }
  await m.gossipCancel(kind, e.message.order, e.hash)
  return { orderHash: e.hash, txHash: tx.hash }
}

/**
 * A route factory for routes that need the market: 503 CHAIN_NOT_CONFIGURED
 * when the node has no chain settings (or its market is not started), and
 * errors turned into HTTP answers by the route file's own `mapError`.
 */
export function marketRouteMaker (getMarket: () => MarketService | undefined, mapError: (err: unknown) => unknown): (method: 'GET' | 'POST', path: string, fn: (m: MarketService, req: ApiRequest) => Promise<unknown>) => ApiRoute {
  return (method, path, fn) => ({
    method,
    path,
    handler: async (req) => {
      const m = getMarket()
      if (m === undefined || !m.started) {
        throw new HttpError(503, 'CHAIN_NOT_CONFIGURED', 'this node has no chain settings (config.json chain.rpc and chain.hub): the market is off')
      }
      try {
        return await fn(m, req)
      } catch (err) {
        throw mapError(err)
      }
    }
  })
}
