// What the market's parts (provider, requester, on-chain requests) use of
// the MarketService that builds them: typed here so that they need not
// import the service, which imports them.
import type { HubDomain, RequestOrder, TypedDataSigner } from '../../protocols/eip712.js'
import type { MarketMessageType, OrderMessage } from '../../protocols/market.js'
import type { TopicName } from '../../protocols/topics.js'
import type { Resources } from '../../protocols/resources.js'
import type { ChainClient, HubEvents } from '../chain/index.js'
import type { DbController } from '../db/index.js'
import type { Network } from '../network/index.js'
import type { BidDecision, BidStrategy } from './bid-strategy.js'
import type { MarketLogger } from './gossip-adapter.js'
import type { MarketServiceOptions } from './options.js'
import type { Orderbook } from './orderbook.js'
import type { MarketValidationContext } from './validation.js'

/** A signer of orders with its address (an ethers Wallet fits). */
export type OrderSigner = TypedDataSigner & { address: string }

export interface MarketServiceInit {
  network: Network
  db: DbController
  /** a connected client with the hub (and RLC) bindings, bound to the node's wallet */
  chain: ChainClient
  signer: OrderSigner
  swarmId: string
  /** providers bid on requests; requesters only buy */
  role: 'provider' | 'requester'
  provider: ProviderSettings
  /** first block of the hub's history (its deploy block): the market's own log queries start there */
  fromBlock: number
  /**
   * The node's one follower of the hub: the market subscribes its records
   * (book, apps, balances, stake) at construction, before any other part;
   * the node starts and stops it (create-market.ts builds it).
   */
  hubEvents: HubEvents
  options?: Partial<MarketServiceOptions>
  logger?: MarketLogger & { warn: (msg: string, context?: Record<string, unknown>) => void }
  /**
   * The tags a worker's signed resource advert declares (undefined when no
   * fresh advert of that address is found): a request that requires tags
   * counts a bid only when its worker advertises them too
   */
  advertisedTags?: (worker: string) => Promise<string[] | undefined>
}

/** An app this node saw registered on the hub (from AppRegistered events). */
export interface KnownApp {
  app: string
  owner: string
  name: string
  cid: string
  checksum: string
}

/** What the provider offers (from the node's config). */
export interface ProviderSettings extends Pick<Resources, 'cpus' | 'memoryMb' | 'diskMb' | 'category' | 'tags' | 'executors'> {
  /** lowest price per task, nRLC (a request offering less is declined) */
  priceFloor: bigint
  /** the decision; the default strategy when absent */
  strategy?: BidStrategy
  /** tasks this node runs now (the worker's count); a provider with none free declines (NO_CAPACITY) */
  busyTasks?: () => number
  /**
   * Whether this provider's executor can run an app's module (worker/app-checks.ts:
   * fetched once per app, checked against its registered checksum and by
   * checkWasiModule): a problem to decline with, or undefined when it can
   * or cannot tell (the module unreachable now: the worker fetches it again
   * after the deal).
   */
  appProblem?: (app: string) => Promise<string | undefined>
  /** the executor a registered app needs ('wasi' when absent or unknown) */
  appExecutorOf?: (app: string) => Promise<string | undefined>
}

/** The market service as its parts see it. */
export interface MarketCore {
  readonly init: MarketServiceInit
  readonly book: Orderbook
  readonly domain: HubDomain
  readonly options: MarketServiceOptions
  readonly topics: Record<TopicName, string>
  readonly ctx: MarketValidationContext
  readonly hubEvents: HubEvents
  readonly provider?: { decide: (request: RequestOrder, consumed: bigint) => Promise<BidDecision> }
  readonly network: Network
  readonly chain: ChainClient
  readonly signer: OrderSigner
  readonly address: string
  readonly hub: NonNullable<ChainClient['hub']>
  readonly started: boolean
  track: (p: Promise<unknown>) => void
  publishOwn: <T extends Exclude<MarketMessageType, 'cancel'>>(type: T, message: OrderMessage & { type: T }) => Promise<{ hash: string, recipients: number }>
  appsNamed: (name: string, owner?: string) => Promise<KnownApp[]>
}
