import { resolve } from 'node:path'
import { ApiClient, type ResourceView } from '../api/index.js'
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { CliError } from './errors.js'
import { CLI_DEFAULTS } from './options.js'
import { printJson, table, type CliIo } from './output.js'
import { formatRlc, parseIntOption } from './parse.js'
import { DEMO_APP_PRICE, runDemoMarket, type DemoMarketResult } from './quickstart-market.js'
import { defaultSwarmDir, swarmDown, swarmStatus, swarmUp, toUpJson, type SwarmFile } from './swarm.js'

export interface SwarmDirOptions {
  dir?: string
  json?: boolean
}

export interface SwarmUpCommandOptions {
  nodes?: string
  dir?: string
  json?: boolean
  timeout?: string
  /** false with --no-chain */
  chain?: boolean
  blockTime?: string
}

/** Stops a swarm being started when the user presses Ctrl-C. */
function abortOnSignal (): { signal: AbortSignal, dispose: () => void } {
  const ac = new AbortController()
  const on = (): void => { ac.abort() }
  process.on('SIGINT', on)
  process.on('SIGTERM', on)
  return { signal: ac.signal, dispose: () => { process.off('SIGINT', on); process.off('SIGTERM', on) } }
}

function progressTo (io: CliIo): (line: string) => void {
  // progress goes to stderr so `--json` output on stdout stays one document
  return (line) => { io.err(`${line}\n`) }
}

async function up (io: CliIo, dir: string, nodes: number, timeoutMs: number, json: boolean, chain: boolean, blockTime?: number): Promise<SwarmFile> {
  if (chain) {
    // before anything is written: a platform without anvil is told at once
    const { anvilBinary } = await import('../chain/index.js')
    anvilBinary()
  }
  const abort = abortOnSignal()
  try {
    // with --json, stderr carries only the error envelope, so scripts can parse it
    return await swarmUp({ dir, nodes, readyTimeoutMs: timeoutMs, chain, ...(blockTime !== undefined ? { blockTime } : {}), ...(json ? {} : { onProgress: progressTo(io) }), signal: abort.signal })
  } finally {
    abort.dispose()
  }
}

function printChainHuman (io: CliIo, file: SwarmFile): void {
  const c = file.chain
  if (c == null) {
    io.out('chain: none (--no-chain): market commands answer CHAIN_NOT_CONFIGURED\n')
    return
  }
  io.out(`chain: anvil pid ${c.pid}, rpc ${c.rpc}, chain id ${c.chainId}\n       hub ${c.hub}, RLC ${c.rlc}\n`)
}

function printSwarmHuman (io: CliIo, file: SwarmFile): void {
  io.out(table(['NODE', 'ROLE', 'PEER ID', 'API', 'PID'], file.nodes.map((n) => [`node-${n.index}`, n.role, n.peerId, n.api, String(n.pid)])))
}

export async function swarmUpCommand (io: CliIo, opts: SwarmUpCommandOptions): Promise<void> {
  const nodes = opts.nodes !== undefined ? parseIntOption('--nodes', opts.nodes, 1, CLI_DEFAULTS.maxSwarmNodes) : CLI_DEFAULTS.swarmNodes
  const timeoutMs = opts.timeout !== undefined ? parseIntOption('--timeout', opts.timeout, 1, 3600) * 1000 : CLI_DEFAULTS.swarmReadyTimeoutMs
  const dir = resolve(opts.dir ?? defaultSwarmDir())
  const blockTime = opts.blockTime !== undefined ? parseIntOption('--block-time', opts.blockTime, 1, 3600) : undefined
  if (blockTime !== undefined && opts.chain === false) throw new CliError('CLI_USAGE', '--block-time sets the local chain\'s blocks: it cannot go with --no-chain')
  const file = await up(io, dir, nodes, timeoutMs, opts.json === true, opts.chain !== false, blockTime)
  if (opts.json === true) {
    printJson(io, toUpJson(file))
    return
  }
  io.out(`swarm of ${file.nodes.length} node(s) running in ${dir}\n`)
  printChainHuman(io, file)
  printSwarmHuman(io, file)
  io.out(`stop it with: iexec-p2p swarm down --dir ${dir}\n`)
}

export async function swarmStatusCommand (io: CliIo, opts: SwarmDirOptions): Promise<void> {
  const dir = resolve(opts.dir ?? defaultSwarmDir())
  const st = await swarmStatus(dir)
  if (opts.json === true) {
    printJson(io, {
      chain: st.chain === null ? null : { rpc: st.chain.rpc, chainId: st.chain.chainId, hub: st.chain.hub, rlc: st.chain.rlc, pid: st.chain.pid, running: st.chain.running },
      nodes: st.nodes.map((n) => ({ peerId: n.peerId, multiaddrs: n.multiaddrs, api: n.api, tokenFile: n.tokenFile, address: n.address, role: n.role, pid: n.pid, running: n.running, connections: n.connections }))
    })
    return
  }
  io.out(st.chain === null ? 'chain: none\n' : `chain: anvil pid ${st.chain.pid} ${st.chain.running ? 'running' : 'stopped'}, rpc ${st.chain.rpc}, hub ${st.chain.hub}\n`)
  io.out(table(['NODE', 'ROLE', 'STATE', 'CONNECTIONS', 'PEER ID', 'API'], st.nodes.map((n) => [
    `node-${n.index}`, n.role, n.running ? 'running' : 'stopped', n.connections === null ? '-' : String(n.connections), n.peerId, n.api
  ])))
}

export async function swarmDownCommand (io: CliIo, opts: SwarmDirOptions): Promise<void> {
  const dir = resolve(opts.dir ?? defaultSwarmDir())
  const result = await swarmDown(dir, opts.json === true ? undefined : progressTo(io))
  if (opts.json === true) {
    printJson(io, { dir, stopped: result?.stopped ?? [], killed: result?.killed ?? [], chainPid: result?.chainPid ?? null })
    return
  }
  if (result === undefined) {
    io.out(`no swarm in ${dir}: nothing to stop\n`)
    return
  }
  io.out(`swarm in ${dir} stopped (${result.stopped.length} stopped${result.killed.length > 0 ? `, ${result.killed.length} killed` : ''}${result.chainPid !== null ? `, anvil pid ${result.chainPid} stopped` : ''})\n`)
}

export interface QuickstartOptions {
  once?: boolean
  /** false with --no-chain */
  chain?: boolean
  nodes?: string
  dir?: string
  json?: boolean
}

/**
 * `iexec-p2p quickstart` (what `npm start` runs): a swarm with its chain, a
 * wait until every node finds every provider through the DHT, peers and
 * resources; then (with the chain, quickstart-market.ts) two providers
 * publish the example apps, a third the sample dataset encrypted, and the
 * requester runs wordcount over that dataset at trust 3 and primes at trust 1
 * to their checked results; it prints the deals, the apps' output and what
 * each party earned. The swarm keeps running unless `--once`.
 */
export async function quickstartCommand (io: CliIo, opts: QuickstartOptions): Promise<void> {
  const nodes = opts.nodes !== undefined ? parseIntOption('--nodes', opts.nodes, 2, CLI_DEFAULTS.maxSwarmNodes) : CLI_DEFAULTS.quickstartNodes
  const dir = resolve(opts.dir ?? defaultSwarmDir())
  const progress = opts.json === true ? () => {} : progressTo(io)
  const file = await up(io, dir, nodes, CLI_DEFAULTS.swarmReadyTimeoutMs, opts.json === true, opts.chain !== false)
  let keep = false
  try {
    const providers = file.nodes.filter((n) => n.role === 'provider').map((n) => n.peerId)
    progress(`quickstart: waiting until each of the ${nodes} nodes finds the ${providers.length} providers through the DHT...`)
    const t0 = Date.now()
    const seen = await waitAllSeeProviders(file, providers, CLI_DEFAULTS.quickstartDiscoveryTimeoutMs)
    progress(`quickstart: every node sees every provider (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
    const requester = file.nodes[0]
    const client = new ApiClient(requester.api, (await readFile(requester.tokenFile, 'utf8')).trim())
    const peers = await client.peers()
    const market = file.chain != null ? await runDemoMarket(file, progress) : null
    if (opts.json === true) {
      printJson(io, { ...toUpJson(file), peers, resources: seen, ...(market !== null ? market : {}) })
    } else {
      printSwarmHuman(io, file)
      io.out(`\npeers of node-0 (${requester.role}):\n`)
      io.out(table(['PEER ID', 'LATENCY'], peers.map((p) => [p.peerId, p.latencyMs === null ? '-' : `${p.latencyMs.toFixed(1)} ms`])))
      io.out('\nproviders found through the DHT:\n')
      io.out(table(['PEER ID', 'CPUS', 'MEMORY', 'CATEGORY', 'PRICE FLOOR'], seen.map((r) => [r.peerId, String(r.cpus), `${r.memoryMb} MB`, String(r.category), `${r.priceFloor} nRLC`])))
      if (market !== null) printMarketHuman(io, file, market)
      else io.out('\nno chain (--no-chain): no app, no task, no deal\n')
    }
    keep = opts.once !== true
  } finally {
    if (keep) {
      if (opts.json !== true) io.out(`\nthe swarm keeps running; stop it with: iexec-p2p swarm down --dir ${dir}\n`)
    } else {
      await swarmDown(dir, progress)
    }
  }
}

function printMarketHuman (io: CliIo, file: SwarmFile, m: DemoMarketResult): void {
  const who = (address: string): string => {
    const i = file.nodes.findIndex((n) => n.address.toLowerCase() === address.toLowerCase())
    return i < 0 ? address : `node-${i}`
  }
  io.out('\napps (WASI modules in Helia, registered on chain):\n')
  io.out(table(['APP', 'OWNER', 'ADDRESS', 'CID', 'PRICE'], m.apps.map((a) => [a.name, `node-${a.owner}`, a.address, a.cid, formatRlc(DEMO_APP_PRICE.toString())])))
  io.out(`\ndataset ${m.dataset.name} (${m.dataset.file})\n  address ${m.dataset.address}, owner node-${m.dataset.owner}, price ${formatRlc(m.dataset.price)} per use\n  cid ${m.dataset.cid}: ciphertext only; the key is released to authorized workers only\n`)
  for (const r of m.runs) {
    io.out(`\n${r.name}\n  deal ${r.deal.dealId} (mined ${(r.deal.ms / 1000).toFixed(1)} s after the request; results ${(r.ms / 1000).toFixed(1)} s after the deal)\n`)
    io.out(`  scheduler ${who(r.deal.scheduler)}, workers ${r.deal.workers.map(who).join(', ')}\n`)
    for (const t of r.tasks) {
      io.out(`  task ${t.taskId} ${t.status}, result ${t.resultCid ?? '-'}\n`)
      if (t.result !== null) io.out(t.result.stdout.split('\n').filter((l) => l.length > 0).map((l) => `    | ${l}\n`).join(''))
    }
  }
  io.out('\nwhat each party earned (hub balance + stake):\n')
  io.out(table(['NODE', 'ROLE', 'DID', 'EARNED', 'HUB BALANCE', 'STAKE'], m.earnings.map((e) => {
    const w = m.wallets[e.node]
    const earned = BigInt(e.earned)
    return [`node-${e.node}`, e.role, e.parts.join(', ') || '-', `${earned < 0n ? '-' : '+'}${formatRlc((earned < 0n ? -earned : earned).toString())}`, formatRlc(w.balance), formatRlc(w.stake)]
  })))
  io.out([
    '',
    'what happened: a libp2p swarm found its providers in the DHT; anvil runs the PoCo hub; the apps and the encrypted dataset',
    'were added to Helia and registered on chain; their orders and the requests were gossiped; providers bid; matchOrders made',
    'each deal and elected its scheduler by stake; the scheduler sent signed authorizations; workers fetched the app and the',
    'dataset over bitswap, got the dataset key from its owner\'s node (sealed to their keys), ran the app in the WASI sandbox,',
    'contributed, revealed; the scheduler finalized; the requester fetched each result and checked it against the chain.',
    ''
  ].join('\n'))
}

/** Polls every node's /v1/resources until each lists all providers; bounded. Returns node 0's list. */
async function waitAllSeeProviders (file: SwarmFile, providers: string[], timeoutMs: number): Promise<ResourceView[]> {
  const clients = await Promise.all(file.nodes.map(async (n) => new ApiClient(n.api, (await readFile(n.tokenFile, 'utf8')).trim())))
  const deadline = Date.now() + timeoutMs
  const done = new Map<number, ResourceView[]>()
  while (true) {
    await Promise.all(clients.map(async (c, i) => {
      if (done.has(i)) return
      const list = await c.resources()
      const ids = new Set(list.map((r) => r.peerId))
      if (providers.every((p) => ids.has(p))) done.set(i, list)
    }))
    if (done.size === clients.length) return done.get(0) ?? []
    if (Date.now() > deadline) {
      const missing = file.nodes.filter((_, i) => !done.has(i)).map((n) => `node-${n.index}`)
      throw new CliError('SWARM_TIMEOUT', `after ${timeoutMs / 1000} s, ${missing.join(', ')} still do not see every provider in the DHT`)
    }
    await sleep(CLI_DEFAULTS.pollIntervalMs * 5)
  }
}
