/**
 * Gossip validation of the market topics: pure async functions, one per
 * message type. Each returns the validated message or throws a
 * GossipValidationError whose action (IGNORE or REJECT) tells gossipsub
 * whether to punish the sender. Nothing here touches the network, the chain
 * or the store: every fact from outside comes through the injected lookups
 * of the context.
 *
 * Checks run cheapest first, so junk costs as little as possible: size and
 * decoding, domain, hashing, de-duplication, expiry, then one signature
 * recovery (CPU), then lookups (may cost an RPC call, cached).
 */
import { ZERO_ADDRESS, hashOrder } from '../../protocols/eip712.js'
import { recoverDigestSigner } from '../../protocols/secp256k1.js'
import type { AppOrder, Bid, DatasetOrder, HubDomain, OrderKind, RequestOrder } from '../../protocols/eip712.js'
import { KIND_OF_TYPE, MarketWireError, decodeMarketMessage, expiryOfSalt, recoverCancelSigner } from '../../protocols/market.js'
import type { CancelMessage, MarketMessageType, MessageByType, OrderMessage } from '../../protocols/market.js'
import { GossipValidationError } from './errors.js'
import type { GossipValidationCode } from './errors.js'
import type { AssetOwnerLookup, Clock, OrderState, OrderStateLookup, RequestLookup, SeenSet } from './lookups.js'
import type { BalanceLookup } from './balances.js'

/** Everything a validator needs besides the bytes. */
export interface MarketValidationContext {
  /** OUR chain's hub domain: any other claimed domain is rejected */
  domain: HubDomain
  clock: Clock
  owners: AssetOwnerLookup
  orderState: OrderStateLookup
  requests: RequestLookup
  /** accepted keys; a validator adds to it only on accept */
  seen: SeenSet
  /** requesters' hub balances from the hub's events (absent: requests are not checked for funds) */
  balances?: BalanceLookup
  /** signer addresses banned here (absent: none) */
  bannedSigner?: (address: string) => boolean
}

/** An accepted order or bid. */
export interface ValidatedOrder<T extends OrderMessage = OrderMessage> {
  message: T
  /** EIP-712 digest under our domain (the hub's order hash) */
  hash: string
  /** the address the signature recovers (or the presigning owner) */
  signer: string
  /** unix seconds from the salt, when the order has an expiry */
  expiresAt?: bigint
  /** volume the hub had consumed when the order was validated */
  consumed?: bigint
}

/** An accepted cancel. */
export interface ValidatedCancel {
  message: CancelMessage
  orderHash: string
  /** set for a signed cancel: the cancelled order's kind and its canceller */
  orderKind?: OrderKind
  signer?: string
}

export type ValidatedMessage<T extends MarketMessageType> = T extends 'cancel' ? ValidatedCancel : ValidatedOrder<MessageByType[T] & OrderMessage>

function fail (code: GossipValidationCode, message: string, details?: Record<string, unknown>, cause?: unknown): GossipValidationError {
  return new GossipValidationError(code, message, details, cause !== undefined ? { cause } : undefined)
}

/** Runs an injected lookup; its failure is ours, not the sender's (IGNORE). */
async function lookup<T> (what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw fail('GOSSIP_LOOKUP_FAILED', `${what} lookup failed`, { what }, err)
  }
}

/** Bytes to a typed message; the wire error's code decides the action. */
function decode<T extends MarketMessageType> (bytes: Uint8Array, type: T): MessageByType[T] {
  try {
    return decodeMarketMessage(bytes, type)
  } catch (err) {
    if (err instanceof MarketWireError) {
      switch (err.code) {
        // a peer that floods oversized messages is misbehaving whatever they hold
        case 'WIRE_TOO_LARGE': throw fail('GOSSIP_TOO_LARGE', err.message, err.details, err)
        case 'WIRE_MALFORMED': throw fail('GOSSIP_MALFORMED', err.message, err.details, err)
        // a newer version is not an attack: drop it without punishing (upgrades roll out unevenly)
        case 'WIRE_BAD_VERSION': throw fail('GOSSIP_BAD_VERSION', err.message, err.details, err)
        case 'WIRE_WRONG_TYPE': throw fail('GOSSIP_WRONG_TYPE', err.message, err.details, err)
        case 'WIRE_INVALID': throw fail('GOSSIP_INVALID_FIELD', err.message, err.details, err)
      }
    }
    // anything else from the decoder is still a message we cannot read
    throw fail('GOSSIP_MALFORMED', 'undecodable message', undefined, err)
  }
}

/**
 * Rule: an order is only meaningful on the chain and hub whose domain it was
 * signed under. A message claiming another domain is REJECTED before any
 * signature work (it cannot be matched here, and relaying it spreads junk).
 */
function checkDomain (msg: { chainId: bigint, hub: string }, domain: HubDomain): void {
  if (msg.chainId !== domain.chainId) throw fail('GOSSIP_WRONG_CHAIN', `chain id ${msg.chainId} is not ${domain.chainId}`, { chainId: msg.chainId.toString() })
  if (msg.hub.toLowerCase() !== domain.verifyingContract.toLowerCase()) throw fail('GOSSIP_WRONG_HUB', `hub ${msg.hub} is not ${domain.verifyingContract}`, { hub: msg.hub })
}

/** Who must have signed an order of this kind; undefined owner = unknown asset. */
async function rightfulSigner (ctx: MarketValidationContext, kind: OrderKind, order: AppOrder | DatasetOrder | RequestOrder | Bid): Promise<string> {
  switch (kind) {
    case 'AppOrder': {
      // Rule (PoCo): an app order is valid only when signed by the app's registered owner
      const app = (order as AppOrder).app
      const owner = await lookup('app owner', async () => await ctx.owners.ownerOf('app', app))
      if (owner === undefined) throw fail('GOSSIP_UNKNOWN_ASSET', `app ${app} is not registered`, { app })
      return owner
    }
    case 'DatasetOrder': {
      // Rule (PoCo): likewise for the dataset's owner
      const dataset = (order as DatasetOrder).dataset
      const owner = await lookup('dataset owner', async () => await ctx.owners.ownerOf('dataset', dataset))
      if (owner === undefined) throw fail('GOSSIP_UNKNOWN_ASSET', `dataset ${dataset} is not registered`, { dataset })
      return owner
    }
    // Rule (PoCo): a request is signed by its requester, a bid by its worker
    case 'RequestOrder': return (order as RequestOrder).requester
    case 'Bid': return (order as Bid).worker
  }
}

/**
 * Rule: the signature must recover the rightful signer under OUR domain
 * (forged = REJECT). '0x' means presigned on chain: accepted only once the
 * hub shows the presign (IGNORE until then: it may not be mined yet).
 */
async function checkSignature (ctx: MarketValidationContext, kind: OrderKind, order: AppOrder | DatasetOrder | RequestOrder | Bid, sign: string, hash: string, state: () => Promise<OrderState>): Promise<string> {
  if (sign === '0x') {
    const s = await state()
    if (!s.presigned) throw fail('GOSSIP_NOT_PRESIGNED', `order ${hash} has no signature and is not presigned`, { hash })
    return await rightfulSigner(ctx, kind, order)
  }
  let recovered: string
  try {
    // the digest is already computed (it is the order hash): recover from it
    // rather than re-encoding the typed data (recoverOrderSigner would); as
    // strict as the hub (v 27 or 28, low s): what it would refuse is forged here
    recovered = recoverDigestSigner(hash, sign)
  } catch (err) {
    throw fail('GOSSIP_BAD_SIGNATURE', `the ${kind} signature does not recover`, { hash }, err)
  }
  const expected = await rightfulSigner(ctx, kind, order)
  if (recovered.toLowerCase() !== expected.toLowerCase()) {
    throw fail('GOSSIP_BAD_SIGNATURE', `the ${kind} is signed by ${recovered}, not by ${expected}`, { hash, recovered, expected })
  }
  return expected
}

/** The validation every order and bid shares. */
async function validateOrderMessage<T extends Exclude<MarketMessageType, 'cancel'>> (type: T, bytes: Uint8Array, ctx: MarketValidationContext): Promise<ValidatedOrder<MessageByType[T]>> {
  // Rule: decodable, within the topic's size bound, exact schema, the topic's type
  const msg = decode(bytes, type)
  // Rule: our chain and hub only
  checkDomain(msg, ctx.domain)
  const kind = KIND_OF_TYPE[type]
  const order = msg.order
  const hash = hashOrder(ctx.domain, kind, order as never)

  // Rule: each order once; a replay (same hash, whoever relays it) is IGNORED.
  // The hash excludes the signature, so a replay with another signature is a
  // duplicate too: we keep the first, verified one.
  if (ctx.seen.has(hash)) throw fail('GOSSIP_DUPLICATE', `${kind} ${hash} already seen`, { hash })

  // Rule: the hub refuses volume 0 orders and bids (nothing to consume): REJECT, no honest node sends one
  if (order.volume === 0n) throw fail('GOSSIP_ZERO_VOLUME', `${kind} ${hash} has volume 0`, { hash })
  if (kind === 'RequestOrder') {
    const r = order as RequestOrder
    // Rule (Hub.matchOrders): trust in 1..255, and a zero requester can sign nothing
    if (r.trust === 0n || r.trust > 255n) throw fail('GOSSIP_BAD_REQUEST', `trust ${r.trust} is outside 1..255`, { hash, field: 'trust' })
    if (r.requester === ZERO_ADDRESS) throw fail('GOSSIP_BAD_REQUEST', 'requester is the zero address', { hash, field: 'requester' })
  }

  // Rule: the expiry signed into the salt has not passed (stale, not forged: IGNORE)
  const expiresAt = expiryOfSalt(order.salt)
  if (expiresAt !== undefined && expiresAt <= BigInt(ctx.clock.nowSeconds())) {
    throw fail('GOSSIP_EXPIRED', `${kind} ${hash} expired at ${expiresAt}`, { hash, expiresAt: expiresAt.toString() })
  }

  // one state lookup per message at most, shared by the presign and volume checks
  let state: OrderState | undefined
  const getState = async (): Promise<OrderState> => {
    state ??= await lookup('order state', async () => await ctx.orderState.orderState(hash, {
      kind, order, signed: msg.sign !== '0x', ...(expiresAt !== undefined ? { expiresAt } : {})
    }))
    return state
  }

  // Rule: signed by the rightful party under our domain
  const signer = await checkSignature(ctx, kind, order, msg.sign, hash, getState)

  // Rule: an address banned here for what it signed is not heard, whoever relays it (IGNORE: the relay may not know)
  if (ctx.bannedSigner?.(signer) === true) throw fail('GOSSIP_BANNED_SIGNER', `${kind} ${hash} is signed by a banned address`, { hash, signer })

  if (kind === 'RequestOrder' && ctx.balances !== undefined) {
    const r = order as RequestOrder
    // Rule: the requester's hub balance covers the request, volume x its max prices (the hub freezes
    // volume x the prices at the match), and is not empty: unfunded requests are neither relayed nor
    // bid on. IGNORE: our view of the hub's events may lag a deposit; the relaying peer's count of
    // them still grows (gossip-adapter.ts), since no node that saw it unfunded forwards it.
    const cost = r.volume * (r.appmaxprice + r.datasetmaxprice + r.workerpoolmaxprice)
    const funded = await lookup('requester balance', async () => await (ctx.balances as BalanceLookup).covers(r.requester, cost))
    if (!funded) throw fail('GOSSIP_UNFUNDED', `request ${hash}: the requester's hub balance does not cover ${cost} nRLC`, { hash, signer, cost: cost.toString() })
  }

  if (kind === 'Bid') {
    const bid = order as Bid
    // Rule: a bid answers a request this node holds (a bid travels after its
    // request, so an unknown one is stale or spam; not provably forged: IGNORE)
    const request = await lookup('request order', async () => await ctx.requests.requestOrder(bid.requestHash))
    if (request === undefined) throw fail('GOSSIP_BID_UNKNOWN_REQUEST', `no request ${bid.requestHash}`, { hash, requestHash: bid.requestHash })
    // Rule (Hub.matchOrders): price <= workerpoolmaxprice and the worker passes the request's restriction;
    // the worker signed a bid the hub can never accept: REJECT
    if (bid.price > request.workerpoolmaxprice) {
      throw fail('GOSSIP_BID_PRICE_ABOVE_MAX', `bid price ${bid.price} > max ${request.workerpoolmaxprice}`, { hash, signer, price: bid.price.toString() })
    }
    if (request.workerpool !== ZERO_ADDRESS && request.workerpool.toLowerCase() !== bid.worker.toLowerCase()) {
      throw fail('GOSSIP_BID_WORKER_RESTRICTED', `the request restricts workers to ${request.workerpool}`, { hash, signer, worker: bid.worker })
    }
  }

  // Rule: cancelled or fully consumed orders are dead: IGNORE (they were valid once)
  const s = await getState()
  if (s.cancelled) throw fail('GOSSIP_CANCELLED', `${kind} ${hash} is cancelled`, { hash })
  if (s.consumed >= order.volume) throw fail('GOSSIP_CONSUMED', `${kind} ${hash} is consumed (${s.consumed}/${order.volume})`, { hash })

  ctx.seen.add(hash)
  const out: ValidatedOrder<MessageByType[T]> = { message: msg, hash, signer, consumed: s.consumed }
  if (expiresAt !== undefined) out.expiresAt = expiresAt
  return out
}

/** Validates an app order from the apporder topic. @throws GossipValidationError */
export async function validateAppOrderGossip (bytes: Uint8Array, ctx: MarketValidationContext): Promise<ValidatedOrder<MessageByType['apporder']>> {
  return await validateOrderMessage('apporder', bytes, ctx)
}

/** Validates a dataset order from the datasetorder topic. @throws GossipValidationError */
export async function validateDatasetOrderGossip (bytes: Uint8Array, ctx: MarketValidationContext): Promise<ValidatedOrder<MessageByType['datasetorder']>> {
  return await validateOrderMessage('datasetorder', bytes, ctx)
}

/** Validates a request order from the requestorder topic. @throws GossipValidationError */
export async function validateRequestOrderGossip (bytes: Uint8Array, ctx: MarketValidationContext): Promise<ValidatedOrder<MessageByType['requestorder']>> {
  return await validateOrderMessage('requestorder', bytes, ctx)
}

/** Validates a bid from the bid topic or the bid stream. @throws GossipValidationError */
export async function validateBidGossip (bytes: Uint8Array, ctx: MarketValidationContext): Promise<ValidatedOrder<MessageByType['bid']>> {
  return await validateOrderMessage('bid', bytes, ctx)
}

/** Validates a cancel from the cancel topic. @throws GossipValidationError */
export async function validateCancelGossip (bytes: Uint8Array, ctx: MarketValidationContext): Promise<ValidatedCancel> {
  // Rule: decodable, within size, exact schema
  const msg = decode(bytes, 'cancel')
  // Rule: our chain and hub only
  checkDomain(msg, ctx.domain)
  const proof = msg.proof

  if (proof.kind === 'onchain') {
    const orderHash = proof.orderHash
    const key = `cancel:${orderHash}`
    // Rule: each cancel once
    if (ctx.seen.has(key)) throw fail('GOSSIP_DUPLICATE', `cancel of ${orderHash} already seen`, { hash: orderHash })
    // Rule: an on-chain cancel is only as good as the hub's record of it; our
    // view may lag a block behind the sender's: IGNORE, not REJECT
    const s = await lookup('order state', async () => await ctx.orderState.orderState(orderHash))
    if (!s.cancelled) throw fail('GOSSIP_CANCEL_NOT_ON_CHAIN', `the hub shows no cancel of ${orderHash}`, { hash: orderHash })
    ctx.seen.add(key)
    return { message: msg, orderHash }
  }

  const orderHash = hashOrder(ctx.domain, proof.orderKind, proof.order as never)
  const key = `cancel:${orderHash}`
  if (ctx.seen.has(key)) throw fail('GOSSIP_DUPLICATE', `cancel of ${orderHash} already seen`, { hash: orderHash })
  // Rule: only the party that may cancel on chain (the hub's cancel* functions:
  // the asset owner, the requester, the worker) may cancel over gossip; anything
  // else is a forged cancel, which would censor someone's order: REJECT
  let recovered: string
  try {
    recovered = recoverCancelSigner(ctx.domain, orderHash, proof.cancelSign)
  } catch (err) {
    throw fail('GOSSIP_CANCEL_BAD_SIGNATURE', 'the cancel signature does not recover', { hash: orderHash }, err)
  }
  const expected = await rightfulSigner(ctx, proof.orderKind, proof.order)
  if (recovered.toLowerCase() !== expected.toLowerCase()) {
    throw fail('GOSSIP_CANCEL_BAD_SIGNATURE', `the cancel is signed by ${recovered}, not by ${expected}`, { hash: orderHash, recovered, expected })
  }
  ctx.seen.add(key)
  return { message: msg, orderHash, orderKind: proof.orderKind, signer: expected }
}

/** The validator of each message type. */
export const VALIDATORS: { [T in MarketMessageType]: (bytes: Uint8Array, ctx: MarketValidationContext) => Promise<ValidatedMessage<T>> } = {
  apporder: validateAppOrderGossip as (bytes: Uint8Array, ctx: MarketValidationContext) => Promise<ValidatedMessage<'apporder'>>,
  datasetorder: validateDatasetOrderGossip as (bytes: Uint8Array, ctx: MarketValidationContext) => Promise<ValidatedMessage<'datasetorder'>>,
  requestorder: validateRequestOrderGossip as (bytes: Uint8Array, ctx: MarketValidationContext) => Promise<ValidatedMessage<'requestorder'>>,
  bid: validateBidGossip as (bytes: Uint8Array, ctx: MarketValidationContext) => Promise<ValidatedMessage<'bid'>>,
  cancel: validateCancelGossip
}

/** Validates a message of any type (dispatches on `type`). @throws GossipValidationError */
export async function validateMarketGossip<T extends MarketMessageType> (type: T, bytes: Uint8Array, ctx: MarketValidationContext): Promise<ValidatedMessage<T>> {
  return await (VALIDATORS[type] as (bytes: Uint8Array, ctx: MarketValidationContext) => Promise<ValidatedMessage<T>>)(bytes, ctx)
}
