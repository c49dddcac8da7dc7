import type {
  CategoryCreatedView, CategoryView, ClaimView, DealListEntry, KittyPaidView, KittyView, ListView, TaskListEntry
} from '../api/routes/operator.js'
import { CATEGORY_FIELD_MAX } from '../../contracts-abi/deploy.js'
import { clientFor, type ClientCommandOptions } from './client-commands.js'
import { UsageError } from './errors.js'
import { printJson, table, type CliIo } from './output.js'
import { formatAmount, parseBytes32, parseIntOption } from './parse.js'

// An operator's commands (issue 20 item 4, issue 26 item 5): categories and
// the kitty (the hub owner's), task and deal lists by role, claims by hand.
// Each asks the running node, which checks what the hub would refuse first.

export interface CategoryCreateOptions extends ClientCommandOptions {
  time?: string
  memory?: string
  disk?: string
}

export interface ListOptions extends ClientCommandOptions {
  role?: string
  status?: string
  deal?: string
  limit?: string
}

import { LIST_ROLE_NAMES as ROLES, LIST_STATUS_NAMES as STATUSES } from './operator-lists.js'

function required (flag: string, v: string | undefined): string {
  if (v === undefined) throw new UsageError('CLI_MISSING_ARGUMENT', `${flag} is required`)
  return v
}

function when (unix: number, now: number): string {
  const left = unix - now
  const iso = new Date(unix * 1000).toISOString().replace('.000Z', 'Z')
  return left > 0 ? `${iso} (in ${left} s)` : `${iso} (passed)`
}

/** `category create NAME --time S --memory MiB --disk MiB` (the hub owner). */
export async function categoryCreateCommand (io: CliIo, name: string, opts: CategoryCreateOptions): Promise<void> {
  if (name.length === 0 || name.length > 64) throw new UsageError('CLI_BAD_OPTION', 'NAME must be 1-64 characters')
  const timeRef = parseIntOption('--time', required('--time', opts.time), 1, CATEGORY_FIELD_MAX.timeRef)
  const memoryMiB = parseIntOption('--memory', required('--memory', opts.memory), 1, CATEGORY_FIELD_MAX.memoryMiB)
  const diskMiB = parseIntOption('--disk', required('--disk', opts.disk), 1, CATEGORY_FIELD_MAX.diskMiB)
  const api = await clientFor(opts)
  const r = await api.call<CategoryCreatedView>('POST', '/v1/categories', { name, timeRef, memoryMiB, diskMiB })
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  io.out(`created category ${r.id} ${r.name}: ${r.timeRef} s, ${r.memoryMiB} MiB of memory, ${r.diskMiB} MiB of disk (tx ${r.txHash})\n`)
}

/** `category list`: every category of the hub and its limits. */
export async function categoryListCommand (io: CliIo, opts: ClientCommandOptions): Promise<void> {
  const api = await clientFor(opts)
  const list = await api.call<CategoryView[]>('GET', '/v1/categories')
  if (opts.json === true) {
    printJson(io, list)
    return
  }
  io.out(table(['ID', 'NAME', 'TIME', 'MEMORY', 'DISK'], list.map((c) => [String(c.id), c.name, `${c.timeRef} s`, `${c.memoryMiB} MiB`, `${c.diskMiB} MiB`])))
}

/** `kitty show`: the stakes seized from late schedulers, and who may take them (the hub owner). */
export async function kittyShowCommand (io: CliIo, opts: ClientCommandOptions): Promise<void> {
  const api = await clientFor(opts)
  const k = await api.call<KittyView>('GET', '/v1/kitty')
  if (opts.json === true) {
    printJson(io, k)
    return
  }
  io.out(`kitty     ${formatAmount(k.kitty)}\ntreasury  ${k.owner} (the hub owner: \`kitty pay\` moves it into its hub balance)\n`)
}

/** `kitty pay`: the hub owner moves the whole kitty into its hub balance. */
export async function kittyPayCommand (io: CliIo, opts: ClientCommandOptions): Promise<void> {
  const api = await clientFor(opts)
  const r = await api.call<KittyPaidView>('POST', '/v1/kitty/pay')
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  io.out(`paid ${formatAmount(r.amount)} from the kitty into this node's hub balance (tx ${r.txHash})\nhub balance now  ${formatAmount(r.balance)} (\`account withdraw\` takes it to the wallet)\n`)
}

function listQuery (opts: ListOptions, withTaskFilters: boolean): string {
  const q = new URLSearchParams()
  if (opts.role !== undefined) {
    if (!ROLES.includes(opts.role)) throw new UsageError('CLI_BAD_OPTION', `--role must be one of ${ROLES.join(', ')}, got "${opts.role}"`)
    q.set('role', opts.role)
  }
  if (opts.limit !== undefined) q.set('limit', String(parseIntOption('--limit', opts.limit, 1, 1000)))
  if (withTaskFilters) {
    if (opts.status !== undefined) {
      const s = opts.status.toUpperCase()
      if (!STATUSES.includes(s)) throw new UsageError('CLI_BAD_OPTION', `--status must be one of ${STATUSES.join(', ')}, got "${opts.status}"`)
      q.set('status', s)
    }
    if (opts.deal !== undefined) q.set('deal', parseBytes32('--deal', opts.deal))
  }
  const s = q.toString()
  return s === '' ? '' : `?${s}`
}

/** `deal list [--role R] [--limit N]`: this node's deals, newest first. */
export async function dealListCommand (io: CliIo, opts: ListOptions): Promise<void> {
  const query = listQuery(opts, false)
  const api = await clientFor(opts)
  const r = await api.call<ListView<DealListEntry>>('GET', `/v1/deals${query}`)
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  io.out(table(['DEAL', 'ROLES', 'TASKS', 'DONE', 'TRUST', 'CATEGORY', 'FINAL DEADLINE'], r.items.map((d) => [
    d.dealId, d.roles.join(','), String(d.volume), String(d.done), String(d.trust), String(d.category), when(d.finalDeadline, r.chainTime)
  ])))
  if (r.items.length === 0) io.out('no deal\n')
  if (r.truncated) io.out('(more deals are older: raise --limit)\n')
}

/** `task list [--role R] [--status S] [--deal D] [--limit N]`: this node's tasks, newest deal first. */
export async function taskListCommand (io: CliIo, opts: ListOptions): Promise<void> {
  const query = listQuery(opts, true)
  const api = await clientFor(opts)
  const r = await api.call<ListView<TaskListEntry>>('GET', `/v1/tasks${query}`)
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  io.out(table(['TASK', 'DEAL', 'IDX', 'STATUS', 'ROLES', 'FINAL DEADLINE'], r.items.map((t) => [
    t.taskId, t.dealId.slice(0, 10) + '…', String(t.idx), t.claimable ? `${t.status} (claimable)` : t.status, t.roles.join(','), when(t.finalDeadline, r.chainTime)
  ])))
  if (r.items.length === 0) io.out('no task\n')
  if (r.truncated) io.out('(more tasks: raise --limit or filter)\n')
}

/** `task claim TASKID [--deal D]`: after the final deadline, refunds a task that did not complete. */
export async function taskClaimCommand (io: CliIo, taskIdRaw: string, opts: ListOptions): Promise<void> {
  const taskId = parseBytes32('TASKID', taskIdRaw)
  const dealId = opts.deal !== undefined ? parseBytes32('--deal', opts.deal) : undefined
  const api = await clientFor(opts)
  const r = await api.call<ClaimView>('POST', `/v1/tasks/${taskId}/claim`, dealId !== undefined ? { dealId } : {})
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  io.out(`claimed task ${taskId}: the requester is refunded (tx ${r.txHash})\n`)
}

/** `deal claim DEALID`: after the final deadline, claims every task of the deal not completed. */
export async function dealClaimCommand (io: CliIo, dealIdRaw: string, opts: ClientCommandOptions): Promise<void> {
  const dealId = parseBytes32('DEALID', dealIdRaw)
  const api = await clientFor(opts)
  const r = await api.call<ClaimView>('POST', `/v1/deals/${dealId}/claim`, {})
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  io.out(`claimed ${r.claimed.length} task(s) of deal ${dealId}: the requester is refunded (tx ${r.txHash})\n`)
  if (r.truncated === true) io.out('(only the deal\'s first 10,000 tasks were read: claim later ones with `task claim TASKID --deal DEALID`)\n')
}
