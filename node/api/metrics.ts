import { ApiReply, type ApiRoute } from './router.js'
import { Registry, Gauge, collectDefaultMetrics } from 'prom-client'

/** What the metrics read at scrape time; every source is optional. */
export interface MetricsSources {
  /** number of connected peers */
  peers?: () => number | Promise<number>
  /** gossip verdict counts keyed `type/outcome/code` (GossipValidationStats.snapshot) */
  gossip?: () => Record<string, number>
}

/**
 * One Prometheus registry per node: several nodes share a process in tests,
 * so prom-client's global registry is never used. Values are read at collect
 * time from the modules' own counters, so modules need no metrics object.
 */
export class NodeMetrics {
  readonly registry = new Registry()
  readonly contentType: string

  constructor (sources: MetricsSources = {}) {
    this.contentType = this.registry.contentType
    collectDefaultMetrics({ register: this.registry })
    new Gauge({
      name: 'iexec_p2p_peers_connected',
      help: 'Peers currently connected',
      registers: [this.registry],
      async collect () { if (sources.peers !== undefined) this.set(await sources.peers()) }
    })
    // a gauge holding a monotonic count: prom-client counters cannot be set at collect time
    new Gauge({
      name: 'iexec_p2p_gossip_messages_total',
      help: 'Gossip messages validated, by topic and verdict (accept, ignore, reject) and code',
      labelNames: ['topic', 'verdict', 'code'],
      registers: [this.registry],
      collect () {
        if (sources.gossip === undefined) return
        for (const [key, n] of Object.entries(sources.gossip())) {
          const [topic, verdict, code] = key.split('/')
          this.set({ topic, verdict, code }, n)
        }
      }
    })
  }

  async text (): Promise<string> {
    return await this.registry.metrics()
  }
}

/** `GET /metrics`, behind the API token like every route (Prometheus sends it as a bearer token). */
export function metricsRoutes (metrics: NodeMetrics): ApiRoute[] {
  return [{ method: 'GET', path: '/metrics', handler: async () => new ApiReply(await metrics.text(), 200, undefined, metrics.contentType) }]
}
