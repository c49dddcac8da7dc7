import type { Helia } from 'helia'
import { createSwarmHelia } from './helia.js'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify, identifyPush } from '@libp2p/identify'
import { webSockets } from '@libp2p/websockets'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { autoNAT } from '@libp2p/autonat'
import { uPnPNAT } from '@libp2p/upnp-nat'
import { mdns } from '@libp2p/mdns'
import { ping } from '@libp2p/ping'
import type { Ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import type { KadDHT } from '@libp2p/kad-dht'
import { gossipsub, StrictSign } from '@libp2p/gossipsub'
import type { GossipSub, Message, TopicValidatorFn } from '@libp2p/gossipsub'
import { preSharedKey } from '@libp2p/pnet'
import { bootstrap } from '@libp2p/bootstrap'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Identify } from '@libp2p/identify'
import { peerRoutingSymbol } from '@libp2p/interface'
import type { ComponentLogger, ConnectionGater, ConnectionProtector, Logger, PeerDiscovery, PeerId, Stream, StreamHandler, StreamHandlerOptions, Libp2p } from '@libp2p/interface'
import { LevelBlockstore } from 'blockstore-level'
import { PeerCachingDatastore } from './peer-cache-datastore.js'
import type { CID } from 'multiformats/cid'
import { dhtProtocol, swarmTopics } from '../../protocols/topics.js'
import { NetworkError } from './errors.js'
import { ConnectionWatch } from './connection-watch.js'
import { NAT_DEFAULTS, NETWORK_DEFAULTS, silentLogger } from './options.js'
import { natPlan, reachabilityOf } from './nat.js'
import type { AddressInfo, NatPlan, ReachabilityView } from './nat.js'
import { mergeKnownPeers, readKnownPeers, writeKnownPeers } from './known-peers.js'
import type { KnownPeer } from './known-peers.js'
import type { NetworkLogger, NetworkOptions } from './options.js'
import type { TrafficMetrics } from './traffic.js'
import { readSwarmKeyFile } from './swarm-key.js'

/** The libp2p services the node runs (and nothing of the public IPFS defaults). */
export interface NetworkServices {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
  // index signature: libp2p's ServiceMap constraint
  [key: string]: unknown
}

/**
 * libp2p's and Helia's loggers when DEBUG is not set: they log nothing, as
 * the default ones do then, but cost nothing to make. The default makes a
 * `debug` instance per component, scope and stream (libp2p makes loggers
 * for every stream it opens), and each checks whether stderr is a TTY: a
 * bag of tiny tasks spent more time in that check than in its WASI runs.
 */
const quietLogger: Logger = Object.assign(() => {}, {
  error: () => {},
  trace: () => {},
  enabled: false,
  newScope: (): Logger => quietLogger
})
const quietComponentLogger: ComponentLogger = { forComponent: () => quietLogger }

/** Helia with the libp2p node it owns. */
export type NetworkHelia = Helia & { libp2p: Libp2p<NetworkServices> }

/** A connected peer, with its last ping (null when the ping failed or timed out). */
export interface NetworkPeer {
  peerId: string
  multiaddrs: string[]
  latencyMs: number | null
  /**
   * true when every connection to the peer goes through a relay (limited by
   * the relay's time and data limits): only libp2p's control protocols run
   * on it until DCUtR replaces it with a direct one
   */
  limited: boolean
}

/** Relayed connections and their upgrades to direct ones (DCUtR), counted since start. */
/** How long after a relayed connection closed a direct one to its peer still counts as its upgrade. */
const RELAYED_UPGRADE_GRACE_MS = 10_000

export interface NatStats {
  relayedConnections: number
  /** relayed connections a direct connection to the same peer followed while they were open */
  directUpgrades: number
  /** ms from a relayed connection's opening to the direct one, for the last upgrades (at most 100) */
  upgradeMs: number[]
}

/** A gossip message as delivered to a subscriber (signature already checked by gossipsub). */
export interface GossipMessage {
  topic: string
  data: Uint8Array
  /** the signing author (not the relaying peer) */
  from: string
}

/** Outcome of dialling one bootstrap address at start. */
export interface BootstrapStatus {
  addr: string
  peerId: string
  /** 'failed': the last dial failed; it is retried with backoff while the node runs */
  state: 'pending' | 'connected' | 'failed'
  attempts: number
  error?: string
}

/** A provider found through the DHT. */
export interface ProviderInfo {
  peerId: string
  multiaddrs: string[]
}

export interface DhtOptions {
  signal?: AbortSignal
}

/**
 * The node's view of libp2p: identity, peers, gossip, direct streams and the
 * DHT. Other modules use this interface, never libp2p itself.
 */
export interface Network {
  readonly peerId: string
  readonly swarmId: string
  /** libp2p's bytes by protocol and on the wire, when the options asked for them */
  readonly traffic: TrafficMetrics | undefined
  /** Helia (blockstore, bitswap) for the storage module; valid after start() */
  readonly helia: NetworkHelia
  /** kad-dht k: one findProviders walk stops after finding this many providers */
  readonly kBucketSize: number
  readonly started: boolean
  start: () => Promise<void>
  stop: () => Promise<void>
  /** listen addresses with /p2p/<peerId> */
  multiaddrs: () => string[]
  connectionCount: () => number
  /** connected peers, each pinged concurrently (bounded by pingTimeoutMs) */
  peers: () => Promise<NetworkPeer[]>
  /** peers in the DHT routing table */
  dhtPeerCount: () => number
  /** resolves true once the routing table holds `min` peers, false after timeoutMs */
  waitForDhtPeers: (min: number, timeoutMs: number, signal?: AbortSignal) => Promise<boolean>
  /** publishes to a topic; resolves with the number of peers it was sent to */
  publish: (topic: string, data: Uint8Array) => Promise<number>
  /** subscribes; returns the unsubscribe function */
  subscribe: (topic: string, handler: (msg: GossipMessage) => void) => () => void
  /** gossip peers subscribed to a topic */
  topicPeers: (topic: string) => string[]
  /**
   * validates every message of a topic before delivery and relay; a call
   * before start() is queued and applied before the topics are subscribed
   */
  setTopicValidator: (topic: string, fn: TopicValidatorFn) => void
  /** called once a connected peer's protocols are known (identify); returns the unsubscribe function */
  onPeerIdentified: (handler: (peerId: string, protocols: string[]) => void) => () => void
  handle: (protocol: string, handler: StreamHandler, options?: StreamHandlerOptions) => Promise<void>
  unhandle: (protocol: string) => Promise<void>
  /** opens a stream to a peer (id or multiaddr) */
  dialProtocol: (peer: string, protocol: string, options?: { signal?: AbortSignal }) => Promise<Stream>
  /** connects to a multiaddr with /p2p/<peerId> */
  dial: (addr: string, options?: { signal?: AbortSignal }) => Promise<void>
  /**
   * closes every connection to a peer (a no-op when none is open or the
   * network is stopped); whether it may connect again is `denyPeer`'s call
   */
  hangUp: (peer: string) => Promise<void>
  dhtPut: (key: Uint8Array, value: Uint8Array, options?: DhtOptions) => Promise<void>
  /** @throws NetworkError DHT_NOT_FOUND */
  dhtGet: (key: Uint8Array, options?: DhtOptions) => Promise<Uint8Array>
  provide: (cid: CID, options?: DhtOptions) => Promise<void>
  findProviders: (cid: CID, options?: DhtOptions) => AsyncIterable<ProviderInfo>
  bootstrapStatus: () => BootstrapStatus[]
  /** resolves once every bootstrap dial of start() has settled */
  bootstrapSettled: () => Promise<BootstrapStatus[]>
  /** what AutoNAT and the relays say of our addresses */
  reachability: () => ReachabilityView
  /** the relay switches in force (the 'auto' ones decided at creation) */
  natPlan: () => NatPlan
  /** the transports this node dials and listens with */
  transports: () => string[]
  /** relayed connections opened, and how many a direct one followed (DCUtR), since start */
  natStats: () => NatStats
  /** writes the known-peers file now (also done every minute and at stop) */
  saveKnownPeers: () => Promise<void>
}

/**
 * Parses multiaddrs; bootstrap ones must end in /p2p/<peerId>.
 * @throws NetworkError BAD_MULTIADDR
 */
export function parseMultiaddrs (addrs: string[], kind: 'listen' | 'bootstrap'): Multiaddr[] {
  return addrs.map((a) => {
    let ma: Multiaddr
    try {
      ma = multiaddr(a)
    } catch (err) {
      throw new NetworkError('BAD_MULTIADDR', `${kind} address '${a}' is not a multiaddr`, { addr: a, kind }, { cause: err })
    }
    // a /dnsaddr/ name may stand for several peers: it resolves (DNS TXT) at dial time
    if (kind === 'bootstrap' && peerIdOf(ma) === undefined && !/^\/dnsaddr\/[^/]+\/?$/.test(a)) {
      throw new NetworkError('BAD_MULTIADDR', `bootstrap address '${a}' must end with /p2p/<peerId> (or be a /dnsaddr/<name>)`, { addr: a, kind })
    }
    if (kind === 'listen' && a !== '/p2p-circuit' && !/^\/(ip4|ip6|dns4|dns6)\/[^/]+\/tcp\/\d+(\/ws)?\/?$/.test(a)) {
      // only TCP is configured: any other transport would silently not listen
      throw new NetworkError('BAD_MULTIADDR', `listen address '${a}' must be /ip4|ip6/<host>/tcp/<port>, the same with /ws at the end (WebSockets), or /p2p-circuit`, { addr: a, kind })
    }
    return ma
  })
}

/**
 * @libp2p/websockets dials with the global WebSocket, which Node 20 lacks
 * (Node 22 has it): `ws`, the package the transport listens with, stands in.
 */
async function ensureWebSocket (): Promise<void> {
  const g = globalThis as unknown as { WebSocket?: unknown }
  if (g.WebSocket !== undefined) return
  g.WebSocket = (await import('ws')).WebSocket
}

/**
 * AutoNAT whose dial-backs never close a connection they did not open.
 * Asked to verify an address, AutoNAT (v1) dials it and closes the
 * connection it got; when we already hold a connection to the asker at that
 * very address (we dialled it: the address is proven), libp2p hands back
 * that connection and AutoNAT closed it. A NATed node verifying its relay's
 * address closed the connection holding its relay reservation. The
 * existing connection is answered as a success and left open.
 */
function keepConnectionsOpen<T extends object> (factory: (components: T) => unknown): (components: T) => unknown {
  return (components: T) => {
    const cm = (components as unknown as { connectionManager: { getConnections: () => Array<{ id: string }>, openConnection: (...args: unknown[]) => Promise<{ id: string, close: (...a: unknown[]) => Promise<void> }> } }).connectionManager
    const guarded = new Proxy(cm, {
      get (target, prop, receiver) {
        if (prop !== 'openConnection') {
          const v = Reflect.get(target, prop, receiver) as unknown
          return typeof v === 'function' ? v.bind(target) : v
        }
        return async (...args: unknown[]) => {
          const before = new Set(target.getConnections().map((c) => c.id))
          const conn = await target.openConnection(...args)
          if (!before.has(conn.id)) return conn
          return new Proxy(conn, {
            get (c, p) {
              if (p === 'close') return async () => {}
              const v = Reflect.get(c, p) as unknown
              return typeof v === 'function' ? v.bind(c) : v
            }
          })
        }
      }
    })
    const wrapped = new Proxy(components, {
      get (target, prop, receiver) {
        return prop === 'connectionManager' ? guarded : Reflect.get(target, prop, receiver)
      }
    })
    return factory(wrapped)
  }
}

/**
 * kad-dht with a pause after a closest-peers query that found nobody.
 * libp2p's random walk (which AutoNAT and the relay client's discovery use
 * to find peers) asks for closest peers in a loop; over an empty routing
 * table (allowQueryWithZeroPeers) each answer comes at once, in promise
 * callbacks only, and the loop starved the event loop: a public node alone
 * at start, or a NATed one before its bootstrap answered, stopped serving
 * anything. The pause lets timers and sockets run, and costs nothing once
 * the table holds peers.
 */
function calmWhenEmpty<T> (factory: (components: T) => KadDHT): (components: T) => KadDHT {
  return (components: T) => {
    const dht = factory(components)
    const routing = (dht as unknown as Record<symbol, { getClosestPeers: (key: Uint8Array, options?: { signal?: AbortSignal }) => AsyncIterable<unknown> } | undefined>)[peerRoutingSymbol]
    if (routing === undefined) return dht
    const original = routing.getClosestPeers.bind(routing)
    routing.getClosestPeers = async function * (key: Uint8Array, options?: { signal?: AbortSignal }) {
      let found = 0
      for await (const p of original(key, options)) {
        found++
        yield p
      }
      if (found === 0) await pause(NETWORK_DEFAULTS.emptyQueryPauseMs, options?.signal)
    }
    return dht
  }
}

async function pause (ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms)
    function done (): void {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

function isPeerId (x: PeerId | Multiaddr): x is PeerId {
  return typeof (x as PeerId).toMultihash === 'function'
}

/**
 * Checks announce addresses as the network will.
 * @throws NetworkError BAD_MULTIADDR
 */
export function checkAnnounceAddrs (addrs: string[]): void {
  for (const a of addrs) parseAnnounce(a)
}

/** An announced address: a dialable multiaddr of ours, without /p2p/ (libp2p adds our id). */
function parseAnnounce (a: string): Multiaddr {
  let ma: Multiaddr
  try {
    ma = multiaddr(a)
  } catch (err) {
    throw new NetworkError('BAD_MULTIADDR', `announce address '${a}' is not a multiaddr`, { addr: a, kind: 'announce' }, { cause: err })
  }
  if (!/^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/\d+(\/ws)?\/?$/.test(a)) {
    throw new NetworkError('BAD_MULTIADDR', `announce address '${a}' must be /ip4|ip6|dns4|dns6/<host>/tcp/<port> (optionally /ws)`, { addr: a, kind: 'announce' })
  }
  return ma
}

function peerIdOf (ma: Multiaddr): string | undefined {
  return ma.getComponents().findLast((c) => c.name === 'p2p')?.value
}

function parsePeerId (s: string): PeerId {
  try {
    return peerIdFromString(s)
  } catch (err) {
    throw new NetworkError('BAD_PEER_ID', `'${s}' is not a peer id`, { peerId: s }, { cause: err })
  }
}

function errorText (err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

// what libp2p/Node report when a TCP port is taken: EADDRINUSE, possibly wrapped
function isAddrInUse (err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e != null && depth < 5; depth++) {
    const x = e as { code?: unknown, message?: unknown, cause?: unknown }
    if (x.code === 'EADDRINUSE') return true
    if (typeof x.message === 'string' && x.message.includes('EADDRINUSE')) return true
    e = x.cause
  }
  return false
}

class Libp2pNetwork implements Network {
  readonly peerId: string
  readonly swarmId: string
  readonly traffic: TrafficMetrics | undefined
  readonly kBucketSize: number
  private heliaNode?: NetworkHelia
  private blockstore?: LevelBlockstore
  private datastore?: PeerCachingDatastore
  private readonly log: NetworkLogger
  private readonly bootstrapAddrs: Multiaddr[]
  private readonly listenAddrs: Multiaddr[]
  private bootstrapState: BootstrapStatus[] = []
  private bootstrapDone: Promise<BootstrapStatus[]> = Promise.resolve([])
  private readonly handlers = new Map<string, Set<(msg: GossipMessage) => void>>()
  // every validator set, applied in start() before subscribing (also after a
  // stop/start: each start builds a new gossipsub)
  private readonly validators = new Map<string, TopicValidatorFn>()
  private readonly identifyHandlers = new Set<(peerId: string, protocols: string[]) => void>()
  private stopping?: Promise<void>
  private readonly retryTimers = new Set<NodeJS.Timeout>()
  // subscribed for the node's whole life (see NetworkOptions.topics)
  private readonly baseTopics: Set<string>
  // set as soon as stop() begins, so no retry is scheduled while stopping
  private closing = false
  private watch?: ConnectionWatch
  private isStarted = false
  private readonly plan: NatPlan
  private readonly announceAddrs: Multiaddr[]
  private knownPeers: KnownPeer[] = []
  private knownPeersTimer?: NodeJS.Timeout
  private knownPeersSaving?: Promise<void>
  /** open relayed connections: id -> peer, opened at */
  private readonly relayed = new Map<string, { peer: string, at: number, closedAt?: number }>()
  private stats: NatStats = { relayedConnections: 0, directUpgrades: 0, upgradeMs: [] }

  constructor (private readonly options: NetworkOptions, private readonly psk: Uint8Array | undefined) {
    this.peerId = options.privateKey.publicKey.toString()
    this.swarmId = options.swarmId
    this.traffic = options.traffic
    this.kBucketSize = options.kBucketSize ?? NETWORK_DEFAULTS.kBucketSize
    this.log = options.logger ?? silentLogger
    this.listenAddrs = parseMultiaddrs(options.listen, 'listen')
    this.bootstrapAddrs = parseMultiaddrs(options.bootstrap, 'bootstrap')
    this.announceAddrs = (options.announce ?? []).map((a) => parseAnnounce(a))
    this.plan = natPlan(options.listen, options.nat)
    this.baseTopics = new Set(options.topics ?? Object.values(swarmTopics(options.swarmId)))
  }

  get started (): boolean {
    return this.isStarted
  }

  get helia (): NetworkHelia {
    if (this.heliaNode === undefined) throw new NetworkError('NETWORK_NOT_STARTED', 'the network is not started')
    return this.heliaNode
  }

  private get libp2p (): Libp2p<NetworkServices> {
    if (!this.isStarted || this.heliaNode === undefined) throw new NetworkError('NETWORK_NOT_STARTED', 'the network is not started')
    return this.heliaNode.libp2p
  }

  async start (): Promise<void> {
    if (this.isStarted) return
    await ensureWebSocket()
    const o = this.options
    const peerDiscovery: Array<(components: never) => PeerDiscovery> = []
    const withIds = this.bootstrapAddrs.filter((a) => peerIdOf(a) !== undefined)
    if (withIds.length > 0) {
      // keeps bootstrap peers tagged KEEP_ALIVE so libp2p redials them after a drop
      peerDiscovery.push(bootstrap({ list: withIds.map((a) => a.toString()) }) as (components: never) => PeerDiscovery)
    }
    if (o.mdns === true) {
      // the swarm id in the service name: two swarms on one LAN do not dial each other
      peerDiscovery.push(mdns({ serviceTag: `iexec-p2p-${o.swarmId}.local`, interval: NETWORK_DEFAULTS.mdnsIntervalMs }) as (components: never) => PeerDiscovery)
    }
    const nat = { ...NAT_DEFAULTS, ...o.nat }
    const listen = this.listenAddrs.map((a) => a.toString())
    // the relay transport listens on /p2p-circuit: it finds relays and reserves a slot
    if (this.plan.relayClient && !listen.includes('/p2p-circuit')) listen.push('/p2p-circuit')
    const natServices: Record<string, unknown> = {}
    if (this.plan.relayServer) {
      natServices.relay = circuitRelayServer({
        reservations: {
          maxReservations: nat.relayMaxReservations,
          defaultDurationLimit: nat.relayDurationLimitMs,
          defaultDataLimit: BigInt(nat.relayDataLimitBytes),
          applyDefaultLimit: true
        }
      })
    }
    if (nat.holePunching) natServices.dcutr = dcutr()
    if (nat.autonat) natServices.autonat = keepConnectionsOpen(autoNAT({ startupDelay: 1_000 }))
    if (nat.upnp) natServices.upnp = uPnPNAT()
    const connectionProtector: ((components: never) => ConnectionProtector) | undefined = this.psk === undefined
      ? undefined
      : preSharedKey({ psk: this.psk, timeout: NETWORK_DEFAULTS.pnetTimeoutMs }) as (components: never) => ConnectionProtector

    try {
      if (o.blocksPath !== undefined) {
        this.blockstore = new LevelBlockstore(o.blocksPath)
        await this.blockstore.open()
      }
      if (o.datastorePath !== undefined) {
        this.datastore = new PeerCachingDatastore(o.datastorePath)
        await this.datastore.open()
      }
    } catch (err) {
      await this.closeStores()
      throw new NetworkError('NETWORK_START_FAILED', 'cannot open the block or data store (is another node using this data dir?)', undefined, { cause: err })
    }
    // DEBUG=libp2p*,helia* keeps libp2p's own debug loggers; otherwise they are quiet ones
    const quiet = process.env.DEBUG === undefined || process.env.DEBUG === '' ? { logger: quietComponentLogger } : {}
    const helia = createSwarmHelia<NetworkServices>({
      ...quiet,
      ...(this.blockstore !== undefined ? { blockstore: this.blockstore } : {}),
      ...(this.datastore !== undefined ? { datastore: this.datastore } : {}),
      // no delegated routers or public gateways: content stays inside the swarm
      http: { delegatedRouters: [], recursiveGateways: [] },
      libp2p: {
        // every key of Helia's public-IPFS default is set here (helia.ts): no
        // default mDNS, relay, webrtc, autotls...
        ...quiet,
        privateKey: o.privateKey,
        ...(o.traffic !== undefined ? { metrics: () => o.traffic } : {}),
        addresses: { listen, ...(this.announceAddrs.length > 0 ? { appendAnnounce: this.announceAddrs.map((a) => a.toString()) } : {}) },
        // the relay transport is always there to dial a NATed peer through its relay
        transports: [tcp(), webSockets(), circuitRelayTransport()],
        connectionEncrypters: [noise()],
        // yamux's own keep-alive (a ping frame every 30 s, whose failures it only
        // logs) would duplicate ConnectionWatch's frame pings every 10 s
        streamMuxers: [yamux({ enableKeepAlive: false })],
        ...(connectionProtector !== undefined ? { connectionProtector } : {}),
        peerDiscovery,
        ...(o.denyPeer !== undefined ? { connectionGater: this.connectionGater(o.denyPeer) } : {}),
        // off: its first failed ping aborts a connection; ConnectionWatch (started below) waits for several
        connectionMonitor: { enabled: false },
        connectionManager: {
          maxConnections: NETWORK_DEFAULTS.maxConnections,
          inboundConnectionThreshold: o.inboundConnectionThreshold ?? NETWORK_DEFAULTS.inboundConnectionThreshold,
          maxIncomingPendingConnections: NETWORK_DEFAULTS.maxIncomingPendingConnections
        },
        services: {
          identify: identify(),
          // peers learn a new address (a relay reservation, a verified one) at once
          identifyPush: identifyPush(),
          ...natServices,
          ping: ping({ maxOutboundStreams: NETWORK_DEFAULTS.pingMaxOutboundStreams, maxInboundStreams: NETWORK_DEFAULTS.pingMaxInboundStreams }),
          dht: calmWhenEmpty(kadDHT({
            protocol: dhtProtocol(o.swarmId),
            clientMode: false,
            // loopback and LAN addresses are the point of a private swarm
            peerInfoMapper: passthroughMapper,
            kBucketSize: this.kBucketSize,
            validators: o.dhtValidators ?? {},
            selectors: o.dhtSelectors ?? {},
            // a single-node swarm must still accept puts and provides
            allowQueryWithZeroPeers: true
          })),
          pubsub: gossipsub({
            globalSignaturePolicy: StrictSign,
            allowPublishToZeroTopicPeers: true,
            // no floodsub fallback: every node speaks gossipsub
            fallbackToFloodsub: false,
            emitSelf: false,
            ...(o.gossipScoring !== undefined ? { scoreThresholds: o.gossipScoring.scoreThresholds } : {}),
            scoreParams: {
              ...o.gossipScoring?.scoreParams,
              // the same-IP penalty (a Sybil defence: -5 x (peers on one IP - 10)^2)
              // drove every score below the graylist in a 20-node swarm on
              // 127.0.0.1 and all gossip was dropped; loopback peers are this
              // machine's own nodes, so they are exempt. Other IPs keep it.
              IPColocationFactorWhitelist: new Set(['127.0.0.1', '::1', ...(o.gossipScoring?.scoreParams.IPColocationFactorWhitelist ?? [])])
            }
          })
        }
      } as unknown as Parameters<typeof createSwarmHelia<NetworkServices>>[0]['libp2p']
    }) as unknown as NetworkHelia
    this.heliaNode = helia
    try {
      await helia.start()
    } catch (err) {
      // a half-started libp2p may hold sockets or timers: stop what did start
      await helia.stop().catch(() => {})
      await this.closeStores()
      this.heliaNode = undefined
      if (isAddrInUse(err)) {
        throw new NetworkError('LISTEN_PORT_IN_USE', `a listen port is already in use (${this.options.listen.join(', ')})`, { listen: this.options.listen }, { cause: err })
      }
      throw new NetworkError('NETWORK_START_FAILED', `libp2p did not start: ${errorText(err)}`, undefined, { cause: err })
    }
    this.isStarted = true
    this.closing = false
    // libp2p writes our own addresses to the peer store 1 s after listening
    // (debounced); until then the DHT answers GET_PROVIDERS without us, as if
    // we provided nothing. Write them now.
    const self = helia.libp2p.peerId
    await helia.libp2p.peerStore.patch(self, {
      multiaddrs: helia.libp2p.getMultiaddrs().map((ma) => ma.decapsulate(`/p2p/${self.toString()}`))
    })
    helia.libp2p.services.pubsub.addEventListener('message', this.onMessage)
    // validators first: a topic subscribed before its validator would deliver
    // (and relay) whatever arrives in between
    for (const [t, fn] of Object.entries(o.topicValidators ?? {})) helia.libp2p.services.pubsub.topicValidators.set(t, fn)
    for (const [t, fn] of this.validators) helia.libp2p.services.pubsub.topicValidators.set(t, fn)
    helia.libp2p.addEventListener('peer:identify', this.onIdentify)
    // before the first dial: subscriptions then travel in each new stream's
    // hello, and a peer knows our topics as soon as it is connected
    for (const t of this.baseTopics) helia.libp2p.services.pubsub.subscribe(t)
    this.log.info('network started', { peerId: this.peerId, multiaddrs: this.multiaddrs() })
    this.watch = new ConnectionWatch(helia.libp2p, {
      intervalMs: o.connectionPingIntervalMs ?? NETWORK_DEFAULTS.connectionPingIntervalMs,
      timeoutMs: NETWORK_DEFAULTS.connectionPingTimeoutMs,
      maxFailures: NETWORK_DEFAULTS.connectionMaxPingFailures,
      protocol: '/ipfs/ping/1.0.0',
      onAbort: (peer, failures, error) => { this.log.warn('connection aborted: its pings failed', { peer, failures, error }) }
    })
    this.watch.start()
    this.dialBootstrap()
    helia.libp2p.addEventListener('peer:discovery', this.onDiscovery)
    helia.libp2p.addEventListener('connection:open', this.onConnectionOpen)
    helia.libp2p.addEventListener('connection:close', this.onConnectionClose)
    void this.dialKnownPeers()
  }

  private readonly onConnectionOpen = (evt: CustomEvent<import('@libp2p/interface').Connection>): void => {
    const c = evt.detail
    const peer = c.remotePeer.toString()
    if (c.limits !== undefined) {
      this.relayed.set(c.id, { peer, at: Date.now() })
      this.stats.relayedConnections++
      return
    }
    // the first direct connection to a peer we hold a relayed one to, or held one to
    // moments ago (a busy node can see the relayed one close before the direct one's
    // open event): DCUtR's upgrade
    const now = Date.now()
    for (const [id, r] of this.relayed) {
      if (r.closedAt !== undefined && now - r.closedAt > RELAYED_UPGRADE_GRACE_MS) {
        this.relayed.delete(id)
        continue
      }
      if (r.peer !== peer) continue
      this.relayed.delete(id)
      this.stats.directUpgrades++
      this.stats.upgradeMs.push(Date.now() - r.at)
      if (this.stats.upgradeMs.length > 100) this.stats.upgradeMs.shift()
      this.log.info('relayed connection upgraded to a direct one', { peer, remoteAddr: c.remoteAddr.toString(), ms: Date.now() - r.at })
    }
  }

  private readonly onConnectionClose = (evt: CustomEvent<import('@libp2p/interface').Connection>): void => {
    const r = this.relayed.get(evt.detail.id)
    if (r === undefined) return
    if (r.closedAt === undefined) r.closedAt = Date.now()
    // bounded: closed entries past the grace go at the next open, and at most a few are kept
    if (this.relayed.size > 256) this.relayed.delete(this.relayed.keys().next().value as string)
  }

  natStats (): NatStats {
    return { ...this.stats, upgradeMs: [...this.stats.upgradeMs] }
  }

  // mDNS finds peers; libp2p 3 dials nobody it discovers, so the node does
  // (only while it has few connections: the DHT brings the rest)
  private readonly onDiscovery = (evt: CustomEvent<{ id: PeerId, multiaddrs: Multiaddr[] }>): void => {
    if (this.options.mdns !== true || !this.isStarted || this.closing) return
    const libp2p = this.libp2p
    const id = evt.detail.id
    if (id.equals(libp2p.peerId) || libp2p.getConnections(id).length > 0) return
    if (libp2p.getConnections().length >= NETWORK_DEFAULTS.discoveryDialBelow) return
    libp2p.dial(id, { signal: AbortSignal.timeout(this.options.bootstrapDialTimeoutMs ?? NETWORK_DEFAULTS.bootstrapDialTimeoutMs) }).catch((err: unknown) => {
      if (this.isStarted && !this.closing) this.log.info('peer found by mDNS not dialled', { peer: id.toString(), error: errorText(err) })
    })
  }

  /** Dials the peers remembered from the last run, a few at a time, in the background. */
  private async dialKnownPeers (): Promise<void> {
    const file = this.options.knownPeersFile
    if (file === undefined || (this.options.maxKnownPeers ?? 1) === 0) return
    this.knownPeers = await readKnownPeers(file)
    this.knownPeersTimer = setInterval(() => { void this.saveKnownPeers().catch(() => {}) }, NETWORK_DEFAULTS.knownPeersSaveIntervalMs)
    this.knownPeersTimer.unref()
    const queue = this.knownPeers.filter((p) => p.peerId !== this.peerId)
    const worker = async (): Promise<void> => {
      for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
        if (!this.isStarted || this.closing) return
        const libp2p = this.libp2p
        let id: PeerId
        try {
          id = peerIdFromString(p.peerId)
        } catch {
          continue
        }
        if (libp2p.getConnections(id).length > 0 || this.options.denyPeer?.(p.peerId) === true) continue
        try {
          await libp2p.peerStore.merge(id, { multiaddrs: p.addrs.map((a) => multiaddr(a)) })
          await libp2p.dial(id, { signal: AbortSignal.timeout(this.options.bootstrapDialTimeoutMs ?? NETWORK_DEFAULTS.bootstrapDialTimeoutMs) })
        } catch {
          // a peer gone since: forgotten once it has not been seen for long (the file keeps the newest)
        }
      }
    }
    await Promise.all(Array.from({ length: NETWORK_DEFAULTS.knownPeersDialConcurrency }, worker)).catch(() => {})
  }

  async saveKnownPeers (): Promise<void> {
    const file = this.options.knownPeersFile
    const max = this.options.maxKnownPeers ?? 64
    if (file === undefined || max === 0 || this.heliaNode === undefined) return
    if (this.knownPeersSaving !== undefined) return await this.knownPeersSaving
    const now = Date.now()
    const byPeer = new Map<string, Set<string>>()
    for (const c of this.heliaNode.libp2p.getConnections()) {
      const id = c.remotePeer.toString()
      // an inbound connection's remote address is the peer's dialling port, not one to dial back
      if (c.direction !== 'outbound') continue
      const set = byPeer.get(id) ?? new Set<string>()
      set.add(c.remoteAddr.decapsulate(`/p2p/${id}`).toString())
      byPeer.set(id, set)
    }
    const seen: KnownPeer[] = [...byPeer.entries()].map(([peerId, addrs]) => ({ peerId, addrs: [...addrs], lastSeen: now }))
    this.knownPeers = mergeKnownPeers(this.knownPeers, seen, max)
    this.knownPeersSaving = writeKnownPeers(file, this.knownPeers).catch((err: unknown) => {
      this.log.warn('known peers not saved', { file, error: errorText(err) })
    }).finally(() => { this.knownPeersSaving = undefined })
    await this.knownPeersSaving
  }

  reachability (): ReachabilityView {
    if (!this.isStarted || this.heliaNode === undefined) return { reachability: 'unknown', publicAddrs: [], relayAddrs: [] }
    // the address manager is internal to libp2p; its metadata (verified or
    // not) is what AutoNAT writes, so it is read where libp2p keeps it
    const am = (this.heliaNode.libp2p as unknown as { components?: { addressManager?: { getAddressesWithMetadata?: () => AddressInfo[] } } }).components?.addressManager
    const list = am?.getAddressesWithMetadata?.() ?? this.heliaNode.libp2p.getMultiaddrs().map((m) => ({ multiaddr: m, verified: false, type: 'transport' }))
    return reachabilityOf(list)
  }

  natPlan (): NatPlan {
    return { ...this.plan }
  }

  transports (): string[] {
    return ['tcp', 'websockets', 'p2p-circuit']
  }

  /**
   * libp2p's gater over `denyPeer`. Dials are refused before any socket
   * opens; a connection is checked as soon as the encryption handshake has
   * proved the remote's peer id, in both directions (an outbound dial to an
   * address without /p2p/ only learns the id there). Earlier hooks see only
   * an address, and one IP may host honest peers as well.
   */
  private connectionGater (denyPeer: (peerId: string) => boolean): ConnectionGater {
    const deny = (peer: PeerId): boolean => {
      try {
        return denyPeer(peer.toString())
      } catch (err) {
        // a bug in the decider must not cut this node off from every peer
        this.log.warn('denyPeer threw; connection allowed', { peerId: peer.toString(), error: errorText(err) })
        return false
      }
    }
    return {
      denyDialPeer: deny,
      denyInboundEncryptedConnection: deny,
      denyOutboundEncryptedConnection: deny
    }
  }

  private readonly onIdentify = (evt: CustomEvent<{ peerId: PeerId, protocols: string[] }>): void => {
    const peer = evt.detail.peerId.toString()
    const protocols = [...evt.detail.protocols]
    for (const h of this.identifyHandlers) {
      try {
        h(peer, protocols)
      } catch (err) {
        this.log.warn('peer handler threw', { error: errorText(err) })
      }
    }
  }

  onPeerIdentified (handler: (peerId: string, protocols: string[]) => void): () => void {
    this.identifyHandlers.add(handler)
    return () => { this.identifyHandlers.delete(handler) }
  }

  private readonly onMessage = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    const set = this.handlers.get(msg.topic)
    if (set === undefined || msg.type !== 'signed') return
    const delivered: GossipMessage = { topic: msg.topic, data: msg.data, from: msg.from.toString() }
    for (const h of set) {
      try {
        h(delivered)
      } catch (err) {
        // one faulty subscriber must not starve the others
        this.log.warn('gossip handler threw', { topic: msg.topic, error: errorText(err) })
      }
    }
  }

  // An unreachable bootstrap peer is logged and reported, never fatal; it is
  // retried with backoff while the node runs (it may start later).
  private dialBootstrap (): void {
    this.bootstrapState = this.bootstrapAddrs.map((ma) => ({ addr: ma.toString(), peerId: peerIdOf(ma) ?? '', state: 'pending', attempts: 0 }))
    this.bootstrapDone = Promise.all(this.bootstrapAddrs.map(async (ma, i) => {
      await this.dialBootstrapPeer(ma, i)
    })).then(() => this.bootstrapStatus())
  }

  private async dialBootstrapPeer (ma: Multiaddr, i: number): Promise<void> {
    const st = this.bootstrapState[i]
    if (st.peerId === this.peerId) { st.state = 'connected'; return }
    st.attempts++
    try {
      await this.libp2p.dial(ma, { signal: AbortSignal.timeout(this.options.bootstrapDialTimeoutMs ?? NETWORK_DEFAULTS.bootstrapDialTimeoutMs) })
      st.state = 'connected'
      delete st.error
    } catch (err) {
      if (!this.isStarted || this.closing) return
      st.state = 'failed'
      st.error = errorText(err)
      if (st.attempts === 1) this.log.warn('bootstrap peer unreachable', { addr: st.addr, error: st.error })
      const delay = Math.min(NETWORK_DEFAULTS.bootstrapRetryMaxMs, NETWORK_DEFAULTS.bootstrapRetryMinMs * 2 ** (st.attempts - 1))
      const timer = setTimeout(() => {
        this.retryTimers.delete(timer)
        if (this.isStarted && !this.closing) void this.dialBootstrapPeer(ma, i)
      }, delay)
      timer.unref()
      this.retryTimers.add(timer)
    }
  }

  bootstrapStatus (): BootstrapStatus[] {
    return this.bootstrapState.map((s) => ({ ...s }))
  }

  async bootstrapSettled (): Promise<BootstrapStatus[]> {
    return this.bootstrapDone
  }

  private async closeStores (): Promise<void> {
    await this.blockstore?.close().catch(() => {})
    await this.datastore?.close().catch(() => {})
    this.blockstore = undefined
    this.datastore = undefined
  }

  async stop (): Promise<void> {
    if (this.stopping !== undefined) return this.stopping
    if (!this.isStarted || this.heliaNode === undefined) return
    const helia = this.heliaNode
    this.closing = true
    this.stopping = (async () => {
      for (const t of this.retryTimers) clearTimeout(t)
      this.retryTimers.clear()
      this.watch?.stop()
      this.watch = undefined
      if (this.knownPeersTimer !== undefined) clearInterval(this.knownPeersTimer)
      this.knownPeersTimer = undefined
      // before libp2p closes its connections: they are what is remembered
      await this.saveKnownPeers().catch(() => {})
      helia.libp2p.removeEventListener('peer:discovery', this.onDiscovery)
      helia.libp2p.removeEventListener('connection:open', this.onConnectionOpen)
      helia.libp2p.removeEventListener('connection:close', this.onConnectionClose)
      helia.libp2p.services.pubsub.removeEventListener('message', this.onMessage)
      helia.libp2p.removeEventListener('peer:identify', this.onIdentify)
      await helia.stop()
      await this.closeStores()
      this.isStarted = false
      this.log.info('network stopped', { peerId: this.peerId })
    })()
    try {
      await this.stopping
    } finally {
      this.stopping = undefined
    }
  }

  multiaddrs (): string[] {
    return this.libp2p.getMultiaddrs().map((m) => m.toString())
  }

  connectionCount (): number {
    return this.libp2p.getConnections().length
  }

  dhtPeerCount (): number {
    // routingTable is not in KadDHT's public type: read its size defensively
    const dht = this.libp2p.services.dht as unknown as { routingTable?: { size?: number } }
    return dht.routingTable?.size ?? 0
  }

  async waitForDhtPeers (min: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    // polled: the routing table fills asynchronously after identify reports
    // the kad protocol, and its events are not part of the public DHT type.
    // Often at first (a started node's peers come within ms), then less: a
    // node left alone waits a whole advert interval here, and a 20 ms poll
    // all that time was most of its idle CPU.
    for (let pollMs = 20; this.isStarted && signal?.aborted !== true; pollMs = Math.min(2 * pollMs, 250)) {
      if (this.dhtPeerCount() >= min) return true
      const left = deadline - Date.now()
      if (left <= 0) return false
      await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, left)))
    }
    return false
  }

  async peers (): Promise<NetworkPeer[]> {
    const libp2p = this.libp2p
    const byPeer = new Map<string, { id: PeerId, addrs: Set<string>, limited: boolean }>()
    for (const c of libp2p.getConnections()) {
      const key = c.remotePeer.toString()
      const e = byPeer.get(key) ?? { id: c.remotePeer, addrs: new Set<string>(), limited: true }
      e.addrs.add(c.remoteAddr.toString())
      if (c.limits === undefined) e.limited = false
      byPeer.set(key, e)
    }
    const timeout = this.options.pingTimeoutMs ?? NETWORK_DEFAULTS.pingTimeoutMs
    return Promise.all([...byPeer.entries()].map(async ([peerId, e]) => {
      let latencyMs: number | null = null
      try {
        // ping runs on a relayed connection too (libp2p's ping allows it)
        latencyMs = await libp2p.services.ping.ping(e.id, { signal: AbortSignal.timeout(timeout) })
      } catch {
        latencyMs = null
      }
      return { peerId, multiaddrs: [...e.addrs], latencyMs, limited: e.limited }
    }))
  }

  async publish (topic: string, data: Uint8Array): Promise<number> {
    const res = await this.libp2p.services.pubsub.publish(topic, data)
    return res.recipients.length
  }

  subscribe (topic: string, handler: (msg: GossipMessage) => void): () => void {
    const pubsub = this.libp2p.services.pubsub
    let set = this.handlers.get(topic)
    if (set === undefined) {
      set = new Set()
      this.handlers.set(topic, set)
      if (!this.baseTopics.has(topic)) pubsub.subscribe(topic)
    }
    set.add(handler)
    return () => {
      const s = this.handlers.get(topic)
      if (s === undefined) return
      s.delete(handler)
      if (s.size === 0) {
        this.handlers.delete(topic)
        if (this.isStarted && !this.baseTopics.has(topic)) pubsub.unsubscribe(topic)
      }
    }
  }

  topicPeers (topic: string): string[] {
    return this.libp2p.services.pubsub.getSubscribers(topic).map((p) => p.toString())
  }

  setTopicValidator (topic: string, fn: TopicValidatorFn): void {
    this.validators.set(topic, fn)
    if (this.isStarted) this.libp2p.services.pubsub.topicValidators.set(topic, fn)
  }

  async handle (protocol: string, handler: StreamHandler, options?: StreamHandlerOptions): Promise<void> {
    await this.libp2p.handle(protocol, handler, options)
  }

  async unhandle (protocol: string): Promise<void> {
    await this.libp2p.unhandle(protocol)
  }

  private target (peer: string): PeerId | Multiaddr {
    return peer.startsWith('/') ? parseMultiaddrs([peer], 'bootstrap')[0] : parsePeerId(peer)
  }

  async dialProtocol (peer: string, protocol: string, options?: { signal?: AbortSignal }): Promise<Stream> {
    const target = this.target(peer)
    try {
      return await this.libp2p.dialProtocol(target, protocol, options)
    } catch (err) {
      // the only connection goes through a relay, and none of the node's own
      // protocols runs there (node/README.md, NAT traversal): wait for DCUtR
      // to replace it with a direct one, then open the stream on that
      if ((err as { name?: string }).name !== 'LimitedConnectionError') throw err
      const direct = await this.waitForDirect(isPeerId(target) ? target : peerIdFromString(peerIdOf(target) ?? ''), options?.signal)
      return await direct.newStream(protocol, options)
    }
  }

  /**
   * Resolves with a direct (not relayed) connection to the peer, once one is
   * open; bounded by directWaitMs.
   * @throws NetworkError NETWORK_TIMEOUT
   */
  private async waitForDirect (id: PeerId, signal?: AbortSignal): Promise<import('@libp2p/interface').Connection> {
    const deadline = Date.now() + (this.options.directWaitMs ?? NETWORK_DEFAULTS.directWaitMs)
    while (this.isStarted && !this.closing && signal?.aborted !== true && Date.now() < deadline) {
      const c = this.libp2p.getConnections(id).find((x) => x.limits === undefined && x.status === 'open')
      if (c !== undefined) return c
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    throw new NetworkError('NETWORK_TIMEOUT', `only a relayed connection to ${id.toString()}, and no direct one came (hole punching failed)`, { peer: id.toString(), reason: 'NO_DIRECT_CONNECTION' })
  }

  async dial (addr: string, options?: { signal?: AbortSignal }): Promise<void> {
    await this.libp2p.dial(this.target(addr), options)
  }

  async hangUp (peer: string): Promise<void> {
    // a ban may land while the node stops: nothing left to close
    if (!this.isStarted || this.closing) return
    await this.libp2p.hangUp(parsePeerId(peer))
  }

  async dhtPut (key: Uint8Array, value: Uint8Array, options?: DhtOptions): Promise<void> {
    await this.libp2p.contentRouting.put(key, value, options)
  }

  async dhtGet (key: Uint8Array, options?: DhtOptions): Promise<Uint8Array> {
    try {
      return await this.libp2p.contentRouting.get(key, options)
    } catch (err) {
      if (options?.signal?.aborted === true) {
        throw new NetworkError('NETWORK_TIMEOUT', 'DHT get timed out', { key: new TextDecoder().decode(key) }, { cause: err })
      }
      throw new NetworkError('DHT_NOT_FOUND', 'no DHT record for the key', { key: new TextDecoder().decode(key) }, { cause: err })
    }
  }

  async provide (cid: CID, options?: DhtOptions): Promise<void> {
    await this.libp2p.contentRouting.provide(cid, options)
  }

  async * findProviders (cid: CID, options?: DhtOptions): AsyncIterable<ProviderInfo> {
    // The query gets a signal of its own, linked to the caller's only while
    // the caller reads. A caller that stops early (break) unlinks it: a
    // timeout firing later on a kad-dht query nobody reads rejects a promise
    // nobody awaits, and Node kills the process (seen with 50 nodes).
    const ac = new AbortController()
    const outer = options?.signal
    const onAbort = (): void => { ac.abort(outer?.reason) }
    if (outer?.aborted === true) ac.abort(outer.reason)
    outer?.addEventListener('abort', onAbort, { once: true })
    const seen = new Set<string>()
    try {
      for await (const p of this.libp2p.contentRouting.findProviders(cid, { signal: ac.signal })) {
        const id = p.id.toString()
        if (seen.has(id)) continue
        seen.add(id)
        yield { peerId: id, multiaddrs: p.multiaddrs.map((m) => m.toString()) }
      }
    } finally {
      outer?.removeEventListener('abort', onAbort)
    }
  }
}

/**
 * Builds the network (not started). Checks addresses and the swarm key
 * eagerly so bad input fails before anything listens.
 * @throws NetworkError BAD_MULTIADDR, SWARM_KEY_MISSING, SWARM_KEY_INVALID
 */
export async function createNetwork (options: NetworkOptions): Promise<Network> {
  const psk = options.swarmKeyFile !== undefined ? await readSwarmKeyFile(options.swarmKeyFile) : undefined
  return new Libp2pNetwork(options, psk)
}
