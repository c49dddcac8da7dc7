import { spawn } from 'node:child_process'
import type { DealView, OrderbookEntry } from '../api/client.js'
import type { StreamedEvent } from '../api/event-client.js'
import { clientFor, type ClientCommandOptions } from './client-commands.js'
import { CliError, UsageError } from './errors.js'
import { EventWake } from './event-watch.js'
import { orderbookQuery, printDeal, printOrderbook, priceOf, type OrderbookCommandOptions } from './market-commands.js'
import { CLI_DEFAULTS } from './options.js'
import { printJson, type CliIo } from './output.js'
import { parseBytes32, parseIntOption } from './parse.js'

// `deal show --watch`, `orderbook --watch` and `explorer`: clients of the
// node's event stream (GET /v1/events) and of the explorer's login route.

export interface WatchCommandOptions extends ClientCommandOptions {
  watch?: boolean
  /** seconds */
  timeout?: string
}

const FINAL_TASK = new Set(['COMPLETED', 'FAILED'])

function seconds (ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}

function short (hex: string): string {
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-4)}` : hex
}

function timeoutOf (opts: WatchCommandOptions, fallbackMs: number): number {
  if (opts.timeout === undefined) return fallbackMs
  if (opts.watch !== true) throw new UsageError('CLI_USAGE', '--timeout goes with --watch')
  return parseIntOption('--timeout', opts.timeout, 1, 86_400) * 1000
}

/** One line of a deal's progress: its tasks by status and its scheduler. */
export function dealProgressLine (d: DealView, t0: number): string {
  const by = new Map<string, number>()
  for (const t of d.tasks) by.set(t.status, (by.get(t.status) ?? 0) + 1)
  const counts = [...by].map(([s, n]) => `${n} ${s}`).join(', ')
  return `[${seconds(Date.now() - t0).padStart(7)}] deal ${short(d.dealId)}: ${d.tasks.length} task(s): ${counts}; scheduler ${d.scheduler}`
}

/**
 * `deal show DEALID --watch [--timeout S]`: the deal, re-read whenever the
 * node's events tell of one of its tasks or of its scheduler, a progress
 * line on stderr per change, until every task is COMPLETED or FAILED; then
 * the deal as `deal show` prints it.
 * @throws CliError DEAL_WATCH_TIMEOUT
 */
export async function dealWatchCommand (io: CliIo, rawId: string, opts: WatchCommandOptions): Promise<void> {
  const dealId = parseBytes32('DEALID', rawId)
  const timeoutMs = timeoutOf(opts, 24 * 3600_000)
  const api = await clientFor(opts)
  const json = opts.json === true
  const t0 = Date.now()
  const deadline = t0 + timeoutMs
  const wake = await EventWake.open(api, ['task', 'deal'], (e) => {
    const d = e.data as { dealId?: string }
    return d.dealId?.toLowerCase() === dealId.toLowerCase() || e.type === 'task'
  }, CLI_DEFAULTS.taskWatchIntervalMs)
  let view: DealView
  try {
    let sig = ''
    while (true) {
      view = await api.deal(dealId)
      const now = `${view.scheduler}/${view.tasks.map((t) => t.status).join(',')}`
      if (now !== sig && !json) io.err(dealProgressLine(view, t0) + '\n')
      sig = now
      if (view.tasks.every((t) => FINAL_TASK.has(t.status))) break
      if (Date.now() > deadline) {
        throw new CliError('DEAL_WATCH_TIMEOUT', `deal ${short(dealId)} not final after ${seconds(timeoutMs)}: ${view.tasks.filter((t) => !FINAL_TASK.has(t.status)).length} task(s) still open`, { dealId, tasks: view.tasks })
      }
      await wake.wait(deadline - Date.now() + 1)
    }
  } finally {
    wake.close()
  }
  if (json) printJson(io, view)
  else printDeal(io, view)
}

/**
 * `orderbook [type] --watch [--timeout S]`: the book as `orderbook` prints
 * it, then one line per order that comes (+) or goes (-), read again after
 * each order, bid or deal event of the node. `--json`: one JSON line per
 * change (`{ "change": "added" | "removed", "order": {...} }`). Runs until
 * interrupted or --timeout.
 */
export async function orderbookWatchCommand (io: CliIo, typeArg: string | undefined, opts: OrderbookCommandOptions & WatchCommandOptions, signal?: AbortSignal): Promise<void> {
  const query = orderbookQuery(typeArg, opts)
  const timeoutMs = timeoutOf(opts, Number.MAX_SAFE_INTEGER / 2)
  const api = await clientFor(opts)
  const json = opts.json === true
  const wake = await EventWake.open(api, ['order', 'bid', 'deal'], (_e: StreamedEvent) => true, CLI_DEFAULTS.taskWatchIntervalMs)
  const deadline = Date.now() + timeoutMs
  try {
    let known = new Map<string, OrderbookEntry>()
    let first = true
    while (signal?.aborted !== true && Date.now() <= deadline) {
      const orders = await api.orderbook(query)
      const now = new Map(orders.map((o) => [o.orderHash, o]))
      if (first) {
        if (json) for (const o of orders) printJson(io, { change: 'added', order: o })
        else printOrderbook(io, orders)
        first = false
      } else {
        for (const [h, o] of now) if (!known.has(h)) emit(io, json, 'added', o)
        for (const [h, o] of known) if (!now.has(h)) emit(io, json, 'removed', o)
      }
      known = now
      await wake.wait(Math.min(deadline - Date.now() + 1, 60_000))
    }
  } finally {
    wake.close()
  }
}

function emit (io: CliIo, json: boolean, change: 'added' | 'removed', o: OrderbookEntry): void {
  if (json) printJson(io, { change, order: o })
  else io.out(`${change === 'added' ? '+' : '-'} ${o.type.padEnd(7)} ${o.orderHash}  ${short(o.signer)}  ${priceOf(o)}  remaining ${String(o.remaining)}\n`)
}

export interface ExplorerCommandOptions extends ClientCommandOptions {
  /** --no-open: print the link only */
  open?: boolean
}

/**
 * `explorer`: asks the node for a one-time login link (it sets the
 * explorer's session cookie), prints it and opens it with xdg-open when
 * there is one.
 */
export async function explorerCommand (io: CliIo, opts: ExplorerCommandOptions): Promise<void> {
  const api = await clientFor(opts)
  const login = await api.explorerLogin()
  if (opts.json === true) {
    printJson(io, login)
    return
  }
  io.out(`${login.url}\n`)
  io.err(`open this link in a browser on this machine: it works once, within ${Math.round((login.expiresAt - Date.now()) / 1000)} s, and logs the browser in to the explorer\n`)
  if (opts.open !== false && (process.env.DISPLAY !== undefined || process.env.WAYLAND_DISPLAY !== undefined)) {
    // best effort: a machine without a desktop has no xdg-open, and the printed link is enough
    const child = spawn('xdg-open', [login.url], { stdio: 'ignore', detached: true })
    child.on('error', () => {})
    child.unref()
  }
}
