import { availableParallelism } from 'node:os'
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, openSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile, rename } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { ApiClient, type NodeRole } from '../api/index.js'
import { dataDirPaths, defaultDataDir } from '../config/paths.js'
import { initDataDir } from '../config/index.js'
import type { NodeConfig } from '../config/index.js'
import { isIexecError } from '../common/errors.js'
import { CliError } from './errors.js'
import { CLI_DEFAULTS } from './options.js'
import { BUNDLE_FILE } from './bundle-files.js'
import { isOurProcess, logTail, stopProcesses, type StopResult } from './processes.js'
import { chainAlive, clearNodeChainConfig, depositAndStake, startSwarmChain, stopSwarmChain, writeNodeChainConfig, type FundingPath, type SwarmChainRecord } from './swarm-chain.js'

/** One node of a local swarm, as swarm.json records it. */
export interface SwarmNodeRecord {
  index: number
  peerId: string
  /** dialable addresses, each ending in /p2p/<peerId> */
  multiaddrs: string[]
  /** API base URL; empty until the node is ready */
  api: string
  tokenFile: string
  address: string
  role: NodeRole
  pid: number
  dataDir: string
}

/** DIR/swarm.json */
export interface SwarmFile {
  dir: string
  swarmKeyFile: string
  startedAt: string
  /** the swarm's anvil; null with --no-chain (absent in files of older versions) */
  chain?: SwarmChainRecord | null
  nodes: SwarmNodeRecord[]
}

/** What `swarm up --json` prints (DESIGN.md); chain is null with --no-chain. */
export interface SwarmUpJson {
  chain: { rpc: string, chainId: number, hub: string, rlc: string } | null
  nodes: Array<Pick<SwarmNodeRecord, 'peerId' | 'multiaddrs' | 'api' | 'tokenFile' | 'address' | 'role'>>
}

export interface SwarmUpOptions {
  dir: string
  nodes: number
  readyTimeoutMs?: number
  /** start anvil, deploy the hub, fund and stake (default true) */
  chain?: boolean
  onProgress?: (line: string) => void
  /** aborting (e.g. on SIGINT) stops what was started and rejects */
  signal?: AbortSignal
  /** seconds between the local chain's blocks (anvil --block-time); undefined: a block per transaction */
  blockTime?: number
  /** how to run each node process (default: this CLI as it runs now, cliEntry()) */
  cli?: { execPath: string, args: string[] }
  /** settings every new node's config.json starts with (e.g. a benchmark's bid transport) */
  nodeConfig?: Partial<Pick<NodeConfig, 'bidTransport' | 'advertIntervalMs' | 'cpus' | 'memoryMb'>>
  /** node processes starting at once after node 0 (default: swarmStartConcurrency()) */
  startConcurrency?: number
}

/**
 * How many node processes start at once: a start is mostly module loading
 * and key work, CPU-bound, so more than a few per core only stretch every
 * start (49 at once on 2 cores made the first dials' handshakes time out and
 * wait for their retries); the next starts as soon as one is ready.
 */
export function swarmStartConcurrency (): number {
  return Math.max(4, 2 * availableParallelism())
}

export function defaultSwarmDir (): string {
  return join(defaultDataDir(), 'swarm')
}

export function swarmFilePath (dir: string): string {
  return join(dir, 'swarm.json')
}

/**
 * How to run this very CLI as a child: compiled, from its bundle when the
 * build made one (launch/run.ts: a node starts in a fraction of the CPU),
 * else the compiled bin; or the .ts one through tsx.
 */
export function cliEntry (): { execPath: string, args: string[] } {
  const here = fileURLToPath(import.meta.url)
  if (here.endsWith('.ts')) {
    // resolved from this file, so it works whatever the caller's working directory
    return { execPath: process.execPath, args: ['--import', import.meta.resolve('tsx'), join(dirname(here), 'bin.ts')] }
  }
  const launch = join(dirname(here), '..', 'launch')
  if (existsSync(join(launch, BUNDLE_FILE))) return { execPath: process.execPath, args: [join(launch, 'run.js')] }
  return { execPath: process.execPath, args: [join(dirname(here), 'bin.js')] }
}

export function toUpJson (file: SwarmFile): SwarmUpJson {
  return {
    chain: file.chain != null ? { rpc: file.chain.rpc, chainId: file.chain.chainId, hub: file.chain.hub, rlc: file.chain.rlc } : null,
    nodes: file.nodes.map((n) => ({ peerId: n.peerId, multiaddrs: n.multiaddrs, api: n.api, tokenFile: n.tokenFile, address: n.address, role: n.role }))
  }
}

export async function readSwarmFile (dir: string): Promise<SwarmFile | undefined> {
  let text: string
  try {
    text = await readFile(swarmFilePath(dir), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new CliError('SWARM_FILE_CORRUPT', `cannot read ${swarmFilePath(dir)}: ${String(err)}`)
  }
  try {
    const parsed = JSON.parse(text) as SwarmFile
    if (!Array.isArray(parsed.nodes)) throw new Error('no nodes array')
    return parsed
  } catch (err) {
    throw new CliError('SWARM_FILE_CORRUPT', `${swarmFilePath(dir)} is not a swarm file (${err instanceof Error ? err.message : String(err)}); remove it by hand`)
  }
}

let writeQueue: Promise<void> = Promise.resolve()

/** Writes swarm.json; calls are serialised (nodes start in parallel and each records itself). */
async function writeSwarmFile (file: SwarmFile): Promise<void> {
  const text = JSON.stringify(file, null, 2) + '\n'
  const target = swarmFilePath(file.dir)
  // write-then-rename: a reader (swarm down from another shell) never sees half a file
  const write = async (): Promise<void> => {
    await writeFile(`${target}.tmp`, text)
    await rename(`${target}.tmp`, target)
  }
  writeQueue = writeQueue.then(write, write)
  await writeQueue
}

async function livePids (file: SwarmFile): Promise<number[]> {
  const alive = await Promise.all(file.nodes.map(async (n) => n.pid > 0 && await isOurProcess(n.pid, n.dataDir)))
  return file.nodes.filter((_, i) => alive[i]).map((n) => n.pid)
}

/** A ready node, as its API reports it. */
interface ReadyInfo { api: string, multiaddrs: string[] }

/**
 * Starts a private swarm of `nodes` detached node processes in `dir`:
 * a fresh swarm key, one data dir per node (dev unprotected keys), node 0
 * first, then the others bootstrapped to it. Node 0 is the requester when
 * there are two nodes or more. With `chain` (the default): a detached anvil,
 * RLC and the hub deployed, every wallet funded, the chain section written
 * into each config.json before the node starts, then deposits (every node)
 * and stakes (providers) through the nodes' API. On any failure, stops what
 * it started (nodes and anvil).
 */
export async function swarmUp (opts: SwarmUpOptions): Promise<SwarmFile> {
  const dir = resolve(opts.dir)
  const progress = opts.onProgress ?? (() => {})
  const deadline = Date.now() + (opts.readyTimeoutMs ?? CLI_DEFAULTS.swarmReadyTimeoutMs)
  await mkdir(dir, { recursive: true, mode: 0o700 })

  const existing = await readSwarmFile(dir)
  if (existing !== undefined) {
    const live = await livePids(existing)
    if (existing.chain != null && await chainAlive(existing.chain)) live.push(existing.chain.pid)
    if (live.length > 0) {
      throw new CliError('SWARM_ALREADY_RUNNING', `a swarm already runs in ${dir} (pids ${live.join(', ')}): \`iexec-p2p swarm down --dir ${dir}\` first`, { dir })
    }
    await rm(swarmFilePath(dir), { force: true })
  }

  // a fresh key each time: nodes of an older swarm cannot wander in
  const swarmKeyFile = join(dir, 'swarm.key')
  await rm(swarmKeyFile, { force: true })
  const { writeSwarmKeyFile } = await import('../network/index.js')
  await writeSwarmKeyFile(swarmKeyFile)

  const file: SwarmFile = { dir, swarmKeyFile, startedAt: new Date().toISOString(), chain: null, nodes: [] }
  const withChain = opts.chain !== false
  const children: ChildProcess[] = []
  try {
    for (let i = 0; i < opts.nodes; i++) {
      const dataDir = join(dir, `node-${i}`)
      const init = await initDataDir({ dataDir, devUnprotectedKey: true, ...(opts.nodeConfig !== undefined ? { config: opts.nodeConfig } : {}) })
      // a node killed hard leaves its api.json behind; the new one writes its own
      await rm(dataDirPaths(dataDir).apiInfo, { force: true })
      file.nodes.push({
        index: i,
        peerId: init.peerId,
        multiaddrs: [],
        api: '',
        tokenFile: dataDirPaths(dataDir).apiToken,
        address: init.address,
        role: opts.nodes >= 2 && i === 0 ? 'requester' : 'provider',
        pid: 0,
        dataDir
      })
    }
    progress(`swarm: ${opts.nodes} data dirs ready in ${dir}`)

    if (withChain) {
      progress('swarm: starting anvil (local chain) on 127.0.0.1...')
      const t0 = Date.now()
      const chain = await startSwarmChain(dir, file.nodes.map((n) => n.address), deadline, async (rec) => {
        // recorded before the deployment: an interrupted up can still stop it
        file.chain = rec
        await writeSwarmFile(file)
        progress(`swarm: anvil started, pid ${rec.pid}, rpc ${rec.rpc}; deploying RLC and the hub, funding ${file.nodes.length} wallet(s)...`)
      }, opts.signal, opts.blockTime)
      file.chain = chain
      await writeSwarmFile(file)
      progress(`swarm: hub ${chain.hub}, RLC ${chain.rlc} deployed at block ${chain.blockNumber} (${((Date.now() - t0) / 1000).toFixed(1)} s); each node funded with 10 ETH and 1000 RLC`)
      for (const n of file.nodes) {
        // a fresh chain voids what a node derived from the previous one (its
        // orderbook, event cursors, deals, tasks: all in db/). The peer key,
        // wallet, config and content blocks stay.
        await rm(dataDirPaths(n.dataDir).db, { recursive: true, force: true })
        try {
          await writeNodeChainConfig(n.dataDir, chain)
        } catch (err) {
          const code = isIexecError(err) ? err.code : 'INTERNAL'
          throw new CliError('SWARM_NODE_FAILED', `node-${n.index}: cannot write the chain settings into ${dataDirPaths(n.dataDir).config}: ${err instanceof Error ? err.message : String(err)} (${code})`, { index: n.index, code })
        }
      }
      progress(`swarm: chain section written to ${file.nodes.length} config.json file(s); their chain-derived stores (db/) reset`)
    } else {
      // a data dir kept from a swarm with a chain must not point at a dead anvil
      for (const n of file.nodes) await clearNodeChainConfig(n.dataDir)
    }

    const startOne = async (rec: SwarmNodeRecord, bootstrap: string[]): Promise<void> => {
      const child = spawnNode(rec, swarmKeyFile, bootstrap, opts.cli ?? cliEntry())
      children.push(child)
      rec.pid = child.pid ?? 0
      await writeSwarmFile(file)
      progress(`swarm: node-${rec.index} (${rec.role}) started, pid ${rec.pid}, waiting for it to be ready...`)
      const t0 = Date.now()
      const ready = await waitReady(rec, child, deadline, opts.signal)
      rec.api = ready.api
      rec.multiaddrs = ready.multiaddrs
      progress(`swarm: node-${rec.index} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${rec.peerId} ${rec.api}`)
    }

    await startOne(file.nodes[0], [])
    await writeSwarmFile(file)
    // the others start a few at a time (swarmStartConcurrency), each
    // bootstrapped to node 0 and to the last node ready before it, so that
    // node 0 is not every node's only way into the DHT
    const queue = file.nodes.slice(1)
    let lastReady = file.nodes[0]
    const slots = Math.max(1, opts.startConcurrency ?? swarmStartConcurrency())
    await Promise.all(Array.from({ length: Math.min(slots, queue.length) }, async () => {
      for (let rec = queue.shift(); rec !== undefined; rec = queue.shift()) {
        const bootstrap = [...new Set([...file.nodes[0].multiaddrs.slice(0, 1), ...lastReady.multiaddrs.slice(0, 1)])]
        await startOne(rec, bootstrap)
        lastReady = rec
      }
    }))
    await writeSwarmFile(file)
    for (const c of children) c.unref()

    const chain = file.chain
    if (chain != null) {
      progress('swarm: every node deposits 500 RLC in the hub; every provider stakes 100 RLC...')
      const t0 = Date.now()
      const paths = await Promise.all(file.nodes.map(async (n): Promise<FundingPath> => await depositAndStake(n, chain)))
      const how = paths.every((p) => p === 'api') ? 'through each node\'s API' : paths.every((p) => p === 'direct') ? 'directly with each node\'s dev key (the nodes have no deposit/stake routes yet)' : 'partly through the API, partly directly'
      progress(`swarm: deposits and stakes done ${how} (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
    }
    return file
  } catch (err) {
    const pids = file.nodes.map((n) => n.pid).filter((p) => p > 0)
    progress(`swarm: start failed, stopping ${pids.length} started node(s)${file.chain != null ? ' and anvil' : ''}`)
    await stopProcesses(pids, CLI_DEFAULTS.swarmStopGraceMs, CLI_DEFAULTS.swarmKillWaitMs)
    if (file.chain != null) await stopSwarmChain(file.chain).catch(() => {})
    await rm(swarmFilePath(dir), { force: true })
    throw err
  }
}

/** nRLC a swarm provider asks per task at least: 0.05 RLC, well within the 100 RLC stake (30 % of a price is staked per task). */
export const SWARM_PROVIDER_PRICE = 50_000_000n

/**
 * V8 options of each node process: young-generation semispaces of 2 MiB
 * instead of V8's 16. A node's garbage is small, short-lived messages; the
 * larger nursery mostly held resident memory, which a swarm of dozens of
 * nodes on one machine pays dozens of times, for no CPU measurably saved.
 */
export const SWARM_NODE_V8_FLAGS = ['--max-semi-space-size=2']

function spawnNode (rec: SwarmNodeRecord, swarmKeyFile: string, bootstrap: string[], entry: { execPath: string, args: string[] }): ChildProcess {
  const args = [
    ...SWARM_NODE_V8_FLAGS, ...entry.args, 'start',
    '--data-dir', rec.dataDir,
    '--swarm-key', swarmKeyFile,
    '--listen', '/ip4/127.0.0.1/tcp/0',
    '--api-port', '0',
    // providers ask a price, so a demo shows money moving from requester to workers
    ...(rec.role === 'requester' ? ['--requester'] : ['--price', SWARM_PROVIDER_PRICE.toString()]),
    ...bootstrap.flatMap((b) => ['--bootstrap', b])
  ]
  const log = openSync(dataDirPaths(rec.dataDir).logs, 'a')
  try {
    // detached: the node outlives this command and its terminal's SIGINT
    return spawn(entry.execPath, args, { detached: true, stdio: ['ignore', log, log], env: process.env })
  } finally {
    closeSync(log)
  }
}

async function waitReady (rec: SwarmNodeRecord, child: ChildProcess, deadline: number, signal?: AbortSignal): Promise<ReadyInfo> {
  const paths = dataDirPaths(rec.dataDir)
  let exited: { code: number | null, signal: string | null } | undefined
  child.once('exit', (code, sig) => { exited = { code, signal: sig } })
  const token = (await readFile(paths.apiToken, 'utf8')).trim()
  while (true) {
    if (signal?.aborted === true) throw new CliError('SWARM_INTERRUPTED', 'swarm up interrupted; the nodes already started were stopped')
    if (exited !== undefined) {
      const tail = await logTail(paths.logs, CLI_DEFAULTS.logTailLines)
      throw new CliError('SWARM_NODE_FAILED', `node-${rec.index} exited (${exited.code !== null ? `code ${exited.code}` : String(exited.signal)}) before it was ready; the end of ${paths.logs}:\n${tail}`, { index: rec.index, log: paths.logs, tail })
    }
    if (Date.now() > deadline) {
      const tail = await logTail(paths.logs, CLI_DEFAULTS.logTailLines)
      throw new CliError('SWARM_TIMEOUT', `node-${rec.index} was not ready in time; the end of ${paths.logs}:\n${tail}`, { index: rec.index, log: paths.logs, tail })
    }
    const info = await readApiInfo(paths.apiInfo)
    if (info !== undefined && info.pid === child.pid) {
      try {
        const status = await new ApiClient(info.url, token, { timeoutMs: 5_000 }).status()
        const suffix = `/p2p/${status.peerId}`
        return { api: info.url, multiaddrs: status.multiaddrs.map((m) => m.endsWith(suffix) ? m : `${m}${suffix}`) }
      } catch (err) {
        // api.json is written as the server starts listening; retry until it answers
        if (!isIexecError(err, 'API_UNREACHABLE') && !isIexecError(err, 'API_TIMEOUT')) throw err
      }
    }
    await sleep(CLI_DEFAULTS.pollIntervalMs)
  }
}

async function readApiInfo (file: string): Promise<{ url: string, pid: number } | undefined> {
  try {
    const info = JSON.parse(await readFile(file, 'utf8')) as { url?: unknown, pid?: unknown }
    if (typeof info.url === 'string' && typeof info.pid === 'number') return { url: info.url, pid: info.pid }
  } catch {
    // not written yet, or being written
  }
  return undefined
}

export interface SwarmNodeStatus extends SwarmNodeRecord {
  running: boolean
  /** connected peers as the node reports them; null when it does not answer */
  connections: number | null
}

/** Each node of the swarm in `dir`: alive or not, and its connection count. */
export async function swarmStatus (dir: string): Promise<{ dir: string, chain: (SwarmChainRecord & { running: boolean }) | null, nodes: SwarmNodeStatus[] }> {
  const file = await readSwarmFile(resolve(dir))
  if (file === undefined) throw new CliError('SWARM_NOT_FOUND', `no swarm in ${resolve(dir)} (no swarm.json): start one with \`iexec-p2p swarm up\``, { dir })
  const nodes = await Promise.all(file.nodes.map(async (n): Promise<SwarmNodeStatus> => {
    const running = n.pid > 0 && await isOurProcess(n.pid, n.dataDir)
    let connections: number | null = null
    if (running && n.api !== '') {
      try {
        const token = (await readFile(n.tokenFile, 'utf8')).trim()
        connections = (await new ApiClient(n.api, token, { timeoutMs: 3_000 }).status()).connections
      } catch {
        connections = null
      }
    }
    return { ...n, running, connections }
  }))
  const chain = file.chain != null ? { ...file.chain, running: await chainAlive(file.chain) } : null
  return { dir: file.dir, chain, nodes }
}

/** What `swarm down` stopped. */
export interface SwarmDownResult extends StopResult {
  /** anvil's pid when it was running and got stopped */
  chainPid: number | null
}

/**
 * Stops every node of the swarm in `dir` (SIGTERM, then SIGKILL after a grace
 * period), then its anvil, and removes swarm.json. Nodes first: a node must
 * not see its chain vanish while it still runs. Returns undefined when no
 * swarm was there.
 */
export async function swarmDown (dir: string, onProgress?: (line: string) => void): Promise<SwarmDownResult | undefined> {
  const abs = resolve(dir)
  const file = await readSwarmFile(abs)
  if (file === undefined) return undefined
  const pids = await livePids(file)
  onProgress?.(`swarm: stopping ${pids.length} node(s)`)
  const result = await stopProcesses(pids, CLI_DEFAULTS.swarmStopGraceMs, CLI_DEFAULTS.swarmKillWaitMs)
  if (result.survivors.length > 0) {
    throw new CliError('SWARM_STOP_FAILED', `pids ${result.survivors.join(', ')} survived SIGKILL`, { pids: result.survivors })
  }
  // a killed node could not remove its api.json; clients must not find a dead URL
  for (const n of file.nodes) await rm(dataDirPaths(n.dataDir).apiInfo, { force: true })
  let chainPid: number | null = null
  if (file.chain != null) {
    const alive = await chainAlive(file.chain)
    onProgress?.(alive ? `swarm: stopping anvil (pid ${file.chain.pid})` : 'swarm: anvil already stopped')
    await stopSwarmChain(file.chain)
    if (alive) chainPid = file.chain.pid
  }
  await rm(swarmFilePath(abs), { force: true })
  return { ...result, chainPid }
}
