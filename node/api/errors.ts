import { IexecError } from '../common/errors.js'

/**
 * Codes of the local HTTP API, on both sides of the wire.
 * The server answers `{ ok: false, error: { code, message } }` with one of the
 * server codes; the client turns transport failures into the client codes.
 */
export type ApiErrorCode =
  // server side
  | 'API_UNAUTHORIZED'
  | 'API_NOT_FOUND'
  | 'API_METHOD_NOT_ALLOWED'
  | 'API_BODY_TOO_LARGE'
  | 'API_BAD_REQUEST'
  | 'API_INTERNAL'
  | 'API_PORT_IN_USE'
  | 'API_BAD_OPTIONS'
  /** too many event streams open at once */
  | 'API_BUSY'
  // client side
  | 'API_UNREACHABLE'
  | 'API_TIMEOUT'
  | 'API_ERROR'
  | 'API_BAD_RESPONSE'
  /** the process at the API URL did not prove it holds the expected node's peer key (a stale api.json): no token was sent */
  | 'API_NOT_THE_NODE'

export class ApiError extends IexecError<ApiErrorCode> {}

export { HttpError } from '../common/http-error.js'

/** The error envelope every non-2xx answer carries. */
export interface ApiErrorBody {
  ok: false
  error: { code: string, message: string, details?: Record<string, unknown> }
}
