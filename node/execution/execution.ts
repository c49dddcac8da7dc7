import { join } from 'node:path'
import type { Wallet } from 'ethers'
import { dataDirPaths } from '../config/index.js'
import type { NodeConfig } from '../config/index.js'
import type { DbController } from '../db/index.js'
import type { ChainClient, HubEvents } from '../chain/index.js'
import type { LogFile } from '../common/log-file.js'
import { Lifecycle, startable } from '../common/lifecycle.js'
import type { Startable } from '../common/lifecycle.js'
import type { MarketService } from '../market/index.js'
import { HolderDialer } from '../network/index.js'
import type { Network, ResourceAdverts } from '../network/index.js'
import { ExecChannel, PeerResolver, createSchedulerService } from '../scheduler/index.js'
import type { SchedulerService } from '../scheduler/index.js'
import {
  BlockRetention, DATASET_DEFAULTS, DatasetKeyResolver, DatasetOwnerAnnouncer, DatasetStore, FileKeyStore, KEY_RELEASE_PROTOCOL,
  MemoryNonceRegistry, createHubKeyReleaseView, createKeyReleaseHandler
} from '../storage/index.js'
import { WasiExecutor } from '../worker/index.js'
import { KindExecutor, nativeWithImages } from '../worker/executors.js'
import type { Executor } from '../worker/executor.js'
import { gpuDeviceNodes } from '../worker/gpu.js'
import type { GpuInfo } from '../worker/gpu.js'
// the duties live apart from worker/index.ts, which stays free of chain and
// storage imports so the executor can be compiled and run on its own
import { createWorkerDuties } from '../worker/duties.js'
import type { WorkerDuties } from '../worker/duties.js'
import { FailureCollector, createFailureReportHandler } from '../worker/failure-reports.js'
import { FAILURE_REPORT_PROTOCOL } from '../../protocols/failure-report.js'

export interface ExecutionInit {
  config: Pick<NodeConfig, 'cpus' | 'executors' | 'role' | 'swarmId' | 'advertIntervalMs'>
  dataDir: string
  network: Network
  db: DbController
  chain: ChainClient
  market: MarketService
  /** the node's follower of the hub: subscribed after the market (the scheduler sees an event after the book applied it) */
  hubEvents: Pick<HubEvents, 'on'>
  adverts: Pick<ResourceAdverts, 'findByAddress'>
  wallet: Wallet
  peerId: string
  gpus: GpuInfo[]
  /** first block of the hub's history */
  fromBlock: number
  logs: LogFile
  /** wraps the executor the worker runs apps with (the metrics observe each run) */
  observeExecutor?: (executor: Executor) => Executor
}

/**
 * Deal duties, on every node with a chain: the scheduler service (acts on
 * the deals this node is elected for, and watches every deal so a late
 * scheduler is reelected), the worker duties (runs what a scheduler assigns
 * it) and the exec stream both speak; the owner's side of datasets (key
 * release, owner announcements) and the worker's block retention; failure
 * reports. Fed with the hub's events by the node's HubEvents, after the
 * market: one follower, one cursor.
 */
export class Execution implements Startable {
  readonly channel: ExecChannel
  readonly peers: PeerResolver
  readonly scheduler: SchedulerService
  readonly worker: WorkerDuties
  readonly executor: KindExecutor
  readonly announcer: DatasetOwnerAnnouncer
  readonly retention: BlockRetention
  /** the requester's collection of its tasks' failure reports */
  readonly failures: FailureCollector
  /** dials the peers that hold an app or a result before it is fetched */
  readonly holders: HolderDialer
  private readonly started = new Lifecycle()
  /** the keys of the datasets this node owns, and its signed orders of them */
  private readonly keyStore: FileKeyStore
  private readonly datasetStore: DatasetStore

  constructor (private readonly init: ExecutionInit) {
    const { config, network, db, chain, market, wallet, logs } = init
    const domain = market.domain
    const hub = chain.hub as NonNullable<ChainClient['hub']>
    // an exec message that breaks the protocol counts toward its sender's ban as a REJECTed
    // gossip message does: the market's tracker hangs up on it at the limit and the gater refuses it
    const execLog = logs.logger('exec')
    this.channel = new ExecChannel(network, {}, (peer, code) => {
      execLog.info('exec message refused as an offence', { peer, code })
      market.rejects.record(peer)
    })
    // workers and schedulers are providers: their signed adverts map addresses to peer ids
    const peers = this.peers = new PeerResolver(async (address) => {
      const r = await init.adverts.findByAddress(address)
      return r === undefined ? undefined : { peerId: r.peerId, cpus: r.cpus }
    })
    // a scheduler that is also a worker of its deal assigns itself too (no advert of our own is looked up)
    peers.remember(wallet.address, init.peerId, config.cpus)
    const scheduler = this.scheduler = createSchedulerService({
      channel: this.channel,
      db,
      chain,
      domain,
      wallet,
      resolvePeer: async (a) => await peers.resolve(a),
      workerCapacity: async (a) => peers.capacity(a),
      log: logs.logger('scheduler').info
    })
    // datasets: this node serves the keys of the datasets it owns, is findable by its address, and
    // as a worker keeps what it fetched for a while (storage/dataset-owner.ts, retention.ts)
    const datasetStore = this.datasetStore = new DatasetStore(db)
    this.keyStore = new FileKeyStore(dataDirPaths(init.dataDir).datasetKeys)
    this.announcer = new DatasetOwnerAnnouncer({
      network,
      swarmId: config.swarmId,
      address: wallet.address,
      ownsDatasets: async () => await datasetStore.hasLive(),
      intervalMs: config.advertIntervalMs,
      log: logs.logger('datasets').info
    })
    this.retention = new BlockRetention({
      helia: network.helia,
      db,
      provide: async (cid) => { await network.provide(cid, { signal: AbortSignal.timeout(DATASET_DEFAULTS.provideTimeoutMs) }) },
      log: logs.logger('retention').info
    })
    this.holders = new HolderDialer({
      self: wallet.address,
      resolve: async (address) => await peers.resolve(address),
      dial: async (peer, o) => { await network.dial(peer, o) },
      appOwner: async (app) => (await hub.appOf(app)).owner,
      dealWorkers: async (dealid) => [...(await scheduler.dealRecord(dealid))?.deal.workers ?? []]
    })
    // one reusable runner process per task run at once, started on a provider: a cold runner
    // costs the first task of a deal a node start (and past the idle bound, every run a new one)
    this.executor = new KindExecutor(
      config.executors.includes('wasi') ? new WasiExecutor({ maxIdleRunners: Math.max(1, config.cpus) }) : undefined,
      config.executors.includes('native') ? nativeWithImages(undefined, 1, gpuDeviceNodes(init.gpus)) : undefined
    )
    const workerLog = logs.logger('worker').info
    const keys = new DatasetKeyResolver({
      hub,
      keyStore: this.keyStore,
      network,
      swarmId: config.swarmId,
      wallet,
      selfPeerId: init.peerId,
      domain,
      resolvePeer: async (a) => await peers.resolve(a),
      log: workerLog
    })
    const worker = this.worker = createWorkerDuties({
      channel: this.channel,
      helia: network.helia,
      db,
      chain,
      domain,
      executor: init.observeExecutor?.(this.executor) ?? this.executor,
      workDir: join(init.dataDir, 'work'),
      options: { maxConcurrentTasks: config.cpus },
      fromBlock: init.fromBlock,
      // the deal as the scheduler service recorded its DealCreated (every node follows them): no log query
      dealCommitment: async (dealid) => (await scheduler.dealRecord(dealid))?.deal,
      datasetKey: async (req) => await keys.key(req),
      retention: this.retention,
      // the app's owner holds its module: once connected, bitswap asks it directly rather than
      // waiting for the DHT to name a provider
      reachAppHolders: async (app) => { await this.holders.reachAppHolders(app) },
      log: workerLog
    })
    this.failures = new FailureCollector({
      domain,
      privateKey: wallet.signingKey,
      resolve: async (address) => await peers.resolve(address),
      dial: async (peer, protocol, o) => await network.dialProtocol(peer, protocol, o),
      self: { address: wallet.address, report: async (taskid) => await worker.failureReport(taskid) }
    })
  }

  /** Registers the protocols and starts every part; on a failure, stops what started and throws. */
  async start (): Promise<void> {
    const { network, market, chain, config, logs, hubEvents } = this.init
    const hub = chain.hub as NonNullable<ChainClient['hub']>
    const keyLog = logs.logger('key-release')
    // no key leaves this node once it stops
    const unhandle = (protocol: string) => async () => { if (network.started) await network.unhandle(protocol) }
    const s = this.started
    try {
      await s.start('key release', startable(async () => {
        await network.handle(KEY_RELEASE_PROTOCOL, createKeyReleaseHandler({
          domain: market.domain,
          now: Date.now,
          seenNonces: new MemoryNonceRegistry(),
          chain: createHubKeyReleaseView(hub, { fromBlock: this.init.fromBlock }),
          keyStore: this.keyStore,
          // every order this node signed for the dataset, cancelled ones included: a deal made before a cancel consumed one
          datasetOrders: async (dataset) => (await this.datasetStore.get(dataset))?.orders,
          // the decision, never the key
          onDecision: (d) => { keyLog.info(d.refused === undefined ? 'key released' : 'key refused', { ...d }) }
        }))
      }, unhandle(KEY_RELEASE_PROTOCOL)))
      await s.start('executor', startable(() => { if (config.role === 'provider') this.executor.warm(config.cpus) }, async () => { await this.executor.close() }))
      // a failed task's signed report, to whoever asks (its stderr tail is sealed when the result is)
      await s.start('failure reports', startable(async () => {
        await network.handle(FAILURE_REPORT_PROTOCOL, createFailureReportHandler(async (taskid) => await this.worker.failureReport(taskid)))
      }, unhandle(FAILURE_REPORT_PROTOCOL)))
      await s.start('exec channel', this.channel)
      await s.start('scheduler', this.scheduler)
      await s.start('worker', this.worker)
      await s.start('dataset announcer', startable(() => { this.announcer.start() }, async () => { await this.announcer.stop() }))
      await s.start('block retention', startable(() => { this.retention.start() }, async () => { await this.retention.stop() }))
      const stopEvents = hubEvents.on('*', async (event) => { await this.scheduler.onChainEvent(event) }, {
        // a reorg's removed events: the records that moved on them follow the chain again
        onRemoved: async (event) => {
          await this.scheduler.onChainEventRemoved(event)
          await this.worker.onChainEventRemoved(event)
        }
      })
      s.add('hub event feed', startable(() => {}, () => { stopEvents() }))
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /** Stops every part in reverse start order; each failure is logged, none stops the rest. */
  async stop (): Promise<void> {
    const log = this.init.logs.logger('node')
    for (const f of await this.started.stopAll()) log.warn(`${f.name} stop failed`, { error: String(f.error) })
  }
}
