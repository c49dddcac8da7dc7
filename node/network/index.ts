/**
 * Networking: Helia 7 and its libp2p (TCP, noise, yamux, identify, ping,
 * kad-dht in server mode with a swarm-private protocol, signed gossipsub,
 * optional pnet), bootstrap, and signed resource adverts in the DHT.
 *
 * @example
 * ```ts
 * const network = await createNetwork({ privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], swarmId: 'dev' })
 * await network.start()
 * const off = network.subscribe(topic('dev', 'bid'), (msg) => { ... })
 * await network.publish(topic('dev', 'bid'), bytes)
 * ```
 */
export { createNetwork, parseMultiaddrs, checkAnnounceAddrs } from './network.js'
export { natPlan, reachabilityOf } from './nat.js'
export type { Reachability, ReachabilityView, NatPlan } from './nat.js'
export { readKnownPeers, mergeKnownPeers, writeKnownPeers, KNOWN_PEERS_LIMITS } from './known-peers.js'
export type { KnownPeer } from './known-peers.js'
export type { Network, NatStats, NetworkPeer, GossipMessage, BootstrapStatus, ProviderInfo, DhtOptions, NetworkHelia, NetworkServices } from './network.js'
export { generateSwarmKey, writeSwarmKeyFile, readSwarmKeyFile } from './swarm-key.js'
export { NetworkError } from './errors.js'
export { TrafficMetrics } from './traffic.js'
export type { ByteCounts } from './traffic.js'
export type { NetworkErrorCode } from './errors.js'
export { NETWORK_DEFAULTS, NAT_DEFAULTS, silentLogger } from './options.js'
export type { NetworkOptions, NetworkLogger, GossipScoring, NatOptions, NatSwitch } from './options.js'
export { ResourceAdverts, resourceDhtRules, ADVERT_DEFAULTS } from './adverts.js'
export type { AdvertsOptions, AdvertsNetwork, AdvertisedResources, ResourceQueryOptions } from './adverts.js'
export { CATEGORY_SHARDS, categoryShardOf, categoryShardCid, walkCategoryProviders } from './category-shards.js'
export type { ProviderWalkOptions, ProviderWalkResult } from './category-shards.js'
export { HolderDialer, APP_HOLDER_DIAL_MS, RESULT_HOLDER_DIAL_MS } from './holders.js'
export type { HolderDialerInit } from './holders.js'
