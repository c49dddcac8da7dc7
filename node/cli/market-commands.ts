import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { cp, lstat, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AppCheckError, checkAppPath } from '../worker/app-check.js'
import type { AppCheck } from '../worker/app-check.js'
import { basename, resolve as resolvePath } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { isIexecError } from '../common/errors.js'
import { ArgsError, splitArgs } from '../../protocols/args.js'
import { HUB_RATIOS } from '../../contracts-abi/index.js'
import type { DealView, NoBidReason, OrderbookEntry, OrderbookQuery, OrderType, SubmitTaskRequest, SubmittedTask } from '../api/client.js'
import { clientFor, type ClientCommandOptions } from './client-commands.js'
import { CliError, UsageError } from './errors.js'
import { CLI_DEFAULTS } from './options.js'
import { parseOrderTags, parseRequesters } from './dataset-commands.js'
import { printJson, table, type CliIo } from './output.js'
import {
  formatAmount, formatEth, parseAddress, parseAmount, parseAppRef, parseBytes32, parseChecksum, parseCidOption,
  parseIntOption, parsePriceOption, parseTagOption
} from './parse.js'

// The market's client commands (issue 4): thin clients of the node's API
// routes. Each validates its command line before any network call, so a typo
// is a usage error (exit 2) even when no node runs.

const ORDER_TYPES: readonly OrderType[] = ['app', 'dataset', 'request', 'bid']

export interface OrderbookCommandOptions extends ClientCommandOptions {
  app?: string
  dataset?: string
  category?: string
  requester?: string
  tag?: string[]
  strict?: boolean
}

export function parseOrderType (raw: string | undefined): OrderType | undefined {
  if (raw === undefined) return undefined
  if (!(ORDER_TYPES as readonly string[]).includes(raw)) {
    throw new UsageError('CLI_BAD_OPTION', `the order type must be one of ${ORDER_TYPES.join(', ')}, got "${raw}"`)
  }
  return raw as OrderType
}

function short (hex: string): string {
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-4)}` : hex
}

export async function orderbookCommand (io: CliIo, typeArg: string | undefined, opts: OrderbookCommandOptions): Promise<void> {
  const query = orderbookQuery(typeArg, opts)
  const api = await clientFor(opts)
  const orders = await api.orderbook(query)
  if (opts.json === true) {
    printJson(io, { orders })
    return
  }
  printOrderbook(io, orders)
}

/** The API query of `orderbook [type] --app ... --tag ...` (checked: a typo is a usage error). */
export function orderbookQuery (typeArg: string | undefined, opts: OrderbookCommandOptions): OrderbookQuery {
  return {
    ...(typeArg !== undefined ? { type: parseOrderType(typeArg) } : {}),
    ...(opts.app !== undefined ? { app: parseAddress('--app', opts.app) } : {}),
    ...(opts.dataset !== undefined ? { dataset: parseAddress('--dataset', opts.dataset) } : {}),
    ...(opts.category !== undefined ? { category: parseIntOption('--category', opts.category, 0, 1_000_000) } : {}),
    ...(opts.requester !== undefined ? { requester: parseAddress('--requester', opts.requester) } : {}),
    ...(opts.tag !== undefined ? { tag: parseOrderTags(opts.tag).join(',') } : {}),
    ...(opts.strict === true ? { strict: true } : {})
  }
}

export function printOrderbook (io: CliIo, orders: OrderbookEntry[]): void {
  if (orders.length === 0) {
    io.out('the orderbook holds no live order for this query\n')
    return
  }
  io.out(table(['TYPE', 'ORDER HASH', 'SIGNER', 'PRICE', 'REMAINING', 'RECEIVED'], orders.map((o: OrderbookEntry) => [
    o.type, o.orderHash, short(o.signer), priceOf(o), String(o.remaining), receivedAt(o.receivedAt)
  ])))
}

/** `order show HASH`: one live order of the node's book, every field, and what the hub counts consumed. */
export async function orderShowCommand (io: CliIo, orderHash: string, opts: ClientCommandOptions): Promise<void> {
  const hash = parseBytes32('the order hash', orderHash)
  const api = await clientFor(opts)
  const o = await api.order(hash)
  if (opts.json === true) {
    printJson(io, o)
    return
  }
  const lines = [`order     ${o.orderHash} (${o.type})`, `signer    ${o.signer}`, `remaining ${o.remaining}, consumed ${o.consumed} (hub)`]
  for (const [k, v] of Object.entries(o.order)) if (k !== 'sign') lines.push(`${k.padEnd(9)} ${v}`)
  io.out(lines.join('\n') + '\n')
}

export function priceOf (o: OrderbookEntry): string {
  const key = o.type === 'app' ? 'appprice' : o.type === 'dataset' ? 'datasetprice' : o.type === 'request' ? 'workerpoolmaxprice' : 'price'
  const v = o.order[key]
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') {
    try {
      return `${BigInt(v)} nRLC`
    } catch {
      return String(v)
    }
  }
  return '-'
}

function receivedAt (v: number | string): string {
  const d = new Date(typeof v === 'number' ? v : Number.isNaN(Number(v)) ? v : Number(v))
  return Number.isNaN(d.getTime()) ? String(v) : d.toISOString()
}

export async function orderCancelCommand (io: CliIo, hash: string, opts: ClientCommandOptions): Promise<void> {
  const orderHash = parseBytes32('the order hash', hash)
  const api = await clientFor(opts)
  const r = await api.cancelOrder(orderHash)
  if (opts.json === true) printJson(io, r)
  else io.out(`order ${r.orderHash} cancelled on chain (tx ${r.txHash})\n`)
}

export async function walletShowCommand (io: CliIo, opts: ClientCommandOptions): Promise<void> {
  const api = await clientFor(opts)
  const w = await api.wallet()
  if (opts.json === true) {
    printJson(io, w)
    return
  }
  io.out([
    `address       ${w.address}`,
    `eth           ${formatEth(w.eth)}`,
    `rlc (wallet)  ${formatAmount(w.rlc)}`,
    `hub balance   ${formatAmount(w.balance)}`,
    `frozen        ${formatAmount(w.frozen)}`,
    `stake         ${formatAmount(w.stake)}`,
    `stake locked  ${formatAmount(w.stakeLocked)}`
  ].join('\n') + '\n')
}

export async function accountCommand (io: CliIo, action: 'deposit' | 'withdraw', rawAmount: string, opts: ClientCommandOptions): Promise<void> {
  const amount = parseAmount('AMOUNT', rawAmount)
  const api = await clientFor(opts)
  const r = action === 'deposit' ? await api.deposit(amount) : await api.withdraw(amount)
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  io.out(`${action === 'deposit' ? 'deposited' : 'withdrew'} ${formatAmount(amount)} (tx ${r.txHash})\nhub balance now ${formatAmount(r.balance)}\n`)
}

export async function stakeCommand (io: CliIo, rawAmount: string, opts: ClientCommandOptions): Promise<void> {
  const amount = parseAmount('AMOUNT', rawAmount)
  const api = await clientFor(opts)
  const r = await api.stake(amount)
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  io.out(`staked ${formatAmount(amount)} (tx ${r.txHash})\nstake now ${formatAmount(r.stake)}\n`)
}

export async function dealShowCommand (io: CliIo, rawId: string, opts: ClientCommandOptions): Promise<void> {
  const dealId = parseBytes32('DEALID', rawId)
  const api = await clientFor(opts)
  const d = await api.deal(dealId)
  if (opts.json === true) {
    printJson(io, d)
    return
  }
  printDeal(io, d)
}

export function printDeal (io: CliIo, d: Pick<DealView, 'dealId' | 'scheduler' | 'workers' | 'tasks'> & Partial<DealView>): void {
  const lines = [
    `deal       ${d.dealId}`,
    `scheduler  ${d.scheduler}`,
    ...d.workers.map((w, i) => `${i === 0 ? 'workers   ' : '          '} ${w}`)
  ]
  if (d.app !== undefined) lines.push(`app        ${d.app}`)
  if (d.dataset !== undefined) lines.push(`dataset    ${d.dataset}`)
  if (d.requester !== undefined) lines.push(`requester  ${d.requester}`)
  if (d.beneficiary !== undefined && d.beneficiary !== d.requester) lines.push(`beneficiary ${d.beneficiary}`)
  if (d.category !== undefined) lines.push(`category   ${String(d.category)}    trust ${String(d.trust)}    volume ${String(d.volume)}`)
  io.out(lines.join('\n') + '\n')
  if (d.tasks.length > 0) io.out(table(['TASK', 'STATUS'], d.tasks.map((t) => [t.taskId, t.status])))
}

export interface TaskSubmitCommandOptions extends ClientCommandOptions {
  /** --min-score N */
  minScore?: string
  /** --beneficiary ADDR */
  beneficiary?: string
  /** --callback ADDR */
  callback?: string
  app?: string
  dataset?: string
  args?: string
  input?: string[]
  /** --args-file FILE: a sweep, one line of arguments per task */
  argsFile?: string
  /** --input-files-file FILE: a sweep, one line of whitespace-separated input CIDs per task */
  inputFilesFile?: string
  category?: string
  trust?: string
  volume?: string
  maxPrice?: string
  tag?: string[]
  biddingWindow?: string
  encryptResult?: boolean
  watch?: boolean
}

// bounds the node also enforces; checked here so a typo never reaches the network
const MAX_ARGS_LENGTH = 4_096
const MAX_INPUTS = 32

/** Validates `task submit`'s command line into the API request. */
export function parseTaskSubmit (opts: TaskSubmitCommandOptions): SubmitTaskRequest {
  if (opts.app === undefined) throw new UsageError('CLI_MISSING_ARGUMENT', 'task submit needs --app ADDRESS|NAME')
  const req: SubmitTaskRequest = { app: parseAppRef(opts.app) }
  if (opts.dataset !== undefined) req.dataset = parseAddress('--dataset', opts.dataset)
  if (opts.args !== undefined) {
    if (opts.args.length > MAX_ARGS_LENGTH) throw new UsageError('CLI_BAD_OPTION', `--args is longer than ${MAX_ARGS_LENGTH} characters`)
    // split here as every worker will (quotes, backslashes, no expansion): a string that does not split is a usage error with its own code
    try {
      splitArgs(opts.args)
    } catch (err) {
      if (err instanceof ArgsError) throw new UsageError(err.code, `--args: ${err.message}`, err.details)
      throw err
    }
    req.args = opts.args
  }
  if (opts.input !== undefined) {
    if (opts.input.length > MAX_INPUTS) throw new UsageError('CLI_BAD_OPTION', `at most ${MAX_INPUTS} --input CIDs`)
    req.inputs = opts.input.map((c) => parseCidOption('--input', c))
  }
  if (opts.category !== undefined) req.category = parseIntOption('--category', opts.category, 0, 1_000_000)
  if (opts.trust !== undefined) req.trust = parseIntOption('--trust', opts.trust, 1, HUB_RATIOS.maxTrust)
  if (opts.volume !== undefined) req.volume = parseIntOption('--volume', opts.volume, 1, 10_000)
  parseSweep(opts, req)
  if (opts.maxPrice !== undefined) req.maxPrice = parseAmountOrPrice('--max-price', opts.maxPrice)
  if (opts.tag !== undefined) req.tags = opts.tag.map(parseTagOption)
  if (opts.biddingWindow !== undefined) req.biddingWindowMs = parseIntOption('--bidding-window', opts.biddingWindow, 1, 600_000)
  if (opts.encryptResult === true) req.encryptResult = true
  if (opts.minScore !== undefined) req.minScore = parseIntOption('--min-score', opts.minScore, 0, 1_000_000_000)
  if (opts.beneficiary !== undefined) req.beneficiary = parseAddress('--beneficiary', opts.beneficiary)
  if (opts.callback !== undefined) req.callback = parseAddress('--callback', opts.callback)
  return req
}

/** Tasks a sweep file may list: a deal's volume at most (the node and the workers bound them too). */
const MAX_SWEEP_LINES = 10_000

/** A sweep file's lines: one per task; a last empty line (the file's final newline) is not a task. */
function sweepLines (flag: string, path: string): string[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new UsageError('CLI_BAD_OPTION', `${flag}: cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`)
  }
  const lines = text.split(/\r?\n/)
  if (lines[lines.length - 1] === '') lines.pop()
  if (lines.length === 0) throw new UsageError('CLI_BAD_OPTION', `${flag}: ${path} has no line: a sweep needs one line per task`)
  if (lines.length > MAX_SWEEP_LINES) throw new UsageError('CLI_BAD_OPTION', `${flag}: ${path} has ${lines.length} lines; at most ${MAX_SWEEP_LINES} tasks`)
  return lines
}

/**
 * `--args-file` and `--input-files-file`: per-task arguments and inputs (a
 * sweep). The volume is their number of lines; a `--volume` that differs,
 * or two files of different lengths, is a usage error.
 */
function parseSweep (opts: TaskSubmitCommandOptions, req: SubmitTaskRequest): void {
  const counts: Array<[string, number]> = []
  if (opts.argsFile !== undefined) {
    if (opts.args !== undefined) throw new UsageError('CLI_USAGE', '--args and --args-file do not go together: each line of the file is a task\'s --args')
    const lines = sweepLines('--args-file', opts.argsFile)
    lines.forEach((line, i) => {
      try {
        splitArgs(line)
      } catch (err) {
        if (err instanceof ArgsError) throw new UsageError(err.code, `--args-file line ${i + 1}: ${err.message}`, { ...err.details, line: i + 1 })
        throw err
      }
    })
    req.taskArgs = lines
    counts.push(['--args-file', lines.length])
  }
  if (opts.inputFilesFile !== undefined) {
    const lines = sweepLines('--input-files-file', opts.inputFilesFile)
    req.taskInputs = lines.map((line, i) => {
      const cids = line.split(/\s+/).filter((c) => c.length > 0)
      if (cids.length > MAX_INPUTS) throw new UsageError('CLI_BAD_OPTION', `--input-files-file line ${i + 1}: at most ${MAX_INPUTS} CIDs`)
      return cids.map((c) => parseCidOption(`--input-files-file line ${i + 1}`, c))
    })
    counts.push(['--input-files-file', lines.length])
  }
  if (counts.length === 0) return
  if (req.volume !== undefined) counts.unshift(['--volume', req.volume])
  const differ = counts.find(([, n]) => n !== counts[0][1])
  if (differ !== undefined) throw new UsageError('CLI_BAD_OPTION', `a sweep needs one line per task: ${counts.map(([f, n]) => `${f} ${n}`).join(', ')}`)
  req.volume = counts[0][1]
}

/** A price may be 0 (free tasks), unlike a deposit. */
function parseAmountOrPrice (flag: string, raw: string): bigint {
  if (/^\s*0+\s*(nrlc)?\s*$/i.test(raw)) return 0n
  return /^\s*\d+\s*$/.test(raw) ? parsePriceOption(flag, raw) : parseAmount(flag, raw)
}

export async function taskSubmitCommand (io: CliIo, opts: TaskSubmitCommandOptions): Promise<void> {
  const req = parseTaskSubmit(opts)
  const api = await clientFor(opts)
  const watch = opts.watch === true && opts.json !== true
  // progress on stderr: stdout stays the result alone
  const progress = (line: string): void => { if (watch) io.err(`${line}\n`) }
  const t0 = Date.now()
  const windowMs = req.biddingWindowMs
  if (req.maxPrice === undefined && opts.json !== true) {
    // said before the node signs: what a request without --max-price may cost a task
    const cap = (await api.status()).defaultMaxPrice
    if (cap !== undefined) io.err(`task: no --max-price: offering the workers at most ${formatAmount(cap)} a task (the node's defaultMaxPrice)\n`)
  }
  progress(`task: request order for app ${req.app} signed and gossiped; bidding${windowMs !== undefined ? ` for up to ${windowMs} ms` : ''}...`)
  // the node answers once the deal is mined: bidding window + matchOrders
  const timeoutMs = Math.max(CLI_DEFAULTS.taskSubmitTimeoutMs, (windowMs ?? 0) + CLI_DEFAULTS.taskSubmitTimeoutMs)
  let r: SubmittedTask
  try {
    r = await api.submitTask(req, { timeoutMs })
  } catch (err) {
    if (isIexecError(err, 'API_ERROR') && (err.details?.serverCode === 'NO_BIDS' || err.details?.serverCode === 'NOT_ENOUGH_BIDS')) {
      printNoBids(io, err.details, opts.json === true)
    }
    throw err
  }
  progress(`task: deal ${r.dealId} mined after ${((Date.now() - t0) / 1000).toFixed(1)} s: scheduler ${r.scheduler}, ${r.workers.length} worker(s)`)
  if (opts.watch !== true) {
    if (opts.json === true) printJson(io, r)
    else printDeal(io, r)
    return
  }
  // --watch: follow every task to its end, then fetch, check and print the results
  if (opts.json !== true) printDeal(io, r)
  const { watchSubmitted, printResults, failedTasks } = await import('./task-commands.js')
  const tasks = await watchSubmitted(api, r, progress, t0)
  if (opts.json === true) printJson(io, { ...r, tasks })
  else printResults(io, tasks)
  const failed = failedTasks(tasks)
  if (failed !== undefined) throw failed
}

/** NO_BIDS, NOT_ENOUGH_BIDS: one line per provider's reason, before the error line itself. */
function printNoBids (io: CliIo, details: Record<string, unknown>, json: boolean): void {
  if (json) return
  const server = details.serverDetails as { reasons?: unknown } | undefined
  const reasons = Array.isArray(server?.reasons) ? server.reasons as NoBidReason[] : []
  if (reasons.length === 0) {
    io.err('no provider answered the request order (no reason received)\n')
    return
  }
  io.err(`${details.serverCode === 'NOT_ENOUGH_BIDS' ? 'not enough bids' : 'no bid'}; ${reasons.length} provider(s) said why:\n`)
  // a line with no peer (NO_ANSWER) speaks of the providers that did not answer at all
  for (const r of reasons) io.err(`  ${typeof r.peerId === 'string' ? r.peerId : 'no peer'}: ${String(r.reason)} (${String(r.code)})\n`)
}

export interface AppRegisterCommandOptions extends ClientCommandOptions {
  name?: string
  cid?: string
  checksum?: string
  price?: string
  volume?: string
  /** --dataset: only with these datasets */
  dataset?: string[]
  /** --requester: only for these requesters */
  requester?: string[]
  /** --tag: tags every deal must accept */
  tag?: string[]
}

export function parseAppRegister (opts: AppRegisterCommandOptions): { name: string, cid: string, checksum: string, price: bigint, volume?: number, datasets: string[], requesters: string[], tags: string[] } {
  for (const flag of ['name', 'cid', 'checksum', 'price'] as const) {
    if (opts[flag] === undefined) throw new UsageError('CLI_MISSING_ARGUMENT', `app register needs --${flag}`)
  }
  const name = (opts.name ?? '').trim()
  if (name.length === 0 || name.length > 64 || /\s/.test(name)) throw new UsageError('CLI_BAD_OPTION', `--name must be 1-64 characters without spaces, got "${opts.name ?? ''}"`)
  return {
    name,
    cid: parseCidOption('--cid', opts.cid ?? ''),
    checksum: parseChecksum(opts.checksum ?? ''),
    price: parseAmountOrPrice('--price', opts.price ?? ''),
    ...(opts.volume !== undefined ? { volume: parseIntOption('--volume', opts.volume, 1, 1_000_000) } : {}),
    ...parseAppPolicy(opts)
  }
}

/** `--dataset ADDR…`, `--requester ADDR…`, `--tag TAG…` of an app's orders: one order per (dataset, requester) pair. */
export function parseAppPolicy (opts: Pick<AppRegisterCommandOptions, 'dataset' | 'requester' | 'tag'>): { datasets: string[], requesters: string[], tags: string[] } {
  const datasets = [...new Set((opts.dataset ?? []).map((d) => parseAddress('--dataset', d)))]
  const requesters = [...new Set(parseRequesters(opts.requester))]
  if (datasets.length > 32 || requesters.length > 32) throw new UsageError('CLI_BAD_OPTION', 'at most 32 --dataset and 32 --requester')
  const pairs = Math.max(1, datasets.length) * Math.max(1, requesters.length)
  if (pairs > 64) throw new UsageError('CLI_BAD_OPTION', `${pairs} (dataset, requester) pairs need as many orders; at most 64`)
  return { datasets, requesters, tags: parseOrderTags(opts.tag) }
}

export async function appRegisterCommand (io: CliIo, opts: AppRegisterCommandOptions): Promise<void> {
  const app = parseAppRegister(opts)
  const api = await clientFor(opts)
  const r = await api.registerApp(app)
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  io.out(`app ${app.name} registered at ${r.address}\ncid ${r.cid}, checksum ${r.checksum}\napp order ${r.orderHash} at ${formatAmount(app.price)} per task\n`)
}

/** A well-formed CID that only lets parseAppRegister check the other options. */
const PLACEHOLDER_CID = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'
/** How long a publish may take: reading, checking and adding hundreds of MiB takes a while on a slow disk. */
const APP_PUBLISH_TIMEOUT_MS = 30 * 60_000
const APP_PROGRESS_POLL_MS = 500
/** At most one byte-count line per phase this often (phase changes print at once). */
const APP_PROGRESS_LINE_MS = 2_000
const APP_PHASE_WORDS: Record<string, string> = {
  reading: 'reading', checking: 'checking the module', adding: 'adding to the swarm', providing: 'announcing in the DHT', registering: 'registering on the hub and gossiping the app order'
}

/**
 * `app publish PATH` (a WASI module, a static ELF binary, an OCI layout
 * folder or tar): the CLI checks the app's kind, then the node reads it from
 * its own disk, checks it again (a WASI module: that the executor can run
 * it), adds it to its Helia (and provides it in the DHT), registers it on
 * chain with that CID and its sha256, and gossips its app orders. Nothing
 * goes on chain before the checks. The phases go to stderr.
 */
export async function appPublishCommand (io: CliIo, file: string, opts: AppRegisterCommandOptions): Promise<void> {
  let path = resolvePath(file)
  // a WASI module, a static ELF binary or an OCI image layout (folder or tar), checked before anything goes on chain
  let checked: AppCheck
  try {
    checked = await checkAppPath(path, { onProgress: (n) => { if (opts.json !== true) io.err(`packing ${file}: ${n} bytes\r`) } })
  } catch (err) {
    if (err instanceof AppCheckError) throw new UsageError('CLI_BAD_OPTION', `${file}: ${err.message}`, { reason: err.code })
    throw new CliError('CLI_FILE_UNREADABLE', `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`, { file })
  }
  const name = opts.name ?? basename(file).replace(/\.(wasm|tar)$/, '')
  // the same checks of --name, --price and --volume as app register, before any call (the node supplies the CID and checksum)
  const app = parseAppRegister({ ...opts, name, cid: PLACEHOLDER_CID, checksum: `0x${'00'.repeat(32)}`, price: opts.price ?? '0' })
  // a layout folder was packed as a tar, a docker-archive converted to a layout: the node reads that file
  let packedDir: string | undefined
  if (checked.kind === 'oci' && (checked.converted === true || (await lstat(path)).isDirectory())) {
    packedDir = await mkdtemp(join(tmpdir(), 'iexec-app-'))
    path = join(packedDir, 'image.tar')
    await writeFile(path, checked.bytes)
  }
  try {
    await publishAppFile(io, path, app, opts)
  } finally {
    if (packedDir !== undefined) await rm(packedDir, { recursive: true, force: true })
  }
}

async function publishAppFile (io: CliIo, path: string, app: ReturnType<typeof parseAppRegister>, opts: AppRegisterCommandOptions): Promise<void> {
  const api = await clientFor(opts)
  const publishId = randomBytes(8).toString('hex')
  let settled = false
  const publishing = api.publishApp({ path, name: app.name, price: app.price, publishId, datasets: app.datasets, requesters: app.requesters, tags: app.tags, ...(app.volume !== undefined ? { volume: app.volume } : {}) }, { timeoutMs: APP_PUBLISH_TIMEOUT_MS })
    .finally(() => { settled = true })
  const watching = opts.json === true
    ? Promise.resolve()
    : (async () => {
        let lastPhase: string | undefined
        let lastLine = 0
        // bounded by the publish itself: it settles (answer, error or the timeout)
        while (!settled) {
          await sleep(APP_PROGRESS_POLL_MS)
          if (settled) break
          const p = await api.appPublishProgress(publishId).catch(() => undefined)
          if (p === undefined || p.phase === 'done' || p.phase === 'failed') continue
          const now = Date.now()
          const counting = p.phase === 'reading' || p.phase === 'adding'
          if (p.phase !== lastPhase || (counting && now - lastLine >= APP_PROGRESS_LINE_MS)) {
            const amount = counting && p.bytes > 0 ? ` ${(p.bytes / 1048576).toFixed(1)} MiB / ${(p.totalBytes / 1048576).toFixed(1)} MiB` : ''
            io.err(`${APP_PHASE_WORDS[p.phase] ?? p.phase}…${amount}\n`)
            lastPhase = p.phase
            lastLine = now
          }
        }
      })()
  let r
  try {
    r = await publishing
  } finally {
    await watching
  }
  if (opts.json === true) {
    printJson(io, { address: r.address, cid: r.cid, checksum: r.checksum, orderHash: r.orderHash, orderHashes: r.orderHashes ?? [r.orderHash] })
    return
  }
  io.out(`app ${r.name} published: ${r.bytes} bytes added to the swarm\naddress ${r.address}\ncid ${r.cid}, sha256 ${r.checksum}\n` +
    (r.orderHashes ?? [r.orderHash]).map((h) => `app order ${h} at ${formatAmount(app.price)} per task\n`).join(''))
}

/** `result get TASKID [--out DIR]`: the node fetches and checks; the CLI prints stdout and copies the folder. */
export async function resultGetCommand (io: CliIo, taskIdArg: string | undefined, opts: ClientCommandOptions & { out?: string, tx?: string }): Promise<void> {
  if (taskIdArg !== undefined && !/^0x[0-9a-fA-F]{64}$/.test(taskIdArg)) throw new UsageError('CLI_BAD_OPTION', `a task id is 0x and 64 hex digits, got "${taskIdArg}"`)
  const api = await clientFor(opts)
  const { taskIdsOf } = await import('./task-commands.js')
  const ids = await taskIdsOf(api, taskIdArg, opts.tx)
  if (opts.tx !== undefined) {
    const out = opts.out !== undefined ? resolvePath(opts.out) : undefined
    if (out !== undefined && existsSync(out)) throw new UsageError('CLI_BAD_OPTION', `--out ${out} already exists`)
    const results = []
    for (const id of ids) {
      const r = await api.result(id)
      let path = r.path
      if (out !== undefined) {
        path = join(out, id)
        await cp(r.path, path, { recursive: true })
      }
      results.push({ taskId: r.taskId, cid: r.cid, path, stdout: r.stdout })
      if (opts.json !== true) {
        io.out(r.stdout)
        io.err(`task ${r.taskId}: result ${r.cid}${r.encrypted ? ' (decrypted)' : ''} checked against the chain, unpacked in ${path}\n`)
      }
    }
    if (opts.json === true) printJson(io, results)
    return
  }
  const taskId = ids[0]
  const r = await api.result(taskId)
  let path = r.path
  if (opts.out !== undefined) {
    const out = resolvePath(opts.out)
    if (existsSync(out)) throw new UsageError('CLI_BAD_OPTION', `--out ${out} already exists`)
    await cp(r.path, out, { recursive: true })
    path = out
  }
  if (opts.json === true) {
    printJson(io, { taskId: r.taskId, cid: r.cid, path, stdout: r.stdout })
    return
  }
  io.out(r.stdout)
  io.err(`result ${r.cid}${r.encrypted ? ' (decrypted)' : ''} checked against the chain, unpacked in ${path}\n`)
}
