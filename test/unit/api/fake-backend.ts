import type { ApiBackend, NodeStatus, PeerView, ResourceQuery, ResourceView } from '../../../node/api/index.js'

/** A small in-memory backend for the API's unit tests: records what it was asked. */
export class FakeBackend implements ApiBackend {
  readonly queries: ResourceQuery[] = []
  shutdowns = 0
  readonly resourcesList: ResourceView[] = [
    resource('12D3KooWA', 0, ['region:eu', 'energy:green']),
    resource('12D3KooWB', 1, ['region:us'])
  ]

  status (): NodeStatus {
    return { peerId: '12D3KooWSelf', address: '0x0000000000000000000000000000000000000001', multiaddrs: ['/ip4/127.0.0.1/tcp/4001'], role: 'provider', version: '0.1.0', connections: 2 }
  }

  async peers (): Promise<PeerView[]> {
    return [{ peerId: '12D3KooWA', multiaddrs: ['/ip4/127.0.0.1/tcp/4002'], latencyMs: 1.5 }]
  }

  async resources (query: ResourceQuery): Promise<ResourceView[]> {
    this.queries.push(query)
    return this.resourcesList.filter((r) =>
      (query.category === undefined || r.category === query.category) &&
      (query.tags ?? []).every((t) => r.tags.includes(t)))
  }

  async shutdown (): Promise<void> {
    this.shutdowns++
  }
}

function resource (peerId: string, category: number, tags: string[]): ResourceView {
  return { peerId, address: '0x0000000000000000000000000000000000000002', cpus: 2, memoryMb: 2048, gpus: 0, executors: ['wasi'], category, priceFloor: '1000', tags, version: '0.1.0', timestamp: 1 }
}
