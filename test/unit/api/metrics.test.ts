import assert from 'node:assert/strict'
import { NodeMetrics, metricsRoutes } from '../../../node/api/metrics.js'
import { parseMetricsListen, startMetricsServer } from '../../../node/api/metrics-server.js'
import { startApiServer, type ApiServer } from '../../../node/api/index.js'
import type { ApiBackend } from '../../../node/api/backend.js'
import { GossipValidationStats } from '../../../node/market/index.js'

describe('NodeMetrics', () => {
  it('exposes default and node metrics in the text format, read from their sources', async () => {
    const stats = new GossipValidationStats()
    let peers = 2
    const m = new NodeMetrics({ peers: () => peers, gossip: () => stats.snapshot() })
    assert.match(m.contentType, /^text\/plain; version=0\.0\.4/)
    let text = await m.text()
    assert.ok(text.includes('process_cpu_user_seconds_total'))
    assert.match(text, /^iexec_p2p_peers_connected 2$/m)
    stats.record('bid', 'reject', 'GOSSIP_BAD_SIGNATURE')
    stats.record('bid', 'reject', 'GOSSIP_BAD_SIGNATURE')
    peers = 3
    text = await m.text()
    assert.match(text, /^iexec_p2p_peers_connected 3$/m)
    assert.match(text, /^iexec_p2p_gossip_messages_total\{topic="bid",verdict="reject",code="GOSSIP_BAD_SIGNATURE"\} 2$/m)
    for (const line of text.split('\n').filter(l => l !== '' && !l.startsWith('#'))) {
      assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eENaInf]+$/)
    }
  })

  it('keeps registries separate per node', async () => {
    const a = new NodeMetrics({ peers: () => 1 })
    const b = new NodeMetrics({ peers: () => 5 })
    assert.match(await a.text(), /^iexec_p2p_peers_connected 1$/m)
    assert.match(await b.text(), /^iexec_p2p_peers_connected 5$/m)
  })
})

describe('GET /metrics', () => {
  const token = 'metrics-test-token-0123456789abcdef'
  let api: ApiServer | undefined
  afterEach(async () => { await api?.close(); api = undefined })

  it('needs the API token and answers the Prometheus text format', async () => {
    const metrics = new NodeMetrics({ peers: () => 4 })
    // the core routes are never called here: only /metrics is requested
    api = await startApiServer({ host: '127.0.0.1', port: 0, token, backend: {} as unknown as ApiBackend, routes: metricsRoutes(metrics) })
    const anonymous = await fetch(`${api.url}/metrics`)
    assert.equal(anonymous.status, 401)
    assert.equal(((await anonymous.json()) as { error: { code: string } }).error.code, 'API_UNAUTHORIZED')
    const res = await fetch(`${api.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    assert.match(await res.text(), /^iexec_p2p_peers_connected 4$/m)
  })
})

describe('NodeMetrics: observed events and counts read at scrape', () => {
  it('counts RPC calls, errors and latency, transactions with gas, runs by status, bids by code', async () => {
    const bids = new Map([['sent/OK', 3], ['declined/RESOURCES_TOO_SMALL', 2]])
    const m = new NodeMetrics({ providerBids: () => bids, dbOps: () => ({ get: 7, put: 1 }), followerLag: async () => 4, workerTasks: () => ({ assigned: 2 }), schedulerTasks: () => ({ waiting: 3, closed: 5 }), openDeals: () => ({ worker: 1 }) })
    m.chainObserver.rpc?.('eth_call', 12, false)
    m.chainObserver.rpc?.('eth_call', 30, true)
    m.chainObserver.tx?.('sent')
    m.chainObserver.tx?.('mined', 50_000n)
    m.observeRun('TIMEOUT', 2)
    const text = await m.text()
    assert.match(text, /^iexec_p2p_chain_rpc_calls_total\{method="eth_call"\} 2$/m)
    assert.match(text, /^iexec_p2p_chain_rpc_errors_total\{method="eth_call"\} 1$/m)
    assert.match(text, /^iexec_p2p_chain_rpc_seconds_count 2$/m)
    assert.match(text, /^iexec_p2p_chain_rpc_seconds_bucket\{le="0.025"\} 1$/m)
    assert.match(text, /^iexec_p2p_chain_transactions_total\{event="mined"\} 1$/m)
    assert.match(text, /^iexec_p2p_chain_transactions_total\{event="failed"\} 0$/m)
    assert.match(text, /^iexec_p2p_chain_gas_used_total\{event="mined"\} 50000$/m)
    assert.match(text, /^iexec_p2p_executor_run_seconds_count\{status="TIMEOUT"\} 1$/m)
    assert.match(text, /^iexec_p2p_bids_total\{side="provider",outcome="declined",code="RESOURCES_TOO_SMALL"\} 2$/m)
    assert.match(text, /^iexec_p2p_db_operations_total\{op="get"\} 7$/m)
    assert.match(text, /^iexec_p2p_chain_follower_lag_blocks 4$/m)
    assert.match(text, /^iexec_p2p_tasks\{role="worker",state="assigned"\} 2$/m)
    assert.match(text, /^iexec_p2p_tasks\{role="scheduler",state="waiting"\} 3$/m)
    assert.match(text, /^iexec_p2p_tasks\{role="scheduler",state="closed"\} 5$/m)
    assert.match(text, /^iexec_p2p_deals_open\{role="worker"\} 1$/m)
    assert.match(text, /^iexec_p2p_deals_open\{role="scheduler"\} 0$/m)
  })
})

describe('metrics listener (--metrics-listen)', () => {
  it('parses HOST:PORT and refuses anything else with CONFIG_INVALID', () => {
    assert.deepEqual(parseMetricsListen('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 })
    assert.deepEqual(parseMetricsListen('[::1]:0'), { host: '::1', port: 0 })
    for (const bad of ['9464', '127.0.0.1', 'host:99999', 'a b:1', 'http://x:1']) {
      assert.throws(() => parseMetricsListen(bad), (e: unknown) => (e as { code?: string }).code === 'CONFIG_INVALID', bad)
    }
  })

  it('serves /metrics without a token, and nothing else', async () => {
    const server = await startMetricsServer(new NodeMetrics({ peers: () => 9 }), '127.0.0.1:0')
    try {
      const res = await fetch(server.url)
      assert.equal(res.status, 200)
      assert.match(await res.text(), /^iexec_p2p_peers_connected 9$/m)
      assert.equal((await fetch(server.url.replace('/metrics', '/v1/status'))).status, 404)
      assert.equal((await fetch(server.url, { method: 'POST' })).status, 404)
    } finally {
      await server.close()
    }
  })
})
