/**
 * The key-release chain view over the PoCo hub (the TypeChain binding the
 * chain client exposes as `client.hub`): deal, membership and contribution
 * reads are eth_calls; the deal's dataset comes from its DealCreated event,
 * because the hub's Deal struct keeps the dataset owner but not the dataset.
 * Deal datasets never change, so they are cached.
 */
import type { Hub } from '../../contracts-abi/index.js'
import type { DealView, KeyReleaseChainView } from './key-release.js'

const ZERO = '0x0000000000000000000000000000000000000000'
// Contribution status CONTRIBUTED or PROVED (Hub.sol ContributionStatus)
const CONTRIBUTED = 1n

/** Options of the hub view. */
export interface HubKeyReleaseViewOptions {
  /** first block to search for DealCreated events (the hub's deploy block); 0 by default */
  fromBlock?: number
  /** deals whose dataset is cached */
  cacheSize?: number
}

/** A `KeyReleaseChainView` reading the hub. */
export function createHubKeyReleaseView (hub: Pick<Hub, 'dealOf' | 'isDealWorker' | 'contributionOf' | 'queryFilter' | 'filters'>, options: HubKeyReleaseViewOptions = {}): KeyReleaseChainView {
  const datasets = new Map<string, string>()
  const cacheSize = options.cacheSize ?? 10_000

  async function dealDataset (dealid: string): Promise<string | undefined> {
    const cached = datasets.get(dealid)
    if (cached !== undefined) return cached
    const logs = await hub.queryFilter(hub.filters.DealCreated(dealid), options.fromBlock ?? 0)
    const info = logs[0]?.args?.info
    if (info === undefined) return undefined
    const dataset = info.dataset
    if (datasets.size >= cacheSize) datasets.delete(datasets.keys().next().value as string)
    datasets.set(dealid, dataset)
    return dataset
  }

  return {
    deal: async (dealid): Promise<DealView | undefined> => {
      // pending: a scheduler draw is readable as soon as the deal's block is mined
      const deal = await hub.dealOf(dealid, { blockTag: 'pending' })
      // an unknown deal reads as all zeros
      if (deal.requester === ZERO) return undefined
      const dataset = await dealDataset(dealid.toLowerCase())
      if (dataset === undefined) return undefined
      return { dataset, scheduler: deal.scheduler, volume: deal.volume }
    },
    isDealWorker: async (dealid, worker) => await hub.isDealWorker(dealid, worker),
    hasContributed: async (taskid, worker) => (await hub.contributionOf(taskid, worker)).status >= CONTRIBUTED
  }
}
