import { availableParallelism, totalmem } from 'node:os'
import type { Resources } from '../../protocols/resources.js'

/** Role of a node: a provider sells CPU time; a requester only buys. */
export type NodeConfigRole = 'provider' | 'requester'

/** Chain settings, filled by the contracts/chain issue. */
export interface NodeChainConfig {
  rpc?: string
  hub?: string
  chainId?: number
  /** block the hub was deployed in: event followers start there instead of block 0 */
  fromBlock?: number
  /** blocks on top of a block before its hub events are acted on; default per chain (node/chain/profile.ts: 0 on a dev chain, 3 otherwise) */
  confirmations?: number
  /** wait between two polls of the hub's events, ms; default per chain (100 on a dev chain, 4000 otherwise) */
  pollIntervalMs?: number
}

/** What config.json holds. Every field is validated on load (see config-file.ts). The provider's resources are protocols/resources.ts's. */
export interface NodeConfig extends Resources {
  /** multiaddrs libp2p listens on */
  listen: string[]
  /** multiaddrs (with /p2p/<peerId>) dialled at start */
  bootstrap: string[]
  /** pre-shared key file (libp2p pnet format); absent = open swarm */
  swarmKeyFile?: string
  /** HOST:PORT of a second listener serving GET /metrics without the token (absent: /metrics only on the API, behind it) */
  metricsListen?: string
  /** names the DHT protocol and the gossip topics, so swarms never mix */
  swarmId: string
  /** local HTTP API port on 127.0.0.1; 0 = any free port (written to api.json) */
  apiPort: number
  role: NodeConfigRole
  /** always set in a config (a default on load) */
  diskMb: number
  /** as a requester: most nRLC per task a `task submit` without `--max-price` offers, decimal string */
  defaultMaxPrice: string
  /** how often the resource advert is re-published in the DHT */
  advertIntervalMs: number
  /** how a provider sends its bids: a direct stream to the requester, or the bid gossip topic */
  bidTransport: 'stream' | 'gossip'
  chain: NodeChainConfig
  /** NAT traversal: relays, hole punching, AutoNAT, UPnP (node/network/options.ts NatOptions) */
  nat: NodeNatConfig
  /** addresses announced besides the listen ones (a port the router forwards to this host, a DNS name) */
  announce: string[]
  /** find and dial peers of the same swarm on the LAN by mDNS */
  mdns: boolean
  /** peers remembered in <dataDir>/known-peers.json and dialled at the next start; 0 = none */
  maxKnownPeers: number
}

/** 'auto' switches are decided at start from the listen addresses and the host's interfaces. */
export interface NodeNatConfig {
  relayServer: boolean | 'auto'
  relayClient: boolean | 'auto'
  relayMaxReservations: number
  relayDurationLimitMs: number
  relayDataLimitBytes: number
  holePunching: boolean
  autonat: boolean
  upnp: boolean
}

/** Limits that validation enforces (kept with the defaults: one place to tune). */
export const CONFIG_LIMITS = {
  // a resource record must stay under 4 KiB on the wire, so tags are bounded
  maxTags: 16,
  maxTagLength: 64,
  maxExecutors: 8,
  // a 1 s refresh would flood the DHT; a day would leave providers invisible after a restart
  minAdvertIntervalMs: 1_000,
  maxAdvertIntervalMs: 24 * 3600_000,
  // swarm ids become part of protocol ids and topic names
  swarmIdPattern: /^[a-z0-9][a-z0-9-]{0,31}$/
} as const

/** Defaults for a fresh data dir. Each one says why. */
export function defaultNodeConfig (): NodeConfig {
  return {
    // loopback only: a fresh node exposes nothing until its owner chooses an
    // address (`--listen /ip4/0.0.0.0/tcp/4101` for a LAN or public node)
    listen: ['/ip4/127.0.0.1/tcp/0'],
    // no public bootstrap list: iexec-p2p swarms are private by default
    bootstrap: [],
    // 'main' keeps the DHT protocol id and topics stable for an unnamed swarm
    swarmId: 'main',
    // several nodes share one machine in a dev swarm: let the OS pick and
    // publish the URL in api.json
    apiPort: 0,
    role: 'provider',
    // offer what the machine has; the owner lowers it with --cpus
    cpus: availableParallelism(),
    // half the RAM: the node itself and the OS keep the rest
    memoryMb: Math.floor(totalmem() / 1048576 / 2),
    // 10 GiB of output per run: the default categories ask 64 MiB to 32 GiB; an owner with more disk raises it
    diskMb: 10 * 1024,
    gpus: 0,
    // WASI runs everywhere node:wasi does; docker is opt-in where an engine exists
    executors: ['wasi'],
    // category 0 is iExec's smallest (XS) category
    category: 0,
    // 0 = accept any price: the market decides; owners raise it with --price
    priceFloor: '0',
    // 1 RLC a task: a request without --max-price never offers more (see the market's defaultMaxPrice)
    defaultMaxPrice: '1000000000',
    tags: [],
    // 5 min: a restarted or new provider is listed within minutes, and 50
    // nodes re-publishing a 1 KiB record every 5 min is negligible traffic
    advertIntervalMs: 5 * 60_000,
    // a direct stream held its first-bid latency at 20 and 50 nodes; bids on
    // gossip reach every node, which all validate them (see the market benchmark)
    bidTransport: 'stream',
    chain: {},
    nat: {
      // a node listening on a public IP serves relays; a node with only LAN
      // addresses (behind a home NAT) reserves a slot on one; a loopback
      // swarm does neither
      relayServer: 'auto',
      relayClient: 'auto',
      // libp2p's own relay limits: a relay carries handshakes, not content
      relayMaxReservations: 15,
      relayDurationLimitMs: 120_000,
      relayDataLimitBytes: 131_072,
      holePunching: true,
      autonat: true,
      // mapping a port on the owner's router is the owner's choice
      upnp: false
    },
    announce: [],
    // off: multicast on a LAN is the owner's choice (`start --mdns`)
    mdns: false,
    // enough to find the swarm again after a restart; the DHT finds the rest
    maxKnownPeers: 64
  }
}
