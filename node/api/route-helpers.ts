/**
 * What the HTTP route files share to read a request: its JSON body as an
 * object and the 400 a malformed field earns.
 */
import { bad } from '../common/http-error.js'
import type { ApiRequest } from './router.js'

export { bad }


/** The request's body, which must be a JSON object. @throws HttpError API_BAD_REQUEST (field `body`) */
export function bodyOf (req: ApiRequest): Record<string, unknown> {
  const b = req.body
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw bad('body', 'must be a JSON object')
  return b as Record<string, unknown>
}
