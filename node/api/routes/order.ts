/**
 * `order publish app|dataset|request` and `order unpublish` (issue 22):
 * orders with every field iexec-sdk's have, signed by the node's wallet and
 * gossiped; cancelled on chain with the hub's cancel functions.
 *
 * - `POST /v1/orders/publish` `{ type: 'app', app, price, volume, tags,
 *   datasetrestrict, workerpoolrestrict, requesterrestrict, expiresAt | salt }`;
 *   `{ type: 'dataset', dataset, price, volume, tags, apprestrict | anyApp,
 *   workerpoolrestrict, requesterrestrict, expiresAt | salt }`: the order's
 *   hash and fields. A dataset order is recorded with the dataset (its key
 *   is released only to deals its orders allow: storage/key-release.ts).
 *   `{ type: 'request', app, dataset, workerpool, appmaxprice,
 *   datasetmaxprice, workerpoolmaxprice, volume, tags, category, trust,
 *   beneficiary, callback, args, inputs, expiresAt | salt, biddingWindowMs }`:
 *   the hub lets only the requester match its request, so the node runs the
 *   bidding window and the match as `task submit` does, and answers the deal.
 * - `POST /v1/orders/unpublish` `{ orderHash }` or `{ app }` / `{ dataset }`
 *   (all of that asset's live orders this node signed): cancelled on chain,
 *   dropped from this node's book and a signed cancel gossiped; every other
 *   node drops it on the hub's OrderCancelled event as well.
 *
 * Expiry: the hub has none, so it is the node's policy, carried in the
 * salt's first 8 bytes (protocols/market.ts saltWithExpiry): an expired
 * order is refused by the gossip validators, hidden from and pruned out of
 * every book, not synced, and not bid on. A publish with an expiry that has
 * passed is refused (ORDER_EXPIRED) and signs nothing.
 *
 * Every check runs before anything is signed, sent or gossiped.
 */
import { getAddress, isAddress, isHexString } from 'ethers'
import { HttpError } from '../errors.js'
import { bad, bodyOf } from '../route-helpers.js'
import type { ApiRoute } from '../router.js'
import { ZERO_ADDRESS, hashOrder, signOrder } from '../../../protocols/eip712.js'
import type { AppOrder, DatasetOrder } from '../../../protocols/eip712.js'
import { expiryOfSalt, orderMessage, saltWithExpiry } from '../../../protocols/market.js'
import type { DatasetStore, SignedDatasetOrderRecord } from '../../storage/dataset-store.js'
import { checkDatasets, resolveAllowedApps, tagList, volumeOf } from '../../market/order-policy.js'
import type { OrderbookEntry } from '../../market/orderbook.js'
import type { RequestOrderOverrides, SubmitRequestParams } from '../../market/requester.js'
import { cancelOrderOnChain, wrap } from './market.js'
import type { MarketService } from '../../market/service.js'

/** The hub's cap on a price per task (contracts-abi/README.md). */
const MAX_PRICE = (1n << 48n) - 1n
const MAX_EXPIRY = (1n << 64n) - 1n
/** At most this many orders cancelled by one `unpublish --app/--dataset`. */
const MAX_UNPUBLISH = 64

export interface OrderRoutesDeps {
  market: () => MarketService | undefined
  /** the node's dataset records: a dataset order is recorded with its dataset */
  datasets: DatasetStore
  /** unix seconds; tests move it */
  nowSeconds?: () => number
}

/** A price per task: a decimal string of nRLC in [0, 2^48). */
export function priceOf (v: unknown, field: string): bigint | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]{0,20})$/.test(v)) throw bad(field, 'must be a decimal string of nRLC (a whole number, 0 or more)')
  const n = BigInt(v)
  if (n > MAX_PRICE) throw bad(field, `must be at most ${MAX_PRICE} nRLC (the hub's cap)`)
  return n
}

/** An address field: checksummed; undefined when absent. */
function addressOf (v: unknown, field: string): string | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string' || !isAddress(v)) throw bad(field, `must be an address (0x and 40 hex digits), got "${String(v).slice(0, 80)}"`)
  return getAddress(v)
}

function intOf (v: unknown, field: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(field, `must be an integer in [${min}, ${max}]`)
  return v
}

/**
 * The salt of a new order, from `expiresAt` (unix seconds) or a given
 * `salt` (whose first 8 bytes are its expiry); undefined when neither is
 * given. ORDER_EXPIRED when the expiry has passed.
 */
export function saltOf (b: Record<string, unknown>, nowSeconds: number): string | undefined {
  if (b.expiresAt !== undefined && b.salt !== undefined) throw bad('salt', 'carries the expiry in its first 8 bytes: give expiresAt or salt, not both')
  let expiresAt: bigint | undefined
  let salt: string | undefined
  if (b.salt !== undefined) {
    if (typeof b.salt !== 'string' || !isHexString(b.salt, 32)) throw bad('salt', 'must be 0x and 64 hex digits')
    salt = b.salt.toLowerCase()
    expiresAt = expiryOfSalt(salt)
  } else if (b.expiresAt !== undefined) {
    const e = b.expiresAt
    if (typeof e !== 'number' || !Number.isSafeInteger(e) || e < 1 || BigInt(e) > MAX_EXPIRY) throw bad('expiresAt', 'must be a time in unix seconds')
    expiresAt = BigInt(e)
    salt = saltWithExpiry(expiresAt)
  }
  if (expiresAt !== undefined && expiresAt <= BigInt(nowSeconds)) {
    throw new HttpError(400, 'ORDER_EXPIRED', `the expiry ${new Date(Number(expiresAt) * 1000).toISOString()} has passed: an expired order is never gossiped nor matched`, { expiresAt: expiresAt.toString(), now: nowSeconds })
  }
  return salt
}

function ownerCheck (m: MarketService, owner: string | undefined, kind: 'app' | 'dataset', asset: string): void {
  if (owner === undefined) throw new HttpError(404, kind === 'app' ? 'APP_NOT_FOUND' : 'DATASET_NOT_FOUND', `${kind} ${asset} is not registered on the hub`, { [kind]: asset })
  if (owner.toLowerCase() !== m.address.toLowerCase()) {
    throw new HttpError(403, 'NOT_ASSET_OWNER', `${kind} ${asset} belongs to ${getAddress(owner)}, not to this node (${m.address}): only its owner signs its orders`, { [kind]: asset, owner: getAddress(owner) })
  }
}

/** An app of this node, by address or by the name it registered it under. */
async function ownApp (m: MarketService, ref: unknown): Promise<string> {
  if (typeof ref !== 'string' || ref.length === 0 || ref.length > 64) throw bad('app', 'must be an app address or name')
  if (ref.startsWith('0x')) {
    const app = addressOf(ref, 'app') as string
    ownerCheck(m, await m.ctx.owners.ownerOf('app', app), 'app', app)
    return app
  }
  let named = await m.appsNamed(ref, m.address)
  if (named.length === 0) {
    await m.hubEvents.poll()
    named = await m.appsNamed(ref, m.address)
  }
  if (named.length === 0) throw new HttpError(404, 'APP_NOT_FOUND', `this node registered no app named '${ref}'`, { app: ref })
  const distinct = [...new Set(named.map((a) => getAddress(a.app)))]
  if (distinct.length > 1) throw new HttpError(409, 'APP_NAME_AMBIGUOUS', `this node registered ${distinct.length} apps named '${ref}' (${distinct.join(', ')}): name one by its address`, { app: ref, candidates: distinct })
  return distinct[0]
}

function restrictionOf (b: Record<string, unknown>, field: string): string {
  return addressOf(b[field], field) ?? ZERO_ADDRESS
}

/** Refuses an order the hub already counts closed (a salt used before, then cancelled or consumed). */
async function notClosed (m: MarketService, hash: string, volume: bigint): Promise<void> {
  const dropped = await m.book.dropped(hash)
  const consumed = await m.hub.consumedOf(hash)
  if (dropped === 'cancelled' || dropped === 'consumed' || consumed >= volume) {
    throw new HttpError(409, 'ORDER_CLOSED', `order ${hash} was already cancelled or consumed on the hub: use another salt`, { orderHash: hash })
  }
}

function datasetOrderRecord (hash: string, o: DatasetOrder & { sign: string }): SignedDatasetOrderRecord {
  return {
    orderHash: hash, dataset: o.dataset, datasetprice: o.datasetprice.toString(), volume: o.volume.toString(), tag: o.tag,
    apprestrict: o.apprestrict, workerpoolrestrict: o.workerpoolrestrict, requesterrestrict: o.requesterrestrict, salt: o.salt, sign: o.sign
  }
}

async function publishApp (m: MarketService, b: Record<string, unknown>, now: number): Promise<unknown> {
  const price = priceOf(b.price, 'price') ?? 0n
  const volume = volumeOf(b.volume, 1_000_000n)
  const tags = tagList(b.tags)
  const datasetrestrict = restrictionOf(b, 'datasetrestrict')
  const workerpoolrestrict = restrictionOf(b, 'workerpoolrestrict')
  const requesterrestrict = restrictionOf(b, 'requesterrestrict')
  const salt = saltOf(b, now) ?? saltWithExpiry(0)
  const app = await ownApp(m, b.app)
  if (datasetrestrict !== ZERO_ADDRESS) await checkDatasets(m, [datasetrestrict])
  const order: AppOrder = { app, appprice: price, volume, tag: tags.tag, datasetrestrict, workerpoolrestrict, requesterrestrict, salt }
  const hash = hashOrder(m.domain, 'AppOrder', order).toLowerCase()
  await notClosed(m, hash, volume)
  const { sign } = await signOrder(m.signer, m.domain, 'AppOrder', order)
  await m.publishOwn('apporder', orderMessage('apporder', m.domain, order, sign))
  return { type: 'app', orderHash: hash, tags: tags.names, ...expiryField(salt), order: stringFields({ ...order, sign }) }
}

async function publishDataset (m: MarketService, store: DatasetStore, b: Record<string, unknown>, now: number): Promise<unknown> {
  const dataset = addressOf(b.dataset, 'dataset')
  if (dataset === undefined) throw bad('dataset', 'is required')
  const price = priceOf(b.price, 'price')
  if (price === undefined) throw bad('price', 'is required (0 for a free dataset)')
  const volume = volumeOf(b.volume, 1_000_000n)
  const tags = tagList(b.tags)
  if (b.anyApp !== undefined && b.anyApp !== true) throw bad('anyApp', 'must be true when given')
  if (b.apprestrict !== undefined && b.anyApp === true) throw bad('apprestrict', 'and anyApp exclude each other')
  if (b.apprestrict === undefined && b.anyApp !== true) {
    throw new HttpError(400, 'DATASET_APPS_REQUIRED', 'choose which app may read the dataset: apprestrict (an app address or name) or anyApp: true (any app, including one that copies the data to its result)', { field: 'apprestrict' })
  }
  if (b.apprestrict !== undefined && (typeof b.apprestrict !== 'string' || b.apprestrict.length === 0 || b.apprestrict.length > 64)) throw bad('apprestrict', 'must be an app address or name')
  const workerpoolrestrict = restrictionOf(b, 'workerpoolrestrict')
  const requesterrestrict = restrictionOf(b, 'requesterrestrict')
  const salt = saltOf(b, now) ?? saltWithExpiry(0)
  ownerCheck(m, await m.ctx.owners.ownerOf('dataset', dataset), 'dataset', dataset)
  const record = await store.get(dataset)
  if (record === undefined || record.unpublishedAt !== undefined) {
    throw new HttpError(403, 'DATASET_NOT_OWNED', `dataset ${dataset} is not published by this node (its key is not here): \`dataset publish\` it first`, { dataset })
  }
  const apprestrict = typeof b.apprestrict === 'string' ? (await resolveAllowedApps(m, [b.apprestrict]))[0] : ZERO_ADDRESS
  const order: DatasetOrder = { dataset, datasetprice: price, volume, tag: tags.tag, apprestrict, workerpoolrestrict, requesterrestrict, salt }
  const hash = hashOrder(m.domain, 'DatasetOrder', order).toLowerCase()
  await notClosed(m, hash, volume)
  const { sign } = await signOrder(m.signer, m.domain, 'DatasetOrder', order)
  // recorded before it is gossiped: the key release allows what the recorded orders allow
  if (!record.orders.some((o) => o.orderHash === hash)) {
    record.orders.push(datasetOrderRecord(hash, { ...order, sign }))
    await store.put(record)
  }
  await m.publishOwn('datasetorder', orderMessage('datasetorder', m.domain, order, sign))
  return { type: 'dataset', orderHash: hash, tags: tags.names, ...(apprestrict === ZERO_ADDRESS ? { anyApp: true } : {}), ...expiryField(salt), order: stringFields({ ...order, sign }) }
}

async function publishRequest (m: MarketService, b: Record<string, unknown>, now: number): Promise<unknown> {
  if (typeof b.app !== 'string' || b.app.length === 0 || b.app.length > 64) throw bad('app', 'must be an app address or name')
  const p: SubmitRequestParams = { app: b.app }
  const dataset = addressOf(b.dataset, 'dataset')
  if (dataset !== undefined) p.dataset = dataset
  if (b.args !== undefined) {
    if (typeof b.args !== 'string' || b.args.length > 4096) throw bad('args', 'must be a string of at most 4096 characters')
    p.args = b.args
  }
  if (b.inputs !== undefined) {
    if (!Array.isArray(b.inputs) || b.inputs.length > 64 || !b.inputs.every((s) => typeof s === 'string' && s.length > 0 && s.length <= 256)) throw bad('inputs', 'must be a list of at most 64 CIDs')
    p.inputs = b.inputs as string[]
  }
  if (b.tags !== undefined) {
    if (!Array.isArray(b.tags) || b.tags.length > 16 || !b.tags.every((s) => typeof s === 'string' && s.length > 0 && s.length <= 64)) throw bad('tags', 'must be a list of at most 16 tags')
    p.tags = b.tags as string[]
  }
  const volume = intOf(b.volume, 'volume', 1, 10_000)
  if (volume !== undefined) p.volume = volume
  const category = intOf(b.category, 'category', 0, 1_000_000)
  if (category !== undefined) p.category = category
  const trust = intOf(b.trust, 'trust', 1, 255)
  if (trust !== undefined) p.trust = trust
  const window = intOf(b.biddingWindowMs, 'biddingWindowMs', 1, 600_000)
  if (window !== undefined) p.biddingWindowMs = window
  const maxPrice = priceOf(b.workerpoolmaxprice, 'workerpoolmaxprice')
  if (maxPrice !== undefined) p.maxPrice = maxPrice
  const beneficiary = addressOf(b.beneficiary, 'beneficiary')
  if (beneficiary !== undefined) p.beneficiary = beneficiary
  const o: RequestOrderOverrides = {}
  const workerpool = addressOf(b.workerpool, 'workerpool')
  if (workerpool !== undefined) o.workerpool = workerpool
  const callback = addressOf(b.callback, 'callback')
  if (callback !== undefined) o.callback = callback
  const appmaxprice = priceOf(b.appmaxprice, 'appmaxprice')
  if (appmaxprice !== undefined) o.appmaxprice = appmaxprice
  const datasetmaxprice = priceOf(b.datasetmaxprice, 'datasetmaxprice')
  if (datasetmaxprice !== undefined) {
    if (dataset === undefined) throw bad('datasetmaxprice', 'needs a dataset')
    o.datasetmaxprice = datasetmaxprice
  }
  const salt = saltOf(b, now)
  if (salt !== undefined) {
    const e = expiryOfSalt(salt)
    // bids come within the window and the match right after: an expiry inside it would only waste them
    const windowEnd = BigInt(now) + BigInt(Math.ceil((window ?? m.options.biddingWindowMs) / 1000)) + 60n
    if (e !== undefined && e < windowEnd) {
      throw new HttpError(400, 'ORDER_EXPIRY_TOO_SOON', `a request order must live past its bidding window and match: expire it at ${windowEnd} (unix seconds) or later`, { expiresAt: e.toString(), earliest: windowEnd.toString() })
    }
    o.salt = salt
  }
  if (Object.keys(o).length > 0) p.order = o
  const r = await m.requester.submit(p)
  return {
    type: 'request', orderHash: r.requestHash, dealId: r.dealId, txHash: r.txHash, scheduler: r.scheduler, workers: r.workers, tasks: r.tasks,
    maxPrice: r.maxPrice.toString(), ...(salt !== undefined ? expiryField(salt) : {})
  }
}

function expiryField (salt: string): { expiresAt?: string } {
  const e = expiryOfSalt(salt)
  return e !== undefined ? { expiresAt: e.toString() } : {}
}

function stringFields (o: object): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(o)) out[k] = typeof v === 'bigint' ? v.toString(10) : String(v)
  return out
}

function mine (m: MarketService, e: OrderbookEntry): boolean {
  return e.signer.toLowerCase() === m.address.toLowerCase()
}

async function unpublish (m: MarketService, b: Record<string, unknown>): Promise<unknown> {
  const given = ['orderHash', 'app', 'dataset'].filter((k) => b[k] !== undefined)
  if (given.length !== 1) throw bad('body', 'needs exactly one of orderHash, app (all its orders) or dataset (all its orders)')
  if (b.orderHash !== undefined) {
    const h = b.orderHash
    if (typeof h !== 'string' || !isHexString(h, 32)) throw bad('orderHash', 'must be 0x and 64 hex digits')
    const e = await m.book.get(h)
    if (e === undefined) {
      const why = await m.book.dropped(h)
      if (why !== undefined) throw new HttpError(409, 'ORDER_CLOSED', `order ${h.toLowerCase()} is no longer live (${why})`, { orderHash: h.toLowerCase(), reason: why })
      throw new HttpError(404, 'ORDER_NOT_FOUND', `no live order ${h.toLowerCase()} in this node's orderbook`, { orderHash: h.toLowerCase() })
    }
    // checked here, not left to the hub's revert: nothing is sent
    if (!mine(m, e)) throw new HttpError(403, 'NOT_ORDER_OWNER', `order ${e.hash} was signed by ${getAddress(e.signer)}, not by this node (${m.address})`, { orderHash: e.hash, signer: getAddress(e.signer) })
    return { cancelled: [await cancelOrderOnChain(m, e)] }
  }
  const kind = b.app !== undefined ? 'app' : 'dataset'
  const asset = addressOf(b[kind], kind) as string
  ownerCheck(m, await m.ctx.owners.ownerOf(kind, asset), kind, asset)
  const live = (await m.book.query(kind === 'app' ? { type: 'apporder', app: asset } : { type: 'datasetorder', dataset: asset })).filter((e) => mine(m, e)).slice(0, MAX_UNPUBLISH)
  const cancelled = []
  for (const e of live) cancelled.push(await cancelOrderOnChain(m, e))
  return { [kind]: asset, cancelled }
}

export function orderRoutes (deps: OrderRoutesDeps): ApiRoute[] {
  const need = (): MarketService => {
    const m = deps.market()
    if (m === undefined || !m.started) throw new HttpError(503, 'CHAIN_NOT_CONFIGURED', 'this node has no chain settings (config.json chain.rpc and chain.hub): the market is off')
    return m
  }
  const now = (): number => deps.nowSeconds?.() ?? Math.floor(Date.now() / 1000)
  return [
    {
      method: 'POST',
      path: '/v1/orders/publish',
      handler: wrap(async (req) => {
        const m = need()
        const b = bodyOf(req)
        switch (b.type) {
          case 'app': return await publishApp(m, b, now())
          case 'dataset': return await publishDataset(m, deps.datasets, b, now())
          case 'request': return await publishRequest(m, b, now())
          default: throw bad('type', 'must be app, dataset or request')
        }
      })
    },
    { method: 'POST', path: '/v1/orders/unpublish', handler: wrap(async (req) => await unpublish(need(), bodyOf(req))) }
  ]
}
