/** bound of one dial to a worker that holds a result the node is about to fetch: a live peer answers in milliseconds */
export const RESULT_HOLDER_DIAL_MS = 5_000
/** a worker's dial of an app's owner before fetching the module: short, the fetch asks the DHT anyway */
export const APP_HOLDER_DIAL_MS = 2_000

export interface HolderDialerInit {
  /** this node's Ethereum address: never dialled */
  self: string
  /** an address's peer, from its provider advert */
  resolve: (address: string) => Promise<string | undefined>
  /** libp2p reuses a connection that is already open */
  dial: (peer: string, options: { signal: AbortSignal }) => Promise<void>
  /** an app's owner (it holds the module) */
  appOwner: (app: string) => Promise<string>
  /** the workers of a deal the node knows of (one of them holds each result) */
  dealWorkers: (dealid: string) => Promise<string[]>
}

/**
 * Connects this node to the peers that hold content it is about to fetch, so
 * that bitswap, which asks the connected peers first, gets it at once rather
 * than waiting for the DHT to name a provider. Results are not announced in
 * the DHT (a provide per task was most of a bag's network traffic), so a
 * requester not yet connected to a task's workers finds them here, by their
 * adverts.
 */
export class HolderDialer {
  constructor (private readonly init: HolderDialerInit) {}

  /** Dials an app's owner (unless this node is it); a failed dial throws, bounded by APP_HOLDER_DIAL_MS. */
  async reachAppHolders (app: string): Promise<void> {
    const owner = await this.init.appOwner(app)
    if (this.isSelf(owner)) return
    const peer = await this.init.resolve(owner)
    if (peer !== undefined) await this.init.dial(peer, { signal: AbortSignal.timeout(APP_HOLDER_DIAL_MS) })
  }

  /**
   * Dials the workers of a finalized task's deal. Best effort and bounded:
   * a worker that cannot be reached is skipped, and the fetch still asks
   * the DHT.
   */
  async reachResultHolders (finalized: { dealid?: string }): Promise<void> {
    if (finalized.dealid === undefined) return
    const workers = await this.init.dealWorkers(finalized.dealid)
    await Promise.allSettled(workers.filter((w) => !this.isSelf(w)).map(async (w) => {
      const peer = await this.init.resolve(w)
      if (peer !== undefined) await this.init.dial(peer, { signal: AbortSignal.timeout(RESULT_HOLDER_DIAL_MS) })
    }))
  }

  private isSelf (address: string): boolean {
    return address.toLowerCase() === this.init.self.toLowerCase()
  }
}
