import './common/polyfills.js'
import { writeFile, rm } from 'node:fs/promises'
import type { Wallet } from 'ethers'
import type { PrivateKey } from '@libp2p/interface'
import { dataDirPaths, loadDataDir } from './config/index.js'
import type { NodeConfig } from './config/index.js'
import { DbController } from './db/index.js'
import { createNetwork, ResourceAdverts, TrafficMetrics } from './network/index.js'
import type { Network, NetworkLogger } from './network/index.js'
import { startApiServer } from './api/index.js'
import type { ApiServer } from './api/index.js'
import type { ApiBackend, PeerView, ResourceQuery, ResourceView } from './api/backend.js'
import { NodeMetrics } from './api/metrics.js'
import { startMetricsServer, type MetricsServer } from './api/metrics-server.js'
import { NodeBackend, type FullNodeStatus } from './api/node-backend.js'
import { meteredExecutor, nodeMetricsSources } from './api/node-metrics.js'
import { nodeRoutes } from './api/node-routes.js'
import { NodeEvents } from './api/events.js'
import { BrowserSessions } from './api/session.js'
import { ExplorerStore } from './api/explorer/store.js'
import { peerEvents, startExplorerFeed } from './api/explorer/feed.js'
import { IexecError } from './common/errors.js'
import { packageVersion } from './common/version.js'
import { defaultEventFollowerOptions, findFinalizedTask } from './chain/index.js'
import type { ChainClient, HubEvents } from './chain/index.js'
import type { MarketService } from './market/index.js'
import { createMarket } from './market/create-market.js'
import { Execution } from './execution/execution.js'
import { usableExecutors } from './worker/executors.js'
import { detectGpus, tagsWithGpus } from './worker/gpu.js'
import type { GpuInfo } from './worker/gpu.js'
import type { Executor } from './worker/executor.js'
import { AppChecks } from './worker/app-checks.js'
import type { FinalizedTask } from './storage/results.js'
import { LogFile } from './common/log-file.js'
import { Lifecycle, startable } from './common/lifecycle.js'
import { advertisedResourcesOf, networkOptionsOf, withOverrides } from './node-init.js'
import type { IexecNodeInit } from './node-init.js'

export type { IexecNodeInit } from './node-init.js'

/**
 * The whole node on one screen: config -> db -> chain + market (when
 * config.chain has rpc and hub) -> network -> execution -> the hub's events
 * -> adverts -> API, started in that order and stopped in reverse (a
 * Lifecycle). The market is built before the network starts so its gossip
 * validators are in place before any topic is subscribed. One follower of
 * the hub (HubEvents) feeds, in this order, the market's book, the explorer,
 * the scheduler and the worker; it starts once they all subscribed and stops
 * before any of them.
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
  readonly address: string
  readonly version = packageVersion()
  /** warnings an operator must see (also in node.log), e.g. an unprotected dev key */
  readonly warnings: string[] = []
  /** the node's Prometheus registry: every source is read at scrape time (or observed as it happens) */
  readonly metrics: NodeMetrics
  /** live events: `GET /v1/events`, the CLI's --watch and the explorer's live pages */
  readonly events = new NodeEvents()
  /** the market (orderbook, bidding, requests); undefined without chain settings */
  market?: MarketService
  /** the node's one follower of the hub's events; with a chain */
  hubEvents?: HubEvents
  /** deal duties: scheduler (when elected) and watchdog, worker, datasets; undefined without chain settings */
  execution?: Execution
  /** the explorer's index of the hub's history; with a chain */
  explorer?: ExplorerStore
  private chainClient?: ChainClient
  private api?: ApiServer
  private metricsServer?: MetricsServer
  // only the node that wrote api.json removes it (a refused rival must not)
  private wroteApiInfo = false
  private state: 'created' | 'starting' | 'started' | 'stopping' | 'stopped' = 'created'
  private stopPromise?: Promise<void>
  private resolveStopped!: () => void
  private readonly stopped = new Promise<void>((resolve) => { this.resolveStopped = resolve })
  private readonly started = new Lifecycle()
  private readonly log: NetworkLogger
  /** the one-time login codes and session cookie of the explorer */
  private readonly sessions: BrowserSessions
  private readonly backend: NodeBackend
  /** the provider's bid-time checks of an app (its module, its executor) */
  private readonly apps: AppChecks
  /** first block of the hub's history this node reads */
  private readonly fromBlock: number

  private constructor (
    readonly dataDir: string,
    readonly config: NodeConfig,
    readonly wallet: Wallet,
    private readonly peerKey: PrivateKey,
    private readonly apiToken: string,
    readonly db: DbController,
    readonly network: Network,
    readonly adverts: ResourceAdverts,
    private readonly logs: LogFile,
    /** GPUs found at start (model and memory for status; their count is config.gpus) */
    readonly gpus: GpuInfo[],
    private readonly init: IexecNodeInit
  ) {
    this.peerId = network.peerId
    this.address = wallet.address
    this.log = logs.logger('node')
    this.metrics = new NodeMetrics(nodeMetricsSources({ address: this.address, network, db, market: () => this.market, execution: () => this.execution }))
    this.sessions = new BrowserSessions(apiToken)
    this.fromBlock = init.chainFromBlock ?? config.chain.fromBlock ?? 0
    this.apps = new AppChecks({ appOf: () => this.chainClient?.hub?.appOf.bind(this.chainClient.hub), helia: () => network.helia, executors: config.executors })
    this.backend = new NodeBackend({
      ...this.parts(),
      warnings: this.warnings,
      defaultMaxPrice: () => this.market?.options.defaultMaxPrice,
      nativeSandbox: () => this.execution?.executor.native?.status(),
      stop: async () => { await this.stop() }
    })
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
    const logs = new LogFile(paths.logs)
    // only the executors that run on this host are advertised, bid with and used
    const usable = usableExecutors(configured.executors)
    // GPUs as found here: their count advertised, the 'gpu' tag offered only with one
    const gpus = detectGpus()
    const config: NodeConfig = { ...configured, executors: usable.executors, gpus: gpus.length, tags: tagsWithGpus(configured.tags, gpus) }
    const db = new DbController({ path: paths.db })
    // set below; the market it holds is built in start(), before the network starts
    let built: IexecNode | undefined
    const network = await createNetwork({
      privateKey: loaded.privateKey,
      // libp2p's bytes by protocol for the metrics (not counted in a benchmark's baseline)
      ...(init.metricsObservers !== false ? { traffic: new TrafficMetrics() } : {}),
      ...networkOptionsOf(config, init.dataDir),
      // peers the market banned (REJECT or spam limit, or a ban kept in level) are refused (gossipsub forgets their score on reconnect)
      denyPeer: (peer) => built?.market?.isPeerBanned(peer) === true,
      logger: logs.logger('network')
    })
    const adverts = new ResourceAdverts({
      network,
      swarmId: config.swarmId,
      privateKey: loaded.privateKey,
      wallet: loaded.wallet,
      publish: config.role === 'provider',
      intervalMs: config.advertIntervalMs,
      resources: advertisedResourcesOf(config),
      logger: logs.logger('adverts')
    })
    const node = built = new IexecNode(init.dataDir, config, loaded.wallet, loaded.privateKey, loaded.apiToken, db, network, adverts, logs, gpus, init)
    for (const d of usable.dropped) node.warn(`executor ${d.name} left out: ${d.reason}`)
    if (loaded.unprotected) node.warn('the wallet key is stored unprotected (dev swarm only): do not hold real funds with it', { address: node.address })
    return node
  }

  /**
   * Starts db, the market (its validators before the network subscribes),
   * network, market protocols, execution (scheduler, worker, key release,
   * dataset announcer, block retention), the hub's events, adverts, then
   * the API; writes api.json. On failure, stops what started.
   */
  async start (): Promise<void> {
    if (this.state !== 'created') throw new IexecError('NODE_BAD_STATE', `cannot start a node that is ${this.state}`)
    this.state = 'starting'
    const s = this.started
    const paths = dataDirPaths(this.dataDir)
    try {
      await s.start('db', startable(async () => { await this.db.open() }, async () => { await this.db.close() }))
      // the market's validators must be registered before the network subscribes its topics
      const built = await createMarket({
        ...this.parts(),
        run: this.init,
        ...(this.init.metricsObservers !== false ? { observer: this.metrics.chainObserver } : {}),
        // the worker duties start after the market: read them when a request comes
        provider: { busyTasks: () => this.execution?.worker.activeTasks() ?? 0, appProblem: async (app) => await this.apps.problem(app), appExecutorOf: async (app) => await this.apps.executorOf(app) },
        advertisedTags: async (worker) => (await this.adverts.findByAddress(worker))?.tags,
        log: this.logs.logger('market'),
        onChainClient: (client) => { this.chainClient = client; s.add('chain client', { stop: async () => { await client.close() } }) }
      })
      const market = this.market = built?.market
      const hubEvents = this.hubEvents = built?.hubEvents
      // the hub's subscribers in delivery order: the market (subscribed as it was built), the explorer, then the execution
      if (market !== undefined && hubEvents !== undefined) {
        const explorer = this.explorer = new ExplorerStore(this.db)
        s.add('explorer', { stop: await startExplorerFeed({ events: this.events, store: explorer, market, hubEvents, fromBlock: this.fromBlock, warn: this.logs.logger('explorer').warn }) })
      }
      await s.start('network', this.network)
      const stopPeerEvents = peerEvents(this.events, this.network.helia.libp2p as unknown as Parameters<typeof peerEvents>[1])
      s.add('peer events', { stop: async () => { stopPeerEvents() } })
      if (market !== undefined) await s.start('market', market)
      // needs the started network (Helia, streams) and the market
      const chain = this.chainClient
      if (market !== undefined && hubEvents !== undefined && chain !== undefined) {
        const observe = this.init.metricsObservers !== false ? { observeExecutor: (e: Executor) => meteredExecutor(e, this.metrics) } : {}
        const execution = new Execution({ ...this.parts(), chain, market, hubEvents, ...observe })
        await s.start('execution', execution)
        this.execution = execution
      }
      // every subscriber is in (nothing is replayed to a late one); stopped before
      // them, after the event in hand is handled and its cursor saved
      if (hubEvents !== undefined) await s.start('hub events', hubEvents)
      await s.start('adverts', startable(async () => { await this.adverts.start() }, async () => { await this.adverts.stop() }))
      const api = this.api = await startApiServer({
        host: '127.0.0.1',
        port: this.config.apiPort,
        token: this.apiToken,
        backend: this,
        sessions: this.sessions,
        // the CLI checks that the node at api.json's URL holds this data dir's peer key before it sends the token
        identity: async (payload) => ({ peerId: this.peerId, signature: await this.peerKey.sign(payload) }),
        routes: nodeRoutes({
          ...this.parts(),
          metrics: this.metrics,
          events: this.events,
          sessions: this.sessions,
          backend: this.backend,
          url: () => this.apiUrl(),
          helia: () => this.network.helia,
          market: () => this.market,
          explorer: () => this.explorer,
          failures: () => this.execution?.failures,
          announceDatasets: async () => await this.execution?.announcer.announceNow(),
          finalized: async (taskId) => await this.finalizedTask(taskId),
          reachHolders: async (f) => { await this.execution?.holders.reachResultHolders(f) },
          privateKey: this.wallet.signingKey
        })
      })
      s.add('api', { stop: async () => { await api.close() } })
      // the token-less metrics listener, when asked for (config metricsListen, start --metrics-listen)
      if (this.config.metricsListen !== undefined) {
        const server = this.metricsServer = await startMetricsServer(this.metrics, this.config.metricsListen)
        s.add('metrics server', { stop: async () => { await server.close() } })
      }
      const info = { url: api.url, pid: process.pid, peerId: this.peerId, ...(this.metricsServer !== undefined ? { metricsUrl: this.metricsServer.url } : {}) }
      await writeFile(paths.apiInfo, JSON.stringify(info) + '\n', { mode: 0o600 })
      this.wroteApiInfo = true
    } catch (err) {
      await this.stop()
      throw err
    }
    this.state = 'started'
    this.log.info('node started', { peerId: this.peerId, address: this.address, api: this.api.url, role: this.config.role, ...(this.metricsServer !== undefined ? { metrics: this.metricsServer.url } : {}) })
  }

  /** Stops what started, newest first (API, the hub's events, execution, market, network, chain client, db ...); removes api.json. Idempotent. */
  async stop (): Promise<void> {
    if (this.state === 'stopped') return
    if (this.stopPromise !== undefined) return this.stopPromise
    this.state = 'stopping'
    this.stopPromise = (async () => {
      for (const f of await this.started.stopAll()) this.log.warn(`${f.name} stop failed`, { error: String(f.error) })
      if (this.wroteApiInfo) await rm(dataDirPaths(this.dataDir).apiInfo, { force: true })
      this.state = 'stopped'
      this.log.info('node stopped', { peerId: this.peerId })
      this.resolveStopped()
    })()
    return this.stopPromise
  }

  /** The URL of the token-less metrics listener; undefined when none was asked for. */
  get metricsUrl (): string | undefined { return this.metricsServer?.url }
  /** Resolves once the node has stopped (by stop() or an API shutdown). */
  async whenStopped (): Promise<void> { await this.stopped }
  multiaddrs (): string[] { return this.backend.multiaddrs() }

  apiUrl (): string {
    if (this.api === undefined) throw new IexecError('NODE_BAD_STATE', 'the API is not started')
    return this.api.url
  }

  // the API's backend (api/node-backend.ts), also the embedder's view of the node
  status (): FullNodeStatus { return this.backend.status() }
  async peers (): Promise<PeerView[]> { return await this.backend.peers() }
  async resources (query: ResourceQuery): Promise<ResourceView[]> { return await this.backend.resources(query) }
  async shutdown (): Promise<void> { await this.backend.shutdown() }

  /** The hub's TaskFinalized event of a task: its results CID and agreed result hash. */
  private async finalizedTask (taskId: string): Promise<FinalizedTask | undefined> {
    const hub = this.chainClient?.hub
    if (hub === undefined) return undefined
    // the head the follower last saw (one poll old): no eth_blockNumber before the one eth_getLogs
    const headHint = this.hubEvents?.follower.headSeen
    return await findFinalizedTask(hub, taskId, { fromBlock: this.fromBlock, maxBlockRange: defaultEventFollowerOptions.maxBlockRange, ...(headHint !== undefined ? { headHint } : {}) })
  }

  /** What every part is built from: handed whole, each takes what it declares. */
  private parts (): { config: NodeConfig, dataDir: string, db: DbController, network: Network, adverts: ResourceAdverts, wallet: Wallet, peerId: string, address: string, version: string, gpus: GpuInfo[], logs: LogFile, fromBlock: number } {
    const { config, dataDir, db, network, adverts, wallet, peerId, address, version, gpus, logs, fromBlock } = this
    return { config, dataDir, db, network, adverts, wallet, peerId, address, version, gpus, logs, fromBlock }
  }

  private warn (warning: string, context?: Record<string, unknown>): void {
    this.warnings.push(warning)
    this.log.warn(warning, context)
  }
}
