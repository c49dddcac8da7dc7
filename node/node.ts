import './common/polyfills.js'
import { createHash } from 'node:crypto'
import { appendFileSync } from 'node:fs'
import { writeFile, rm } from 'node:fs/promises'
import { join, resolve as resolvePath } from 'node:path'
import type { Wallet } from 'ethers'
import type { PrivateKey } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import { dataDirPaths, loadDataDir, validateConfig } from './config/index.js'
import type { NodeConfig } from './config/index.js'
import { DbController } from './db/index.js'
import { createNetwork, ResourceAdverts, resourceDhtRules, TrafficMetrics } from './network/index.js'
import type { NatStats } from './network/index.js'
import type { BootstrapStatus, Network, NetworkLogger } from './network/index.js'
import { startApiServer } from './api/index.js'
import { NodeMetrics, metricsRoutes, type DealRole } from './api/metrics.js'
import { startMetricsServer, type MetricsServer } from './api/metrics-server.js'
import type { Executor } from './worker/executor.js'
import type { ApiServer } from './api/index.js'
import type { ApiBackend, NodeStatus, PeerView, ResourceQuery, ResourceView } from './api/backend.js'
import { IexecError } from './common/errors.js'
import { packageVersion } from './common/version.js'
import { chainProfile, createChainClient } from './chain/index.js'
import type { ChainClient } from './chain/index.js'
import { MarketService, marketScoring } from './market/index.js'
import { marketRoutes } from './api/routes/market.js'
import { datasetRoutes } from './api/routes/dataset.js'
import { orderRoutes } from './api/routes/order.js'
import { walletRoutes } from './api/routes/wallet.js'
import { operatorRoutes } from './api/routes/operator.js'
import type { BidStrategy, MarketServiceOptions } from './market/index.js'
import { dhtProtocol, swarmTopics } from '../protocols/topics.js'
import { ExecChannel, PeerResolver, createSchedulerService } from './scheduler/index.js'
import type { SchedulerService } from './scheduler/index.js'
import { WasiExecutor } from './worker/index.js'
import type { NativeStatus } from './worker/native-executor.js'
import { executorOfHead, KindExecutor, KNOWN_EXECUTORS, nativeWithImages, usableExecutors } from './worker/executors.js'
import { APP_HEAD_BYTES } from './worker/app-kind.js'
import { detectGpus, gpuDeviceNodes, tagsWithGpus } from './worker/gpu.js'
import type { GpuInfo } from './worker/gpu.js'
// the duties live apart from worker/index.ts, which stays free of chain and
// storage imports so the executor can be compiled and run on its own
import { createWorkerDuties } from './worker/duties.js'
import type { WorkerDuties } from './worker/duties.js'
import { FailureCollector, createFailureReportHandler } from './worker/failure-reports.js'
import { FAILURE_REPORT_PROTOCOL } from '../protocols/failure-report.js'
import {
  BlockRetention, DATASET_DEFAULTS, DatasetOwnerAnnouncer, DatasetStore, FileKeyStore, KEY_RELEASE_PROTOCOL, MemoryNonceRegistry,
  catContent, ciphertextHeader, createHubKeyReleaseView, createKeyReleaseHandler, fetchDatasetKey, fetchKeyFromOwner, ownerCandidates
} from './storage/index.js'
import { appRoutes } from './api/routes/app.js'
import { checkWasiModule } from './worker/module-check.js'
import { MAX_APP_MODULE_BYTES } from './worker/options.js'
import { contentRoutes, resultRoutes } from './api/routes/storage.js'
import type { FinalizedTask } from './storage/results.js'
import { resultFetcher, workRoutes } from './api/routes/work.js'
import { taskExists } from './market/task-status.js'
import { NodeEvents, eventRoutes } from './api/events.js'
import { BrowserSessions } from './api/session.js'
import { ExplorerStore } from './api/explorer/store.js'
import { explorerRoutes } from './api/routes/explorer.js'
import { peerEvents, startExplorerFeed } from './api/explorer/feed.js'

/** How long a provider waits for an app's first bytes to learn its kind. */
const APP_HEAD_TIMEOUT_MS = 10_000

/** bound of one dial to a worker that holds a result the node is about to fetch: a live peer answers in milliseconds */
const RESULT_HOLDER_DIAL_MS = 5_000
/** a worker's dial of an app's owner before fetching the module: short, the fetch asks the DHT anyway */
const APP_HOLDER_DIAL_MS = 2_000
/** Bound of the fetch of an app's module for its bid-time check (it goes on past the decision's wait, for the next requests). */
const APP_CHECK_FETCH_MS = 60_000

export interface IexecNodeInit {
  dataDir: string
  /** decrypts the wallet keystore (not needed for a dev unprotected key) */
  password?: string
  /** CLI flags override config.json for this run (never written back) */
  listen?: string[]
  bootstrap?: string[]
  /** addresses announced besides the listen ones */
  announce?: string[]
  /** mDNS discovery on the LAN */
  mdns?: boolean
  /** NAT settings for this run, over config.nat */
  nat?: Partial<NodeConfig['nat']>
  swarmKeyFile?: string
  apiPort?: number
  requester?: boolean
  cpus?: number
  memoryMb?: number
  diskMb?: number
  /** HOST:PORT of the token-less metrics listener */
  metricsListen?: string
  /** false: RPC calls, transactions and app runs are not observed for the metrics (a benchmark's baseline); default true */
  metricsObservers?: boolean
  priceFloor?: bigint
  tags?: string[]
  category?: number
  /** first block of the hub's events when the node has no cursor yet (the hub's deploy block); default 0 */
  chainFromBlock?: number
  /** forget the stored event cursor and read the hub's events again from the first block (start --resync-events) */
  resyncEvents?: boolean
  /** chain settings for this run (start --rpc/--hub/--chain-id/--from-block), merged over config.chain; a key set to undefined drops it */
  chain?: Partial<NodeConfig['chain']>
  /** market service settings (bidding window, bid transport ...) for this run */
  market?: Partial<MarketServiceOptions>
  /** the provider's bid strategy; the default one when absent */
  bidStrategy?: BidStrategy
}

/** Lines waiting to be appended, per log file (every component of a node shares one). */
const pendingLines = new Map<string, string[]>()
let flushScheduled = false

/** Appends every file's pending lines, one write per file. */
function flushLogs (): void {
  flushScheduled = false
  for (const [file, lines] of pendingLines) {
    pendingLines.delete(file)
    try {
      appendFileSync(file, lines.join(''), { mode: 0o600 })
    } catch {
      // logging must never take the node down (disk full, dir removed)
    }
  }
}
// a process that exits (stop, an uncaught error) writes what it logged last
process.on('exit', flushLogs)

/**
 * JSON lines in <dataDir>/node.log: the operator's record of what the node
 * did. Lines logged in one turn of the event loop go out in one append at
 * its end (setImmediate, before any I/O the turn started can complete): a
 * sync append of its own per line (open, write, close) was a few percent of
 * a worker's main thread in a bag of tiny tasks. Warnings go out at once.
 */
function fileLogger (file: string, component: string): NetworkLogger {
  const write = (level: string, msg: string, context?: Record<string, unknown>): void => {
    let line: string
    try {
      line = JSON.stringify({ t: new Date().toISOString(), level, component, msg, ...context }) + '\n'
    } catch {
      return
    }
    let lines = pendingLines.get(file)
    if (lines === undefined) {
      lines = []
      pendingLines.set(file, lines)
    }
    lines.push(line)
    if (level === 'warn') {
      flushLogs()
    } else if (!flushScheduled) {
      flushScheduled = true
      setImmediate(flushLogs)
    }
  }
  return { info: (m, c) => { write('info', m, c) }, warn: (m, c) => { write('warn', m, c) } }
}

/** status' view of the network's relay counters */
function natCounters (s: NatStats): { relayedConnections: number, directUpgrades: number, lastUpgradeMs?: number } {
  const last = s.upgradeMs[s.upgradeMs.length - 1]
  return { relayedConnections: s.relayedConnections, directUpgrades: s.directUpgrades, ...(last !== undefined ? { lastUpgradeMs: last } : {}) }
}

function withOverrides (config: NodeConfig, init: IexecNodeInit): NodeConfig {
  const merged: Record<string, unknown> = { ...config }
  if (init.listen !== undefined) merged.listen = init.listen
  if (init.bootstrap !== undefined) merged.bootstrap = init.bootstrap
  if (init.announce !== undefined) merged.announce = init.announce
  if (init.mdns !== undefined) merged.mdns = init.mdns
  if (init.nat !== undefined) merged.nat = { ...config.nat, ...init.nat }
  if (init.swarmKeyFile !== undefined) merged.swarmKeyFile = init.swarmKeyFile
  if (init.apiPort !== undefined) merged.apiPort = init.apiPort
  if (init.requester === true) merged.role = 'requester'
  if (init.cpus !== undefined) merged.cpus = init.cpus
  if (init.memoryMb !== undefined) merged.memoryMb = init.memoryMb
  if (init.diskMb !== undefined) merged.diskMb = init.diskMb
  if (init.metricsListen !== undefined) merged.metricsListen = init.metricsListen
  if (init.priceFloor !== undefined) merged.priceFloor = init.priceFloor.toString()
  if (init.tags !== undefined) merged.tags = init.tags
  if (init.category !== undefined) merged.category = init.category
  if (init.chain !== undefined) merged.chain = { ...config.chain, ...init.chain }
  // the same validation as config.json: a bad flag gets CONFIG_INVALID
  return validateConfig(merged)
}

/**
 * The whole node on one screen: config -> db -> chain + market (when
 * config.chain has rpc and hub) -> network -> adverts -> API, started in that
 * order and stopped in reverse. The market is built before the network
 * starts so its gossip validators are in place before any topic is subscribed.
 *
 * @example
 * ```ts
 * const node = await IexecNode.create({ dataDir, password })
 * await node.start()
 * console.info(node.apiUrl(), node.multiaddrs())
 * await node.stop()
 * ```
 */
export class IexecNode implements ApiBackend {
  readonly peerId: string
  /** the libp2p key (signs the API's identity check) */
  private peerKey: PrivateKey | undefined
  readonly address: string
  readonly version: string
  /** warnings an operator must see (also in node.log), e.g. an unprotected dev key */
  readonly warnings: string[] = []
  private api?: ApiServer
  // only the node that wrote api.json removes it (a refused rival must not)
  private wroteApiInfo = false
  private state: 'created' | 'starting' | 'started' | 'stopping' | 'stopped' = 'created'
  private stopPromise?: Promise<void>
  private readonly stopped: Promise<void>
  /** each app's verdict for the bid strategy (appProblem) */
  private readonly appVerdicts = new Map<string, Promise<string | undefined>>()
  /** the node's Prometheus registry: every source is read at scrape time (or observed as it happens) */
  readonly metrics = new NodeMetrics({
    peers: async () => (await this.network.peers()).length,
    gossip: () => this.market?.stats.snapshot() ?? {},
    providerBids: () => this.market?.provider?.counts,
    requesterBids: () => this.market?.requester.bidCounts,
    openDeals: () => this.openDealRoles(),
    workerTasks: () => this.execution?.worker.stateCounts(),
    schedulerTasks: () => this.execution?.scheduler.taskStateCounts(),
    protocolBytes: () => this.network.traffic?.byProtocol(),
    wireBytes: () => this.network.traffic?.wire,
    dbOps: () => this.db.ops,
    followerLag: async () => {
      const m = this.market
      const at = m?.follower.position
      if (m === undefined || at === undefined) return undefined
      // the cursor names the next block to read
      return Math.max(0, await m.chain.provider.getBlockNumber() - (at.blockNumber - 1))
    }
  })
  private metricsServer?: MetricsServer
  private resolveStopped!: () => void
  private chainClient?: ChainClient
  /** the market (orderbook, bidding, requests); undefined without chain settings */
  market?: MarketService
  /** deal duties: scheduler (when elected) and watchdog, worker; undefined without chain settings */
  execution?: { channel: ExecChannel, scheduler: SchedulerService, worker: WorkerDuties, executor: KindExecutor, peers: PeerResolver, stopFeed: () => void }
  /** live events: `GET /v1/events`, the CLI's --watch and the explorer's live pages */
  readonly events = new NodeEvents()
  /** the explorer's index of the hub's history; with a chain */
  explorer?: ExplorerStore
  private stopExplorer?: () => Promise<void>
  private stopPeerEvents?: () => void
  /** the one-time login codes and session cookie of the explorer */
  private readonly sessions: BrowserSessions
  /** the owner's side of datasets (key release, owner announcements) and the worker's block retention; with execution */
  private datasetServices?: { announcer: DatasetOwnerAnnouncer, retention: BlockRetention }
  /** the requester's collection of its tasks' failure reports (set with execution) */
  private failures?: FailureCollector

  private constructor (
    readonly dataDir: string,
    readonly config: NodeConfig,
    readonly wallet: Wallet,
    private readonly apiToken: string,
    readonly db: DbController,
    readonly network: Network,
    readonly adverts: ResourceAdverts,
    private readonly log: NetworkLogger,
    private readonly init: IexecNodeInit
  ) {
    this.peerId = network.peerId
    this.address = wallet.address
    this.version = packageVersion()
    this.sessions = new BrowserSessions(apiToken)
    this.stopped = new Promise((resolve) => { this.resolveStopped = resolve })
  }

  /**
   * Loads the data dir and builds every module; starts nothing.
   * @throws ConfigError DATA_DIR_NOT_INITIALIZED, WALLET_LOCKED, WALLET_BAD_PASSWORD, CONFIG_INVALID
   * @throws NetworkError BAD_MULTIADDR, SWARM_KEY_MISSING, SWARM_KEY_INVALID
   */
  static async create (init: IexecNodeInit): Promise<IexecNode> {
    const loaded = await loadDataDir(init.dataDir, init.password)
    const configured = withOverrides(loaded.config, init)
    const paths = dataDirPaths(init.dataDir)
    const log = fileLogger(paths.logs, 'node')
    // only the executors that run on this host are advertised, bid with and used
    const usable = usableExecutors(configured.executors)
    // GPUs as found here: their count advertised, the 'gpu' tag offered only with one
    const gpus = detectGpus()
    const config: NodeConfig = {
      ...configured,
      executors: usable.executors,
      gpus: gpus.length,
      tags: tagsWithGpus(configured.tags, gpus)
    }
    const db = new DbController({ path: paths.db })
    const rules = resourceDhtRules()
    // set below; the market it holds is built in start(), before the network starts
    let built: IexecNode | undefined
    const network = await createNetwork({
      privateKey: loaded.privateKey,
      // libp2p's bytes by protocol for the metrics (not counted in a benchmark's baseline)
      ...(init.metricsObservers !== false ? { traffic: new TrafficMetrics() } : {}),
      listen: config.listen,
      bootstrap: config.bootstrap,
      swarmId: config.swarmId,
      nat: config.nat,
      announce: config.announce,
      mdns: config.mdns,
      knownPeersFile: join(init.dataDir, 'known-peers.json'),
      maxKnownPeers: config.maxKnownPeers,
      ...(config.swarmKeyFile !== undefined ? { swarmKeyFile: config.swarmKeyFile } : {}),
      blocksPath: paths.blocks,
      datastorePath: paths.datastore,
      dhtValidators: rules.validators,
      dhtSelectors: rules.selectors,
      // market topics scored: a validator's REJECT must cost the sender
      gossipScoring: marketScoring(swarmTopics(config.swarmId)),
      // peers the market banned (REJECT or spam limit, or a ban kept in level) are refused (gossipsub forgets their score on reconnect)
      denyPeer: (peer) => built?.market?.isPeerBanned(peer) === true,
      logger: fileLogger(paths.logs, 'network')
    })
    const adverts = new ResourceAdverts({
      network,
      swarmId: config.swarmId,
      privateKey: loaded.privateKey,
      wallet: loaded.wallet,
      publish: config.role === 'provider',
      intervalMs: config.advertIntervalMs,
      resources: {
        cpus: config.cpus,
        memoryMb: config.memoryMb,
        diskMb: config.diskMb,
        gpus: config.gpus,
        executors: config.executors,
        category: config.category,
        priceFloor: config.priceFloor,
        tags: config.tags,
        version: packageVersion()
      },
      logger: fileLogger(paths.logs, 'adverts')
    })
    const node = new IexecNode(init.dataDir, config, loaded.wallet, loaded.apiToken, db, network, adverts, log, init)
    node.peerKey = loaded.privateKey
    built = node
    node.gpus = gpus
    for (const d of usable.dropped) {
      node.warnings.push(`executor ${d.name} left out: ${d.reason}`)
      log.warn(node.warnings[node.warnings.length - 1])
    }
    if (loaded.unprotected) {
      node.warnings.push('the wallet key is stored unprotected (dev swarm only): do not hold real funds with it')
      log.warn(node.warnings[node.warnings.length - 1], { address: node.address })
    }
    return node
  }

  /**
   * Starts db, the market (its validators before the network subscribes),
   * network, market protocols and hub follower, execution (scheduler,
   * worker, key release, dataset announcer, block retention), adverts, then
   * the API; writes api.json. On failure, stops what started.
   */
  async start (): Promise<void> {
    if (this.state !== 'created') throw new IexecError('NODE_BAD_STATE', `cannot start a node that is ${this.state}`)
    this.state = 'starting'
    try {
      await this.db.open()
      // the market's validators must be registered before the network subscribes its topics
      await this.buildMarket()
      // the explorer's index listens to the market's hub events: wired before the follower starts
      await this.startExplorerFeed()
      await this.network.start()
      this.stopPeerEvents = peerEvents(this.events, this.network.helia.libp2p as unknown as Parameters<typeof peerEvents>[1])
      await this.market?.start()
      // needs the started network (Helia, streams) and the market's hub events
      await this.startExecution()
      this.adverts.start()
      this.api = await startApiServer({
        host: '127.0.0.1',
        port: this.config.apiPort,
        token: this.apiToken,
        backend: this,
        sessions: this.sessions,
        // the CLI checks that the node at api.json's URL holds this data dir's peer key before it sends the token
        identity: async (payload) => {
          const key = this.peerKey
          if (key === undefined) throw new IexecError('NODE_BAD_STATE', 'the node holds no peer key')
          return { peerId: this.peerId, signature: await key.sign(payload) }
        },
        routes: [
          ...metricsRoutes(this.metrics),
          ...marketRoutes(() => this.market, { failures: () => this.failures }),
          // order publish | unpublish (issue 22): a dataset order is recorded with its dataset
          ...orderRoutes({ market: () => this.market, datasets: new DatasetStore(this.db) }),
          // live events and the explorer (issue 26)
          ...eventRoutes(this.events),
          ...explorerRoutes({
            store: () => this.explorer,
            market: () => this.market,
            sessions: this.sessions,
            status: () => this.status(),
            peers: async () => await this.peers(),
            resources: async () => await this.resources({}),
            url: () => this.apiUrl()
          }),
          // account show, wallet send, stake withdraw / unstake (issue 24)
          ...walletRoutes(() => this.market),
          // category create | list, kitty, task | deal list, task | deal claim (issues 20 and 26)
          ...operatorRoutes(() => this.market),
          // app publish: checked before anything goes on chain, streamed from the node's disk
          ...appRoutes({ market: () => this.market, helia: () => this.network.helia, log: fileLogger(dataDirPaths(this.dataDir).logs, 'market').info }),
          ...contentRoutes(() => this.network.helia),
          // dataset publish, list, show, unpublish (issue 6)
          ...datasetRoutes({
            market: () => this.market,
            helia: () => this.network.helia,
            keyStore: new FileKeyStore(dataDirPaths(this.dataDir).datasetKeys),
            store: new DatasetStore(this.db),
            tmpDir: join(this.dataDir, 'tmp'),
            // without a chain there is no announcer, and the routes answer CHAIN_NOT_CONFIGURED
            announce: async () => await this.datasetServices?.announcer.announceNow(),
            log: fileLogger(dataDirPaths(this.dataDir).logs, 'datasets').info
          }),
          ...resultRoutes({
            helia: () => this.network.helia,
            finalized: async (taskId) => await this.finalizedTask(taskId),
            taskExists: async (taskId) => this.market === undefined || await taskExists(this.market, taskId),
            reachHolders: async (f) => { await this.reachResultHolders(f) },
            privateKey: this.wallet.signingKey,
            resultsDir: join(this.dataDir, 'results'),
            timeoutMs: 60_000
          }),
          // the work API (XtremWeb-HEP) over the market and the same result retrieval
          ...workRoutes({
            market: () => this.market,
            db: this.db,
            result: resultFetcher({
              helia: () => this.network.helia,
              finalized: async (taskId) => await this.finalizedTask(taskId),
              taskExists: async (taskId) => this.market === undefined || await taskExists(this.market, taskId),
              reachHolders: async (f) => { await this.reachResultHolders(f) },
              privateKey: this.wallet.signingKey,
              resultsDir: join(this.dataDir, 'results'),
              timeoutMs: 60_000
            })
          })
        ]
      })
      // the token-less metrics listener, when asked for (config metricsListen, start --metrics-listen)
      if (this.config.metricsListen !== undefined) this.metricsServer = await startMetricsServer(this.metrics, this.config.metricsListen)
      const info = { url: this.api.url, pid: process.pid, peerId: this.peerId, ...(this.metricsServer !== undefined ? { metricsUrl: this.metricsServer.url } : {}) }
      await writeFile(dataDirPaths(this.dataDir).apiInfo, JSON.stringify(info) + '\n', { mode: 0o600 })
      this.wroteApiInfo = true
    } catch (err) {
      await this.stop()
      throw err
    }
    this.state = 'started'
    this.log.info('node started', { peerId: this.peerId, address: this.address, api: this.api.url, role: this.config.role, ...(this.metricsServer !== undefined ? { metrics: this.metricsServer.url } : {}) })
  }

  /** The URL of the token-less metrics listener; undefined when none was asked for. */
  get metricsUrl (): string | undefined {
    return this.metricsServer?.url
  }

  /** Stops the API, execution, market, adverts, network, chain client and db; removes api.json. Idempotent. */
  async stop (): Promise<void> {
    if (this.state === 'stopped') return
    if (this.stopPromise !== undefined) return this.stopPromise
    this.state = 'stopping'
    this.stopPromise = (async () => {
      await this.api?.close().catch(() => {})
      this.stopPeerEvents?.()
      await this.metricsServer?.close().catch(() => {})
      await this.stopExecution()
      await this.market?.stop().catch((err: unknown) => { this.log.warn('market stop failed', { error: String(err) }) })
      await this.stopExplorer?.().catch((err: unknown) => { this.log.warn('explorer stop failed', { error: String(err) }) })
      await this.adverts.stop()
      await this.network.stop().catch((err: unknown) => { this.log.warn('network stop failed', { error: String(err) }) })
      await this.chainClient?.close().catch(() => {})
      await this.db.close().catch(() => {})
      if (this.wroteApiInfo) await rm(dataDirPaths(this.dataDir).apiInfo, { force: true })
      this.state = 'stopped'
      this.log.info('node stopped', { peerId: this.peerId })
      this.resolveStopped()
    })()
    return this.stopPromise
  }

  /**
   * Why this node's executor cannot run an app's module, checked once per
   * app (a registration never changes): the module fetched (kept in the
   * blockstore for the worker), its checksum and checkWasiModule. undefined
   * when it can run, or when there is no verdict (the module cannot be
   * fetched now: forgotten, asked again by the next request).
   */
  private async appProblem (app: string): Promise<string | undefined> {
    const key = app.toLowerCase()
    let verdict = this.appVerdicts.get(key)
    if (verdict === undefined) {
      verdict = (async () => {
        const hub = this.chainClient?.hub
        if (hub === undefined) throw new Error('no hub')
        const asset = await hub.appOf(app)
        // a registration whose CID does not parse gets no verdict here (the worker refuses it after the deal)
        const cid = CID.parse(asset.cid)
        const chunks: Uint8Array[] = []
        let total = 0
        for await (const c of catContent(this.network.helia, cid, { maxBytes: MAX_APP_MODULE_BYTES, timeoutMs: APP_CHECK_FETCH_MS })) {
          chunks.push(c)
          total += c.byteLength
        }
        const bytes = Buffer.concat(chunks, total)
        if (`0x${createHash('sha256').update(bytes).digest('hex')}` !== asset.checksum.toLowerCase()) return 'its module does not hash to its registered checksum'
        // a native binary or image is checked by the executor that runs it; a WASI module here, once
        const kind = executorOfHead(bytes.subarray(0, APP_HEAD_BYTES))
        if (kind === undefined) return 'APP_UNKNOWN_KIND: its module is neither a WASI module, a static ELF binary nor an OCI image'
        if (kind !== 'wasi') return undefined
        const check = await checkWasiModule(bytes)
        return check.ok ? undefined : `${check.code}: ${check.message}`
      })()
      this.appVerdicts.set(key, verdict)
      if (this.appVerdicts.size > 1000) this.appVerdicts.delete(this.appVerdicts.keys().next().value as string)
      verdict.catch(() => { this.appVerdicts.delete(key) })
    }
    return await verdict.catch(() => undefined)
  }

  /**
   * With config.chain.rpc and hub: connects the wallet to the chain (one
   * client, one nonce queue) and builds the market service over it. Without
   * them the node runs as in issue 2 and the market routes answer
   * CHAIN_NOT_CONFIGURED.
   * @throws ChainError RPC_UNREACHABLE, CHAIN_ID_MISMATCH, CONTRACT_NOT_FOUND
   */
  private async buildMarket (): Promise<void> {
    const { rpc, hub, chainId } = this.config.chain
    if (rpc === undefined || hub === undefined) return
    const base = { rpcUrl: rpc, wallet: this.wallet, hub, ...(chainId !== undefined ? { chainId } : {}) }
    // the RLC token's address is the hub's `token`: one probe client to read it
    const probe = await createChainClient(base)
    let rlc: string
    try {
      rlc = await (probe.hub as NonNullable<ChainClient['hub']>).token()
    } finally {
      await probe.close()
    }
    // how fast to poll and how many confirmations: per chain, config.json's chain section over the chain's profile
    const profile = chainProfile(probe.chainId, { confirmations: this.config.chain.confirmations, eventPollIntervalMs: this.config.chain.pollIntervalMs })
    this.chainClient = await createChainClient({ ...base, rlc, rpc: { pollingIntervalMs: profile.rpcPollingIntervalMs, ...(this.init.metricsObservers !== false ? { observer: this.metrics.chainObserver } : {}) } })
    const c = this.config
    const marketLog = fileLogger(dataDirPaths(this.dataDir).logs, 'market')
    this.market = new MarketService({
      network: this.network,
      db: this.db,
      chain: this.chainClient,
      signer: this.wallet,
      swarmId: c.swarmId,
      role: c.role,
      provider: {
        cpus: c.cpus,
        memoryMb: c.memoryMb,
        diskMb: c.diskMb,
        category: c.category,
        priceFloor: BigInt(c.priceFloor),
        tags: c.tags,
        executors: c.executors,
        ...(this.init.bidStrategy !== undefined ? { strategy: this.init.bidStrategy } : {}),
        // the worker duties start after the market: read them when a request comes
        busyTasks: () => this.execution?.worker.activeTasks() ?? 0,
        appProblem: async (app) => await this.appProblem(app),
        appExecutorOf: async (app) => await this.appExecutorOf(app)
      },
      fromBlock: this.init.chainFromBlock ?? this.config.chain.fromBlock ?? 0,
      ...(this.init.resyncEvents === true ? { resyncEvents: true } : {}),
      advertisedTags: async (worker) => (await this.adverts.findByAddress(worker))?.tags,
      // config.json's bid transport; an embedder's market options (tests, benchmarks) come last
      options: { bidTransport: c.bidTransport, defaultMaxPrice: BigInt(c.defaultMaxPrice), eventPollIntervalMs: profile.eventPollIntervalMs, eventConfirmations: profile.confirmations, ...this.init.market },
      // gossip verdicts are counted in market.stats; only warnings go to node.log
      logger: { debug: () => {}, warn: marketLog.warn }
    })
    // bans and balance estimates from level, before the network starts (the gater reads the bans)
    await this.market.load()
  }

  /** The explorer's index and the market's live events (with a chain). */
  private async startExplorerFeed (): Promise<void> {
    const market = this.market
    if (market === undefined) return
    this.explorer = new ExplorerStore(this.db)
    this.stopExplorer = await startExplorerFeed({
      events: this.events,
      store: this.explorer,
      market,
      db: this.db,
      fromBlock: this.init.chainFromBlock ?? this.config.chain.fromBlock ?? 0,
      ...(this.init.resyncEvents === true ? { resyncEvents: true } : {}),
      warn: fileLogger(dataDirPaths(this.dataDir).logs, 'explorer').warn
    })
  }

  /**
   * Deal duties, on every node with a chain: the scheduler service (acts on
   * the deals this node is elected for, and watches every deal so a late
   * scheduler is reelected), the worker duties (runs what a scheduler assigns
   * it) and the exec stream both speak. Fed with the hub's DealCreated events
   * by the market's follower: one follower, one cursor.
   */
  private async startExecution (): Promise<void> {
    const market = this.market
    const chain = this.chainClient
    if (market === undefined || chain === undefined) return
    const logs = dataDirPaths(this.dataDir).logs
    const domain = market.domain
    // an exec message that breaks the protocol counts toward its sender's ban as a REJECTed
    // gossip message does: the market's tracker hangs up on it at the limit and the gater refuses it
    const execLog = fileLogger(logs, 'exec')
    const channel = new ExecChannel(this.network, {}, (peer, code) => {
      execLog.info('exec message refused as an offence', { peer, code })
      market.rejects.record(peer)
    })
    // workers and schedulers are providers: their signed adverts map addresses to peer ids
    const peers = new PeerResolver(async (address) => {
      const r = await this.adverts.findByAddress(address)
      return r === undefined ? undefined : { peerId: r.peerId, cpus: r.cpus }
    })
    // a scheduler that is also a worker of its deal assigns itself too (no advert of our own is looked up)
    peers.remember(this.address, this.peerId, this.config.cpus)
    const scheduler = createSchedulerService({
      channel,
      db: this.db,
      chain,
      domain,
      wallet: this.wallet,
      resolvePeer: async (a) => await peers.resolve(a),
      workerCapacity: async (a) => peers.capacity(a),
      log: fileLogger(logs, 'scheduler').info
    })
    // datasets: this node serves the keys of the datasets it owns, is findable by its address, and
    // as a worker keeps what it fetched for a while (storage/dataset-owner.ts, retention.ts)
    const hub = chain.hub as NonNullable<ChainClient['hub']>
    const paths = dataDirPaths(this.dataDir)
    const keyStore = new FileKeyStore(paths.datasetKeys)
    const datasetStore = new DatasetStore(this.db)
    const keyLog = fileLogger(logs, 'key-release')
    await this.network.handle(KEY_RELEASE_PROTOCOL, createKeyReleaseHandler({
      domain,
      now: Date.now,
      seenNonces: new MemoryNonceRegistry(),
      chain: createHubKeyReleaseView(hub, { fromBlock: this.init.chainFromBlock ?? this.config.chain.fromBlock ?? 0 }),
      keyStore,
      // every order this node signed for the dataset, cancelled ones included: a deal made before a cancel consumed one
      datasetOrders: async (dataset) => (await datasetStore.get(dataset))?.orders,
      // the decision, never the key
      onDecision: (d) => { keyLog.info(d.refused === undefined ? 'key released' : 'key refused', { ...d }) }
    }))
    const announcer = new DatasetOwnerAnnouncer({
      network: this.network,
      swarmId: this.config.swarmId,
      address: this.address,
      ownsDatasets: async () => await datasetStore.hasLive(),
      intervalMs: this.config.advertIntervalMs,
      log: fileLogger(logs, 'datasets').info
    })
    const retention = new BlockRetention({
      helia: this.network.helia,
      db: this.db,
      provide: async (cid) => { await this.network.provide(cid, { signal: AbortSignal.timeout(DATASET_DEFAULTS.provideTimeoutMs) }) },
      log: fileLogger(logs, 'retention').info
    })
    this.datasetServices = { announcer, retention }
    const workerLog = fileLogger(logs, 'worker').info
    // one reusable runner process per task run at once, started now on a provider: a cold runner
    // costs the first task of a deal a node start (and past the idle bound, every run a new one)
    const executor = new KindExecutor(
      this.config.executors.includes('wasi') ? new WasiExecutor({ maxIdleRunners: Math.max(1, this.config.cpus) }) : undefined,
      this.config.executors.includes('native') ? nativeWithImages(undefined, 1, gpuDeviceNodes(this.gpus)) : undefined
    )
    if (this.config.role === 'provider') executor.warm(this.config.cpus)
    const worker = createWorkerDuties({
      channel,
      helia: this.network.helia,
      db: this.db,
      chain,
      domain,
      executor: this.init.metricsObservers !== false ? this.meteredExecutor(executor) : executor,
      workDir: join(this.dataDir, 'work'),
      options: { maxConcurrentTasks: this.config.cpus },
      fromBlock: this.init.chainFromBlock ?? this.config.chain.fromBlock ?? 0,
      // the deal as the scheduler service recorded its DealCreated (every node follows them): no log query
      dealCommitment: async (dealid) => (await scheduler.dealRecord(dealid))?.deal,
      datasetKey: async (req) => {
        const asset = await hub.datasetOf(req.dataset)
        const owner = asset.owner
        if (owner.toLowerCase() === this.address.toLowerCase()) {
          // a worker of its own dataset's deal: the key is here (unless unpublished)
          const own = await keyStore.get(req.dataset)
          if (own === undefined) throw new IexecError('STORAGE_KEY_NOT_FOUND', `this node holds no key for its dataset ${req.dataset}`)
          return own.bytes()
        }
        // adverts map providers' addresses; a requester-role owner is found by its owner CID
        return await fetchKeyFromOwner({
          owner,
          candidates: ownerCandidates({ network: this.network, swarmId: this.config.swarmId, owner, selfPeerId: this.peerId, known: async () => await peers.resolve(owner) }),
          fetchFrom: async (peer) => await fetchDatasetKey(async (p, o) => await this.network.dialProtocol(peer, p, o), this.wallet, domain, req),
          header: async () => await ciphertextHeader(this.network.helia, asset.cid),
          log: workerLog
        })
      },
      retention,
      // the app's owner holds its module: once connected, bitswap asks it directly rather than
      // waiting for the DHT to name a provider
      reachAppHolders: async (app) => {
        const owner = (await hub.appOf(app)).owner
        if (owner.toLowerCase() === this.address.toLowerCase()) return
        const peer = await peers.resolve(owner)
        if (peer !== undefined) await this.network.dial(peer, { signal: AbortSignal.timeout(APP_HOLDER_DIAL_MS) })
      },
      log: workerLog
    })
    // a failed task's signed report, to whoever asks (its stderr tail is sealed when the result is)
    await this.network.handle(FAILURE_REPORT_PROTOCOL, createFailureReportHandler(async (taskid) => await worker.failureReport(taskid)))
    this.failures = new FailureCollector({
      domain,
      privateKey: this.wallet.signingKey,
      resolve: async (address) => await peers.resolve(address),
      dial: async (peer, protocol, o) => await this.network.dialProtocol(peer, protocol, o),
      self: { address: this.address, report: async (taskid) => await worker.failureReport(taskid) }
    })
    await channel.start()
    await scheduler.start()
    await worker.start()
    announcer.start()
    retention.start()
    const stopEvents = market.onHubEventListener(async (event) => { await scheduler.onChainEvent(event) })
    // a reorg's removed events: the records that moved on them follow the chain again
    const stopRemoved = market.onHubEventRemovedListener(async (event) => {
      await scheduler.onChainEventRemoved(event)
      await worker.onChainEventRemoved(event)
    })
    const stopFeed = (): void => { stopEvents(); stopRemoved() }
    this.execution = { channel, scheduler, worker, executor, peers, stopFeed }
  }

  private async stopExecution (): Promise<void> {
    const e = this.execution
    const d = this.datasetServices
    const warn = (what: string) => (err: unknown) => { this.log.warn(`${what} stop failed`, { error: String(err) }) }
    if (d !== undefined) {
      await d.announcer.stop().catch(warn('dataset announcer'))
      await d.retention.stop().catch(warn('block retention'))
      // no key leaves this node once it stops
      if (this.network.started) await this.network.unhandle(KEY_RELEASE_PROTOCOL).catch(warn('key release'))
      if (this.network.started) await this.network.unhandle(FAILURE_REPORT_PROTOCOL).catch(warn('failure reports'))
    }
    if (e === undefined) return
    e.stopFeed()
    await e.worker.stop().catch(warn('worker'))
    await e.scheduler.stop().catch(warn('scheduler'))
    await e.channel.stop().catch(warn('exec channel'))
    await e.executor.close().catch(warn('executor'))
  }

  /** The executor as the worker sees it, each run observed in the metrics (its result, the app's run time). */
  private meteredExecutor (executor: Executor): Executor {
    const metrics = this.metrics
    return {
      name: executor.name,
      run: async (job, signal) => {
        const t0 = performance.now()
        try {
          const r = await executor.run(job, signal)
          metrics.observeRun(r.status, r.durationMs / 1000)
          return r
        } catch (err) {
          metrics.observeRun('ERROR', (performance.now() - t0) / 1000)
          throw err
        }
      },
      close: async () => { await executor.close() }
    }
  }

  /** Open deals by this node's role in each (metrics). */
  private openDealRoles (): Partial<Record<DealRole, number>> | undefined {
    const s = this.execution?.scheduler
    if (s === undefined) return undefined
    const me = this.address.toLowerCase()
    const out: Record<DealRole, number> = { requester: 0, worker: 0, scheduler: 0 }
    for (const d of s.openDeals()) {
      if (d.deal.requester.toLowerCase() === me) out.requester++
      if (d.deal.workers.some((w) => w.toLowerCase() === me)) out.worker++
      if ((d.scheduler ?? d.deal.scheduler).toLowerCase() === me) out.scheduler++
    }
    return out
  }

  /** The hub's TaskFinalized event of a task: its results CID and agreed result hash. */
  private async finalizedTask (taskId: string): Promise<FinalizedTask | undefined> {
    const hub = this.chainClient?.hub
    if (hub === undefined) return undefined
    const logs = await hub.queryFilter(hub.filters.TaskFinalized(taskId), this.init.chainFromBlock ?? this.config.chain.fromBlock ?? 0)
    const last = logs[logs.length - 1]
    if (last === undefined) return undefined
    return { resultsCid: last.args.resultsCid, resultHash: last.args.resultHash, dealid: last.args.dealid }
  }

  /**
   * Dials the workers of a finalized task's deal before its result is
   * fetched: one of them added the result to its Helia, and bitswap asks
   * the connected peers first. Workers do not announce each result in the
   * DHT (a provide per task was most of a bag's network traffic), so a
   * requester not yet connected to them finds them here, by their adverts.
   * Best effort and bounded: a worker that cannot be reached is skipped,
   * and the fetch still asks the DHT.
   */
  private async reachResultHolders (finalized: FinalizedTask): Promise<void> {
    const execution = this.execution
    if (finalized.dealid === undefined || execution === undefined) return
    const deal = await execution.scheduler.dealRecord(finalized.dealid)
    const workers = deal?.deal.workers ?? []
    await Promise.allSettled(workers.filter((w) => w.toLowerCase() !== this.address.toLowerCase()).map(async (w) => {
      const peer = await execution.peers.resolve(w)
      // libp2p reuses a connection that is already open
      if (peer !== undefined) await this.network.dial(peer, { signal: AbortSignal.timeout(RESULT_HOLDER_DIAL_MS) })
    }))
  }

  /** Resolves once the node has stopped (by stop() or an API shutdown). */
  async whenStopped (): Promise<void> {
    return this.stopped
  }

  multiaddrs (): string[] {
    return this.network.started ? this.network.multiaddrs() : []
  }

  apiUrl (): string {
    if (this.api === undefined) throw new IexecError('NODE_BAD_STATE', 'the API is not started')
    return this.api.url
  }

  private readonly appExecutors = new Map<string, Promise<string | undefined>>()
  /** GPUs found at start (model and memory for status; their count is config.gpus) */
  gpus: GpuInfo[] = []

  /**
   * The executor an app needs, from the first bytes of its content (kept per
   * app). A node that runs every kind does not fetch them; an app whose head
   * cannot be had in time is taken for a WASI module (and refused at run if
   * it is not one).
   */
  private async appExecutorOf (app: string): Promise<string | undefined> {
    if (KNOWN_EXECUTORS.every((e) => this.config.executors.includes(e))) return this.config.executors[0]
    const hub = this.chainClient?.hub
    if (hub === undefined) return undefined
    const key = app.toLowerCase()
    let entry = this.appExecutors.get(key)
    if (entry === undefined) {
      entry = (async () => {
        const { cid } = await hub.appOf(app)
        const parts: Uint8Array[] = []
        let got = 0
        for await (const c of catContent(this.network.helia, cid, { timeoutMs: APP_HEAD_TIMEOUT_MS })) {
          parts.push(c)
          got += c.byteLength
          if (got >= APP_HEAD_BYTES) break
        }
        return executorOfHead(Buffer.concat(parts))
      })()
      this.appExecutors.set(key, entry)
      // a failed look-up is tried again at the next request
      entry.catch(() => { this.appExecutors.delete(key) })
    }
    return await entry
  }

  /** NodeStatus plus what an operator needs to diagnose a lonely node. */
  status (): NodeStatus & { bootstrap: BootstrapStatus[], warnings: string[], executors: string[], gpus: GpuInfo[], nativeSandbox?: NativeStatus } {
    return {
      bootstrap: this.network.started ? this.network.bootstrapStatus() : [],
      warnings: [...this.warnings],
      peerId: this.peerId,
      address: this.address,
      multiaddrs: this.multiaddrs(),
      role: this.config.role,
      version: this.version,
      connections: this.network.started ? this.network.connectionCount() : 0,
      nat: {
        ...(this.network.started ? this.network.reachability() : { reachability: 'unknown' as const, publicAddrs: [], relayAddrs: [] }),
        ...this.network.natPlan(),
        holePunching: this.config.nat.holePunching,
        autonat: this.config.nat.autonat,
        upnp: this.config.nat.upnp,
        mdns: this.config.mdns,
        ...(this.network.started ? natCounters(this.network.natStats()) : {})
      },
      defaultMaxPrice: this.market?.options.defaultMaxPrice.toString() ?? this.config.defaultMaxPrice,
      swarm: {
        swarmId: this.config.swarmId,
        swarmKeyFile: this.config.swarmKeyFile !== undefined ? resolvePath(this.config.swarmKeyFile) : null,
        transports: this.network.transports(),
        connectionEncrypters: ['noise'],
        streamMuxers: ['yamux'],
        dhtProtocol: dhtProtocol(this.config.swarmId),
        topics: swarmTopics(this.config.swarmId),
        bitswapProtocol: '/ipfs/bitswap/1.2.0'
      },
      executors: this.config.executors,
      gpus: this.gpus,
      // the native sandbox's limits in force on this host
      ...(this.execution?.executor.native !== undefined ? { nativeSandbox: this.execution.executor.native.status() } : {})
    }
  }

  async peers (): Promise<PeerView[]> {
    return this.network.peers()
  }

  async resources (query: ResourceQuery): Promise<ResourceView[]> {
    const records = await this.adverts.findResources({
      category: query.category ?? this.config.category,
      ...(query.tags !== undefined ? { tags: query.tags } : {})
    })
    return records.map((r) => ({
      peerId: r.peerId,
      address: r.address,
      cpus: r.cpus,
      memoryMb: r.memoryMb,
      gpus: r.gpus,
      executors: r.executors,
      category: r.category,
      priceFloor: r.priceFloor,
      tags: r.tags,
      version: r.version,
      timestamp: r.timestamp
    }))
  }

  async shutdown (): Promise<void> {
    // answer the API call first, then stop
    setImmediate(() => { void this.stop() })
  }
}
