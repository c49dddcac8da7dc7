import { join } from 'node:path'
import { dataDirPaths } from '../config/index.js'
import type { DbController } from '../db/index.js'
import type { LogFile } from '../common/log-file.js'
import type { MarketService } from '../market/index.js'
import { marketRoutes } from './routes/market.js'
import { orderRoutes } from './routes/order.js'
import { walletRoutes } from './routes/wallet.js'
import { operatorRoutes } from './routes/operator.js'
import { appRoutes } from './routes/app.js'
import { resultFetcher, workRoutes } from './routes/work.js'
import { taskExists } from '../market/task-status.js'
import { DatasetStore, FileKeyStore } from '../storage/index.js'
import { datasetRoutes } from './routes/dataset.js'
import type { Network } from '../network/index.js'
import type { EciesPrivateKey } from '../storage/ecies.js'
import type { FinalizedTask } from '../storage/results.js'
import { contentRoutes, resultRoutes } from './routes/storage.js'
import type { FailureCollector } from '../worker/failure-reports.js'
import type { ApiBackend, NodeStatus } from './backend.js'
import { eventRoutes } from './events.js'
import type { NodeEvents } from './events.js'
import { explorerRoutes } from './routes/explorer.js'
import type { ExplorerStore } from './explorer/store.js'
import { metricsRoutes } from './metrics.js'
import type { NodeMetrics } from './metrics.js'
import type { ApiRoute } from './router.js'
import type { BrowserSessions } from './session.js'

/** How long a result fetch may take before the API answers with an error. */
const RESULT_FETCH_TIMEOUT_MS = 60_000

export interface NodeRoutesDeps {
  dataDir: string
  db: DbController
  metrics: NodeMetrics
  events: NodeEvents
  sessions: BrowserSessions
  logs: LogFile
  backend: ApiBackend & { status: () => NodeStatus }
  /** the API's own URL */
  url: () => string
  helia: () => Network['helia']
  /** undefined without a chain: the routes answer CHAIN_NOT_CONFIGURED */
  market: () => MarketService | undefined
  explorer: () => ExplorerStore | undefined
  failures: () => FailureCollector | undefined
  /** the dataset owner's announcement, at once (nothing without a chain) */
  announceDatasets: () => Promise<unknown>
  /** the task's TaskFinalized event */
  finalized: (taskId: string) => Promise<FinalizedTask | undefined>
  /** connects to the peers that hold a result before it is fetched */
  reachHolders: (finalized: FinalizedTask) => Promise<void>
  /** the requester's key (results sealed to it) */
  privateKey: EciesPrivateKey
}

/** Every route of the node's API besides the core ones (status, peers, resources, shutdown). */
export function nodeRoutes (d: NodeRoutesDeps): ApiRoute[] {
  const results = {
    helia: d.helia,
    finalized: d.finalized,
    taskExists: async (taskId: string) => { const m = d.market(); return m === undefined || await taskExists(m, taskId) },
    reachHolders: d.reachHolders,
    privateKey: d.privateKey,
    resultsDir: join(d.dataDir, 'results'),
    timeoutMs: RESULT_FETCH_TIMEOUT_MS
  }
  return [
    ...metricsRoutes(d.metrics),
    ...marketRoutes(d.market, { failures: d.failures }),
    // order publish | unpublish (issue 22): a dataset order is recorded with its dataset
    ...orderRoutes({ market: d.market, datasets: new DatasetStore(d.db) }),
    // live events and the explorer (issue 26)
    ...eventRoutes(d.events),
    ...explorerRoutes({
      store: d.explorer,
      market: d.market,
      sessions: d.sessions,
      status: () => d.backend.status(),
      peers: async () => await d.backend.peers(),
      resources: async () => await d.backend.resources({}),
      url: d.url
    }),
    // account show, wallet send, stake withdraw / unstake (issue 24)
    ...walletRoutes(d.market),
    // category create | list, kitty, task | deal list, task | deal claim (issues 20 and 26)
    ...operatorRoutes(d.market),
    // app publish: checked before anything goes on chain, streamed from the node's disk
    ...appRoutes({ market: d.market, helia: d.helia, log: d.logs.logger('market').info }),
    ...contentRoutes(d.helia),
    // dataset publish, list, show, unpublish (issue 6)
    ...datasetRoutes({
      market: d.market,
      helia: d.helia,
      keyStore: new FileKeyStore(dataDirPaths(d.dataDir).datasetKeys),
      store: new DatasetStore(d.db),
      tmpDir: join(d.dataDir, 'tmp'),
      // without a chain there is no announcer, and the routes answer CHAIN_NOT_CONFIGURED
      announce: d.announceDatasets,
      log: d.logs.logger('datasets').info
    }),
    ...resultRoutes(results),
    // the work API (XtremWeb-HEP) over the market and the same result retrieval
    ...workRoutes({ market: d.market, db: d.db, result: resultFetcher(results) })
  ]
}
