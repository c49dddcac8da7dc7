import assert from 'node:assert/strict'
import { resolve } from 'node:path'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { validateConfig } from '../../../node/config/index.js'
import { NodeBackend, natCounters } from '../../../node/api/node-backend.js'
import type { NodeBackendInit } from '../../../node/api/node-backend.js'
import type { ResourceQueryOptions } from '../../../node/network/index.js'

/** A network that is started or not, with fixed answers. */
function fakeNetwork (started: boolean): NodeBackendInit['network'] {
  return {
    started,
    bootstrapStatus: () => [{ addr: '/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWboot', state: 'connected' }],
    multiaddrs: () => ['/ip4/127.0.0.1/tcp/4001'],
    connectionCount: () => 3,
    reachability: () => ({ reachability: 'public', publicAddrs: ['/ip4/1.2.3.4/tcp/4001'], relayAddrs: [] }),
    natPlan: () => ({ relayServer: true, relayClient: false }),
    natStats: () => ({ relayedConnections: 2, directUpgrades: 1, upgradeMs: [40, 25] }),
    transports: () => ['tcp', 'ws'],
    peers: async () => [{ peerId: '12D3KooWpeer', multiaddrs: ['/ip4/127.0.0.1/tcp/4002'], latencyMs: 4 }]
  } as unknown as NodeBackendInit['network']
}

function backend (over: Partial<NodeBackendInit> = {}): { b: NodeBackend, queries: ResourceQueryOptions[], stops: number[] } {
  const queries: ResourceQueryOptions[] = []
  const stops: number[] = []
  const config = validateConfig({ swarmId: 'unit', category: 2, swarmKeyFile: 'swarm.key', defaultMaxPrice: '7' })
  const b = new NodeBackend({
    peerId: '12D3KooWself',
    address: '0x00000000000000000000000000000000000000aa',
    version: '1.2.3',
    config,
    warnings: ['first'],
    gpus: [],
    network: fakeNetwork(true),
    adverts: {
      findResources: async (q: ResourceQueryOptions) => {
        queries.push(q)
        return [{ peerId: 'p', address: '0x1', cpus: 4, memoryMb: 1024, gpus: 0, executors: ['wasi'], category: 2, priceFloor: '10', tags: ['a'], version: '1.2.3', timestamp: 5, signature: 'extra' }]
      }
    } as unknown as NodeBackendInit['adverts'],
    defaultMaxPrice: () => undefined,
    nativeSandbox: () => undefined,
    stop: async () => { stops.push(1) },
    ...over
  })
  return { b, queries, stops }
}

describe('api: NodeBackend (status, peers, resources, shutdown over narrow parts)', () => {
  it('reports the started network, the NAT counters and the swarm facts', () => {
    const s = backend().b.status()
    assert.equal(s.peerId, '12D3KooWself')
    assert.equal(s.connections, 3)
    assert.deepEqual(s.multiaddrs, ['/ip4/127.0.0.1/tcp/4001'])
    assert.equal(s.nat?.reachability, 'public')
    assert.equal(s.nat?.relayServer, true)
    assert.equal(s.nat?.lastUpgradeMs, 25, 'the last upgrade\'s time')
    assert.equal(s.swarm?.swarmKeyFile, resolve('swarm.key'))
    assert.equal(s.swarm?.swarmId, 'unit')
    assert.equal(s.defaultMaxPrice, '7', 'config\'s default max price without a market')
    assert.equal(s.bootstrap.length, 1)
    assert.equal('nativeSandbox' in s, false)
  })

  it('reports an unstarted network as unknown, without asking it', () => {
    const s = backend({ network: fakeNetwork(false) }).b.status()
    assert.equal(s.connections, 0)
    assert.deepEqual(s.multiaddrs, [])
    assert.deepEqual(s.bootstrap, [])
    assert.equal(s.nat?.reachability, 'unknown')
    assert.equal(s.nat?.relayedConnections, undefined)
  })

  it('reads the market\'s max price, the warnings and the native sandbox at each call', () => {
    const warnings = ['first']
    const { b } = backend({ warnings, defaultMaxPrice: () => 42n, nativeSandbox: () => ({ kind: 'bwrap' }) as never })
    warnings.push('second')
    const s = b.status()
    assert.equal(s.defaultMaxPrice, '42')
    assert.deepEqual(s.warnings, ['first', 'second'])
    assert.deepEqual(s.nativeSandbox, { kind: 'bwrap' })
    s.warnings.push('not kept')
    assert.deepEqual(b.status().warnings, ['first', 'second'], 'a copy is handed out')
  })

  it('lists resources of config.category unless asked, as views without extra fields', async () => {
    const { b, queries } = backend()
    const rows = await b.resources({})
    assert.deepEqual(queries, [{ category: 2 }])
    assert.deepEqual(rows, [{ peerId: 'p', address: '0x1', cpus: 4, memoryMb: 1024, gpus: 0, executors: ['wasi'], category: 2, priceFloor: '10', tags: ['a'], version: '1.2.3', timestamp: 5 }])
    await b.resources({ category: 7, tags: ['x'] })
    assert.deepEqual(queries[1], { category: 7, tags: ['x'] })
  })

  it('answers peers from the network', async () => {
    assert.deepEqual((await backend().b.peers()).map((p) => p.peerId), ['12D3KooWpeer'])
  })

  it('shutdown answers first, then stops the node', async () => {
    const { b, stops } = backend()
    await b.shutdown()
    assert.equal(stops.length, 0, 'not stopped before the answer')
    await nextTurn()
    assert.equal(stops.length, 1)
  })

  it('natCounters leaves lastUpgradeMs out when nothing was upgraded', () => {
    assert.deepEqual(natCounters({ relayedConnections: 1, directUpgrades: 0, upgradeMs: [] } as never), { relayedConnections: 1, directUpgrades: 0 })
  })
})
