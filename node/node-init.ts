import { join } from 'node:path'
import type { NodeConfig } from './config/index.js'
import { dataDirPaths, validateConfig } from './config/index.js'
import { resourceDhtRules } from './network/index.js'
import type { AdvertisedResources, NetworkOptions } from './network/index.js'
import { marketScoring } from './market/index.js'
import { swarmTopics } from '../protocols/topics.js'
import { packageVersion } from './common/version.js'
import type { BidStrategy, MarketServiceOptions } from './market/index.js'

/** What an embedder (the CLI's start, tests, benchmarks) gives IexecNode.create. */
export interface IexecNodeInit {
  dataDir: string
  /** decrypts the wallet keystore (not needed for a dev unprotected key) */
  password?: string
  /** CLI flags override config.json for this run (never written back) */
  listen?: string[]
  bootstrap?: string[]
  /** addresses announced besides the listen ones */
  announce?: string[]
  /** mDNS discovery on the LAN */
  mdns?: boolean
  /** NAT settings for this run, over config.nat */
  nat?: Partial<NodeConfig['nat']>
  swarmKeyFile?: string
  apiPort?: number
  requester?: boolean
  cpus?: number
  memoryMb?: number
  diskMb?: number
  /** HOST:PORT of the token-less metrics listener */
  metricsListen?: string
  /** false: RPC calls, transactions and app runs are not observed for the metrics (a benchmark's baseline); default true */
  metricsObservers?: boolean
  priceFloor?: bigint
  tags?: string[]
  category?: number
  /** first block of the hub's events when the node has no cursor yet (the hub's deploy block); default 0 */
  chainFromBlock?: number
  /** forget the stored event cursor and read the hub's events again from the first block (start --resync-events) */
  resyncEvents?: boolean
  /** chain settings for this run (start --rpc/--hub/--chain-id/--from-block), merged over config.chain; a key set to undefined drops it */
  chain?: Partial<NodeConfig['chain']>
  /** market service settings (bidding window, bid transport ...) for this run */
  market?: Partial<MarketServiceOptions>
  /** the provider's bid strategy; the default one when absent */
  bidStrategy?: BidStrategy
}

/**
 * config.json with this run's flags over it (never written back), checked as
 * config.json is: a bad flag gets CONFIG_INVALID.
 */
export function withOverrides (config: NodeConfig, init: IexecNodeInit): NodeConfig {
  const merged: Record<string, unknown> = { ...config }
  if (init.listen !== undefined) merged.listen = init.listen
  if (init.bootstrap !== undefined) merged.bootstrap = init.bootstrap
  if (init.announce !== undefined) merged.announce = init.announce
  if (init.mdns !== undefined) merged.mdns = init.mdns
  if (init.nat !== undefined) merged.nat = { ...config.nat, ...init.nat }
  if (init.swarmKeyFile !== undefined) merged.swarmKeyFile = init.swarmKeyFile
  if (init.apiPort !== undefined) merged.apiPort = init.apiPort
  if (init.requester === true) merged.role = 'requester'
  if (init.cpus !== undefined) merged.cpus = init.cpus
  if (init.memoryMb !== undefined) merged.memoryMb = init.memoryMb
  if (init.diskMb !== undefined) merged.diskMb = init.diskMb
  if (init.metricsListen !== undefined) merged.metricsListen = init.metricsListen
  if (init.priceFloor !== undefined) merged.priceFloor = init.priceFloor.toString()
  if (init.tags !== undefined) merged.tags = init.tags
  if (init.category !== undefined) merged.category = init.category
  if (init.chain !== undefined) merged.chain = { ...config.chain, ...init.chain }
  // the same validation as config.json: a bad flag gets CONFIG_INVALID
  return validateConfig(merged)
}

/** The network settings a node's config and data dir make, with the swarm's DHT rules and gossip scoring (the node adds its key, traffic counters, gater and logger). */
export function networkOptionsOf (config: NodeConfig, dataDir: string): Pick<NetworkOptions,
'listen' | 'bootstrap' | 'swarmId' | 'nat' | 'announce' | 'mdns' | 'knownPeersFile' | 'maxKnownPeers' | 'swarmKeyFile' | 'blocksPath' | 'datastorePath' | 'dhtValidators' | 'dhtSelectors' | 'gossipScoring'> {
  const paths = dataDirPaths(dataDir)
  const rules = resourceDhtRules()
  return {
    listen: config.listen,
    bootstrap: config.bootstrap,
    swarmId: config.swarmId,
    nat: config.nat,
    announce: config.announce,
    mdns: config.mdns,
    knownPeersFile: join(dataDir, 'known-peers.json'),
    maxKnownPeers: config.maxKnownPeers,
    ...(config.swarmKeyFile !== undefined ? { swarmKeyFile: config.swarmKeyFile } : {}),
    blocksPath: paths.blocks,
    datastorePath: paths.datastore,
    dhtValidators: rules.validators,
    dhtSelectors: rules.selectors,
    // market topics scored: a validator's REJECT must cost the sender
    gossipScoring: marketScoring(swarmTopics(config.swarmId))
  }
}

/** What a provider's signed advert says it offers. */
export function advertisedResourcesOf (config: NodeConfig): AdvertisedResources {
  const { cpus, memoryMb, diskMb, gpus, executors, category, priceFloor, tags } = config
  return { cpus, memoryMb, diskMb, gpus, executors, category, priceFloor, tags, version: packageVersion() }
}
