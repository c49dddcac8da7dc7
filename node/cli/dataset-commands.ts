import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { DatasetPublishProgress, PublishedDataset } from '../api/client.js'
import { clientFor, type ClientCommandOptions } from './client-commands.js'
import { CliError, UsageError } from './errors.js'
import { printJson, table, type CliIo } from './output.js'
import { formatAmount, parseAddress, parseAmount } from './parse.js'

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
  /** false with --no-encrypt */
  encrypt?: boolean
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
  const price = parseDatasetPrice(opts.price ?? '0')
  let st
  try {
    st = await stat(absolute)
    await access(absolute, constants.R_OK)
  } catch (err) {
    throw new CliError('CLI_FILE_UNREADABLE', `cannot read ${absolute}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { file: absolute })
  }
  if (!st.isFile() && !st.isDirectory()) throw new UsageError('CLI_BAD_OPTION', `${absolute} is neither a file nor a folder`)
  const api = await clientFor(opts)
  const publishId = randomBytes(8).toString('hex')
  let settled = false
  const publishing = api.publishDataset({
    path: absolute, price, publishId,
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
    printJson(io, { address: r.address, cid: r.cid, checksum: r.checksum, orderHash: r.orderHash })
    return
  }
  io.out([
    `dataset ${r.name} published: ${r.bytes} bytes (${r.kind}), ${r.encrypted ? 'encrypted (AES-256-GCM; the key stays on this node)' : 'NOT encrypted: anyone can read it'}`,
    `address ${r.address}`,
    `cid ${r.cid}, sha256 of the plaintext ${r.checksum}`,
    `dataset order ${r.orderHash} at ${formatAmount(BigInt(r.price))} per task`
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
