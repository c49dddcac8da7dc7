/**
 * Whether a provider bids on a request order: a pluggable strategy that
 * answers `{ bid, reason, code }` so a requester with no bids can say why
 * (Bacalhau's bid strategies return `{shouldBid, reason}` the same way).
 * The reasons are the phrases a requester shows; the codes cross the wire in
 * a BidDecline (protocols/market.ts).
 */
import { ZERO_ADDRESS } from '../../protocols/eip712.js'
import type { RequestOrder } from '../../protocols/eip712.js'
import { decodeTags, parseRequestParams } from '../../protocols/market.js'
import type { BidDeclineCode } from '../../protocols/market.js'
import type { Resources } from '../../protocols/resources.js'
import type { ProviderProfile } from './options.js'

/** Resources a category needs from each worker (memory and disk: the hub's bounds of each run, MiB). */
export interface CategoryNeeds extends Pick<Resources, 'cpus' | 'memoryMb' | 'diskMb'> {
  /** seconds: each run's time bound */
  timeRef?: number
}

/** What the provider knows when it decides (facts from its config, the chain and its executor). */
export interface BidContext {
  /** memoryMb and diskMb: the most one run may take here (the provider's advertised maxima) */
  provider: ProviderProfile & Pick<Resources, 'cpus' | 'memoryMb' | 'diskMb'>
  /** the provider's wallet address (the bid's `worker`) */
  worker: string
  /** what the request's category needs; undefined = the category is unknown to this node */
  categoryNeeds?: CategoryNeeds
  /** the executor kind the request's app needs ('wasi', 'docker'); undefined = the app is not known on chain */
  appExecutor?: string
  /** why this provider's executor cannot run the app's module (checked once per app: fetched, hashed, checkWasiModule); undefined when it can or the check has no verdict yet */
  appProblem?: string
  /** stake not locked nor pending unstake, nRLC */
  freeStake: bigint
  /** the hub's WORKER_STAKE_RATIO, percent of the task price locked per task */
  workerStakeRatio: bigint
  /** tasks this node can still take on now */
  freeSlots: number
  /** volume of the request still unmatched (consumedOf); defaults to its volume */
  remainingVolume?: bigint
}

export type BidDecision =
  | { bid: true, code: 'OK', reason: string, price: bigint, volume: bigint }
  | { bid: false, code: BidDeclineCode, reason: string }

/** A bid strategy; may be async (e.g. to ask a remote policy). */
export type BidStrategy = (request: RequestOrder, ctx: BidContext) => BidDecision | Promise<BidDecision>

function no (code: BidDeclineCode, reason: string): BidDecision {
  return { bid: false, code, reason }
}

/**
 * The default strategy. Checks in the order a requester can act on: a
 * malformed request first, then what no price can fix (category, resources,
 * tags, app, restriction), then the price, then this node's own state
 * (stake, capacity). Bids its price floor, for the request's whole remaining
 * volume.
 */
export const defaultBidStrategy: BidStrategy = (request, ctx) => {
  const p = ctx.provider
  // the request's params carry free-form required tags: unreadable params = no bid
  let freeTags: string[]
  try {
    freeTags = parseRequestParams(request.params).iexec_p2p_tags ?? []
  } catch {
    return no('BAD_PARAMS', 'request params are not valid')
  }

  // the provider serves only the categories it declares (its resources and time bound)
  const category = Number(request.category)
  if (!p.categories.includes(category)) return no('NO_CATEGORY', `no provider for the category ${request.category}`)
  const needs = ctx.categoryNeeds
  if (needs !== undefined && (p.cpus < needs.cpus || p.memoryMb < needs.memoryMb || (needs.diskMb !== undefined && p.diskMb !== undefined && p.diskMb < needs.diskMb))) {
    const disk = needs.diskMb !== undefined ? `, ${needs.diskMb} MiB of disk` : ''
    const has = `has ${p.cpus} cpus, ${p.memoryMb} MiB${p.diskMb !== undefined ? `, ${p.diskMb} MiB of disk` : ''}`
    return no('RESOURCES_TOO_SMALL', `resources too small for the category ${request.category} (needs ${needs.cpus} cpus, ${needs.memoryMb} MiB${disk}; ${has})`)
  }

  // every required tag (tag bits and free-form tags) must be among the provider's
  const { names, unknownBits } = decodeTags(request.tag)
  if (unknownBits !== 0n) return no('TAG_MISSING', `required tag bits unknown to this provider (0x${unknownBits.toString(16)})`)
  const missing = [...names, ...freeTags].filter((t) => !p.tags.includes(t))
  if (missing.length > 0) return no('TAG_MISSING', `required tags not offered: ${missing.join(', ')}`)

  // the app must be registered and of a kind one of our executors runs
  if (ctx.appExecutor === undefined) return no('APP_NOT_RUNNABLE', 'app not runnable (not registered)')
  if (!p.executors.includes(ctx.appExecutor)) return no('APP_NOT_RUNNABLE', `app not runnable (needs the ${ctx.appExecutor} executor)`)
  if (ctx.appProblem !== undefined) return no('APP_NOT_RUNNABLE', `app not runnable: ${ctx.appProblem}`)

  // the request may name the one worker it accepts (the hub's workerpool restriction)
  if (request.workerpool !== ZERO_ADDRESS && request.workerpool.toLowerCase() !== ctx.worker.toLowerCase()) {
    return no('WORKER_RESTRICTED', 'the request is restricted to another worker')
  }

  // price: the requester's max per task must reach our floor; we bid the floor (cheapest bids win)
  if (request.workerpoolmaxprice < p.priceFloor) return no('PRICE_TOO_LOW', `price too low (max ${request.workerpoolmaxprice} < floor ${p.priceFloor} nRLC)`)

  const volume = ctx.remainingVolume ?? request.volume
  if (volume <= 0n) return no('NO_CAPACITY', 'nothing left to bid on (request consumed)')
  // the hub locks price * ratio / 100 per task of the deal: our free stake must cover the volume we bid for
  const stakeNeeded = volume * (p.priceFloor * ctx.workerStakeRatio / 100n)
  if (ctx.freeStake < stakeNeeded) return no('STAKE_TOO_LOW', `stake too low (needs ${stakeNeeded}, free ${ctx.freeStake} nRLC)`)

  if (ctx.freeSlots <= 0) return no('NO_CAPACITY', 'no free capacity')

  return { bid: true, code: 'OK', reason: `bidding ${p.priceFloor} nRLC per task`, price: p.priceFloor, volume }
}
