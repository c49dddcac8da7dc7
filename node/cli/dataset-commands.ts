import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { DatasetPublishProgress, PublishedDataset } from '../api/client.js'
import { clientFor, type ClientCommandOptions } from './client-commands.js'
import { CliError, UsageError } from './errors.js'
import { printJson, table, type CliIo } from './output.js'
import { formatAmount, parseAddress, parseAmount, parseAppRef, parseTagOption } from './parse.js'
import { TAG_BITS } from '../../protocols/market.js'

// The dataset commands (issue 6): thin clients of the node's dataset routes.
// The command line is checked before any network call, so a typo is a usage
// error (exit 2) even when no node runs.

/** How long a publish may take: encrypting and adding a GiB takes minutes on a slow disk. */
const PUBLISH_TIMEOUT_MS = 60 * 60_000
/** Progress polling while a publish runs. */
const PROGRESS_POLL_MS = 500
/** At most one byte-count line per phase this often (phase changes print at once). */
const PROGRESS_LINE_MS = 2_000

export interface DatasetPublishCommandOptions extends ClientCommandOptions {
  name?: string
  price?: string
  /** --free: a price of 0, said on purpose */
  free?: boolean
  /** false with --no-encrypt */
  encrypt?: boolean
  /** --app: only these apps (addresses or names) */
  app?: string[]
  /** --any-app */
  anyApp?: boolean
  /** --requester: only these requesters */
  requester?: string[]
  /** --tag: tags every deal must accept */
  tag?: string[]
  /** --volume: uses of each order */
  volume?: string
}

/** What an owner chose with `--app`/`--any-app`, `--requester`, `--tag`, `--volume`, checked before any network call. */
export interface DatasetPolicyOptions {
  apps?: string[]
  anyApp?: true
  requesters: string[]
  tags: string[]
  volume?: bigint
}

/** `--requester ADDR…`: addresses (0x and 40 hex digits). */
export function parseRequesters (raw: string[] | undefined): string[] {
  return (raw ?? []).map((r) => parseAddress('--requester', r))
}

/** `--tag TAG…`: only tags with a bit on chain (an order's tag is a bytes32), at most 16. */
export function parseOrderTags (raw: string[] | undefined): string[] {
  const tags = [...new Set((raw ?? []).map((t) => parseTagOption(t)))]
  for (const t of tags) {
    if (TAG_BITS[t] === undefined) throw new UsageError('CLI_BAD_OPTION', `--tag ${t}: an order's tags are on chain, so only these exist: ${Object.keys(TAG_BITS).join(', ')}`)
  }
  if (tags.length > 16) throw new UsageError('CLI_BAD_OPTION', `at most 16 --tag, got ${tags.length}`)
  return tags
}

/** `--volume N`: how many tasks each order allows, 1 to 10^12. */
export function parseOrderVolume (raw: string | undefined): bigint | undefined {
  if (raw === undefined) return undefined
  const s = raw.trim()
  if (!/^\d{1,13}$/.test(s) || BigInt(s) < 1n || BigInt(s) > 1_000_000_000_000n) throw new UsageError('CLI_BAD_OPTION', `--volume is a number of uses from 1 to 1000000000000, got "${raw}"`)
  return BigInt(s)
}

/**
 * The owner's choice of apps: `--app ADDR|NAME…` or `--any-app`, never
 * both, never neither (DATASET_APPS_REQUIRED, a usage error).
 */
export function parseDatasetPolicy (opts: Pick<DatasetPublishCommandOptions, 'app' | 'anyApp' | 'requester' | 'tag' | 'volume'>): DatasetPolicyOptions {
  const apps = opts.app === undefined ? undefined : [...new Set(opts.app.map((a) => parseAppRef(a)))]
  if (apps !== undefined && opts.anyApp === true) throw new UsageError('CLI_BAD_OPTION', '--app and --any-app exclude each other: name the apps, or allow any')
  if (apps === undefined && opts.anyApp !== true) {
    throw new UsageError('DATASET_APPS_REQUIRED', 'choose which apps may read the dataset: --app ADDR|NAME... (only those apps: you trust their code, pinned by its checksum on chain) or --any-app (any app, including one that copies the data to its result)')
  }
  if (apps !== undefined && apps.length > 32) throw new UsageError('CLI_BAD_OPTION', `at most 32 --app, got ${apps.length}`)
  const requesters = parseRequesters(opts.requester)
  if (requesters.length > 32) throw new UsageError('CLI_BAD_OPTION', `at most 32 --requester, got ${requesters.length}`)
  const pairs = (apps?.length ?? 1) * Math.max(1, requesters.length)
  if (pairs > 64) throw new UsageError('CLI_BAD_OPTION', `${pairs} (app, requester) pairs need as many orders; at most 64`)
  const volume = parseOrderVolume(opts.volume)
  return {
    ...(apps !== undefined ? { apps } : { anyApp: true as const }),
    requesters,
    tags: parseOrderTags(opts.tag),
    ...(volume !== undefined ? { volume } : {})
  }
}

/** The printed warning of `--any-app`. */
export const ANY_APP_WARNING = 'warning: --any-app lets ANY app read this dataset, including one that copies it to its result: whoever runs such an app on it gets the plaintext. Use --app to allow only apps whose code you trust.'

/**
 * `--price` and `--free`: a price is required, and 0 only with `--free`
 * (a dataset given away by a forgotten flag is a mistake an owner cannot undo).
 */
export function parseDatasetPriceChoice (opts: Pick<DatasetPublishCommandOptions, 'price' | 'free'>): bigint {
  if (opts.free === true) {
    if (opts.price !== undefined && parseDatasetPrice(opts.price) !== 0n) throw new UsageError('CLI_BAD_OPTION', `--free and --price ${opts.price} contradict each other`)
    return 0n
  }
  if (opts.price === undefined) throw new UsageError('CLI_MISSING_ARGUMENT', 'dataset publish needs --price AMOUNT (per task: 5, 5nRLC, 1.5RLC), or --free to give it away')
  const n = parseDatasetPrice(opts.price)
  if (n === 0n) throw new UsageError('CLI_BAD_OPTION', '--price 0 gives the dataset away: say so with --free')
  return n
}

/** `--price`: 0 (free) or an amount (5, 5nRLC, 1.5RLC). */
export function parseDatasetPrice (raw: string): bigint {
  if (/^\s*0+\s*(nrlc|rlc)?\s*$/i.test(raw)) return 0n
  const n = parseAmount('--price', raw)
  // the hub's cap on a price per task (contracts-abi/README.md)
  if (n > (1n << 48n) - 1n) throw new UsageError('CLI_BAD_OPTION', `--price is above the hub's cap of ${(1n << 48n) - 1n} nRLC, got "${raw}"`)
  return n
}

function mib (n: number): string {
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`
}

const PHASE_WORDS: Record<DatasetPublishProgress['phase'], string> = {
  checking: 'checking',
  encrypting: 'encrypting',
  adding: 'adding to the swarm',
  providing: 'announcing in the DHT',
  registering: 'registering on the hub',
  'storing-key': 'storing the key',
  signing: 'signing and gossiping the dataset order',
  done: 'done',
  failed: 'failed'
}

/** `dataset publish PATH`: the node encrypts, adds, registers and offers it; the CLI shows the phases on stderr. */
export async function datasetPublishCommand (io: CliIo, path: string, opts: DatasetPublishCommandOptions): Promise<void> {
  const absolute = resolvePath(path)
  if (opts.name !== undefined && (opts.name.length === 0 || opts.name.length > 64)) {
    throw new UsageError('CLI_BAD_OPTION', `--name must be 1-64 characters, got "${opts.name}"`)
  }
  const price = parseDatasetPriceChoice(opts)
  const policy = parseDatasetPolicy(opts)
  let st
  try {
    st = await stat(absolute)
    await access(absolute, constants.R_OK)
  } catch (err) {
    throw new CliError('CLI_FILE_UNREADABLE', `cannot read ${absolute}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { file: absolute })
  }
  if (!st.isFile() && !st.isDirectory()) throw new UsageError('CLI_BAD_OPTION', `${absolute} is neither a file nor a folder`)
  const api = await clientFor(opts)
  // on stderr, and with --json too: it is for the person who typed the command
  if (policy.anyApp === true) io.err(ANY_APP_WARNING + '\n')
  const publishId = randomBytes(8).toString('hex')
  let settled = false
  const publishing = api.publishDataset({
    path: absolute, price, publishId,
    ...(policy.apps !== undefined ? { apps: policy.apps } : { anyApp: true }),
    requesters: policy.requesters,
    tags: policy.tags,
    ...(policy.volume !== undefined ? { volume: policy.volume } : {}),
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    ...(opts.encrypt === false ? { encrypt: false } : {})
  }, { timeoutMs: PUBLISH_TIMEOUT_MS }).finally(() => { settled = true })
  // progress on stderr, so stdout stays the result (and --json stays one document)
  const watching = opts.json === true
    ? Promise.resolve()
    : (async () => {
        let lastPhase: string | undefined
        let lastLine = 0
        // bounded by the publish itself: it settles (answer, error or PUBLISH_TIMEOUT_MS)
        while (!settled) {
          await sleep(PROGRESS_POLL_MS)
          if (settled) break
          const p = await api.publishProgress(publishId).catch(() => undefined)
          if (p === undefined || p.phase === 'done' || p.phase === 'failed') continue
          const now = Date.now()
          const counting = p.phase === 'encrypting' || p.phase === 'adding'
          if (p.phase !== lastPhase || (counting && now - lastLine >= PROGRESS_LINE_MS)) {
            const amount = counting && p.bytes > 0 ? ` ${mib(p.bytes)}${p.totalBytes !== undefined && p.phase === 'encrypting' ? ` / ${mib(p.totalBytes)}` : ''}` : ''
            io.err(`${PHASE_WORDS[p.phase]}…${amount}\n`)
            lastPhase = p.phase
            lastLine = now
          }
        }
      })()
  let r: PublishedDataset
  try {
    r = await publishing
  } finally {
    await watching
  }
  if (opts.json === true) {
    printJson(io, { address: r.address, cid: r.cid, checksum: r.checksum, orderHash: r.orderHash, orderHashes: r.orderHashes, policy: r.policy })
    return
  }
  const who = r.policy.apps === 'any' ? 'any app (see the warning above)' : `only app${r.policy.apps.length > 1 ? 's' : ''} ${r.policy.apps.join(', ')}`
  io.out([
    `dataset ${r.name} published: ${r.bytes} bytes (${r.kind}), ${r.encrypted ? 'encrypted (AES-256-GCM; the key stays on this node)' : 'NOT encrypted: anyone can read it'}`,
    `address ${r.address}`,
    `cid ${r.cid}, sha256 of the plaintext ${r.checksum}`,
    `readable by ${who}${r.policy.requesters.length > 0 ? `, for requester${r.policy.requesters.length > 1 ? 's' : ''} ${r.policy.requesters.join(', ')}` : ''}${r.policy.tags.length > 0 ? `, deals tagged ${r.policy.tags.join(' ')}` : ''}`,
    ...r.orderHashes.map((h) => `dataset order ${h} at ${formatAmount(BigInt(r.price))} per task, ${r.policy.volume} use(s)`)
  ].join('\n') + '\n')
}

/** `dataset list`: this node's datasets. */
export async function datasetListCommand (io: CliIo, opts: ClientCommandOptions): Promise<void> {
  const api = await clientFor(opts)
  const list = await api.datasets()
  if (opts.json === true) {
    printJson(io, list)
    return
  }
  if (list.length === 0) {
    io.out('this node has published no dataset (`iexec-p2p dataset publish PATH`)\n')
    return
  }
  io.out(table(['ADDRESS', 'NAME', 'STATE', 'ENCRYPTED', 'PRICE', 'ORDERS', 'CID'],
    list.map((d) => [d.address, d.name, d.published ? 'published' : 'unpublished', d.encrypted ? 'yes' : 'no', formatAmount(BigInt(d.price)), String(d.orders.length), d.cid])))
}

/** `dataset show ADDRESS`: any dataset of the hub and its live orders. */
export async function datasetShowCommand (io: CliIo, address: string, opts: ClientCommandOptions): Promise<void> {
  const a = parseAddress('the dataset address', address)
  const api = await clientFor(opts)
  const d = await api.dataset(a)
  if (opts.json === true) {
    printJson(io, d)
    return
  }
  const lines = [
    `dataset  ${d.address}`,
    `name     ${d.name}`,
    `owner    ${d.owner}${d.mine ? ' (this node)' : ''}`,
    `cid      ${d.cid}`,
    `sha256   ${d.checksum}`
  ]
  if (d.mine) lines.push(`state    ${d.published === true ? 'published' : 'unpublished'}, ${d.encrypted === true ? 'encrypted' : 'not encrypted'}`)
  lines.push(d.orders.length === 0 ? 'orders   none live' : `orders   ${d.orders.length} live`)
  io.out(lines.join('\n') + '\n')
  if (d.orders.length > 0) io.out(table(['ORDER', 'PRICE', 'REMAINING'], d.orders.map((o) => [o.orderHash, formatAmount(BigInt(o.price)), o.remaining])))
}

/** `dataset unpublish ADDRESS`: cancels its orders on chain and removes its key. */
export async function datasetUnpublishCommand (io: CliIo, address: string, opts: ClientCommandOptions): Promise<void> {
  const a = parseAddress('the dataset address', address)
  const api = await clientFor(opts)
  const r = await api.unpublishDataset(a)
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  const lines = [`dataset ${r.address} unpublished`]
  for (const c of r.cancelled) lines.push(`cancelled order ${c.orderHash} (tx ${c.txHash})`)
  if (r.cancelled.length === 0) lines.push('no live order to cancel')
  if (r.alreadyClosed.length > 0) lines.push(`${r.alreadyClosed.length} order(s) were already consumed or cancelled`)
  lines.push(r.keyRemoved ? 'key removed: it will not be released again' : 'no key was stored for it')
  io.out(lines.join('\n') + '\n')
}

export interface DatasetPolicyCommandOptions extends ClientCommandOptions {
  app?: string[]
  anyApp?: boolean
  requester?: string[]
  tag?: string[]
  volume?: string
}

/**
 * `dataset allow ADDRESS --app X... | --any-app` and `dataset deny ADDRESS
 * --app X...`: the node signs orders for the new choice and cancels the old
 * ones. allow adds apps to the current list (or opens it with --any-app);
 * deny removes apps (by address) and cannot narrow --any-app (restrictions
 * name who may, not who may not: allow a list instead). Requesters, tags and
 * volume stay as they were unless given.
 */
export async function datasetPolicyCommand (io: CliIo, verb: 'allow' | 'deny', address: string, opts: DatasetPolicyCommandOptions): Promise<void> {
  const a = parseAddress('the dataset address', address)
  if (verb === 'deny') {
    if (opts.anyApp === true) throw new UsageError('CLI_BAD_OPTION', 'dataset deny takes --app ADDR...; --any-app is for dataset allow')
    if (opts.app === undefined) throw new UsageError('CLI_MISSING_ARGUMENT', 'dataset deny needs --app ADDR... (the apps to deny)')
  }
  const given = parseDatasetPolicy({ ...opts, ...(verb === 'deny' ? { anyApp: undefined } : {}) })
  const denied = verb === 'deny' ? (given.apps ?? []).map((x) => parseAddress('--app', x).toLowerCase()) : []
  const api = await clientFor(opts)
  const mine = (await api.datasets()).find((d) => d.address.toLowerCase() === a.toLowerCase())
  if (mine === undefined) throw new CliError('DATASET_NOT_OWNED', `dataset ${a} was not published by this node`, { address: a })
  const current = mine.policy
  let apps: string[] | undefined
  if (verb === 'allow') {
    apps = given.anyApp === true ? undefined : [...new Set([...(current === undefined || current.apps === 'any' ? [] : current.apps), ...(given.apps ?? [])])]
  } else {
    if (current === undefined || current.apps === 'any') throw new CliError('DATASET_DENY_FROM_ANY', `dataset ${a} is open to any app: allow a list of apps instead (dataset allow ${a} --app ...)`, { address: a })
    apps = current.apps.filter((x) => !denied.includes(x.toLowerCase()))
    if (apps.length === 0) throw new CliError('DATASET_APPS_REQUIRED', `denying ${denied.length} app(s) leaves none allowed: unpublish the dataset instead`, { address: a })
  }
  if (apps === undefined) io.err(ANY_APP_WARNING + '\n')
  const r = await api.setDatasetPolicy(a, {
    ...(apps !== undefined ? { apps } : { anyApp: true }),
    requesters: opts.requester !== undefined ? given.requesters : current?.requesters ?? [],
    tags: opts.tag !== undefined ? given.tags : current?.tags ?? [],
    ...(given.volume !== undefined ? { volume: given.volume } : current !== undefined ? { volume: BigInt(current.volume) } : {})
  })
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  io.out([
    `dataset ${r.address} readable by ${r.policy.apps === 'any' ? 'any app' : r.policy.apps.join(', ')}`,
    ...r.orderHashes.map((h) => `new order ${h}`),
    ...r.cancelled.map((c) => `cancelled order ${c.orderHash} (tx ${c.txHash})`)
  ].join('\n') + '\n')
}
