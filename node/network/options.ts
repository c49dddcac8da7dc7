import type { PrivateKey } from '@libp2p/interface'
import type { SelectFn, ValidateFn } from '@libp2p/kad-dht'
import type { TopicValidatorFn } from '@libp2p/gossipsub'
import type { TrafficMetrics } from './traffic.js'
import type { PeerScoreParams, PeerScoreThresholds } from '@libp2p/gossipsub/score'

/** Gossipsub v1.1 scoring (the market's `marketScoring(topics)` fits as is). */
export interface GossipScoring {
  scoreParams: Partial<PeerScoreParams>
  scoreThresholds: PeerScoreThresholds
}

/** Where the network module writes what an operator should see. */
export interface NetworkLogger {
  info: (msg: string, context?: Record<string, unknown>) => void
  warn: (msg: string, context?: Record<string, unknown>) => void
}

export const silentLogger: NetworkLogger = { info: () => {}, warn: () => {} }

/** 'auto': decided from the host's interfaces and the listen addresses (see nat.ts `natPlan`) */
export type NatSwitch = boolean | 'auto'

/** NAT traversal: libp2p's circuit relay v2, DCUtR, AutoNAT and UPnP (all off when their switch is false). */
export interface NatOptions {
  /** serve as a circuit relay v2 (hop) for NATed peers; 'auto': when the host listens on a public IP */
  relayServer?: NatSwitch
  /** reserve a slot on relays found (listen on /p2p-circuit); 'auto': when the host has no public IP but a LAN one */
  relayClient?: NatSwitch
  /** relay server: most reservations held at once */
  relayMaxReservations?: number
  /** relay server: how long one relayed connection may last, ms */
  relayDurationLimitMs?: number
  /** relay server: how many bytes one relayed connection may carry (each way) */
  relayDataLimitBytes?: number
  /** DCUtR: replace a relayed connection by a direct one when an address allows it */
  holePunching?: boolean
  /** AutoNAT: ask peers to dial our public addresses back (the `reachability` of status) */
  autonat?: boolean
  /** UPnP/NAT-PMP port mapping on the home router */
  upnp?: boolean
}

export interface NetworkOptions {
  /** the node's libp2p identity (Ed25519), loaded from the data dir */
  privateKey: PrivateKey
  /** counts libp2p's bytes by protocol and on the wire (the node's metrics); none counted without it */
  traffic?: TrafficMetrics
  /** listen multiaddrs, e.g. /ip4/127.0.0.1/tcp/0 */
  listen: string[]
  /** multiaddrs with /p2p/<peerId>; unreachable ones are logged, never fatal */
  bootstrap: string[]
  /** names the DHT protocol and topics */
  swarmId: string
  /** pnet pre-shared key file; absent = no connection protector */
  swarmKeyFile?: string
  /** level blockstore folder; absent = in memory (tests, benchmarks) */
  blocksPath?: string
  /** level datastore folder (DHT records, peer store); absent = in memory */
  datastorePath?: string
  /** extra DHT record validators/selectors by namespace (adverts add theirs) */
  dhtValidators?: Record<string, ValidateFn>
  dhtSelectors?: Record<string, SelectFn>
  logger?: NetworkLogger
  /** bound on each explicit bootstrap dial at start, ms */
  bootstrapDialTimeoutMs?: number
  /**
   * topics subscribed at start, before any connection, so every peer learns
   * them in the first gossipsub hello; default: the swarm's market topics
   */
  topics?: string[]
  /** per-host inbound connection rate limit (connections/s) */
  inboundConnectionThreshold?: number
  /** bound on each ping of peers(), ms */
  pingTimeoutMs?: number
  /** how often each connection is pinged (ConnectionWatch aborts one after connectionMaxPingFailures failed pings in a row), ms */
  connectionPingIntervalMs?: number
  /**
   * per-topic scoring for gossipsub; without it gossipsub scores no topic and
   * a validator's REJECT punishes nobody. Loopback stays exempt from the
   * IP-colocation penalty whatever the params say.
   */
  gossipScoring?: GossipScoring
  /**
   * validators installed in start() BEFORE the topics are subscribed, so no
   * message of a topic is ever delivered unvalidated
   */
  topicValidators?: Record<string, TopicValidatorFn>
  /**
   * true = refuse this peer: no dial to it, and a connection from or to it
   * is closed once its peer id is known (after the encryption handshake).
   * Asked on every dial and handshake, so it must answer fast and never
   * throw. A narrow hook, so the network knows nothing of who decides (the
   * node passes the market's record of peers that sent invalid messages).
   * Existing connections are not re-checked: call `hangUp(peer)` when a
   * peer becomes denied.
   */
  denyPeer?: (peerId: string) => boolean
  /** relays, hole punching, AutoNAT, UPnP (NAT_DEFAULTS for what is left out) */
  nat?: NatOptions
  /** addresses announced besides the listen ones (a port the router forwards, a DNS name) */
  announce?: string[]
  /** mDNS: find and dial peers of the same swarm on the LAN */
  mdns?: boolean
  /** peers remembered across restarts (known-peers.ts); absent = none */
  knownPeersFile?: string
  /** most peers kept in knownPeersFile (0 = remember none) */
  maxKnownPeers?: number
  /** how long a stream of a protocol that must not run over a relay waits for a direct connection, ms */
  directWaitMs?: number
  /**
   * kad-dht k (NETWORK_DEFAULTS.kBucketSize when absent); tests lower it to
   * reach findProviders' cap of k providers with a dozen nodes
   */
  kBucketSize?: number
}

export const NAT_DEFAULTS = {
  relayServer: 'auto',
  relayClient: 'auto',
  // libp2p's own limits for a relay: a relay only carries handshakes and
  // small control streams, never content (see node/README.md, NAT traversal)
  relayMaxReservations: 15,
  relayDurationLimitMs: 2 * 60_000,
  relayDataLimitBytes: 1 << 17,
  holePunching: true,
  autonat: true,
  // off: mapping a port on the owner's router is the owner's choice
  upnp: false
} as const satisfies Required<NatOptions>

export const NETWORK_DEFAULTS = {
  // a LAN/loopback dial answers in milliseconds; 10 s covers a slow WAN handshake
  // (TCP + pnet nonce + noise + yamux) without stalling status for long
  bootstrapDialTimeoutMs: 10_000,
  // peers() pings every peer concurrently: one slow peer must not stall the API call
  pingTimeoutMs: 2_000,
  // pnet nonce exchange bound; the default 1 s failed under CPU load with 50 nodes in one process
  pnetTimeoutMs: 5_000,
  // kad-dht k: 20 is the Kademlia default; keep it (small swarms just have fewer peers)
  kBucketSize: 20,
  // enough inbound/outbound for a 50-node swarm in one process plus headroom
  maxConnections: 300,
  // libp2p's default (5 connections/s per remote host) starved a 20-node
  // swarm starting on one machine: every peer is 127.0.0.1. Nodes behind one
  // NAT hit the same wall. 100/s still stops a single host's connection flood.
  inboundConnectionThreshold: 100,
  // libp2p default 10; a swarm start opens dozens of inbound upgrades at once
  maxIncomingPendingConnections: 64,
  // a failed bootstrap dial is retried with backoff from 1 s up to 60 s while
  // the node runs: the bootstrap peer may simply start later
  bootstrapRetryMinMs: 1_000,
  bootstrapRetryMaxMs: 60_000,
  // libp2p's monitor's interval; with connectionMaxPingFailures a silent peer is dropped within about 30 s
  connectionPingIntervalMs: 10_000,
  // outbound ping streams per connection. The ping service's default is 1,
  // and libp2p's connection monitor pings every connection on the same
  // protocol: at its first heartbeat it found 2 outbound ping streams on a
  // connection ("too many outbound protocol streams ... 2/1") and aborted the
  // connection. Every connection of a swarm was torn down and redialled
  // about every 10 s (identify, gossipsub hello, kept bid streams lost), and
  // a request gossiped in that moment reached nobody. 4 leaves room for
  // peers()' pings as well; no abort was seen with it over minutes at 20 nodes.
  pingMaxOutboundStreams: 4,
  // inbound ping streams per connection, the other side of the same limit
  // (the ping service's default is 2): a peer opens at most
  // pingMaxOutboundStreams of them, so many are accepted
  pingMaxInboundStreams: 4,
  // ConnectionWatch: each ping may take this long, and a connection is
  // aborted after so many failed pings in a row (a dead peer is found within
  // about 3 x 10 s; a live but busy one is not cut off for one late answer)
  connectionPingTimeoutMs: 10_000,
  connectionMaxPingFailures: 3,
  // a DCUtR upgrade (identify, a connect message, a dial) takes a few round
  // trips; 20 s covers it on a loaded machine and a slow WAN
  directWaitMs: 20_000,
  // peers dialled at start from the known-peers file, at most this many at once
  knownPeersDialConcurrency: 8,
  // known peers written every minute (and at stop): a crash loses a minute of them
  knownPeersSaveIntervalMs: 60_000,
  // a peer found by mDNS is dialled only while the node has fewer connections
  discoveryDialBelow: 64,
  // mDNS query interval (libp2p's default is 10 s)
  mdnsIntervalMs: 10_000,
  // after a DHT closest-peers query that found nobody (see network.ts calmWhenEmpty)
  emptyQueryPauseMs: 1_000
} as const
