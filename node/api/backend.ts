import type { ResourceRecord } from '../../protocols/resource-record.js'

/**
 * What the local HTTP API needs from a running node. The node implements it;
 * the API server (node/api) only routes, authenticates and serialises.
 * Shapes follow DESIGN.md's `--json` table: scripts depend on them.
 */

export type NodeRole = 'provider' | 'requester'

export interface NodeStatus {
  peerId: string
  address: string
  multiaddrs: string[]
  role: NodeRole
  version: string
  /** peers currently connected */
  connections: number
  /** as a requester: the max price per task (nRLC, decimal) of a `task submit` without --max-price */
  defaultMaxPrice?: string
  /** how peers reach this node: AutoNAT's verdict, relay reservations, the NAT switches in force */
  nat?: NatStatus
  /** what a client built elsewhere (a plain Helia or libp2p node) needs to join the swarm and fetch its content */
  swarm?: OutsideClientFacts
}

/** `status --json`'s `nat` (node/network/nat.ts Reachability) */
export interface NatStatus {
  /** public (a verified or announced public address), relayed (through a relay reservation), private (LAN or loopback only), unknown (public addresses not verified yet) */
  reachability: 'public' | 'relayed' | 'private' | 'unknown'
  publicAddrs: string[]
  relayAddrs: string[]
  relayServer: boolean
  relayClient: boolean
  holePunching: boolean
  autonat: boolean
  upnp: boolean
  mdns: boolean
  /** relayed connections opened since start, and how many DCUtR replaced by a direct one */
  relayedConnections?: number
  directUpgrades?: number
  /** ms from the last upgraded relayed connection's opening to its direct replacement */
  lastUpgradeMs?: number
}

/** How to reach a swarm from outside (`status --json`'s `swarm`; README "Reaching the swarm from another client"). */
export interface OutsideClientFacts {
  /** names the DHT protocol and the gossip topics */
  swarmId: string
  /** the libp2p pnet key file (`/key/swarm/psk/1.0.0/`), absolute; null for an open swarm */
  swarmKeyFile: string | null
  /** the only transport, connection encrypter and stream muxer the nodes speak */
  transports: string[]
  connectionEncrypters: string[]
  streamMuxers: string[]
  /** kad-dht's protocol id (a private prefix: IPFS's public DHT is not it) */
  dhtProtocol: string
  /** the market's gossipsub topics, by name (messages are StrictSign) */
  topics: Record<string, string>
  /** content moves over bitswap (Helia's default block broker) */
  bitswapProtocol: string
}

/** `peers --json` row */
export interface PeerView {
  peerId: string
  multiaddrs: string[]
  /** last ping round trip, null when unknown */
  latencyMs: number | null
  /** every connection to the peer goes through a relay (DCUtR has not made a direct one) */
  limited?: boolean
}

/** `resources --json` row: a provider's signed resource record, as verified */
export type ResourceView = Omit<ResourceRecord, 'diskMb' | 'seq'>

export interface ResourceQuery {
  category?: number
  /** every tag must be present on the provider */
  tags?: string[]
}

export interface ApiBackend {
  status: () => NodeStatus
  peers: () => Promise<PeerView[]>
  resources: (query: ResourceQuery) => Promise<ResourceView[]>
  /** asks the node to stop (the API answers first, then the node stops) */
  shutdown: () => Promise<void>
}
