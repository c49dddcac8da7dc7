import { IexecError } from '../common/errors.js'

/**
 * Codes of the chain module. Callers branch on these, never on message text.
 *
 * - `RPC_UNREACHABLE`: the JSON-RPC endpoint did not answer (refused, reset,
 *   timed out, rate-limited) within the bounded retries; `details.url` names it.
 * - `CHAIN_ID_MISMATCH`: the endpoint serves another chain than the one expected.
 * - `CONTRACT_NOT_FOUND`: no code at the hub or RLC address given (wrong address, or a fresh chain).
 * - `CONTRACT_REVERT`: a call or transaction reverted; `reason` is the custom
 *   Solidity error's name (or `Error` / `Panic` / `unknown`), `args` its decoded arguments.
 * - `TX_TIMEOUT`: the transaction was sent but no receipt (or not enough
 *   confirmations) arrived in time; `details.hash` lets the caller look again.
 * - `TX_REJECTED`: the node refused the transaction for a reason that retrying
 *   will not fix (insufficient funds, underpriced, bad nonce after resync).
 * - `INVALID_ARGUMENT`: bad input from the caller (no key, bad URL, bad range).
 * - `REORG_DETECTED`: a block the event follower already delivered from was
 *   replaced; reported (not fatal) once the follower has rewound, or when the
 *   chain kept reorganising through one poll (retried at the next).
 * - `HANDLER_FAILED`: an event handler kept failing on one event; not fatal:
 *   the follower backs off and hands it the same event again.
 * - `TX_REJECTED` also: another transaction was mined at the nonce of one
 *   that waited (the key is used elsewhere).
 * - `CURSOR_STORE_FAILED`: the event cursor could not be read or written.
 * - `SUBSCRIPTION_REFUSED`: a ws(s) endpoint answered `eth_subscribe` with an
 *   error; not fatal: the event follower polls instead.
 * - `DEPLOY_FAILED`: deploying or funding the local swarm chain failed.
 * - `CHAIN_START_FAILED`: the local anvil did not start (see local-chain.ts).
 */
export type ChainErrorCode =
  | 'RPC_UNREACHABLE'
  | 'CHAIN_ID_MISMATCH'
  | 'CONTRACT_NOT_FOUND'
  | 'CONTRACT_REVERT'
  | 'TX_TIMEOUT'
  | 'TX_REJECTED'
  | 'INVALID_ARGUMENT'
  | 'REORG_DETECTED'
  | 'HANDLER_FAILED'
  /** a hub event that does not decode as its name says (chain/deal.ts) */
  | 'BAD_EVENT'
  | 'CURSOR_STORE_FAILED'
  | 'SUBSCRIPTION_REFUSED'
  | 'DEPLOY_FAILED'
  | 'CHAIN_START_FAILED'
  /** no anvil binary: neither the optional Linux x86-64 package nor one on PATH (see local-chain.ts) */
  | 'LOCAL_CHAIN_UNAVAILABLE'

/** A typed error of the chain module. Reverts carry the custom error's name and arguments. */
export class ChainError extends IexecError<ChainErrorCode> {
  /** For CONTRACT_REVERT: the custom error's name, `Error`, `Panic` or `unknown`. */
  readonly reason?: string
  /** For CONTRACT_REVERT: the decoded arguments, in declaration order (named keys too when the ABI names them). */
  readonly args?: readonly unknown[]

  constructor (code: ChainErrorCode, message: string, details?: Record<string, unknown> & { reason?: string, args?: readonly unknown[] }, options?: { cause?: unknown }) {
    super(code, message, details, options)
    this.name = 'ChainError'
    if (details?.reason !== undefined) this.reason = details.reason
    if (details?.args !== undefined) this.args = details.args
  }
}

/** True when `err` is a ChainError, optionally with the given code. */
export function isChainError (err: unknown, code?: ChainErrorCode): err is ChainError {
  return err instanceof ChainError && (code === undefined || err.code === code)
}
