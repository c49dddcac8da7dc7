import { isIexecError } from '../common/errors.js'
import { clientFor, type ClientCommandOptions } from './client-commands.js'
import { UsageError } from './errors.js'
import { ANY_APP_WARNING, parseDatasetPrice, parseDatasetPriceChoice, parseOrderTags, parseOrderVolume } from './dataset-commands.js'
import { CLI_DEFAULTS } from './options.js'
import { printJson, type CliIo } from './output.js'
import { formatAmount, parseAddress, parseAppRef, parseBytes32, parseCidOption, parseIntOption, parseTagOption } from './parse.js'

// `order publish app|dataset|request` and `order unpublish` (issue 22): thin
// clients of POST /v1/orders/publish and /v1/orders/unpublish
// (node/api/routes/order.ts). The command line is checked before any
// network call: a typo is a usage error (exit 2) even when no node runs.

export type PublishType = 'app' | 'dataset' | 'request'
const PUBLISH_TYPES: readonly PublishType[] = ['app', 'dataset', 'request']

export interface OrderPublishCommandOptions extends ClientCommandOptions {
  app?: string
  anyApp?: boolean
  dataset?: string
  requester?: string
  workerpool?: string
  price?: string
  free?: boolean
  appMaxPrice?: string
  datasetMaxPrice?: string
  maxPrice?: string
  volume?: string
  tag?: string[]
  category?: string
  trust?: string
  args?: string
  input?: string[]
  beneficiary?: string
  callback?: string
  expiry?: string
  salt?: string
  biddingWindow?: string
}

/** Which options each order type takes (the rest are refused, not ignored). */
const OPTIONS_OF: Record<PublishType, ReadonlySet<keyof OrderPublishCommandOptions>> = {
  app: new Set(['app', 'dataset', 'requester', 'workerpool', 'price', 'volume', 'tag', 'expiry', 'salt']),
  dataset: new Set(['dataset', 'app', 'anyApp', 'requester', 'workerpool', 'price', 'free', 'volume', 'tag', 'expiry', 'salt']),
  request: new Set(['app', 'dataset', 'workerpool', 'appMaxPrice', 'datasetMaxPrice', 'maxPrice', 'volume', 'tag', 'category', 'trust', 'args', 'input', 'beneficiary', 'callback', 'expiry', 'salt', 'biddingWindow'])
}
const FLAG_OF: Partial<Record<keyof OrderPublishCommandOptions, string>> = {
  anyApp: '--any-app', appMaxPrice: '--app-max-price', datasetMaxPrice: '--dataset-max-price', maxPrice: '--max-price', biddingWindow: '--bidding-window', input: '--input'
}
const CLIENT_KEYS = new Set(['api', 'tokenFile', 'dataDir', 'json'])

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 }

/**
 * `--expiry`: unix seconds, an ISO 8601 time (2026-12-31T12:00:00Z), or a
 * time from now (+90s, +30m, +2h, +7d). ORDER_EXPIRED (exit 2) when it has passed.
 */
export function parseExpiry (raw: string, nowSeconds: number = Math.floor(Date.now() / 1000)): number {
  const s = raw.trim()
  let at: number
  const rel = /^\+(\d{1,9})([smhd])$/.exec(s)
  if (rel !== null) at = nowSeconds + Number(rel[1]) * DURATION_UNITS[rel[2]]
  else if (/^\d{1,12}$/.test(s)) at = Number(s)
  else {
    const ms = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+)?(Z|[+-]\d{2}:?\d{2})?$/.test(s) ? Date.parse(s) : Number.NaN
    if (Number.isNaN(ms)) throw new UsageError('CLI_BAD_OPTION', `--expiry must be unix seconds, an ISO time (2026-12-31T12:00:00Z) or a time from now (+30m, +2h, +7d), got "${raw}"`)
    at = Math.floor(ms / 1000)
  }
  if (at <= nowSeconds) throw new UsageError('ORDER_EXPIRED', `--expiry ${raw} (${new Date(at * 1000).toISOString()}) has passed: an expired order is never gossiped nor matched`, { expiresAt: at, now: nowSeconds })
  return at
}

/** A max price: 0 or an amount (5, 5nRLC, 1.5RLC), at most the hub's cap. */
function parseMaxPrice (flag: string, raw: string): bigint {
  try {
    return parseDatasetPrice(raw)
  } catch (err) {
    if (isIexecError(err)) throw new UsageError('CLI_BAD_OPTION', err.message.replace('--price', flag))
    throw err
  }
}

/** Validates `order publish TYPE`'s command line into the API body. */
export function parseOrderPublish (typeArg: string, opts: OrderPublishCommandOptions, nowSeconds?: number): Record<string, unknown> {
  if (!(PUBLISH_TYPES as readonly string[]).includes(typeArg)) throw new UsageError('CLI_BAD_OPTION', `the order type must be one of ${PUBLISH_TYPES.join(', ')}, got "${typeArg}"`)
  const type = typeArg as PublishType
  for (const [k, v] of Object.entries(opts)) {
    if (v === undefined || CLIENT_KEYS.has(k)) continue
    if (!OPTIONS_OF[type].has(k as keyof OrderPublishCommandOptions)) {
      const flag = FLAG_OF[k as keyof OrderPublishCommandOptions] ?? `--${k}`
      throw new UsageError('CLI_BAD_OPTION', `${flag} does not apply to ${type} orders`)
    }
  }
  const b: Record<string, unknown> = { type }
  if (opts.expiry !== undefined && opts.salt !== undefined) throw new UsageError('CLI_BAD_OPTION', '--salt carries the expiry in its first 8 bytes: give --expiry or --salt, not both')
  if (opts.expiry !== undefined) b.expiresAt = parseExpiry(opts.expiry, nowSeconds)
  if (opts.salt !== undefined) b.salt = parseBytes32('--salt', opts.salt)
  if (opts.tag !== undefined) b.tags = type === 'request' ? opts.tag.map(parseTagOption) : parseOrderTags(opts.tag)
  if (opts.workerpool !== undefined) b[type === 'request' ? 'workerpool' : 'workerpoolrestrict'] = parseAddress('--workerpool', opts.workerpool)
  switch (type) {
    case 'app':
      if (opts.app === undefined) throw new UsageError('CLI_MISSING_ARGUMENT', 'order publish app needs --app ADDRESS|NAME (an app of this node)')
      b.app = parseAppRef(opts.app)
      if (opts.price !== undefined) b.price = parseMaxPrice('--price', opts.price).toString()
      if (opts.volume !== undefined) b.volume = (parseOrderVolume(opts.volume) as bigint).toString()
      if (opts.dataset !== undefined) b.datasetrestrict = parseAddress('--dataset', opts.dataset)
      if (opts.requester !== undefined) b.requesterrestrict = parseAddress('--requester', opts.requester)
      break
    case 'dataset':
      if (opts.dataset === undefined) throw new UsageError('CLI_MISSING_ARGUMENT', 'order publish dataset needs --dataset ADDRESS (a dataset this node published)')
      b.dataset = parseAddress('--dataset', opts.dataset)
      b.price = parseDatasetPriceChoice(opts).toString()
      if (opts.app !== undefined && opts.anyApp === true) throw new UsageError('CLI_BAD_OPTION', '--app and --any-app exclude each other: name the app, or allow any')
      if (opts.app === undefined && opts.anyApp !== true) {
        throw new UsageError('DATASET_APPS_REQUIRED', 'choose which app may read the dataset: --app ADDR|NAME (only that app: you trust its code, pinned by its checksum on chain) or --any-app (any app, including one that copies the data to its result)')
      }
      if (opts.app !== undefined) b.apprestrict = parseAppRef(opts.app)
      else b.anyApp = true
      if (opts.volume !== undefined) b.volume = (parseOrderVolume(opts.volume) as bigint).toString()
      if (opts.requester !== undefined) b.requesterrestrict = parseAddress('--requester', opts.requester)
      break
    case 'request':
      if (opts.app === undefined) throw new UsageError('CLI_MISSING_ARGUMENT', 'order publish request needs --app ADDRESS|NAME')
      b.app = parseAppRef(opts.app)
      if (opts.dataset !== undefined) b.dataset = parseAddress('--dataset', opts.dataset)
      if (opts.appMaxPrice !== undefined) b.appmaxprice = parseMaxPrice('--app-max-price', opts.appMaxPrice).toString()
      if (opts.datasetMaxPrice !== undefined) {
        if (opts.dataset === undefined) throw new UsageError('CLI_BAD_OPTION', '--dataset-max-price needs --dataset')
        b.datasetmaxprice = parseMaxPrice('--dataset-max-price', opts.datasetMaxPrice).toString()
      }
      if (opts.maxPrice !== undefined) b.workerpoolmaxprice = parseMaxPrice('--max-price', opts.maxPrice).toString()
      if (opts.volume !== undefined) b.volume = parseIntOption('--volume', opts.volume, 1, 10_000)
      if (opts.category !== undefined) b.category = parseIntOption('--category', opts.category, 0, 1_000_000)
      if (opts.trust !== undefined) b.trust = parseIntOption('--trust', opts.trust, 1, 255)
      if (opts.args !== undefined) {
        if (opts.args.length > 4096) throw new UsageError('CLI_BAD_OPTION', '--args is longer than 4096 characters')
        b.args = opts.args
      }
      if (opts.input !== undefined) b.inputs = opts.input.map((c) => parseCidOption('--input', c))
      if (opts.beneficiary !== undefined) b.beneficiary = parseAddress('--beneficiary', opts.beneficiary)
      if (opts.callback !== undefined) b.callback = parseAddress('--callback', opts.callback)
      if (opts.biddingWindow !== undefined) b.biddingWindowMs = parseIntOption('--bidding-window', opts.biddingWindow, 1, 600_000)
      break
  }
  return b
}

/**
 * What the node refuses in an order command's arguments (an app name it
 * does not know, an order hash it has not, someone else's asset or order,
 * an expiry that passed meanwhile) is the command line's fault: exit 2,
 * with the node's code.
 */
const ARGUMENT_CODES = new Set([
  'APP_NOT_FOUND', 'DATASET_NOT_FOUND', 'APP_NAME_AMBIGUOUS', 'NOT_ASSET_OWNER', 'DATASET_NOT_OWNED', 'DATASET_APPS_REQUIRED', 'TAG_UNKNOWN',
  'ORDER_EXPIRED', 'ORDER_EXPIRY_TOO_SOON', 'ORDER_CLOSED', 'ORDER_NOT_FOUND', 'NOT_ORDER_OWNER'
])

async function callOrders<T> (opts: ClientCommandOptions, path: string, body: Record<string, unknown>, timeoutMs?: number): Promise<T> {
  const api = await clientFor(opts)
  try {
    return await api.call<T>('POST', path, body, timeoutMs !== undefined ? { timeoutMs } : {})
  } catch (err) {
    const server = isIexecError(err, 'API_ERROR') ? err.details?.serverCode : undefined
    if (typeof server === 'string' && ARGUMENT_CODES.has(server)) {
      const details = err as { message: string, details?: { serverDetails?: Record<string, unknown> } }
      throw new UsageError(server, details.message, details.details?.serverDetails)
    }
    throw err
  }
}

interface PublishedOrder { type: PublishType, orderHash: string, order?: Record<string, string>, tags?: string[], expiresAt?: string, dealId?: string, workers?: string[], tasks?: Array<{ taskId: string, status: string }>, anyApp?: boolean }

export async function orderPublishCommand (io: CliIo, typeArg: string, opts: OrderPublishCommandOptions): Promise<void> {
  const body = parseOrderPublish(typeArg, opts)
  // on stderr, with --json too: for the person who typed it
  if (body.anyApp === true) io.err(ANY_APP_WARNING.replace('--any-app', 'an order with --any-app') + '\n')
  const request = body.type === 'request'
  if (request && opts.json !== true) io.err('order: request order signed and gossiped; collecting bids, then matching on chain...\n')
  const windowMs = typeof body.biddingWindowMs === 'number' ? body.biddingWindowMs : 0
  const r = await callOrders<PublishedOrder>(opts, '/v1/orders/publish', body, request ? windowMs + CLI_DEFAULTS.taskSubmitTimeoutMs : undefined)
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  const lines = [`${r.type} order ${r.orderHash} signed by this node and gossiped`]
  if (r.expiresAt !== undefined) lines.push(`expires   ${new Date(Number(r.expiresAt) * 1000).toISOString()} (node policy: not gossiped, listed nor bid on after)`)
  if (r.order !== undefined) {
    for (const [k, v] of Object.entries(r.order)) {
      if (k === 'sign' || k === 'salt') continue
      lines.push(`${k.padEnd(18)} ${k.endsWith('price') ? formatAmount(v) : v}`)
    }
  }
  if (r.tags !== undefined && r.tags.length > 0) lines.push(`tags               ${r.tags.join(' ')}`)
  if (r.dealId !== undefined) lines.push(`deal ${r.dealId}: ${r.workers?.length ?? 0} worker(s), ${r.tasks?.length ?? 0} task(s)`)
  io.out(lines.join('\n') + '\n')
}

export interface OrderUnpublishCommandOptions extends ClientCommandOptions {
  app?: string
  dataset?: string
  all?: boolean
}

/** Validates `order unpublish [HASH] [--app|--dataset ADDR --all]` into the API body. */
export function parseOrderUnpublish (hash: string | undefined, opts: OrderUnpublishCommandOptions): Record<string, unknown> {
  const assets = [opts.app, opts.dataset].filter((x) => x !== undefined)
  if (hash !== undefined) {
    if (assets.length > 0 || opts.all === true) throw new UsageError('CLI_USAGE', 'give an order hash, or --app/--dataset ADDRESS --all, not both')
    return { orderHash: parseBytes32('the order hash', hash) }
  }
  if (assets.length === 0) throw new UsageError('CLI_MISSING_ARGUMENT', 'order unpublish needs an order hash, or --app ADDRESS --all / --dataset ADDRESS --all')
  if (assets.length > 1) throw new UsageError('CLI_USAGE', '--app and --dataset exclude each other')
  if (opts.all !== true) throw new UsageError('CLI_MISSING_ARGUMENT', `${opts.app !== undefined ? '--app' : '--dataset'} cancels every order of this node for it: say so with --all`)
  return opts.app !== undefined ? { app: parseAddress('--app', opts.app) } : { dataset: parseAddress('--dataset', opts.dataset as string) }
}

export async function orderUnpublishCommand (io: CliIo, hash: string | undefined, opts: OrderUnpublishCommandOptions): Promise<void> {
  const body = parseOrderUnpublish(hash, opts)
  const r = await callOrders<{ cancelled: Array<{ orderHash: string, txHash: string }> }>(opts, '/v1/orders/unpublish', body)
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  if (r.cancelled.length === 0) io.out('no live order of this node to cancel\n')
  for (const c of r.cancelled) io.out(`order ${c.orderHash} cancelled on chain (tx ${c.txHash}) and removed from the orderbook\n`)
}
