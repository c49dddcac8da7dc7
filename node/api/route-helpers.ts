/**
 * What the HTTP route files share to read a request: its JSON body as an
 * object and the 400 a malformed field earns.
 */
import { HttpError } from './errors.js'
import type { ApiRequest } from './router.js'

/** API_BAD_REQUEST (400) naming the field: `${field} ${why}`, details.field. */
export function bad (field: string, why: string): HttpError {
  return new HttpError(400, 'API_BAD_REQUEST', `${field} ${why}`, { field })
}

/** The request's body, which must be a JSON object. @throws HttpError API_BAD_REQUEST (field `body`) */
export function bodyOf (req: ApiRequest): Record<string, unknown> {
  const b = req.body
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw bad('body', 'must be a JSON object')
  return b as Record<string, unknown>
}
