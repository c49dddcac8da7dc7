import type { Executor } from '../worker/executor.js'
import type { DbController } from '../db/index.js'
import type { MarketService } from '../market/index.js'
import type { Network } from '../network/index.js'
import type { SchedulerService } from '../scheduler/index.js'
import type { WorkerDuties } from '../worker/duties.js'
import type { DealRole, MetricsSources, NodeMetrics } from './metrics.js'

/** The executor as the worker sees it, each run observed in the metrics (its result, the app's run time). */
export function meteredExecutor (executor: Executor, metrics: Pick<NodeMetrics, 'observeRun'>): Executor {
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

/** An open deal as the scheduler service knows it: enough to tell this node's role in it. */
export interface OpenDealView {
  scheduler?: string
  deal: { requester: string, workers: readonly string[], scheduler: string }
}

/** Open deals by this node's role in each (a node may hold several roles in one deal). */
export function openDealRoles (deals: Iterable<OpenDealView>, address: string): Record<DealRole, number> {
  const me = address.toLowerCase()
  const out: Record<DealRole, number> = { requester: 0, worker: 0, scheduler: 0 }
  for (const d of deals) {
    if (d.deal.requester.toLowerCase() === me) out.requester++
    if (d.deal.workers.some((w) => w.toLowerCase() === me)) out.worker++
    if ((d.scheduler ?? d.deal.scheduler).toLowerCase() === me) out.scheduler++
  }
  return out
}

/** What the node's metrics read of it, at scrape time; each part may be absent (no chain, not started). */
export interface NodeMetricsParts {
  address: string
  network: Pick<Network, 'peers' | 'traffic'>
  db: Pick<DbController, 'ops'>
  market: () => MarketService | undefined
  execution: () => { scheduler: Pick<SchedulerService, 'openDeals' | 'taskStateCounts'>, worker: Pick<WorkerDuties, 'stateCounts'> } | undefined
}

/** The node's metric sources over its parts. */
export function nodeMetricsSources (p: NodeMetricsParts): MetricsSources {
  return {
    peers: async () => (await p.network.peers()).length,
    gossip: () => p.market()?.stats.snapshot() ?? {},
    providerBids: () => p.market()?.provider?.counts,
    requesterBids: () => p.market()?.requester.bidCounts,
    openDeals: () => { const s = p.execution()?.scheduler; return s === undefined ? undefined : openDealRoles(s.openDeals(), p.address) },
    workerTasks: () => p.execution()?.worker.stateCounts(),
    schedulerTasks: () => p.execution()?.scheduler.taskStateCounts(),
    protocolBytes: () => p.network.traffic?.byProtocol(),
    protocolStreams: () => p.network.traffic?.streamsByProtocol(),
    wireBytes: () => p.network.traffic?.wire,
    dbOps: () => p.db.ops,
    followerLag: async () => {
      const m = p.market()
      const at = m?.hubEvents.position
      if (m === undefined || at === undefined) return undefined
      // the cursor names the next block to read
      return Math.max(0, await m.chain.provider.getBlockNumber() - (at.blockNumber - 1))
    }
  }
}
