/**
 * What the HTTP route files share to read a request: its JSON body as an
 * object and the 400 a malformed field earns.
 */
import { bad } from '../common/http-error.js'
import type { ApiRequest } from './router.js'
import { HttpError } from '../common/http-error.js'
import type { IexecError } from '../common/errors.js'
import type { MarketService } from '../market/service.js'

export { bad }


/** The request's body, which must be a JSON object. @throws HttpError API_BAD_REQUEST (field `body`) */
export function bodyOf (req: ApiRequest): Record<string, unknown> {
  const b = req.body
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw bad('body', 'must be a JSON object')
  return b as Record<string, unknown>
}

/** The HTTP status of a chain failure a route did not map itself; other errors pass through. */
export function chainFailureToHttp (err: IexecError): unknown {
  const status: Record<string, number> = { CHAIN_NOT_CONFIGURED: 503, RPC_UNREACHABLE: 502, TX_TIMEOUT: 504, TX_REJECTED: 422 }
  const s = status[err.code]
  return s === undefined ? err : new HttpError(s, err.code, err.message, err.details)
}

/** The chain's time (the latest block's timestamp), the clock orders and deadlines are judged by. */
export async function chainTime (m: Pick<MarketService, 'chain'>): Promise<number> {
  const block = await m.chain.provider.getBlock('latest')
  return block?.timestamp ?? Math.floor(Date.now() / 1000)
}
