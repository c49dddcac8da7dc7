import assert from 'node:assert/strict'
import { NodeMetrics, metricsRoutes } from '../../../node/api/metrics.js'
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
