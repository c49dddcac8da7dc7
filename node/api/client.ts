import { request } from 'node:http'
import type { NodeStatus, PeerView, ResourceQuery, ResourceView } from './backend.js'
import { ApiError } from './errors.js'
import type { SubmitRequestParams } from '../market/requester.js'
import type { TaskStatusView } from '../market/task-status.js'
import type { TaskFailureSummary, WorkerFailureView } from '../worker/failure-reports.js'
import type { TxTasksView } from '../market/tx-tasks.js'
import type { DatasetView, PublishProgress } from './routes/dataset.js'
import type { DatasetPolicy } from '../storage/dataset-store.js'
import type { AppPublishProgress } from './routes/app.js'

export type { TaskStatusView, TaskEventView, TaskPhase, TaskTimes } from '../market/task-status.js'

/** `GET /v1/tasks/:taskId/logs` */
export interface TaskLogsView {
  taskId: string
  phase: TaskStatusView['phase']
  status: string
  workers: string[]
  failure: (Omit<TaskFailureSummary, 'reports'> & { reports: WorkerFailureView[] }) | null
  /** workers whose report could not be had or was refused (codes: FAILURE_REPORT_*, PEER_NOT_FOUND, UNREACHABLE) */
  errors: Array<{ worker: string, code: string, reason: string }>
}
import { defaultApiClientOptions, type ApiClientOptions } from './options.js'
import { EventStreamClient, type EventStreamClientOptions, type StreamedEvent } from './event-client.js'

// Views of the market routes (issue 4). Amounts travel as decimal strings:
// nRLC and wei overflow JSON numbers.

export type OrderType = 'app' | 'dataset' | 'request' | 'bid'

export interface OrderbookQuery {
  type?: OrderType
  app?: string
  dataset?: string
  category?: number
  requester?: string
  /** named tags, comma-separated: only orders whose tag has them all */
  tag?: string
  /** with app/dataset/requester: leave out the orders restricted to nobody */
  strict?: boolean
}

export interface OrderbookEntry {
  type: OrderType
  orderHash: string
  signer: string
  order: Record<string, unknown>
  /** volume left, decimal string */
  remaining: string
  receivedAt: number | string
}

export interface WalletView {
  address: string
  /** wei */
  eth: string
  /** nRLC in the wallet */
  rlc: string
  /** nRLC in the hub, free */
  balance: string
  frozen: string
  stake: string
  stakeLocked: string
}

export interface RegisterAppRequest {
  name: string
  cid: string
  checksum: string
  /** nRLC per task */
  price: bigint
  /** tasks each app order allows (sent as a decimal string) */
  volume?: number
  /** only with these datasets (one order per dataset); none: with any dataset or none */
  datasets?: string[]
  /** only for these requesters; none: anyone */
  requesters?: string[]
  /** named tags every deal must accept */
  tags?: string[]
}

export interface RegisteredApp {
  address: string
  cid: string
  checksum: string
  /** the first order signed */
  orderHash: string
  /** every order signed: one per allowed (dataset, requester) pair */
  orderHashes?: string[]
}

export interface TaskView { taskId: string, status: string }

export interface DealView {
  dealId: string
  scheduler: string
  workers: string[]
  app: string
  dataset: string
  requester: string
  /** who the result is for (the request's beneficiary) */
  beneficiary?: string
  volume: number | string
  trust: number | string
  category: number | string
  params: string
  deadlines: unknown
  tasks: TaskView[]
}

/** What `task submit` asks for: the market's own request parameters (maxPrice in nRLC). */
export type SubmitTaskRequest = SubmitRequestParams

export interface SubmittedTask {
  dealId: string
  scheduler: string
  workers: string[]
  tasks: TaskView[]
  /** the max price per task the request was signed with, nRLC (decimal) */
  maxPrice?: string
  /** ms from the request's gossip to its first bid (null: none timed) and to the mined deal */
  timings?: { firstBidMs: number | null, dealMs: number }
}

/** One provider's reason for not bidding (NO_BIDS details). */
export interface NoBidReason { peerId: string | null, code: string, reason: string }

/**
 * Typed client of a running node's local API (what the CLI's client commands use).
 *
 * Errors: API_UNREACHABLE (nothing listens at the URL), API_TIMEOUT,
 * API_UNAUTHORIZED (wrong token), API_ERROR (any other error answer; the
 * server's code is in `details.serverCode`), API_BAD_RESPONSE.
 *
 * @example
 * ```ts
 * const api = new ApiClient('http://127.0.0.1:5081', token)
 * const peers = await api.peers()
 * ```
 */
export class ApiClient {
  readonly url: string
  private readonly token: string
  private readonly timeoutMs: number

  constructor (url: string, token: string, options: ApiClientOptions = {}) {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new ApiError('API_BAD_OPTIONS', `not a valid API URL: "${url}"`)
    }
    if (parsed.protocol !== 'http:') {
      throw new ApiError('API_BAD_OPTIONS', `the API URL must be http://host:port, got "${url}"`)
    }
    this.url = parsed.origin
    this.token = token.trim()
    this.timeoutMs = options.timeoutMs ?? defaultApiClientOptions.timeoutMs
  }

  async status (): Promise<NodeStatus> {
    return await this.call<NodeStatus>('GET', '/v1/status')
  }

  async peers (): Promise<PeerView[]> {
    return await this.call<PeerView[]>('GET', '/v1/peers')
  }

  async resources (query: ResourceQuery = {}): Promise<ResourceView[]> {
    const qs = new URLSearchParams()
    if (query.category !== undefined) qs.set('category', String(query.category))
    for (const tag of query.tags ?? []) qs.append('tag', tag)
    const suffix = qs.size > 0 ? `?${qs.toString()}` : ''
    return await this.call<ResourceView[]>('GET', `/v1/resources${suffix}`)
  }

  /** Opens `GET /v1/events` (Server-Sent Events); see EventStreamClient. */
  events (onEvent: (e: StreamedEvent) => void, onEnd: (err?: Error) => void, options: EventStreamClientOptions = {}): EventStreamClient {
    return new EventStreamClient(this.url, this.token, onEvent, onEnd, options)
  }

  /** A one-time login link of the node's explorer (`iexec-p2p explorer`). */
  async explorerLogin (): Promise<{ url: string, expiresAt: number }> {
    return await this.call<{ url: string, expiresAt: number }>('POST', '/v1/explorer/login')
  }

  /** Asks the node to stop; resolves once the node has accepted (it stops right after). */
  async shutdown (): Promise<void> {
    await this.call<unknown>('POST', '/v1/shutdown')
  }

  /** Live orders of the node's orderbook. @throws API_ERROR with serverCode CHAIN_NOT_CONFIGURED, BAD_REQUEST... */
  async orderbook (query: OrderbookQuery = {}): Promise<OrderbookEntry[]> {
    const qs = new URLSearchParams()
    for (const key of ['type', 'app', 'dataset', 'category', 'requester', 'tag', 'strict'] as const) {
      const v = query[key]
      if (v !== undefined) qs.set(key, String(v))
    }
    const suffix = qs.size > 0 ? `?${qs.toString()}` : ''
    const body = await this.call<{ orders: OrderbookEntry[] }>('GET', `/v1/orderbook${suffix}`)
    return expectArray(body, 'orders', 'GET /v1/orderbook', this.url)
  }

  /** One live order of the node's book, with what the hub counts consumed (404 ORDER_NOT_FOUND). */
  async order (orderHash: string): Promise<OrderbookEntry & { consumed: string }> {
    return await this.call<OrderbookEntry & { consumed: string }>('GET', `/v1/orders/${encodeURIComponent(orderHash)}`)
  }

  /** Cancels one of the node's own orders on chain. */
  async cancelOrder (orderHash: string): Promise<{ orderHash: string, txHash: string }> {
    return await this.call('POST', '/v1/orders/cancel', { orderHash })
  }

  /** The node's wallet: ETH (wei) and RLC, hub balance, frozen, stake (nRLC), as decimal strings. */
  async wallet (): Promise<WalletView> {
    return await this.call<WalletView>('GET', '/v1/wallet')
  }

  /** Moves `amount` nRLC from the wallet into the hub (approve + deposit). */
  async deposit (amount: bigint): Promise<{ txHash: string, balance: string }> {
    return await this.call('POST', '/v1/account/deposit', { amount: amount.toString() })
  }

  async withdraw (amount: bigint): Promise<{ txHash: string, balance: string }> {
    return await this.call('POST', '/v1/account/withdraw', { amount: amount.toString() })
  }

  /** Moves `amount` nRLC of the hub balance into the stake. */
  async stake (amount: bigint): Promise<{ txHash: string, stake: string }> {
    return await this.call('POST', '/v1/stake', { amount: amount.toString() })
  }

  /** Registers an app on chain and publishes its app order. */
  async registerApp (app: RegisterAppRequest): Promise<RegisteredApp> {
    return await this.call<RegisteredApp>('POST', '/v1/apps', {
      name: app.name, cid: app.cid, checksum: app.checksum, price: app.price.toString(),
      ...(app.volume !== undefined ? { volume: String(app.volume) } : {}),
      ...(app.datasets !== undefined && app.datasets.length > 0 ? { datasets: app.datasets } : {}),
      ...(app.requesters !== undefined && app.requesters.length > 0 ? { requesters: app.requesters } : {}),
      ...(app.tags !== undefined && app.tags.length > 0 ? { tags: app.tags } : {})
    })
  }

  /**
   * Publishes the app module at `path` ON THE NODE'S MACHINE (absolute): the
   * node checks it can run, adds it, registers it and gossips its app order.
   * Poll `appPublishProgress(publishId)` meanwhile for a large module.
   */
  async publishApp (req: { path: string, name?: string, price?: bigint, volume?: number, publishId?: string, datasets?: string[], requesters?: string[], tags?: string[] }, options: { timeoutMs?: number } = {}): Promise<PublishedApp> {
    return await this.call<PublishedApp>('POST', '/v1/apps/publish', {
      path: req.path,
      ...(req.name !== undefined ? { name: req.name } : {}),
      ...(req.price !== undefined ? { price: req.price.toString() } : {}),
      ...(req.volume !== undefined ? { volume: String(req.volume) } : {}),
      ...(req.datasets !== undefined && req.datasets.length > 0 ? { datasets: req.datasets } : {}),
      ...(req.requesters !== undefined && req.requesters.length > 0 ? { requesters: req.requesters } : {}),
      ...(req.tags !== undefined && req.tags.length > 0 ? { tags: req.tags } : {}),
      ...(req.publishId !== undefined ? { publishId: req.publishId } : {})
    }, options)
  }

  /** The phase of an app publish started with this `publishId`. */
  async appPublishProgress (publishId: string): Promise<AppPublishProgress> {
    return await this.call<AppPublishProgress>('GET', `/v1/apps/publish/${encodeURIComponent(publishId)}`)
  }

  /** Adds small content (an app module) to the node's Helia; the node provides it in the DHT. */
  async addContent (bytes: Uint8Array): Promise<{ cid: string, bytes: number, checksum: string }> {
    return await this.call('POST', '/v1/content', { data: Buffer.from(bytes).toString('base64') })
  }

  /** Fetches, checks and unpacks a finalized task's result on the node. */
  async result (taskId: string): Promise<{ taskId: string, cid: string, path: string, stdout: string, encrypted: boolean }> {
    return await this.call('GET', `/v1/results/${encodeURIComponent(taskId)}`)
  }

  async deal (dealId: string): Promise<DealView> {
    return await this.call<DealView>('GET', `/v1/deals/${encodeURIComponent(dealId)}`)
  }

  /**
   * Asks the swarm for work: request order, bidding window, matchOrders.
   * Resolves with the deal; NO_BIDS (HTTP 422) carries the providers' reasons
   * in `details.serverDetails.reasons`.
   */
  async submitTask (req: SubmitTaskRequest, options: { timeoutMs?: number } = {}): Promise<SubmittedTask> {
    const body: Record<string, unknown> = { app: req.app }
    for (const key of ['dataset', 'args', 'inputs', 'taskArgs', 'taskInputs', 'category', 'trust', 'volume', 'tags', 'biddingWindowMs', 'encryptResult', 'minScore', 'beneficiary', 'callback'] as const) {
      if (req[key] !== undefined) body[key] = req[key]
    }
    if (req.maxPrice !== undefined) body.maxPrice = req.maxPrice.toString()
    return await this.call<SubmittedTask>('POST', '/v1/tasks', body, options)
  }

  /** `GET /v1/tasks/:taskId/logs`: the workers' failure reports with their stderr tails. */
  async taskLogs (taskId: string): Promise<TaskLogsView> {
    return await this.call<TaskLogsView>('GET', `/v1/tasks/${encodeURIComponent(taskId)}/logs`)
  }

  /** A task's status, phase and timeline from the hub (404 TASK_NOT_FOUND when no deal has it). */
  /** The tasks a transaction created (its DealCreated events, or the deals of the requests it published on chain). */
  async tasksOfTx (txHash: string): Promise<TxTasksView> {
    return await this.call<TxTasksView>('GET', `/v1/transactions/${encodeURIComponent(txHash)}/tasks`)
  }

  async taskStatus (taskId: string): Promise<TaskStatusView> {
    return await this.call<TaskStatusView>('GET', `/v1/tasks/${encodeURIComponent(taskId)}`)
  }

  /**
   * One call. Public so later modules' clients (orders, tasks...) reuse the
   * same transport and error mapping.
   */
  async call<T>(method: string, path: string, body?: unknown, options: { timeoutMs?: number } = {}): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs
    const target = `${this.url}${path}`
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    return await new Promise<T>((resolve, reject) => {
      const req = request(target, {
        method,
        // one request per CLI call: no pooled socket to keep the process alive
        agent: false,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json',
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': payload.length } : {})
        }
      }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => { chunks.push(c) })
        res.on('error', (err) => { reject(new ApiError('API_UNREACHABLE', `connection to ${this.url} broke: ${err.message}`, { url: this.url })) })
        res.on('end', () => {
          clearTimeout(timer)
          const text = Buffer.concat(chunks).toString('utf8')
          let parsed: unknown
          try {
            parsed = text.length > 0 ? JSON.parse(text) : null
          } catch {
            reject(new ApiError('API_BAD_RESPONSE', `${method} ${path}: the node at ${this.url} answered ${res.statusCode ?? '?'} with non-JSON`, { url: this.url }))
            return
          }
          const status = res.statusCode ?? 0
          if (status >= 200 && status < 300) {
            resolve(parsed as T)
            return
          }
          const { code, message, details } = errorOf(parsed, status)
          if (status === 401) {
            reject(new ApiError('API_UNAUTHORIZED', `the node at ${this.url} refused the API token (check --token-file)`, { url: this.url, serverCode: code }))
          } else {
            reject(new ApiError('API_ERROR', message, { url: this.url, status, serverCode: code, ...(details !== undefined ? { serverDetails: details } : {}) }))
          }
        })
      })
      const timer = setTimeout(() => {
        req.destroy(new ApiError('API_TIMEOUT', `${method} ${path}: no answer from ${this.url} within ${timeoutMs} ms`, { url: this.url }))
      }, timeoutMs)
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        if (err instanceof ApiError) {
          reject(err)
        } else if (err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET' || err.code === 'EHOSTUNREACH' || err.code === 'ENOTFOUND') {
          reject(new ApiError('API_UNREACHABLE', `no node answers at ${this.url} (${err.code}): is it running?`, { url: this.url }, { cause: err }))
        } else {
          reject(new ApiError('API_UNREACHABLE', `cannot reach ${this.url}: ${err.message}`, { url: this.url }, { cause: err }))
        }
      })
      req.end(payload)
    })
  }

  /**
   * Publishes a file or folder at `path` ON THE NODE'S MACHINE (absolute):
   * encrypted by default, added, registered, offered with a dataset order.
   * Large datasets take a while: poll `publishProgress(publishId)` meanwhile.
   */
  async publishDataset (req: PublishDatasetRequest, options: { timeoutMs?: number } = {}): Promise<PublishedDataset> {
    const body: Record<string, unknown> = { path: req.path }
    if (req.name !== undefined) body.name = req.name
    if (req.price !== undefined) body.price = req.price.toString()
    if (req.encrypt !== undefined) body.encrypt = req.encrypt
    if (req.publishId !== undefined) body.publishId = req.publishId
    if (req.apps !== undefined) body.apps = req.apps
    if (req.anyApp !== undefined) body.anyApp = req.anyApp
    if (req.requesters !== undefined && req.requesters.length > 0) body.requesters = req.requesters
    if (req.tags !== undefined && req.tags.length > 0) body.tags = req.tags
    if (req.volume !== undefined) body.volume = req.volume.toString()
    return await this.call<PublishedDataset>('POST', '/v1/datasets', body, options)
  }

  /** A new choice of who may use one of this node's datasets: new orders, the old ones cancelled. */
  async setDatasetPolicy (address: string, req: Pick<PublishDatasetRequest, 'apps' | 'anyApp' | 'requesters' | 'tags' | 'volume'>): Promise<{ address: string, orderHashes: string[], cancelled: Array<{ orderHash: string, txHash: string }>, policy: DatasetPolicy }> {
    const body: Record<string, unknown> = {}
    if (req.apps !== undefined) body.apps = req.apps
    if (req.anyApp !== undefined) body.anyApp = req.anyApp
    if (req.requesters !== undefined && req.requesters.length > 0) body.requesters = req.requesters
    if (req.tags !== undefined && req.tags.length > 0) body.tags = req.tags
    if (req.volume !== undefined) body.volume = req.volume.toString()
    return await this.call('POST', `/v1/datasets/${encodeURIComponent(address)}/policy`, body)
  }

  /** The phase of a publish started with this `publishId`. */
  async publishProgress (publishId: string): Promise<DatasetPublishProgress> {
    return await this.call<DatasetPublishProgress>('GET', `/v1/datasets/publish/${encodeURIComponent(publishId)}`)
  }

  /** This node's datasets. */
  async datasets (): Promise<OwnDatasetView[]> {
    return expectArray<OwnDatasetView>(await this.call('GET', '/v1/datasets'), 'datasets', 'dataset list', this.url)
  }

  /** Any dataset of the hub, with its live orders in the node's orderbook. */
  async dataset (address: string): Promise<DatasetDetails> {
    return await this.call<DatasetDetails>('GET', `/v1/datasets/${encodeURIComponent(address)}`)
  }

  /** Cancels this node's orders of the dataset and removes its key. */
  async unpublishDataset (address: string): Promise<UnpublishedDataset> {
    return await this.call<UnpublishedDataset>('POST', `/v1/datasets/${encodeURIComponent(address)}/unpublish`, {})
  }
}

function expectArray<T> (body: unknown, key: string, what: string, url: string): T[] {
  const v = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[key] : undefined
  if (!Array.isArray(v)) throw new ApiError('API_BAD_RESPONSE', `${what}: the node at ${url} answered without a "${key}" array`, { url })
  return v as T[]
}

function errorOf (body: unknown, status: number): { code: string, message: string, details?: Record<string, unknown> } {
  if (typeof body === 'object' && body !== null && 'error' in body) {
    const e = (body as { error: unknown }).error
    if (typeof e === 'object' && e !== null) {
      const code = (e as { code?: unknown }).code
      const message = (e as { message?: unknown }).message
      const details = (e as { details?: unknown }).details
      if (typeof code === 'string' && typeof message === 'string') {
        return { code, message, ...(typeof details === 'object' && details !== null ? { details: details as Record<string, unknown> } : {}) }
      }
    }
  }
  return { code: 'API_ERROR', message: `the node answered HTTP ${status}` }
}

/** `POST /v1/datasets` body. */
export interface PublishDatasetRequest {
  /** absolute path on the node's machine */
  path: string
  name?: string
  /** price per task, nRLC */
  price?: bigint
  /** default true */
  encrypt?: boolean
  /** 8-64 lowercase hex digits, to poll progress */
  publishId?: string
  /** only these apps (addresses or unambiguous names) may read it; or `anyApp` */
  apps?: string[]
  /** any app may read it (one that copies the data out too) */
  anyApp?: boolean
  /** only these requesters; none: anyone */
  requesters?: string[]
  /** named tags every deal must accept */
  tags?: string[]
  /** uses each dataset order allows */
  volume?: bigint
}

export interface PublishedDataset {
  address: string
  cid: string
  checksum: string
  orderHash: string
  /** every order signed: one per allowed (app, requester) pair */
  orderHashes: string[]
  policy: DatasetPolicy
  name: string
  encrypted: boolean
  price: string
  bytes: number
  kind: 'file' | 'folder'
  publishId: string
}

/** `POST /v1/apps/publish`'s answer. */
export interface PublishedApp { address: string, cid: string, checksum: string, orderHash: string, orderHashes?: string[], name: string, bytes: number, price: string, publishId: string }
export type { AppPublishProgress }

/** `GET /v1/datasets/publish/:id`: the storage module's own view. */
export type DatasetPublishProgress = PublishProgress

/** `dataset list`: the storage module's own view. */
export type OwnDatasetView = DatasetView

export interface DatasetDetails {
  address: string
  owner: string
  name: string
  cid: string
  checksum: string
  /** published by this node */
  mine: boolean
  encrypted?: boolean
  published?: boolean
  bytes?: number
  kind?: 'file' | 'folder'
  orders: Array<{ orderHash: string, signer: string, price: string, remaining: string }>
}

export interface UnpublishedDataset {
  address: string
  cancelled: Array<{ orderHash: string, txHash: string }>
  alreadyClosed: string[]
  keyRemoved: boolean
}
