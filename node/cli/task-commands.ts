import type { ApiClient, SubmittedTask, TaskEventView, TaskPhase, TaskStatusView } from '../api/client.js'
import { clientFor, type ClientCommandOptions } from './client-commands.js'
import { CliError, UsageError } from './errors.js'
import { CLI_DEFAULTS } from './options.js'
import { printJson, table, type CliIo } from './output.js'
import { parseBytes32, parseIntOption } from './parse.js'
import { EventWake } from './event-watch.js'
import type { StreamedEvent } from '../api/event-client.js'

// `task show` and the watching half of `task submit --watch`: both read the
// node's `GET /v1/tasks/:taskId` (which reads the hub) again each time the
// node's event stream tells of a change to the task.

const FINAL: ReadonlySet<TaskPhase> = new Set<TaskPhase>(['finalized', 'failed'])

export interface TaskShowCommandOptions extends ClientCommandOptions {
  /** --tx HASH: the tasks this transaction created instead of one task id */
  tx?: string
  watch?: boolean
  /** seconds */
  timeout?: string
}

/** What a progress line says about a phase. */
const PHASE_TEXT: Record<TaskPhase, string> = {
  scheduling: 'deal made; waiting for the elected scheduler to start the task',
  running: 'running on the workers',
  failing: 'failing: the workers report failures',
  consensus: 'contributions coming in (consensus)',
  revealing: 'consensus reached; workers revealing',
  finalized: 'finalized: result on the swarm',
  failed: 'failed: no consensus before the final deadline (the requester is refunded)'
}

function short (hex: string): string {
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-4)}` : hex
}

function seconds (ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}

/**
 * Polls the tasks until each is final, calling `onChange` when a task's phase
 * or its counts change. Bounded by `timeoutMs`.
 * @throws CliError TASK_WATCH_TIMEOUT with the last phases
 */
export async function watchTasks (
  api: ApiClient,
  taskIds: string[],
  timeoutMs: number,
  onChange: (view: TaskStatusView) => void
): Promise<TaskStatusView[]> {
  const deadline = Date.now() + timeoutMs
  const last = new Map<string, TaskStatusView>()
  const sig = (v: TaskStatusView): string => `${v.phase}/${v.contributions}/${v.reveals}/${v.scheduler}/${v.failure?.reason ?? ''}/${String(v.failure?.agreed)}`
  // woken by the node's task and deal events (GET /v1/events); a node without them is polled.
  // Failure reports come from workers, not as events: the wake's safety re-read picks them up.
  const ids = new Set(taskIds.map((id) => id.toLowerCase()))
  const wake = await EventWake.open(api, ['task', 'deal'], (e) => taskEventConcerns(e, ids, last), CLI_DEFAULTS.taskWatchIntervalMs)
  try {
    while (true) {
      for (const id of taskIds) {
        const prev = last.get(id)
        if (prev !== undefined && watchEnded(prev)) continue
        const v = await api.taskStatus(id)
        if (prev === undefined || sig(prev) !== sig(v)) onChange(v)
        last.set(id, v)
      }
      const views = taskIds.map((id) => last.get(id) as TaskStatusView)
      if (views.every(watchEnded)) return views
      if (Date.now() > deadline) {
        throw new CliError('TASK_WATCH_TIMEOUT', `not final after ${seconds(timeoutMs)}: ${views.map((v) => `${short(v.taskId)} ${v.phase}`).join(', ')}`, { tasks: views.map((v) => ({ taskId: v.taskId, phase: v.phase })) })
      }
      await wake.wait(deadline - Date.now() + 1)
    }
  } finally {
    wake.close()
  }
}

/**
 * A watch ends at a final phase, or once the deal's workers agree on a
 * deterministic failure (same code, same exit code): the chain would only
 * fail it at its final deadline.
 */
export function watchEnded (v: TaskStatusView): boolean {
  return FINAL.has(v.phase) || (v.phase === 'failing' && v.failure?.agreed === true)
}

/** A task event of a watched task, or a deal event of a watched task's deal (its scheduler drawn or replaced). */
function taskEventConcerns (e: StreamedEvent, ids: ReadonlySet<string>, views: ReadonlyMap<string, TaskStatusView>): boolean {
  const d = e.data as { taskId?: string, dealId?: string }
  if (e.type === 'task') return d.taskId !== undefined && ids.has(d.taskId.toLowerCase())
  if (e.type === 'deal') return [...views.values()].some((v) => v.dealId.toLowerCase() === d.dealId?.toLowerCase())
  return false
}

/** A progress line: time since `t0`, the task, its phase and counts. */
export function progressLine (v: TaskStatusView, t0: number): string {
  const counts = v.phase === 'consensus' || v.phase === 'revealing' ? ` (${v.contributions} contribution(s), ${v.reveals} reveal(s), trust ${v.trust})` : ''
  const why = v.failure !== null && (v.phase === 'failing' || v.phase === 'failed') ? `: ${v.failure.reason}${v.failure.agreed ? ' (deterministic: the workers agree)' : ''}` : ''
  return `[${seconds(Date.now() - t0).padStart(7)}] task ${short(v.taskId)}: ${PHASE_TEXT[v.phase]}${counts}${why}`
}

/** The last lines of the first readable stderr tail of a failure's reports (the whole tails: `task logs`). */
export function stderrExcerpt (f: TaskStatusView['failure'], maxLines = 5): { worker: string, lines: string[] } | undefined {
  const r = f?.reports.find((x) => x.stderr !== null && x.stderr.trim().length > 0)
  if (r === undefined || r.stderr === null) return undefined
  return { worker: r.worker, lines: r.stderr.replace(/\n$/, '').split('\n').slice(-maxLines).map((l) => l.slice(0, 200)) }
}

/** When and how the requester gets its money back for a task that will not finalize. */
export function refundText (v: Pick<TaskStatusView, 'dealId' | 'idx' | 'deadlines'>): string {
  const at = new Date(v.deadlines.final * 1000).toISOString()
  return `claimable after the final deadline ${at}: the deal's scheduler claims it then (any account may call the hub's claim(${short(v.dealId)}, ${v.idx})), and the requester is refunded`
}

/** The human view of one task: its state, then its timeline relative to the first event. */
export function printTask (io: CliIo, v: TaskStatusView): void {
  const lines = [
    `task       ${v.taskId}`,
    `deal       ${v.dealId} #${v.idx}`,
    `status     ${v.status} (${v.phase})`,
    `app        ${v.app}${/^0x0+$/.test(v.dataset) ? '' : `    dataset ${v.dataset}`}`,
    `scheduler  ${v.scheduler}    trust ${v.trust}    workers ${v.workers.length}`,
    `progress   ${v.contributions} contribution(s), ${v.reveals} reveal(s)`
  ]
  if (v.resultCid !== null) lines.push(`result     ${v.resultCid}    hash ${v.resultHash ?? '-'}`)
  if (v.failure !== null) {
    lines.push(`failure    ${v.failure.reason}${v.failure.agreed ? ' (deterministic: the workers agree)' : ''}; \`task logs ${v.taskId}\` shows the stderr tails`)
    if (v.phase !== 'finalized' && v.times.claimed === null) lines.push(`refund     ${refundText(v)}`)
    const tail = stderrExcerpt(v.failure)
    if (tail !== undefined) lines.push(`stderr     (worker ${tail.worker}, last lines)`, ...tail.lines.map((l) => `  ${l}`))
  }
  if (v.callback != null) lines.push(`callback   ${v.callback.address}    ${v.callback.success === null ? 'not called yet' : v.callback.success ? 'called: receiveResult succeeded' : 'called: receiveResult reverted or ran out of gas (the task is finalized and paid anyway)'}`)
  // the one duration a user asks first; block times, so whole seconds
  const end = v.times.finalized ?? v.times.claimed
  if (v.times.deal !== null && end !== null) lines.push(`took       ${seconds(end - v.times.deal)} from the deal to ${v.times.finalized !== null ? 'the result' : 'the claim'} (block times)`)
  io.out(lines.join('\n') + '\n')
  if (v.events.length > 0) {
    // the node's own steps to the millisecond; chain events at their block's time (whole seconds)
    const time = (e: TaskEventView): string => new Date(e.at).toISOString().slice(11, e.block !== undefined ? 19 : 23)
    io.out(table(['EVENT', 'BLOCK', 'TIME (UTC)', 'WORKER'], v.events.map((e) => [
      e.name, e.block !== undefined ? String(e.block) : '-', time(e), e.worker ?? '-'
    ])))
  }
}

/** Bound of a watch when none is given: until the task's final deadline, plus time to see its end. */
function defaultWatchMs (views: TaskStatusView[]): number {
  const finalS = Math.max(...views.map((v) => v.deadlines.final))
  return Math.max(0, finalS * 1000 - Date.now()) + CLI_DEFAULTS.taskWatchGraceMs
}

/**
 * The task ids of a `--tx HASH` option (the tasks its transaction created),
 * or the one TASKID argument; exactly one of the two.
 */
export async function taskIdsOf (api: ApiClient, taskIdArg: string | undefined, tx: string | undefined): Promise<string[]> {
  if ((taskIdArg === undefined) === (tx === undefined)) throw new UsageError('CLI_USAGE', 'give a TASKID or --tx TXHASH (one of them)')
  if (taskIdArg !== undefined) return [parseBytes32('TASKID', taskIdArg)]
  const txHash = parseBytes32('--tx', tx as string)
  const v = await api.tasksOfTx(txHash)
  if (v.taskIds.length === 0) {
    const why = v.requests.length > 0 ? `it published request ${v.requests.join(', ')} on chain, not matched yet` : 'it created no deal'
    throw new CliError('TX_NO_TASKS', `transaction ${txHash} has no task yet: ${why}`, { txHash, requests: v.requests })
  }
  return v.taskIds
}

/** `task show TASKID|--tx TXHASH [--watch] [--timeout S] [--json]`. */
export async function taskShowCommand (io: CliIo, taskIdArg: string | undefined, opts: TaskShowCommandOptions): Promise<void> {
  const timeoutMs = opts.timeout !== undefined ? parseIntOption('--timeout', opts.timeout, 1, 86_400) * 1000 : undefined
  if (timeoutMs !== undefined && opts.watch !== true) throw new UsageError('CLI_USAGE', '--timeout goes with --watch')
  const api = await clientFor(opts)
  const ids = await taskIdsOf(api, taskIdArg, opts.tx)
  if (ids.length > 1 || opts.tx !== undefined) {
    let views = await Promise.all(ids.map(async (id) => await api.taskStatus(id)))
    if (opts.watch === true && views.some((v) => !FINAL.has(v.phase))) {
      const t0 = Date.now()
      views = await watchTasks(api, ids, timeoutMs ?? defaultWatchMs(views), (v) => {
        if (opts.json !== true) io.err(progressLine(v, t0) + '\n')
      })
    }
    if (opts.json === true) {
      printJson(io, views)
      return
    }
    for (const [i, v] of views.entries()) {
      if (i > 0) io.out('\n')
      printTask(io, v)
    }
    return
  }
  const taskId = ids[0]
  let view = await api.taskStatus(taskId)
  if (opts.watch === true && !FINAL.has(view.phase)) {
    const t0 = Date.now()
    const json = opts.json === true
    if (!json) io.err(progressLine(view, t0) + '\n')
    const [end] = await watchTasks(api, [taskId], timeoutMs ?? defaultWatchMs([view]), (v) => {
      if (!json && (v.phase !== view.phase || v.failure?.agreed !== view.failure?.agreed)) io.err(progressLine(v, t0) + '\n')
      view = v
    })
    view = end
  }
  if (opts.json === true) {
    printJson(io, view)
    return
  }
  printTask(io, view)
}

/** One task of `task submit --watch --json`: its final state and, when finalized, its result. */
export interface WatchedTask {
  taskId: string
  status: string
  phase: TaskPhase
  resultCid: string | null
  result: { cid: string, path: string, stdout: string } | null
  /** why it failed, as the workers report it; null when none did */
  failure: TaskStatusView['failure']
  /** when the refund can be claimed (see refundText) */
  refund: string | null
}

/**
 * After `task submit`: watch every task of the deal to its end, then fetch
 * and check the finalized ones' results. Progress on stderr.
 */
export async function watchSubmitted (
  api: ApiClient,
  deal: SubmittedTask,
  progress: (line: string) => void,
  t0: number
): Promise<WatchedTask[]> {
  const ids = deal.tasks.map((t) => t.taskId)
  const first = await Promise.all(ids.map(async (id) => await api.taskStatus(id)))
  const seen = new Map<string, string>()
  const views = await watchTasks(api, ids, defaultWatchMs(first), (v) => {
    // a line per phase, and one more when the workers come to agree on a failure
    const key = `${v.phase}/${String(v.failure?.agreed === true)}`
    if (seen.get(v.taskId) !== key) progress(progressLine(v, t0))
    seen.set(v.taskId, key)
  })
  const out: WatchedTask[] = []
  for (const v of views) {
    let result: WatchedTask['result'] = null
    if (v.phase === 'finalized') {
      progress(`[${seconds(Date.now() - t0).padStart(7)}] task ${short(v.taskId)}: fetching the result ${v.resultCid ?? ''} and checking it against the chain`)
      const r = await api.result(v.taskId)
      result = { cid: r.cid, path: r.path, stdout: r.stdout }
    }
    const tail = v.phase !== 'finalized' ? stderrExcerpt(v.failure) : undefined
    if (tail !== undefined) progress(`[${seconds(Date.now() - t0).padStart(7)}] task ${short(v.taskId)}: stderr of worker ${tail.worker} (last lines; \`task logs\` has the tails):\n${tail.lines.map((l) => `  ${l}`).join('\n')}`)
    out.push({ taskId: v.taskId, status: v.status, phase: v.phase, resultCid: v.resultCid, result, failure: v.failure, refund: v.phase !== 'finalized' && v.times.claimed === null ? refundText(v) : null })
  }
  return out
}

/** Prints each result's stdout (a header per task when there are several). */
export function printResults (io: CliIo, tasks: WatchedTask[]): void {
  for (const t of tasks) {
    if (tasks.length > 1) io.out(`== task ${t.taskId} (${t.phase}) ==\n`)
    if (t.result !== null) io.out(t.result.stdout.endsWith('\n') || t.result.stdout.length === 0 ? t.result.stdout : `${t.result.stdout}\n`)
  }
}

/** TASK_FAILED when a watched task ended without a result. */
export function failedTasks (tasks: WatchedTask[]): CliError | undefined {
  const failed = tasks.filter((t) => t.phase !== 'finalized')
  if (failed.length === 0) return undefined
  const each = failed.map((t) => `${short(t.taskId)}${t.failure !== null ? ` (${t.failure.reason})` : ''}`).join(', ')
  const refund = failed.find((t) => t.refund !== null)?.refund
  return new CliError('TASK_FAILED', `${failed.length} of ${tasks.length} task(s) ended without a result: ${each}${refund !== undefined ? `; refund ${refund}` : ''}; see \`task logs TASKID\``, {
    tasks: failed.map((t) => t.taskId),
    failures: failed.map((t) => ({ taskId: t.taskId, code: t.failure?.code ?? null, exitCode: t.failure?.exitCode ?? null, reason: t.failure?.reason ?? null, refund: t.refund }))
  })
}

/** `task logs TASKID [--json]`: each worker's failure code, exit code and stderr tail. */
export async function taskLogsCommand (io: CliIo, taskIdArg: string, opts: ClientCommandOptions): Promise<void> {
  const taskId = parseBytes32('TASKID', taskIdArg)
  const api = await clientFor(opts)
  const logs = await api.taskLogs(taskId)
  if (opts.json === true) {
    printJson(io, logs)
    return
  }
  const f = logs.failure
  io.out(`task       ${logs.taskId}\nstatus     ${logs.status} (${logs.phase})\n`)
  if (f === null) io.out(`no worker of the ${logs.workers.length} reports a failure\n`)
  else io.out(`failure    ${f.reason}${f.agreed ? ' (deterministic: the workers agree)' : ''}\n`)
  for (const r of f?.reports ?? []) {
    const exit = r.exitCode !== null ? `exit code ${r.exitCode}` : 'no exit code'
    io.out(`\n== worker ${r.worker}: ${r.code}, ${exit}, stderr ${r.stderrBytes} byte(s)${r.stderrEncrypted ? ', sealed to the requester' : ''} ==\n`)
    if (r.stderr === null) io.out('(sealed to another key)\n')
    else if (r.stderr.length > 0) io.out(r.stderr.endsWith('\n') ? r.stderr : `${r.stderr}\n`)
  }
  for (const e of logs.errors) io.err(`worker ${e.worker}: no report (${e.code}: ${e.reason})\n`)
}
