import type { Wallet } from 'ethers'
import type { NodeConfig } from '../config/index.js'
import type { DbController } from '../db/index.js'
import { HubEvents, chainProfile, createChainClient } from '../chain/index.js'
import type { ChainClient } from '../chain/index.js'
import type { ChainObserver } from '../chain/options.js'
import type { Network, NetworkLogger } from '../network/index.js'
import { MarketService } from './service.js'
import type { BidStrategy, MarketServiceOptions } from './index.js'
import type { ProviderSettings } from './provider.js'

export interface CreateMarketInit {
  config: NodeConfig
  wallet: Wallet
  network: Network
  db: DbController
  /** first block of the hub's events when there is no cursor yet */
  fromBlock: number
  /** this run's settings (IexecNodeInit's): forget the event cursor, an embedder's market options (tests, benchmarks) over config.json's, the bid strategy */
  run: { resyncEvents?: boolean, market?: Partial<MarketServiceOptions>, bidStrategy?: BidStrategy }
  /** told of each RPC exchange and transaction (the metrics) */
  observer?: ChainObserver
  /** what the provider reads of the node when a request comes */
  provider: Pick<ProviderSettings, 'busyTasks' | 'appProblem' | 'appExecutorOf'>
  advertisedTags: (worker: string) => Promise<string[] | undefined>
  log: NetworkLogger
  /** the chain client is handed over as soon as it exists: the caller closes it, even when the market fails to build */
  onChainClient: (client: ChainClient) => void
}

/**
 * With config.chain.rpc and hub: connects the wallet to the chain (one
 * client, one nonce queue), builds the node's one follower of the hub
 * (HubEvents, not started: every subscriber comes first) and the market
 * service over both, its bans and balance estimates loaded (the connection
 * gater reads the bans before the network starts). undefined without them:
 * the market routes answer CHAIN_NOT_CONFIGURED.
 * @throws ChainError RPC_UNREACHABLE, CHAIN_ID_MISMATCH, CONTRACT_NOT_FOUND
 */
export async function createMarket (init: CreateMarketInit): Promise<{ chain: ChainClient, hubEvents: HubEvents, market: MarketService } | undefined> {
  const c = init.config
  const { rpc, hub, chainId } = c.chain
  if (rpc === undefined || hub === undefined) return undefined
  const base = { rpcUrl: rpc, wallet: init.wallet, hub, ...(chainId !== undefined ? { chainId } : {}) }
  // the RLC token's address is the hub's `token`: one probe client to read it
  const probe = await createChainClient(base)
  let rlc: string
  try {
    rlc = await (probe.hub as NonNullable<ChainClient['hub']>).token()
  } finally {
    await probe.close()
  }
  // how fast to poll and how many confirmations: per chain, config.json's chain section over the chain's profile
  const profile = chainProfile(probe.chainId, { confirmations: c.chain.confirmations, eventPollIntervalMs: c.chain.pollIntervalMs })
  const chain = await createChainClient({ ...base, rlc, rpc: { pollingIntervalMs: profile.rpcPollingIntervalMs, ...(init.observer !== undefined ? { observer: init.observer } : {}) } })
  init.onChainClient(chain)
  // config.json's bid transport; an embedder's market options (tests, benchmarks) come last
  const options: Partial<MarketServiceOptions> = { bidTransport: c.bidTransport, defaultMaxPrice: BigInt(c.defaultMaxPrice), eventPollIntervalMs: profile.eventPollIntervalMs, eventConfirmations: profile.confirmations, ...init.run.market }
  const hubEvents = new HubEvents({
    chain,
    hub,
    db: init.db,
    fromBlock: init.fromBlock,
    ...(init.run.resyncEvents === true ? { resync: true } : {}),
    // the market's option names, which embedders and benchmarks pass
    ...(options.eventConfirmations !== undefined ? { confirmations: options.eventConfirmations } : {}),
    ...(options.eventPollIntervalMs !== undefined ? { pollIntervalMs: options.eventPollIntervalMs } : {}),
    log: { warn: init.log.warn }
  })
  const market = new MarketService({
    network: init.network,
    db: init.db,
    chain,
    signer: init.wallet,
    swarmId: c.swarmId,
    role: c.role,
    provider: {
      cpus: c.cpus,
      memoryMb: c.memoryMb,
      diskMb: c.diskMb,
      category: c.category,
      priceFloor: BigInt(c.priceFloor),
      tags: c.tags,
      executors: c.executors,
      ...(init.run.bidStrategy !== undefined ? { strategy: init.run.bidStrategy } : {}),
      ...init.provider
    },
    fromBlock: init.fromBlock,
    hubEvents,
    advertisedTags: init.advertisedTags,
    options,
    // gossip verdicts are counted in market.stats; only warnings go to node.log
    logger: { debug: () => {}, warn: init.log.warn }
  })
  // bans and balance estimates from level, before the network starts (the gater reads the bans)
  await market.load()
  return { chain, hubEvents, market }
}
