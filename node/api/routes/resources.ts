import type { ApiBackend, ResourceQuery } from '../backend.js'
import { HttpError } from '../errors.js'
import { ApiReply, type ApiRoute } from '../router.js'

/** Largest category id accepted in a query (iExec categories are small integers). */
const MAX_CATEGORY = 1_000_000
/** Tags are short `key:value` labels; bound how many a query may list. */
const MAX_QUERY_TAGS = 16

/** Parses `?category=N&tag=T&tag=U`; bad values are the client's fault (400). */
export function parseResourceQuery (query: URLSearchParams): ResourceQuery {
  const out: ResourceQuery = {}
  const category = query.get('category')
  if (category !== null) {
    if (!/^\d+$/.test(category) || Number(category) > MAX_CATEGORY) {
      throw new HttpError(400, 'API_BAD_REQUEST', `category must be an integer between 0 and ${MAX_CATEGORY}, got "${category}"`)
    }
    out.category = Number(category)
  }
  const tags = query.getAll('tag')
  if (tags.length > MAX_QUERY_TAGS) {
    throw new HttpError(400, 'API_BAD_REQUEST', `at most ${MAX_QUERY_TAGS} tags per query`)
  }
  for (const tag of tags) {
    if (tag.length === 0 || tag.length > 64) {
      throw new HttpError(400, 'API_BAD_REQUEST', `a tag must be 1 to 64 characters, got "${tag}"`)
    }
  }
  if (tags.length > 0) out.tags = tags
  return out
}

/** The node's core routes (issue 2). Later issues add theirs next to these. */
export function coreRoutes (backend: ApiBackend): ApiRoute[] {
  return [
    { method: 'GET', path: '/v1/status', handler: () => backend.status() },
    { method: 'GET', path: '/v1/peers', handler: async () => await backend.peers() },
    { method: 'GET', path: '/v1/resources', handler: async (req) => await backend.resources(parseResourceQuery(req.query)) },
    {
      method: 'POST',
      path: '/v1/shutdown',
      // answer before stopping: the node's stop closes this very server
      handler: () => new ApiReply({ ok: true }, 202, () => {
        // the caller already has its answer; the node logs its own stop failures
        backend.shutdown().catch(() => {})
      })
    }
  ]
}
