import { isAddress } from 'ethers'

/** A source of (address, peer id) pairs: resource adverts found in the DHT fit. */
export type PeerLookup = () => Promise<Array<{ address: string, peerId: string }>>

/**
 * Maps a worker's Ethereum address to its libp2p peer id, which the scheduler
 * needs to open an exec stream. Pairs come from what the node already
 * verified: `remember` (the market, from a bid whose gossip author signed it,
 * or a worker that answered on the exec protocol) and, on a miss, one lookup
 * (signed resource adverts), bounded by `minLookupIntervalMs` so a deal with
 * an unknown worker does not query the DHT on every tick.
 */
export class PeerResolver {
  private readonly peers = new Map<string, string>()
  private lastLookup = Number.NEGATIVE_INFINITY

  constructor (private readonly lookup?: PeerLookup, private readonly minLookupIntervalMs = 10_000, private readonly clock: () => number = Date.now) {}

  remember (address: string, peerId: string): void {
    if (isAddress(address) && peerId.length > 0) this.peers.set(address.toLowerCase(), peerId)
  }

  /** The peer id of `address`, or undefined when nothing known maps it. */
  async resolve (address: string): Promise<string | undefined> {
    const key = address.toLowerCase()
    const known = this.peers.get(key)
    if (known !== undefined || this.lookup === undefined) return known
    if (this.clock() - this.lastLookup < this.minLookupIntervalMs) return undefined
    this.lastLookup = this.clock()
    try {
      for (const p of await this.lookup()) this.remember(p.address, p.peerId)
    } catch {
      // the DHT is unreachable now: the scheduler tries again on a later tick
    }
    return this.peers.get(key)
  }
}
