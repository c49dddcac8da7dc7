/**
 * An operator's everyday routes (issue 26 item 5, issue 20 item 4):
 * `category create | list`, `kitty show | pay`, `task list`, `deal list`,
 * `task claim`, `deal claim`. Lists are read from the hub's events in
 * bounded block ranges, newest first, so a node started after the deals
 * lists them too. A refused call sends nothing: the node checks what the
 * hub would refuse first and answers with a code.
 */
import { isHexString } from 'ethers'
import { categorySpecProblem } from '../../../contracts-abi/index.js'
import type { CategorySpec } from '../../../contracts-abi/index.js'
import { HttpError } from '../errors.js'
import { bad, bodyOf, chainFailureToHttp, chainTime } from '../route-helpers.js'
import type { ApiRoute } from '../router.js'
import { isIexecError } from '../../common/errors.js'
import { hubEventsNamed, isChainError, queryLogsInRanges } from '../../chain/index.js'
import { hubInterface } from '../../chain/index.js'
import { taskId as taskIdOf } from '../../../protocols/eip712.js'
import { marketRouteMaker } from './market.js'
import type { MarketService } from '../../market/service.js'

/** One category as `category list --json` prints it. */
export interface CategoryView {
  id: number
  name: string
  /** seconds: each run's time bound and the deadlines' unit */
  timeRef: number
  memoryMiB: number
  diskMiB: number
}

export interface CategoryCreatedView extends CategoryView {
  txHash: string
}

export interface KittyView {
  /** nRLC seized from late schedulers, not yet paid to the treasury */
  kitty: string
  /** the treasury: the hub owner */
  owner: string
}

export interface KittyPaidView {
  txHash: string
  /** nRLC moved into the owner's hub balance */
  amount: string
  balance: string
}

export type ListRole = 'requester' | 'worker' | 'scheduler' | 'any'
export const LIST_ROLES: readonly ListRole[] = ['requester', 'worker', 'scheduler', 'any']
export const TASK_STATUS_NAMES = ['UNSET', 'ACTIVE', 'REVEALING', 'COMPLETED', 'FAILED'] as const
export type TaskStatusName = typeof TASK_STATUS_NAMES[number]

export interface DealListEntry {
  dealId: string
  /** this node's parts in the deal */
  roles: Array<Exclude<ListRole, 'any'>>
  requester: string
  /** the scheduler now (drawn lazily: read at the pending block) */
  scheduler: string
  app: string
  dataset: string
  workers: string[]
  category: number
  trust: number
  volume: number
  /** tasks completed or claimed */
  done: number
  workerPrice: string
  startTime: number
  /** unix seconds: a task not completed by then can be claimed (refunded) */
  finalDeadline: number
  blockNumber: number
  txHash: string
}

export interface TaskListEntry {
  taskId: string
  dealId: string
  idx: number
  status: TaskStatusName
  roles: Array<Exclude<ListRole, 'any'>>
  finalDeadline: number
  /** past its final deadline and neither completed nor failed: `task claim` refunds it */
  claimable: boolean
}

export interface ListView<T> {
  items: T[]
  /** true when the limit cut the list (older entries exist) */
  truncated: boolean
  /** the hub's clock: the latest block's timestamp */
  chainTime: number
}

export interface ClaimView {
  dealId: string
  /** the tasks claimed (refunded to the requester) */
  claimed: string[]
  txHash: string
  /** the deal has more tasks than one call scans: run it again */
  truncated?: boolean
}

/** A deal list reads at most this many DealCreated events before it filters (a bound on one request's work). */
const MAX_SCANNED_DEALS = 5_000
/** Tasks of a deal one `deal claim` reads at most. */
const MAX_CLAIM_SCAN = 10_000
/** Claims per transaction of `deal claim` (each ~40k gas). */
const CLAIMS_PER_TX = 64
const DEFAULT_LIMIT = 50
const MAX_LIMIT = 1_000
/** Tasks of one deal `task list` reads at most (a bag of 100,000 would be 100,000 calls). */
const MAX_TASKS_PER_DEAL = 1_000
/** Task statuses one `task list` reads at most, over all its deals. */
const MAX_TASK_READS = 5_000
/** Reads in flight at once (a deal's scheduler, a task's status). */
const READ_CONCURRENCY = 16

/** `fn` over `items`, READ_CONCURRENCY at a time, results in order. */
async function mapChunked<T, R> (items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = []
  for (let i = 0; i < items.length; i += READ_CONCURRENCY) out.push(...await Promise.all(items.slice(i, i + READ_CONCURRENCY).map(fn)))
  return out
}

function bytes32 (v: string | undefined, field: string): string {
  if (v === undefined || !isHexString(v, 32)) throw bad(field, 'must be 0x and 64 hex digits')
  return v.toLowerCase()
}

function intParam (q: URLSearchParams, name: string, min: number, max: number, dflt: number): number {
  const v = q.get(name)
  if (v === null) return dflt
  if (!/^[0-9]{1,10}$/.test(v) || Number(v) < min || Number(v) > max) throw bad(name, `must be an integer in [${min}, ${max}]`)
  return Number(v)
}

function roleParam (q: URLSearchParams): ListRole {
  const v = q.get('role') ?? 'any'
  if (!(LIST_ROLES as readonly string[]).includes(v)) throw bad('role', `must be one of ${LIST_ROLES.join(', ')}`)
  return v as ListRole
}

function statusParam (q: URLSearchParams): TaskStatusName | 'CLAIMABLE' | undefined {
  const v = q.get('status')
  if (v === null) return undefined
  const up = v.toUpperCase()
  if (up !== 'CLAIMABLE' && !(TASK_STATUS_NAMES as readonly string[]).includes(up)) throw bad('status', `must be one of ${TASK_STATUS_NAMES.join(', ')}, CLAIMABLE`)
  return up as TaskStatusName | 'CLAIMABLE'
}

/** Contract reverts a user causes, as codes the CLI can explain. */
function mapError (err: unknown): unknown {
  if (err instanceof HttpError || !isIexecError(err)) return err
  if (isChainError(err, 'CONTRACT_REVERT')) {
    if (err.reason === 'OwnableUnauthorizedAccount') return new HttpError(403, 'NOT_HUB_OWNER', 'only the hub owner may do this')
    return new HttpError(422, err.code, err.message, { ...(err.reason !== undefined ? { reason: err.reason } : {}) })
  }
  return chainFailureToHttp(err)
}

async function ownerCheck (m: MarketService): Promise<void> {
  const owner = await m.hub.owner()
  if (owner.toLowerCase() !== m.address.toLowerCase()) {
    throw new HttpError(403, 'NOT_HUB_OWNER', `only the hub owner (${owner}) may do this; this node is ${m.address}`, { owner })
  }
}

async function categories (m: MarketService): Promise<CategoryView[]> {
  const n = Number(await m.hub.categoryCount())
  const out: CategoryView[] = []
  for (let id = 0; id < n; id++) {
    const c = await m.hub.categoryOf(id)
    out.push({ id, name: c.name, timeRef: Number(c.timeRef), memoryMiB: Number(c.memoryMiB), diskMiB: Number(c.diskMiB) })
  }
  return out
}

function categorySpec (b: Record<string, unknown>): CategorySpec {
  const num = (k: string): number => {
    const v = b[k]
    if (typeof v !== 'number') throw bad(k, 'must be a number')
    return v
  }
  if (typeof b.name !== 'string') throw bad('name', 'must be a string')
  const spec = { name: b.name, timeRef: num('timeRef'), memoryMiB: num('memoryMiB'), diskMiB: num('diskMiB') }
  const problem = categorySpecProblem(spec)
  if (problem !== undefined) throw new HttpError(400, 'CATEGORY_INVALID', problem, { name: spec.name })
  return spec
}

interface DealLog {
  dealId: string
  requester: string
  app: string
  dataset: string
  workers: string[]
  category: number
  trust: number
  volume: number
  workerPrice: string
  startTime: number
  finalDeadline: number
  blockNumber: number
  txHash: string
}

/**
 * DealCreated events, newest first, in bounded ranges (queryLogsInRanges)
 * from the latest block down to the node's first hub block; stops once
 * `enough` says so or MAX_SCANNED_DEALS were read. `requester` narrows the
 * query (an indexed topic).
 */
async function dealLogs (m: MarketService, requester: string | undefined, enough: (logs: DealLog[]) => boolean): Promise<{ logs: DealLog[], complete: boolean }> {
  const iface = hubInterface()
  const address = m.domain.verifyingContract
  const topics = iface.encodeFilterTopics('DealCreated', [null, null, requester ?? null])
  let stopped = false
  const logs = await queryLogsInRanges(async (from, to) => {
    const out: DealLog[] = []
    for (const l of await m.chain.provider.getLogs({ address, topics, fromBlock: from, toBlock: to })) {
      const p = iface.parseLog(l)
      if (p === null) continue
      const info = p.args.info
      out.push({
        dealId: String(p.args.dealid).toLowerCase(),
        requester: String(p.args.requester),
        app: String(info.app),
        dataset: String(info.dataset),
        workers: [...(info.workers as string[])].map(String),
        category: Number(info.category),
        trust: Number(info.trust),
        volume: Number(info.volume),
        workerPrice: String(info.workerPrice),
        startTime: Number(info.startTime),
        finalDeadline: Number(info.finalDeadline),
        blockNumber: l.blockNumber,
        txHash: l.transactionHash
      })
    }
    return out
  }, {
    fromBlock: m.init.fromBlock,
    head: m.chain.provider,
    newestFirst: true,
    enough: (found) => (stopped = found.length >= MAX_SCANNED_DEALS || enough(found))
  })
  return { logs: logs.slice(0, MAX_SCANNED_DEALS), complete: !stopped }
}

async function dealEntries (m: MarketService, role: ListRole, limit: number): Promise<{ items: DealListEntry[], truncated: boolean }> {
  const me = m.address.toLowerCase()
  const items: DealListEntry[] = []
  let truncated = false
  const { logs, complete } = await dealLogs(m, role === 'requester' ? m.address : undefined, (l) => l.length > limit * 4)
  // the scheduler is drawn after the match: the hub's current one, read for each deal
  const currents = await mapChunked(logs, async (d) => await m.hub.dealOf(d.dealId, { blockTag: 'pending' }))
  for (const [i, d] of logs.entries()) {
    const roles: DealListEntry['roles'] = []
    if (d.requester.toLowerCase() === me) roles.push('requester')
    if (d.workers.some((w) => w.toLowerCase() === me)) roles.push('worker')
    const current = currents[i]
    const scheduler = String(current.scheduler)
    if (scheduler.toLowerCase() === me) roles.push('scheduler')
    if (role === 'any' ? roles.length === 0 : !roles.includes(role)) continue
    if (items.length >= limit) {
      truncated = true
      break
    }
    items.push({ ...d, roles, scheduler, done: Number(current.done) })
  }
  return { items, truncated: truncated || !complete }
}

async function taskStatusName (m: MarketService, dealId: string, idx: number): Promise<TaskStatusName> {
  return TASK_STATUS_NAMES[Number(await m.hub.taskStatus(dealId, idx))] ?? 'UNSET'
}

/** Checks one task can be claimed now; the hub would refuse it otherwise (and the gas would be lost). */
async function claimCheck (m: MarketService, dealId: string, idx: number, now: number): Promise<void> {
  const deal = await m.hub.dealOf(dealId, { blockTag: 'pending' })
  if (Number(deal.volume) === 0) throw new HttpError(404, 'DEAL_NOT_FOUND', `no deal ${dealId} on the hub`, { dealId })
  if (idx >= Number(deal.volume)) throw new HttpError(404, 'TASK_NOT_FOUND', `deal ${dealId} has ${deal.volume} tasks`, { dealId })
  const deadline = Number(deal.startTime) + Number(deal.timeRef) * 10
  if (now < deadline) {
    throw new HttpError(409, 'CLAIM_TOO_EARLY', `the task's final deadline is ${new Date(deadline * 1000).toISOString()} (in ${deadline - now} s, chain time): it may still complete`, { deadline, chainTime: now })
  }
  const status = await taskStatusName(m, dealId, idx)
  if (status === 'COMPLETED' || status === 'FAILED') {
    throw new HttpError(409, 'CLAIM_ALREADY_DONE', `the task is ${status} on the hub: nothing to claim`, { status })
  }
}

/**
 * `market` is undefined when the node has no chain settings: every route
 * then answers 503 CHAIN_NOT_CONFIGURED.
 */
export function operatorRoutes (getMarket: () => MarketService | undefined): ApiRoute[] {
  const route = marketRouteMaker(getMarket, mapError)

  return [
    route('GET', '/v1/categories', async (m) => await categories(m)),

    route('POST', '/v1/categories', async (m, req): Promise<CategoryCreatedView> => {
      const spec = categorySpec(bodyOf(req))
      await ownerCheck(m)
      const tx = await m.chain.sender.send(m.hub.createCategory.populateTransaction(spec.name, spec.timeRef, spec.memoryMiB, spec.diskMiB))
      const created = hubEventsNamed(tx.receipt, m.domain.verifyingContract, 'CategoryCreated')[0]
      if (created === undefined) throw new HttpError(502, 'CATEGORY_NOT_CREATED', 'the transaction emitted no CategoryCreated')
      return { id: Number(created.args.id), ...spec, txHash: tx.hash }
    }),

    route('GET', '/v1/kitty', async (m): Promise<KittyView> => {
      const [kitty, owner] = await Promise.all([m.hub.kitty(), m.hub.owner()])
      return { kitty: kitty.toString(), owner }
    }),

    route('POST', '/v1/kitty/pay', async (m): Promise<KittyPaidView> => {
      await ownerCheck(m)
      const amount = await m.hub.kitty()
      if (amount === 0n) throw new HttpError(409, 'KITTY_EMPTY', 'the kitty holds nothing: no stake was seized')
      const tx = await m.chain.sender.send(m.hub.payKitty.populateTransaction())
      const [balance] = await m.hub.accountOf(m.address)
      return { txHash: tx.hash, amount: amount.toString(), balance: balance.toString() }
    }),

    route('GET', '/v1/deals', async (m, req): Promise<ListView<DealListEntry>> => {
      const limit = intParam(req.query, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT)
      const { items, truncated } = await dealEntries(m, roleParam(req.query), limit)
      return { items, truncated, chainTime: await chainTime(m) }
    }),

    route('GET', '/v1/tasks', async (m, req): Promise<ListView<TaskListEntry>> => {
      const q = req.query
      const limit = intParam(q, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT)
      const status = statusParam(q)
      const onlyDeal = q.get('deal') !== null ? bytes32(q.get('deal') ?? undefined, 'deal') : undefined
      const now = await chainTime(m)
      // deals first (each task's deal gives its roles and deadline), then their tasks, newest deal first
      const deals = await dealEntries(m, roleParam(q), onlyDeal !== undefined ? MAX_LIMIT : limit)
      const items: TaskListEntry[] = []
      let truncated = deals.truncated
      let reads = 0
      for (const d of deals.items) {
        if (onlyDeal !== undefined && d.dealId !== onlyDeal) continue
        const count = Math.min(d.volume, MAX_TASKS_PER_DEAL, MAX_TASK_READS - reads)
        if (count < d.volume) truncated = true
        if (count <= 0) break
        reads += count
        const statuses = await mapChunked([...Array(count).keys()], async (idx) => await taskStatusName(m, d.dealId, idx))
        for (let idx = 0; idx < count; idx++) {
          const s = statuses[idx]
          const claimable = now >= d.finalDeadline && s !== 'COMPLETED' && s !== 'FAILED'
          if (status !== undefined && (status === 'CLAIMABLE' ? !claimable : s !== status)) continue
          if (items.length >= limit) {
            truncated = true
            break
          }
          items.push({ taskId: taskIdOf(d.dealId, BigInt(idx)).toLowerCase(), dealId: d.dealId, idx, status: s, roles: d.roles, finalDeadline: d.finalDeadline, claimable })
        }
        if (items.length >= limit && truncated) break
      }
      return { items, truncated, chainTime: now }
    }),

    route('POST', '/v1/deals/:dealId/claim', async (m, req): Promise<ClaimView> => {
      const dealId = bytes32(req.params.dealId, 'dealId')
      const now = await chainTime(m)
      const deal = await m.hub.dealOf(dealId, { blockTag: 'pending' })
      const volume = Number(deal.volume)
      if (volume === 0) throw new HttpError(404, 'DEAL_NOT_FOUND', `no deal ${dealId} on the hub`, { dealId })
      const deadline = Number(deal.startTime) + Number(deal.timeRef) * 10
      if (now < deadline) {
        throw new HttpError(409, 'CLAIM_TOO_EARLY', `the deal's final deadline is ${new Date(deadline * 1000).toISOString()} (in ${deadline - now} s, chain time): its tasks may still complete`, { deadline, chainTime: now })
      }
      // a deal of a huge volume is claimed MAX_CLAIM_SCAN tasks per call (the answer says more are left)
      const scan = Math.min(volume, MAX_CLAIM_SCAN)
      const statuses = await mapChunked([...Array(scan).keys()], async (idx) => await taskStatusName(m, dealId, idx))
      const open = [...statuses.keys()].filter((idx) => statuses[idx] !== 'COMPLETED' && statuses[idx] !== 'FAILED')
      if (open.length === 0 && scan < volume) throw new HttpError(409, 'CLAIM_ALREADY_DONE', `the first ${scan} tasks are completed or claimed: claim the others one by one (task claim)`)
      if (open.length === 0) throw new HttpError(409, 'CLAIM_ALREADY_DONE', 'every task of the deal is completed or claimed: nothing to claim')
      const iface = hubInterface()
      let txHash = ''
      for (let i = 0; i < open.length; i += CLAIMS_PER_TX) {
        const calls = open.slice(i, i + CLAIMS_PER_TX).map((idx) => iface.encodeFunctionData('claim', [dealId, idx]))
        txHash = (await m.chain.sender.send(m.hub.multicall.populateTransaction(calls))).hash
      }
      return { dealId, claimed: open.map((idx) => taskIdOf(dealId, BigInt(idx)).toLowerCase()), txHash, ...(scan < volume ? { truncated: true } : {}) }
    }),

    route('POST', '/v1/tasks/:taskId/claim', async (m, req): Promise<ClaimView> => {
      const taskId = bytes32(req.params.taskId, 'taskId')
      const b = bodyOf(req)
      // the task id is a hash of (deal, index): the caller names the deal, or the node finds it among the recent deals
      let dealId = b.dealId !== undefined ? bytes32(typeof b.dealId === 'string' ? b.dealId : undefined, 'dealId') : undefined
      let idx: number | undefined
      const search = dealId !== undefined ? undefined : await dealLogs(m, undefined, () => false)
      for (const d of search?.logs ?? []) {
        for (let i = 0; i < Math.min(d.volume, MAX_TASKS_PER_DEAL) && idx === undefined; i++) {
          if (taskIdOf(d.dealId, BigInt(i)).toLowerCase() === taskId) {
            dealId = d.dealId
            idx = i
          }
        }
        if (idx !== undefined) break
      }
      if (dealId !== undefined && idx === undefined) {
        const volume = Number((await m.hub.dealOf(dealId)).volume)
        for (let i = 0; i < Math.min(volume, MAX_TASKS_PER_DEAL) && idx === undefined; i++) if (taskIdOf(dealId, BigInt(i)).toLowerCase() === taskId) idx = i
      }
      if (dealId === undefined || idx === undefined) throw new HttpError(404, 'TASK_NOT_FOUND', `no deal on the hub has task ${taskId}`, { taskId })
      await claimCheck(m, dealId, idx, await chainTime(m))
      const tx = await m.chain.sender.send(m.hub.claim.populateTransaction(dealId, idx))
      return { dealId, claimed: [taskId], txHash: tx.hash }
    })
  ]
}
