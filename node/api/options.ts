import type { ApiBackend } from './backend.js'
import type { ApiRoute } from './router.js'
import type { ApiIdentity } from './identity.js'
import type { BrowserSessions } from './session.js'

export interface ApiServerOptions {
  /** loopback only: the API hands out a node's keys and money */
  host?: string
  /** 0 = a free port chosen by the OS */
  port: number
  /** bearer token every call must present */
  token: string
  backend: ApiBackend
  /** routes added by later modules (orders, tasks, apps...), next to the core ones */
  routes?: ApiRoute[]
  /** answers the unauthenticated identity check (identity.ts); without it the route is 404 */
  identity?: ApiIdentity
  /** the explorer's browser sessions: `/explorer/login?code=` and the session cookie (GET only); none without it */
  sessions?: BrowserSessions
  /** largest request body accepted, in bytes */
  maxBodyBytes?: number
  /** a request that has not completed in this time is dropped */
  requestTimeoutMs?: number
}

export const defaultApiServerOptions = {
  host: '127.0.0.1',
  // orders and task submissions are a few KB; 1 MiB leaves room for batches
  // while keeping a misbehaving local client from filling memory
  maxBodyBytes: 1024 * 1024,
  // every current call answers in well under a second; DHT lookups are the
  // slowest (bounded by the network module) and stay below this
  requestTimeoutMs: 30_000
} as const

export interface ApiClientOptions {
  /** per call; a node that takes longer is treated as hung */
  timeoutMs?: number
}

export const defaultApiClientOptions = {
  // a DHT query behind /v1/resources may take a few seconds on a cold swarm;
  // the CLI must still never hang on a wedged node
  timeoutMs: 20_000
} as const

/** Hosts the server may bind: the API is for local clients only. */
export const LOOPBACK_HOSTS: readonly string[] = ['127.0.0.1', '::1', 'localhost']
