import { HttpError } from './errors.js'

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE'

/** What a route handler receives: already authenticated, body parsed. */
export interface ApiRequest {
  method: HttpMethod
  /** path without the query string */
  path: string
  /** values of the `:name` segments of the route's path */
  params: Record<string, string>
  query: URLSearchParams
  /** parsed JSON body; undefined when the request had none */
  body: unknown
}

/**
 * A reply with a non-default status, or with work to do once the answer has
 * been sent (shutdown answers first, then stops the node).
 */
export class ApiReply {
  constructor (
    readonly body: unknown,
    readonly status: number = 200,
    readonly afterSend?: () => void,
    /** when set, `body` is a string sent as is with this content type */
    readonly contentType?: string
  ) {}
}

/**
 * A long-lived answer the route writes itself (the event stream): the server
 * hands it the raw request and response once authentication passed.
 */
export class ApiStream {
  constructor (readonly start: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void) {}
}

export type ApiHandler = (req: ApiRequest) => unknown

/**
 * One route. `path` is versioned (`/v1/...`) and may hold `:name` segments:
 * `{ method: 'GET', path: '/v1/tasks/:taskId', handler }`.
 */
export interface ApiRoute {
  method: HttpMethod
  path: string
  handler: ApiHandler
}

interface CompiledRoute {
  route: ApiRoute
  segments: string[]
}

export type RouteMatch =
  | { kind: 'found', route: ApiRoute, params: Record<string, string> }
  | { kind: 'method-not-allowed', allowed: HttpMethod[] }
  | { kind: 'not-found' }

function splitPath (path: string): string[] {
  return path.split('/').filter((s) => s.length > 0)
}

/**
 * Method + path table. Later modules add their routes (orders, tasks, apps...)
 * with `add()`; a duplicate method and path is refused so two modules cannot
 * silently shadow each other.
 */
export class Router {
  private readonly routes: CompiledRoute[] = []

  add (route: ApiRoute): this {
    const segments = splitPath(route.path)
    const clash = this.routes.find((r) => r.route.method === route.method && r.segments.join('/') === segments.join('/'))
    if (clash !== undefined) {
      throw new HttpError(500, 'API_BAD_OPTIONS', `route ${route.method} ${route.path} is registered twice`)
    }
    this.routes.push({ route, segments })
    return this
  }

  match (method: string, path: string): RouteMatch {
    const parts = splitPath(path)
    const allowed: HttpMethod[] = []
    for (const { route, segments } of this.routes) {
      const params = matchSegments(segments, parts)
      if (params === undefined) continue
      if (route.method === method) return { kind: 'found', route, params }
      allowed.push(route.method)
    }
    return allowed.length > 0 ? { kind: 'method-not-allowed', allowed } : { kind: 'not-found' }
  }
}

function matchSegments (pattern: string[], parts: string[]): Record<string, string> | undefined {
  if (pattern.length !== parts.length) return undefined
  const params: Record<string, string> = {}
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]
    const v = parts[i]
    if (p.startsWith(':')) {
      try {
        params[p.slice(1)] = decodeURIComponent(v)
      } catch {
        return undefined
      }
    } else if (p !== v) {
      return undefined
    }
  }
  return params
}
