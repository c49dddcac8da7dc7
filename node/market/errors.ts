import { IexecError } from '../common/errors.js'

/**
 * What gossipsub must do with a message that failed validation.
 * - REJECT: the message is invalid whoever sends it (forged, malformed, for
 *   another chain): not forwarded, and the sender's P4 score drops.
 * - IGNORE: valid once, stale or unverifiable now (expired, consumed,
 *   duplicate, our own lookup failed): not forwarded, nobody is punished.
 */
export type GossipAction = 'IGNORE' | 'REJECT'

/** Codes of gossip validation failures; each has a fixed action (GOSSIP_ACTIONS). */
export type GossipValidationCode =
  /** larger than the topic's MAX_MESSAGE_BYTES */
  | 'GOSSIP_TOO_LARGE'
  /** not UTF-8 JSON, or not an object */
  | 'GOSSIP_MALFORMED'
  /** a wire version this node does not speak (a newer peer is not punished) */
  | 'GOSSIP_BAD_VERSION'
  /** the message's type is not the topic's */
  | 'GOSSIP_WRONG_TYPE'
  /** a field is missing, unknown or out of range */
  | 'GOSSIP_INVALID_FIELD'
  /** the claimed EIP-712 domain is another chain's */
  | 'GOSSIP_WRONG_CHAIN'
  /** the claimed EIP-712 domain is another hub's */
  | 'GOSSIP_WRONG_HUB'
  /** this order (by hash) or cancel was already accepted */
  | 'GOSSIP_DUPLICATE'
  /** the expiry in the salt has passed */
  | 'GOSSIP_EXPIRED'
  /** the signature does not recover, or recovers another address than the order's rightful signer */
  | 'GOSSIP_BAD_SIGNATURE'
  /** sign is '0x' but the hub has no presign for the hash (yet) */
  | 'GOSSIP_NOT_PRESIGNED'
  /** the app or dataset is not registered on the hub (as far as our chain view goes) */
  | 'GOSSIP_UNKNOWN_ASSET'
  /** volume 0: the order can never be matched */
  | 'GOSSIP_ZERO_VOLUME'
  /** a request's trust is outside 1..255 or its requester is the zero address: the hub would refuse it */
  | 'GOSSIP_BAD_REQUEST'
  /** the hub says the whole volume is consumed */
  | 'GOSSIP_CONSUMED'
  /** the order was cancelled (on chain or by an accepted gossip cancel) */
  | 'GOSSIP_CANCELLED'
  /** a bid for a request this node does not hold */
  | 'GOSSIP_BID_UNKNOWN_REQUEST'
  /** a bid above the request's workerpoolmaxprice: the hub would refuse it */
  | 'GOSSIP_BID_PRICE_ABOVE_MAX'
  /** a bid by a worker the request restricts out */
  | 'GOSSIP_BID_WORKER_RESTRICTED'
  /** a signed cancel not signed by the party that may cancel the order */
  | 'GOSSIP_CANCEL_BAD_SIGNATURE'
  /** an on-chain cancel the hub does not show (yet) */
  | 'GOSSIP_CANCEL_NOT_ON_CHAIN'
  /** our own chain lookup failed: not the sender's fault */
  | 'GOSSIP_LOOKUP_FAILED'
  /** a request whose requester's hub balance (as the hub's events tell it) does not cover its volume at its max prices */
  | 'GOSSIP_UNFUNDED'
  /** the relaying peer sent more messages than its rate allows */
  | 'GOSSIP_RATE_LIMITED'
  /** the order's signer is banned here */
  | 'GOSSIP_BANNED_SIGNER'

/** The action of each code: the one table that decides who gets punished. */
export const GOSSIP_ACTIONS: Readonly<Record<GossipValidationCode, GossipAction>> = {
  GOSSIP_TOO_LARGE: 'REJECT',
  GOSSIP_MALFORMED: 'REJECT',
  GOSSIP_BAD_VERSION: 'IGNORE',
  GOSSIP_WRONG_TYPE: 'REJECT',
  GOSSIP_INVALID_FIELD: 'REJECT',
  GOSSIP_WRONG_CHAIN: 'REJECT',
  GOSSIP_WRONG_HUB: 'REJECT',
  GOSSIP_DUPLICATE: 'IGNORE',
  GOSSIP_EXPIRED: 'IGNORE',
  GOSSIP_BAD_SIGNATURE: 'REJECT',
  GOSSIP_NOT_PRESIGNED: 'IGNORE',
  GOSSIP_UNKNOWN_ASSET: 'IGNORE',
  GOSSIP_ZERO_VOLUME: 'REJECT',
  GOSSIP_BAD_REQUEST: 'REJECT',
  GOSSIP_CONSUMED: 'IGNORE',
  GOSSIP_CANCELLED: 'IGNORE',
  GOSSIP_BID_UNKNOWN_REQUEST: 'IGNORE',
  GOSSIP_BID_PRICE_ABOVE_MAX: 'REJECT',
  GOSSIP_BID_WORKER_RESTRICTED: 'REJECT',
  GOSSIP_CANCEL_BAD_SIGNATURE: 'REJECT',
  GOSSIP_CANCEL_NOT_ON_CHAIN: 'IGNORE',
  GOSSIP_LOOKUP_FAILED: 'IGNORE',
  // the requester may have deposited in a block our view has not reached: not provably spam, not relayed
  GOSSIP_UNFUNDED: 'IGNORE',
  // the message may be valid: it is dropped, and the excess counts toward the peer's ban (gossip-adapter.ts)
  GOSSIP_RATE_LIMITED: 'IGNORE',
  // the relay may not know of our ban
  GOSSIP_BANNED_SIGNER: 'IGNORE'
}

/** A message that must not be accepted; `action` tells gossipsub what to do. */
export class GossipValidationError extends IexecError<GossipValidationCode> {
  readonly action: GossipAction

  constructor (code: GossipValidationCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(code, message, details, options)
    this.name = 'GossipValidationError'
    this.action = GOSSIP_ACTIONS[code]
  }
}

export function isGossipValidationError (err: unknown, code?: GossipValidationCode): err is GossipValidationError {
  return err instanceof GossipValidationError && (code === undefined || err.code === code)
}

/** Codes of the orderbook and the bid strategy. */
export type MarketErrorCode =
  /** a stored order does not decode (written by another version, or corrupt) */
  | 'MARKET_BAD_RECORD'
  /** a query's arguments are out of range */
  | 'MARKET_BAD_QUERY'
  /** a hub event lacks the fields the orderbook needs */
  | 'MARKET_BAD_EVENT'
  /** the orderbook was used before open() or after close() */
  | 'MARKET_CLOSED'
  /** the node has no chain settings (config.chain.rpc and hub): no market */
  | 'CHAIN_NOT_CONFIGURED'
  /** a market call's arguments are invalid (details.field) */
  | 'MARKET_BAD_ARGUMENT'
  /** no bid came within the bidding window; details.reasons lists the declines */
  | 'NO_BIDS'
  /** bids came, but fewer than the request's trust needs for consensus; details: bids, needed, reasons */
  | 'NOT_ENOUGH_BIDS'
  /** the requester's hub balance cannot pay for the request */
  | 'INSUFFICIENT_BALANCE'
  /** no app (or dataset) of that address or name on the hub */
  | 'APP_NOT_FOUND'
  | 'DATASET_NOT_FOUND'
  /** no live app (or dataset) order in the book that the request can match */
  | 'NO_APP_ORDER'
  | 'NO_DATASET_ORDER'
  /** the dataset's live orders allow other apps only (their apprestrict) */
  | 'DATASET_APP_NOT_ALLOWED'
  /** the dataset's orders that allow the app name other requesters only */
  | 'DATASET_REQUESTER_NOT_ALLOWED'
  /** the app's live orders allow it with other datasets only (or only with a dataset) */
  | 'APP_DATASET_NOT_ALLOWED'
  /** the app's orders name other requesters only */
  | 'APP_REQUESTER_NOT_ALLOWED'
  /** no live order of that hash in the book, or no deal of that id on chain */
  | 'ORDER_NOT_FOUND'
  | 'DEAL_NOT_FOUND'
  /** no deal on the hub has this task id */
  | 'TASK_NOT_FOUND'
  /** the order is not this node's to cancel */
  | 'NOT_ORDER_OWNER'

export class MarketError extends IexecError<MarketErrorCode> {}
