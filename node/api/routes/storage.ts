import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { HttpError } from '../errors.js'
import type { ApiRoute } from '../router.js'
import { addBytes, provideContent } from '../../storage/content.js'
import type { ContentHelia } from '../../storage/content.js'
import type { EciesPrivateKey } from '../../storage/ecies.js'
import { StorageError } from '../../storage/errors.js'
import { retrieveResult } from '../../storage/results.js'
import type { FinalizedTask } from '../../storage/results.js'

/** Largest upload through the JSON API: base64 of it must fit the API's 1 MiB body limit. */
export const MAX_CONTENT_UPLOAD_BYTES = 700 * 1024

/**
 * `POST /v1/content` `{ "data": base64 }` -> `{ "cid", "bytes", "checksum" }`:
 * adds small content (an app module) to this node's Helia and provides it in
 * the DHT, so workers fetch it over bitswap. Large datasets stream through
 * the dataset commands instead.
 */
export function contentRoutes (helia: () => ContentHelia): ApiRoute[] {
  return [{
    method: 'POST',
    path: '/v1/content',
    handler: async (req) => {
      const body = req.body as { data?: unknown } | undefined
      if (body === undefined || typeof body.data !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(body.data)) {
        throw new HttpError(400, 'API_BAD_REQUEST', 'body must be { "data": "<base64>" }')
      }
      const bytes = Buffer.from(body.data, 'base64')
      if (bytes.byteLength === 0) throw new HttpError(400, 'API_BAD_REQUEST', 'content is empty')
      if (bytes.byteLength > MAX_CONTENT_UPLOAD_BYTES) {
        throw new HttpError(413, 'API_BODY_TOO_LARGE', `content of ${bytes.byteLength} bytes exceeds ${MAX_CONTENT_UPLOAD_BYTES}`)
      }
      const h = helia()
      const { cid } = await addBytes(h, bytes)
      // a node alone (or before its DHT has peers) cannot provide yet; its
      // adverts and bitswap still serve peers that ask it directly
      await provideContent(h, cid).catch(() => false)
      return { cid: cid.toString(), bytes: bytes.byteLength, checksum: `0x${createHash('sha256').update(bytes).digest('hex')}` }
    }
  }]
}

/**
 * `GET /v1/results/:taskId` -> `{ "taskId", "cid", "path", "stdout", "encrypted" }`:
 * fetches a finalized task's result from the swarm, checks it against the
 * chain and unpacks it under the node's data dir. 404 TASK_NOT_FOUND when no
 * deal has the task, 404 RESULT_NOT_FOUND while the task is not finalized.
 */
export interface ResultDeps {
  helia: () => ContentHelia
  /** the task's TaskFinalized event on the hub; undefined when not finalized (or no chain) */
  finalized: (taskId: string) => Promise<FinalizedTask | undefined>
  /** whether a deal on the hub has the task: an unknown task is TASK_NOT_FOUND, as `task show` says, not RESULT_NOT_FOUND */
  taskExists?: (taskId: string) => Promise<boolean>
  /** connects to the peers that hold the result (the deal's workers) before it is fetched; best effort */
  reachHolders?: (finalized: FinalizedTask) => Promise<void>
  privateKey: EciesPrivateKey
  resultsDir: string
  timeoutMs: number
}

/**
 * A finalized task's result, fetched from the swarm, checked against the
 * chain and unpacked under resultsDir: what `GET /v1/results/:taskId` and
 * the work routes (api/routes/work.ts) give.
 * @throws HttpError 404 TASK_NOT_FOUND / RESULT_NOT_FOUND; StorageError as retrieveResult
 */
export async function fetchResult (deps: ResultDeps, taskId: string): Promise<Awaited<ReturnType<typeof retrieveResult>>> {
  const finalized = await deps.finalized(taskId)
  if (finalized === undefined) {
    if (deps.taskExists !== undefined && !await deps.taskExists(taskId)) throw new HttpError(404, 'TASK_NOT_FOUND', `no deal on the hub has task ${taskId}`, { taskId })
    throw new HttpError(404, 'RESULT_NOT_FOUND', `task ${taskId} has no finalized result (yet)`)
  }
  await deps.reachHolders?.(finalized)
  return await retrieveResult({ helia: deps.helia(), taskId, finalized, dest: join(deps.resultsDir, taskId.toLowerCase()), privateKey: deps.privateKey, timeoutMs: deps.timeoutMs })
}

export function resultRoutes (deps: ResultDeps): ApiRoute[] {
  return [{
    method: 'GET',
    path: '/v1/results/:taskId',
    handler: async (req) => {
      const taskId = req.params.taskId ?? ''
      if (!/^0x[0-9a-fA-F]{64}$/.test(taskId)) throw new HttpError(400, 'API_BAD_REQUEST', `a task id is 0x and 64 hex digits, got "${taskId}"`)
      try {
        const r = await fetchResult(deps, taskId)
        return { taskId: r.taskId, cid: r.cid, path: r.path, stdout: r.stdout, encrypted: r.encrypted }
      } catch (err) {
        if (err instanceof StorageError) throw new HttpError(502, err.code, err.message)
        throw err
      }
    }
  }]
}
