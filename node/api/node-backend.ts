import { resolve as resolvePath } from 'node:path'
import type { NodeConfig } from '../config/index.js'
import type { BootstrapStatus, NatStats, Network, ResourceAdverts } from '../network/index.js'
import type { GpuInfo } from '../worker/gpu.js'
import type { NativeStatus } from '../worker/native-executor.js'
import { dhtProtocol, swarmTopics } from '../../protocols/topics.js'
import type { ApiBackend, NodeStatus, PeerView, ResourceQuery, ResourceView } from './backend.js'

/** `status --json`: NodeStatus plus what an operator needs to diagnose a lonely node. */
export type FullNodeStatus = NodeStatus & { bootstrap: BootstrapStatus[], warnings: string[], executors: string[], gpus: GpuInfo[], nativeSandbox?: NativeStatus }

export interface NodeBackendInit {
  peerId: string
  address: string
  version: string
  config: NodeConfig
  /** read at each status: a warning may come later */
  warnings: readonly string[]
  gpus: GpuInfo[]
  network: Pick<Network, 'started' | 'bootstrapStatus' | 'multiaddrs' | 'connectionCount' | 'reachability' | 'natPlan' | 'natStats' | 'transports' | 'peers'>
  adverts: Pick<ResourceAdverts, 'findResources'>
  /** the market's default max price, with a chain */
  defaultMaxPrice: () => bigint | undefined
  /** the native sandbox's limits in force on this host, when the node runs native apps */
  nativeSandbox: () => NativeStatus | undefined
  /** asks the node to stop */
  stop: () => Promise<void>
}

/** status' view of the network's relay counters */
export function natCounters (s: NatStats): { relayedConnections: number, directUpgrades: number, lastUpgradeMs?: number } {
  const last = s.upgradeMs[s.upgradeMs.length - 1]
  return { relayedConnections: s.relayedConnections, directUpgrades: s.directUpgrades, ...(last !== undefined ? { lastUpgradeMs: last } : {}) }
}

/** What the local API reads of a node: its status, peers and providers' resources; and its shutdown. */
export class NodeBackend implements ApiBackend {
  constructor (private readonly init: NodeBackendInit) {}

  multiaddrs (): string[] {
    return this.init.network.started ? this.init.network.multiaddrs() : []
  }

  status (): FullNodeStatus {
    const { network, config } = this.init
    const native = this.init.nativeSandbox()
    return {
      bootstrap: network.started ? network.bootstrapStatus() : [],
      warnings: [...this.init.warnings],
      peerId: this.init.peerId,
      address: this.init.address,
      multiaddrs: this.multiaddrs(),
      role: config.role,
      version: this.init.version,
      connections: network.started ? network.connectionCount() : 0,
      nat: {
        ...(network.started ? network.reachability() : { reachability: 'unknown' as const, publicAddrs: [], relayAddrs: [] }),
        ...network.natPlan(),
        holePunching: config.nat.holePunching,
        autonat: config.nat.autonat,
        upnp: config.nat.upnp,
        mdns: config.mdns,
        ...(network.started ? natCounters(network.natStats()) : {})
      },
      defaultMaxPrice: this.init.defaultMaxPrice()?.toString() ?? config.defaultMaxPrice,
      swarm: {
        swarmId: config.swarmId,
        swarmKeyFile: config.swarmKeyFile !== undefined ? resolvePath(config.swarmKeyFile) : null,
        transports: network.transports(),
        connectionEncrypters: ['noise'],
        streamMuxers: ['yamux'],
        dhtProtocol: dhtProtocol(config.swarmId),
        topics: swarmTopics(config.swarmId),
        bitswapProtocol: '/ipfs/bitswap/1.2.0'
      },
      executors: config.executors,
      gpus: this.init.gpus,
      ...(native !== undefined ? { nativeSandbox: native } : {})
    }
  }

  async peers (): Promise<PeerView[]> {
    return await this.init.network.peers()
  }

  async resources (query: ResourceQuery): Promise<ResourceView[]> {
    const records = await this.init.adverts.findResources({
      category: query.category ?? this.init.config.category,
      ...(query.tags !== undefined ? { tags: query.tags } : {})
    })
    return records.map((r) => ({
      peerId: r.peerId,
      address: r.address,
      cpus: r.cpus,
      memoryMb: r.memoryMb,
      gpus: r.gpus,
      executors: r.executors,
      category: r.category,
      priceFloor: r.priceFloor,
      tags: r.tags,
      version: r.version,
      timestamp: r.timestamp
    }))
  }

  async shutdown (): Promise<void> {
    // answer the API call first, then stop
    setImmediate(() => { void this.init.stop() })
  }
}
