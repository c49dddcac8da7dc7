/**
 * The key-release chain view over the PoCo hub (the TypeChain binding the
 * chain client exposes as `client.hub`): deal, membership and contribution
 * reads are eth_calls; the deal's dataset, app, requester and tag come from
 * its DealCreated event, because the hub's Deal struct keeps the owners but
 * not the assets nor the tag. They never change, so they are cached.
 */
import type { Hub } from '../../contracts-abi/index.js'
import { headOf, queryLogsInRanges } from '../chain/log-ranges.js'
import type { DealView, KeyReleaseChainView } from './key-release.js'
import { BoundedCache } from '../common/bounded-cache.js'

const ZERO = '0x0000000000000000000000000000000000000000'
// Contribution status CONTRIBUTED or PROVED (Hub.sol ContributionStatus)
const CONTRIBUTED = 1n

/** Options of the hub view. */
export interface HubKeyReleaseViewOptions {
  /** first block to search for DealCreated events (the hub's deploy block); 0 by default */
  fromBlock?: number
  /** deals whose dataset is cached */
  cacheSize?: number
  /** largest eth_getLogs range; the chain options' by default */
  maxBlockRange?: number
}

/** A `KeyReleaseChainView` reading the hub. */
export function createHubKeyReleaseView (hub: Pick<Hub, 'dealOf' | 'isDealWorker' | 'contributionOf' | 'queryFilter' | 'filters' | 'runner'>, options: HubKeyReleaseViewOptions = {}): KeyReleaseChainView {
  type Created = Pick<DealView, 'dataset' | 'app' | 'requester' | 'tag'>
  const created = new BoundedCache<string, Created>(options.cacheSize ?? 10_000)

  async function dealCreated (dealid: string): Promise<Created | undefined> {
    const cached = created.get(dealid)
    if (cached !== undefined) return cached
    const logs = await queryLogsInRanges(async (a, b) => await hub.queryFilter(hub.filters.DealCreated(dealid), a, b),
      { fromBlock: options.fromBlock ?? 0, head: headOf(hub.runner), ...(options.maxBlockRange !== undefined ? { maxRange: options.maxBlockRange } : {}) })
    const args = logs[0]?.args
    const info = args?.info
    if (info === undefined) return undefined
    const c: Created = { dataset: info.dataset, app: info.app, requester: args.requester, tag: info.tag }
    created.set(dealid, c)
    return c
  }

  return {
    deal: async (dealid): Promise<DealView | undefined> => {
      // pending: a scheduler draw is readable as soon as the deal's block is mined
      const deal = await hub.dealOf(dealid, { blockTag: 'pending' })
      // an unknown deal reads as all zeros
      if (deal.requester === ZERO) return undefined
      const c = await dealCreated(dealid.toLowerCase())
      if (c === undefined) return undefined
      return { ...c, scheduler: deal.scheduler, volume: deal.volume }
    },
    isDealWorker: async (dealid, worker) => await hub.isDealWorker(dealid, worker),
    hasContributed: async (taskid, worker) => (await hub.contributionOf(taskid, worker)).status >= CONTRIBUTED
  }
}
