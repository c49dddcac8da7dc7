import { IexecError } from './errors.js'

/**
 * An error a route handler throws to answer with a given HTTP status.
 * Anything else a handler throws becomes a 500 (with the IexecError's code
 * when it has one, so the client can still branch on it).
 */
export class HttpError extends IexecError {
  readonly status: number

  constructor (status: number, code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, details)
    this.status = status
  }
}

/** API_BAD_REQUEST (400) naming the field: `${field} ${why}`, details.field. */
export function bad (field: string, why: string): HttpError {
  return new HttpError(400, 'API_BAD_REQUEST', `${field} ${why}`, { field })
}
