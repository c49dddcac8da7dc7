import { createHash } from 'node:crypto'
import { access, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { ApiClient } from '../api/index.js'
import type { RegisteredApp, SubmittedTask, WalletView } from '../api/client.js'
import { CliError } from './errors.js'
import { CLI_DEFAULTS } from './options.js'
import type { SwarmFile } from './swarm.js'

// The market half of `quickstart`: a demo app registered on chain, one
// request from the requester, the deal the swarm makes for it, the balances.

/** The demo app, from the repository's examples (built by the execution issue's toolchain). */
const DEMO_APP = join('examples', 'apps', 'primes', 'primes.wasm')
/** sieve size of the demo task: heavy enough to be work, light enough to be quick */
const DEMO_ARGS = '2000000'

export interface DemoMarketResult {
  app: RegisteredApp & { name: string, wasm: string }
  deal: SubmittedTask & { ms: number }
  /** the deal's tasks once final (or when the wait ran out), and the time from the deal */
  final: { tasks: Array<{ taskId: string, status: string }>, ms: number }
  wallets: Array<{ node: number, role: string } & WalletView>
}

/** The repository root: two levels above node/cli (tsx) or three above dist/node/cli (compiled). */
async function findDemoWasm (): Promise<string> {
  const here = dirname(fileURLToPath(import.meta.url))
  for (const up of [['..', '..'], ['..', '..', '..']]) {
    const candidate = join(here, ...up, DEMO_APP)
    try {
      await access(candidate)
      return candidate
    } catch {
      // try the next layout
    }
  }
  throw new CliError('CLI_FILE_UNREADABLE', `the demo app ${DEMO_APP} is missing from the package`, { file: DEMO_APP })
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

/**
 * Registers the demo app (its owner is the first provider, as an app
 * developer would be someone else than the requester), submits one request
 * from the requester (node 0) and reads every node's wallet after the deal.
 */
export async function runDemoMarket (file: SwarmFile, progress: (line: string) => void): Promise<DemoMarketResult> {
  const wasmFile = await findDemoWasm()
  const bytes = await readFile(wasmFile)
  const local = await wasmIdentity(bytes)
  const owner = file.nodes.findIndex((n) => n.role === 'provider')
  if (owner < 0) throw new CliError('CLI_USAGE', 'quickstart needs at least one provider')
  const ownerClient = await clientOf(file, owner, CLI_DEFAULTS.chainTxTimeoutMs)
  // the owner's node adds the module to its Helia and provides it: workers fetch it over bitswap
  const added = await ownerClient.addContent(bytes)
  if (added.checksum !== local.checksum) throw new CliError('CLI_USAGE', `the node stored ${added.checksum}, the file is ${local.checksum}`)
  const { cid, checksum } = added
  progress(`quickstart: node-${owner} adds the demo app primes to the swarm (cid ${cid}) and registers it on chain`)
  const registered = await ownerClient.registerApp({ name: 'primes', cid, checksum, price: 0n })
  progress(`quickstart: app ${registered.address} registered; its app order ${registered.orderHash.slice(0, 18)}... is gossiped`)

  const requester = await clientOf(file, 0)
  // the requester needs the app order in its orderbook before it can match
  const deadline = Date.now() + CLI_DEFAULTS.quickstartDiscoveryTimeoutMs
  while (!(await requester.orderbook({ type: 'app', app: registered.address })).some((o) => o.orderHash === registered.orderHash)) {
    if (Date.now() > deadline) throw new CliError('SWARM_TIMEOUT', `the app order ${registered.orderHash} did not reach node-0's orderbook in time`)
    await new Promise((resolve) => setTimeout(resolve, CLI_DEFAULTS.pollIntervalMs))
  }

  progress(`quickstart: node-0 (requester) submits one task: primes ${DEMO_ARGS}; providers bid, the requester matches on chain...`)
  const t0 = Date.now()
  const deal = await requester.submitTask({ app: registered.address, args: DEMO_ARGS, biddingWindowMs: 3_000 }, { timeoutMs: CLI_DEFAULTS.taskSubmitTimeoutMs })
  const ms = Date.now() - t0
  progress(`quickstart: deal ${deal.dealId} mined in ${(ms / 1000).toFixed(1)} s; the elected scheduler assigns the task, a worker fetches the app, runs it and contributes...`)

  // the task is final when the hub says so: COMPLETED (a result agreed) or FAILED (claimed)
  const t1 = Date.now()
  const finalDeadline = t1 + CLI_DEFAULTS.quickstartTaskTimeoutMs
  let tasks = deal.tasks
  let last = ''
  while (true) {
    tasks = (await requester.deal(deal.dealId)).tasks
    const line = tasks.map((t) => t.status).join(', ')
    if (line !== last) { progress(`quickstart: task status ${line} (${((Date.now() - t1) / 1000).toFixed(1)} s)`); last = line }
    if (tasks.every((t) => t.status === 'COMPLETED' || t.status === 'FAILED')) break
    if (Date.now() > finalDeadline) {
      throw new CliError('SWARM_TIMEOUT', `the demo task did not complete within ${CLI_DEFAULTS.quickstartTaskTimeoutMs / 1000} s (status ${line}); see node.log in each node's data dir`)
    }
    await new Promise((resolve) => setTimeout(resolve, CLI_DEFAULTS.pollIntervalMs))
  }
  const final = { tasks, ms: Date.now() - t1 }

  const wallets = await Promise.all(file.nodes.map(async (n, i) => ({ node: i, role: n.role, ...await (await clientOf(file, i)).wallet() })))
  return { app: { ...registered, name: 'primes', wasm: wasmFile }, deal: { ...deal, ms }, final, wallets }
}
