import { ApiReply, type ApiRoute } from './router.js'
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client'
import type { ChainObserver, TxEvent } from '../chain/options.js'
import type { ByteCounts } from '../network/traffic.js'

/** A node's part in a deal, as the metrics label it. */
export type DealRole = 'requester' | 'worker' | 'scheduler'

/** What the metrics read at scrape time; every source is optional. */
export interface MetricsSources {
  /** number of connected peers */
  peers?: () => number | Promise<number>
  /** gossip verdict counts keyed `type/outcome/code` (GossipValidationStats.snapshot) */
  gossip?: () => Record<string, number>
  /** the provider's decisions since start, keyed `sent/OK` or `declined/CODE` */
  providerBids?: () => ReadonlyMap<string, number> | undefined
  /** the requester's bids since start, keyed `received/OK` or `declined/CODE` */
  requesterBids?: () => ReadonlyMap<string, number> | undefined
  /** open deals (not done) by this node's role in each (a deal counts once per role) */
  openDeals?: () => Partial<Record<DealRole, number>> | undefined
  /** the worker's open tasks by state */
  workerTasks?: () => Record<string, number> | undefined
  /** the scheduler's tasks of the open deals it schedules, by state, and `closed` since start */
  schedulerTasks?: () => Record<string, number> | undefined
  /** libp2p's bytes since start by negotiated protocol */
  protocolBytes?: () => ReadonlyMap<string, Readonly<ByteCounts>> | undefined
  /** libp2p's streams since start by negotiated protocol, opened by the remote (in) or this node (out) */
  protocolStreams?: () => ReadonlyMap<string, Readonly<ByteCounts>> | undefined
  /** libp2p's bytes since start on the wire of every connection */
  wireBytes?: () => Readonly<ByteCounts> | undefined
  /** level operations since start, by kind */
  dbOps?: () => Readonly<Record<string, number>> | undefined
  /** blocks between the chain's head and the hub event follower's cursor; undefined without a chain */
  followerLag?: () => Promise<number | undefined>
}

/** Histogram buckets of a run, seconds: tiny WASI tasks take milliseconds, categories go to hours. */
const RUN_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600]
/** Histogram buckets of one JSON-RPC exchange, seconds. */
const RPC_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]

function setCounts (gauge: Gauge<string>, counts: ReadonlyMap<string, number> | undefined, side: string): void {
  for (const [key, n] of counts ?? []) {
    const [outcome, code] = key.split('/')
    gauge.set({ side, outcome, code }, n)
  }
}

/**
 * One Prometheus registry per node: several nodes share a process in tests,
 * so prom-client's global registry is never used. Counts that modules keep
 * anyway are read at collect time (gauges holding monotonic counts, since
 * prom-client counters cannot be set); what happens in a call (an RPC
 * exchange, a transaction, a run) is observed through `chainObserver` and
 * `observeRun`, which the node hands to those modules.
 */
export class NodeMetrics {
  readonly registry = new Registry()
  readonly contentType: string
  /** hand to createChainClient's `rpc.observer` */
  readonly chainObserver: ChainObserver
  private readonly runs: Histogram<string>

  constructor (sources: MetricsSources = {}) {
    this.contentType = this.registry.contentType
    const registers = [this.registry]
    // the event-loop lag histogram samples at this period: prom-client's 10 ms
    // woke an idle node 100 times a second, most of its idle CPU
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 })
    new Gauge({
      name: 'iexec_p2p_peers_connected',
      help: 'Peers currently connected',
      registers,
      async collect () { if (sources.peers !== undefined) this.set(await sources.peers()) }
    })
    new Gauge({
      name: 'iexec_p2p_gossip_messages_total',
      help: 'Gossip messages validated, by topic and verdict (accept, ignore, reject) and code',
      labelNames: ['topic', 'verdict', 'code'],
      registers,
      collect () {
        if (sources.gossip === undefined) return
        for (const [key, n] of Object.entries(sources.gossip())) {
          const [topic, verdict, code] = key.split('/')
          this.set({ topic, verdict, code }, n)
        }
      }
    })
    new Gauge({
      name: 'iexec_p2p_bids_total',
      help: 'Bids: sent or declined by this provider, received or declined at this requester (declines and refusals by code)',
      labelNames: ['side', 'outcome', 'code'],
      registers,
      collect () {
        setCounts(this, sources.providerBids?.(), 'provider')
        setCounts(this, sources.requesterBids?.(), 'requester')
      }
    })
    new Gauge({
      name: 'iexec_p2p_deals_open',
      help: 'Deals not done yet, by this node\'s role in them',
      labelNames: ['role'],
      registers,
      collect () {
        const open = sources.openDeals?.()
        if (open === undefined) return
        for (const role of ['requester', 'worker', 'scheduler'] as const) this.set({ role }, open[role] ?? 0)
      }
    })
    new Gauge({
      name: 'iexec_p2p_tasks',
      help: 'Tasks this node holds, by role and state',
      labelNames: ['role', 'state'],
      registers,
      collect () {
        this.reset()
        for (const [state, n] of Object.entries(sources.workerTasks?.() ?? {})) this.set({ role: 'worker', state }, n)
        for (const [state, n] of Object.entries(sources.schedulerTasks?.() ?? {})) this.set({ role: 'scheduler', state }, n)
      }
    })
    // both count by protocol and by direction, from a map of in/out counts
    const byProtocol = (name: string, help: string, source: MetricsSources['protocolBytes']): void => {
      new Gauge({
        name,
        help,
        labelNames: ['protocol', 'direction'],
        registers,
        collect () {
          for (const [protocol, c] of source?.() ?? []) {
            this.set({ protocol, direction: 'in' }, c.in)
            this.set({ protocol, direction: 'out' }, c.out)
          }
        }
      })
    }
    byProtocol('iexec_p2p_libp2p_protocol_bytes_total',
      'libp2p bytes since start by protocol (/ipfs/bitswap/1.2.0 is content) and direction (in, out), as the protocol reads and writes them',
      sources.protocolBytes)
    byProtocol('iexec_p2p_libp2p_protocol_streams_total',
      'libp2p streams since start by protocol and direction (in: the remote opened it, out: this node did); a stream is a message exchange or a long-lived channel (gossipsub)',
      sources.protocolStreams)
    new Gauge({
      name: 'iexec_p2p_libp2p_wire_bytes_total',
      help: 'libp2p bytes since start on every connection\'s wire (encrypted, muxed), by direction',
      labelNames: ['direction'],
      registers,
      collect () {
        const w = sources.wireBytes?.()
        if (w === undefined) return
        this.set({ direction: 'in' }, w.in)
        this.set({ direction: 'out' }, w.out)
      }
    })
    new Gauge({
      name: 'iexec_p2p_db_operations_total',
      help: 'Level operations since start, by kind (a batch counts once)',
      labelNames: ['op'],
      registers,
      collect () {
        for (const [op, n] of Object.entries(sources.dbOps?.() ?? {})) this.set({ op }, n)
      }
    })
    new Gauge({
      name: 'iexec_p2p_chain_follower_lag_blocks',
      help: 'Blocks between the chain\'s head and the hub event follower\'s position',
      registers,
      async collect () {
        const lag = await sources.followerLag?.().catch(() => undefined)
        if (lag !== undefined) this.set(lag)
      }
    })
    this.runs = new Histogram({
      name: 'iexec_p2p_executor_run_seconds',
      help: 'App runs by result (COMPLETED, TIMEOUT, MEMORY_EXCEEDED, APP_ERROR ... ERROR: the executor refused the job): the app\'s run time',
      labelNames: ['status'],
      buckets: RUN_BUCKETS,
      registers
    })
    const rpcCalls = new Counter({ name: 'iexec_p2p_chain_rpc_calls_total', help: 'JSON-RPC calls by method', labelNames: ['method'], registers })
    const rpcErrors = new Counter({ name: 'iexec_p2p_chain_rpc_errors_total', help: 'JSON-RPC calls that failed after their retries, by method', labelNames: ['method'], registers })
    const rpcSeconds = new Histogram({ name: 'iexec_p2p_chain_rpc_seconds', help: 'Time of one JSON-RPC exchange (retries included)', buckets: RPC_BUCKETS, registers })
    const txs = new Counter({ name: 'iexec_p2p_chain_transactions_total', help: 'Transactions sent, mined, replaced (one per earlier hash) and failed', labelNames: ['event'], registers })
    const gas = new Counter({ name: 'iexec_p2p_chain_gas_used_total', help: 'Gas used by this node\'s transactions, mined or failed', labelNames: ['event'], registers })
    for (const event of ['sent', 'mined', 'replaced', 'failed']) txs.inc({ event }, 0)
    this.chainObserver = {
      rpc: (method, ms, failed) => {
        rpcCalls.inc({ method })
        if (failed) rpcErrors.inc({ method })
        rpcSeconds.observe(ms / 1000)
      },
      tx: (event: TxEvent, gasUsed?: bigint) => {
        txs.inc({ event })
        if (gasUsed !== undefined) gas.inc({ event }, Number(gasUsed))
      }
    }
  }

  /** One run of an app: its result's status and the app's run time. */
  observeRun (status: string, seconds: number): void {
    this.runs.observe({ status }, seconds)
  }

  async text (): Promise<string> {
    return await this.registry.metrics()
  }
}

/** `GET /metrics`, behind the API token like every route (Prometheus sends it as a bearer token). */
export function metricsRoutes (metrics: NodeMetrics): ApiRoute[] {
  return [{ method: 'GET', path: '/metrics', handler: async () => new ApiReply(await metrics.text(), 200, undefined, metrics.contentType) }]
}
