/**
 * The work API's HTTP routes (XtremWeb-HEP's work calls; `api/work-client.ts`
 * is their client). The state machine and the parameter table are in
 * `works.ts`.
 *
 * | route | answers |
 * |---|---|
 * | `POST /v1/works` `{ app }` | `{ uid, status }` (register) |
 * | `GET /v1/works` | `{ works: WorkView[] }` |
 * | `GET /v1/works/:uid` | `WorkView` (status brought up to date) |
 * | `GET /v1/works/:uid/status` | `{ uid, status, error }` |
 * | `GET /v1/works/:uid/params/:name` | `{ uid, name, value }` (value: string or null) |
 * | `POST /v1/works/:uid/params` `{ name, value }` | `{ uid, name, value }` |
 * | `POST /v1/works/:uid/pending` | `{ uid, status: 'PENDING' }` (the submission goes on in the node) |
 * | `GET /v1/works/:uid/stdout` | `{ uid, stdout }` |
 * | `GET /v1/works/:uid/result[?pattern=P]` | `{ uid, taskId, cid, path, file }` (file: the first match of P, or null without P) |
 * | `DELETE /v1/works/:uid` | `{ uid, removed: true }` |
 *
 * Errors keep their codes: WORK_NOT_FOUND 404, WORK_UNKNOWN_PARAM,
 * WORK_BAD_VALUE and WORK_BAD_PATTERN 400, WORK_READ_ONLY_PARAM 403,
 * WORK_BAD_STATE 409, WORK_RESULT_NOT_FOUND 404, APP_NOT_FOUND 404,
 * CHAIN_NOT_CONFIGURED 503.
 */
import { HttpError } from '../errors.js'
import { bad, bodyOf } from '../route-helpers.js'
import type { ApiRequest, ApiRoute, HttpMethod } from '../router.js'
import { Repository, jsonCodec } from '../../db/index.js'
import type { DbController } from '../../db/index.js'
import { isIexecError } from '../../common/errors.js'
import { fetchResult } from './storage.js'
import type { ResultDeps } from './storage.js'
import { StorageError } from '../../storage/errors.js'
import { taskStatusName } from '../../market/requester.js'
import type { MarketService } from '../../market/service.js'
import { WorkService, checkWorkRecord, workView } from '../../market/works.js'
import type { WorkParamValue, WorkResult } from '../../market/works.js'

/** Level key prefix of the work records. */
export const WORK_PREFIX = 'work'

export interface WorkRoutesDeps {
  /** the node's market; undefined (or not started) without chain settings: every route answers 503 */
  market: () => MarketService | undefined
  db: DbController
  /** fetches, checks and unpacks a finalized task's result (see `resultFetcher`) */
  result: (taskId: string) => Promise<WorkResult>
}

/**
 * The `result(taskId)` a node gives the work routes: the same retrieval as
 * `GET /v1/results/:taskId` (api/routes/storage.ts), over the same dependencies.
 * @throws HttpError 404 RESULT_NOT_FOUND while the task has no TaskFinalized event
 */
export function resultFetcher (deps: ResultDeps): (taskId: string) => Promise<WorkResult> {
  return async (taskId) => {
    const r = await fetchResult(deps, taskId)
    return { cid: r.cid, path: r.path, stdout: r.stdout }
  }
}

const STATUS_OF: Record<string, number> = {
  WORK_NOT_FOUND: 404,
  WORK_UNKNOWN_PARAM: 400,
  WORK_BAD_VALUE: 400,
  WORK_BAD_PATTERN: 400,
  WORK_READ_ONLY_PARAM: 403,
  WORK_BAD_STATE: 409,
  WORK_RESULT_NOT_FOUND: 404,
  APP_NOT_FOUND: 404,
  MARKET_BAD_ARGUMENT: 400,
  CHAIN_NOT_CONFIGURED: 503,
  RPC_UNREACHABLE: 502
}

function httpError (err: unknown): unknown {
  if (err instanceof HttpError || !isIexecError(err)) return err
  // the result retrieval's errors (fetch failed, digest mismatch...): the swarm's fault, as GET /v1/results says
  const status = err instanceof StorageError ? 502 : STATUS_OF[err.code]
  if (status === undefined) return err
  return new HttpError(status, err.code, err.message, err.details)
}

function paramValue (v: unknown): WorkParamValue {
  if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return v
  if (Array.isArray(v) && v.length <= 256 && v.every((s) => typeof s === 'string')) return v as string[]
  throw bad('value', 'must be a string, a number, a boolean or a list of strings')
}

/**
 * The `/v1/works` routes. One WorkService per call (per node start): a
 * PENDING work left by an earlier run is reported as interrupted.
 */
export function workRoutes (deps: WorkRoutesDeps): ApiRoute[] {
  let service: WorkService | undefined
  const works = (): WorkService => {
    const m = deps.market()
    if (m === undefined || !m.started) {
      throw new HttpError(503, 'CHAIN_NOT_CONFIGURED', 'this node has no chain settings (config.json chain.rpc and chain.hub): the work API needs the market')
    }
    service ??= new WorkService(new Repository(deps.db, WORK_PREFIX, jsonCodec(checkWorkRecord)), {
      resolveApp: async (app) => await m.requester.resolveApp(app),
      submit: async (p) => await m.requester.submit(p),
      taskStatus: async (dealId, idx) => taskStatusName(await m.hub.taskStatus(dealId, idx)),
      result: deps.result,
      track: (p) => { m.track(p) },
      running: () => m.started
    })
    return service
  }
  const route = (method: HttpMethod, path: string, fn: (w: WorkService, req: ApiRequest) => Promise<unknown>): ApiRoute => ({
    method,
    path,
    handler: async (req) => {
      try {
        return await fn(works(), req)
      } catch (err) {
        throw httpError(err)
      }
    }
  })
  const uidOf = (req: ApiRequest): string => req.params.uid ?? ''

  return [
    route('POST', '/v1/works', async (w, req) => {
      const app = bodyOf(req).app
      if (typeof app !== 'string' || app.length === 0 || app.length > 64) throw bad('app', 'must be an app address or name')
      const rec = await w.register(app)
      return { uid: rec.uid, status: rec.status, app: rec.app }
    }),
    route('GET', '/v1/works', async (w) => ({ works: (await w.list()).map(workView) })),
    route('GET', '/v1/works/:uid', async (w, req) => workView(await w.status(uidOf(req)))),
    route('GET', '/v1/works/:uid/status', async (w, req) => {
      const rec = await w.status(uidOf(req))
      return { uid: rec.uid, status: rec.status, error: rec.error ?? null }
    }),
    route('GET', '/v1/works/:uid/params/:name', async (w, req) => {
      const name = req.params.name ?? ''
      return { uid: uidOf(req), name, value: await w.getParam(uidOf(req), name) }
    }),
    route('POST', '/v1/works/:uid/params', async (w, req) => {
      const b = bodyOf(req)
      if (typeof b.name !== 'string') throw bad('name', 'must be a parameter name')
      const rec = await w.setParam(uidOf(req), b.name, paramValue(b.value))
      return { uid: rec.uid, name: b.name, value: await w.getParam(rec.uid, b.name) }
    }),
    route('POST', '/v1/works/:uid/pending', async (w, req) => {
      const rec = await w.setPending(uidOf(req))
      return { uid: rec.uid, status: rec.status }
    }),
    route('GET', '/v1/works/:uid/stdout', async (w, req) => ({ uid: uidOf(req), stdout: (await w.result(uidOf(req))).stdout })),
    route('GET', '/v1/works/:uid/result', async (w, req) => {
      const uid = uidOf(req)
      const pattern = req.query.get('pattern')
      if (pattern === null) {
        const r = await w.result(uid)
        return { uid, cid: r.cid, path: r.path, file: null }
      }
      const { result, file } = await w.resultFile(uid, pattern)
      return { uid, cid: result.cid, path: result.path, file }
    }),
    route('DELETE', '/v1/works/:uid', async (w, req) => {
      const rec = await w.remove(uidOf(req))
      return { uid: rec.uid, removed: true }
    })
  ]
}
