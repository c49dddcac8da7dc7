import { createHash } from 'node:crypto'
import { access, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { ApiClient } from '../api/index.js'
import type { PublishedDataset, RegisteredApp, SubmittedTask, SubmitTaskRequest, WalletView } from '../api/client.js'
import { CliError } from './errors.js'
import { CLI_DEFAULTS } from './options.js'
import type { SwarmFile } from './swarm.js'
import { watchSubmitted, type WatchedTask } from './task-commands.js'

// The market half of `quickstart`: the example apps published by two
// providers (app developers), a sample dataset published encrypted by a third
// (a data owner), then two requests from the requester: a word count over
// the encrypted dataset at trust 3 and a compute-heavy prime sieve; their
// results, and what each party earned.

/** nRLC per task of each demo app: enough for the balances to show money moving. */
export const DEMO_APP_PRICE = 100_000_000n
/** nRLC per use of the sample dataset. */
export const DEMO_DATASET_PRICE = 200_000_000n

interface DemoApp { name: string, file: string }
const APPS: readonly DemoApp[] = [
  { name: 'primes', file: join('examples', 'apps', 'primes', 'primes.wasm') },
  { name: 'wordcount', file: join('examples', 'apps', 'wordcount', 'wordcount.wasm') }
]
const SAMPLE_DATASET = join('examples', 'datasets', 'sample.txt')
/** sieve size of the compute task: heavy enough to be work, light enough to be quick */
const PRIMES_ARGS = '2000000'

export interface DemoRun {
  name: string
  request: Omit<SubmitTaskRequest, 'maxPrice'>
  deal: SubmittedTask & { ms: number }
  tasks: WatchedTask[]
  /** ms from the deal to the last result fetched */
  ms: number
}

export interface DemoEarning {
  node: number
  role: string
  /** what the node did in the demo: app owner, dataset owner, scheduler, worker, requester */
  parts: string[]
  /** nRLC: change of hub balance + frozen + stake (locked stake is part of it) over the demo (decimal string, may be negative) */
  earned: string
}

export interface DemoMarketResult {
  apps: Array<RegisteredApp & { name: string, wasm: string, owner: number }>
  dataset: PublishedDataset & { owner: number, file: string }
  runs: DemoRun[]
  wallets: Array<{ node: number, role: string } & WalletView>
  earnings: DemoEarning[]
}

/** The repository root: two levels above node/cli (tsx) or three above dist/node/cli (compiled). */
async function findFile (file: string): Promise<string> {
  const here = dirname(fileURLToPath(import.meta.url))
  for (const up of [['..', '..'], ['..', '..', '..']]) {
    const candidate = join(here, ...up, file)
    try {
      await access(candidate)
      return candidate
    } catch {
      // try the next layout
    }
  }
  throw new CliError('CLI_FILE_UNREADABLE', `the demo file ${file} is missing from the package`, { file })
}

/** sha256 (hex, 0x) and the CIDv1 (raw, sha2-256) of the wasm bytes. */
export async function wasmIdentity (bytes: Uint8Array): Promise<{ checksum: string, cid: string }> {
  const checksum = `0x${createHash('sha256').update(bytes).digest('hex')}`
  const cid = CID.create(1, raw.code, await sha256.digest(bytes)).toString()
  return { checksum, cid }
}

async function clientOf (file: SwarmFile, i: number, timeoutMs?: number): Promise<ApiClient> {
  const n = file.nodes[i]
  return new ApiClient(n.api, (await readFile(n.tokenFile, 'utf8')).trim(), timeoutMs !== undefined ? { timeoutMs } : {})
}

async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > deadline) throw new CliError('SWARM_TIMEOUT', `${what} did not happen within ${timeoutMs / 1000} s`)
    await new Promise((resolve) => setTimeout(resolve, CLI_DEFAULTS.pollIntervalMs))
  }
}

// the hub's stake amount includes its locked part: counted once
const holdings = (w: WalletView): bigint => BigInt(w.balance) + BigInt(w.frozen) + BigInt(w.stake)

/**
 * Publishes the demo apps and the sample dataset, runs the two demo requests
 * from the requester (node 0) and follows them to their results.
 */
export async function runDemoMarket (file: SwarmFile, progress: (line: string) => void): Promise<DemoMarketResult> {
  const providers = file.nodes.map((n, i) => ({ n, i })).filter((x) => x.n.role === 'provider').map((x) => x.i)
  if (providers.length === 0) throw new CliError('CLI_USAGE', 'quickstart needs at least one provider')
  const ownerOf = (k: number): number => providers[k % providers.length]

  // app developers: the first providers add their modules to Helia (workers fetch them over bitswap) and register them
  const apps: DemoMarketResult['apps'] = []
  for (const [k, app] of APPS.entries()) {
    const owner = ownerOf(k)
    const wasm = await findFile(app.file)
    const bytes = await readFile(wasm)
    const local = await wasmIdentity(bytes)
    const client = await clientOf(file, owner, CLI_DEFAULTS.chainTxTimeoutMs)
    const added = await client.addContent(bytes)
    if (added.checksum !== local.checksum) throw new CliError('CLI_USAGE', `the node stored ${added.checksum}, the file is ${local.checksum}`)
    const registered = await client.registerApp({ name: app.name, cid: added.cid, checksum: added.checksum, price: DEMO_APP_PRICE })
    progress(`quickstart: node-${owner} publishes the app ${app.name} (${bytes.byteLength} bytes, cid ${added.cid}) at ${DEMO_APP_PRICE} nRLC per task`)
    apps.push({ ...registered, name: app.name, wasm, owner })
  }

  // a data owner: the sample text is encrypted on its node, added to Helia and offered; the key stays in its data dir
  const dsOwner = ownerOf(APPS.length)
  const dsFile = await findFile(SAMPLE_DATASET)
  const dsClient = await clientOf(file, dsOwner, CLI_DEFAULTS.chainTxTimeoutMs * 2)
  // readable by wordcount only: an app that copied the data out could not get its key
  const reader = apps.find((a) => a.name === 'wordcount')
  if (reader === undefined) throw new CliError('CLI_USAGE', 'quickstart: no wordcount app to allow on the dataset')
  const dataset = await dsClient.publishDataset({ path: dsFile, name: 'sample-notebook', price: DEMO_DATASET_PRICE, apps: [reader.address] })
  progress(`quickstart: node-${dsOwner} publishes the dataset ${dataset.name} encrypted (AES-256-GCM, cid ${dataset.cid}) at ${DEMO_DATASET_PRICE} nRLC per use, readable by wordcount (${reader.address}) only; its key never leaves node-${dsOwner}`)

  // the requester matches against its own orderbook: wait for the gossip
  const requester = await clientOf(file, 0)
  const wanted = [...apps.map((a) => a.orderHash), dataset.orderHash]
  await waitFor('the app and dataset orders reaching node-0', async () => {
    const book = new Set((await requester.orderbook()).map((o) => o.orderHash))
    return wanted.every((h) => book.has(h))
  }, CLI_DEFAULTS.quickstartDiscoveryTimeoutMs)

  const before = await Promise.all(file.nodes.map(async (_, i) => await (await clientOf(file, i)).wallet()))
  const requests: Array<{ name: string, request: Omit<SubmitTaskRequest, 'maxPrice'> }> = [
    { name: 'wordcount over the encrypted dataset, trust 3', request: { app: 'wordcount', dataset: dataset.address, trust: 3, biddingWindowMs: 3_000 } },
    { name: `primes up to ${PRIMES_ARGS}, trust 1`, request: { app: 'primes', args: PRIMES_ARGS, trust: 1, biddingWindowMs: 3_000 } }
  ]
  const t0 = Date.now()
  const runs = await Promise.all(requests.map(async ({ name, request }): Promise<DemoRun> => {
    progress(`quickstart: node-0 (requester) asks for ${name}; providers bid...`)
    const started = Date.now()
    const deal = await requester.submitTask(request, { timeoutMs: CLI_DEFAULTS.taskSubmitTimeoutMs })
    const ms = Date.now() - started
    progress(`quickstart: ${name}: deal ${deal.dealId.slice(0, 10)}… mined in ${(ms / 1000).toFixed(1)} s, scheduler ${deal.scheduler.slice(0, 10)}…, ${deal.workers.length} worker(s)`)
    const t1 = Date.now()
    const tasks = await watchSubmitted(requester, deal, (line) => { progress(`quickstart: ${name}: ${line.replace(/^\[[^\]]*\]\s*/, '')}`) }, t0)
    return { name, request, deal: { ...deal, ms }, tasks, ms: Date.now() - t1 }
  }))
  const failed = runs.flatMap((r) => r.tasks).filter((t) => t.result === null)
  if (failed.length > 0) {
    throw new CliError('TASK_FAILED', `${failed.length} demo task(s) ended without a result: ${failed.map((t) => `${t.taskId} ${t.phase}`).join(', ')}; see node.log in each node's data dir`)
  }

  const wallets = await Promise.all(file.nodes.map(async (n, i) => ({ node: i, role: n.role, ...await (await clientOf(file, i)).wallet() })))
  const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()
  const earnings = file.nodes.map((n, i): DemoEarning => {
    const parts: string[] = []
    if (n.role === 'requester') parts.push('requester')
    for (const a of apps) if (a.owner === i) parts.push(`${a.name} owner`)
    if (dsOwner === i) parts.push('dataset owner')
    if (runs.some((r) => same(r.deal.scheduler, n.address))) parts.push('scheduler')
    if (runs.some((r) => r.deal.workers.some((w) => same(w, n.address)))) parts.push('worker')
    return { node: i, role: n.role, parts, earned: (holdings(wallets[i]) - holdings(before[i])).toString() }
  })
  return { apps, dataset: { ...dataset, owner: dsOwner, file: dsFile }, runs, wallets, earnings }
}
