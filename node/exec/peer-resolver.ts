import { isAddress } from 'ethers'
import { BoundedCache } from '../common/bounded-cache.js'

/** A worker as its signed advert describes it: its peer id and the tasks it runs at once. */
export interface KnownPeer { peerId: string, cpus?: number }

/**
 * Looks one Ethereum address up in the swarm: the peer whose signed
 * resource advert names it (adverts.ts `findByAddress` fits), or undefined.
 */
export type PeerLookup = (address: string) => Promise<KnownPeer | undefined>

/** Misses remembered at most (a few dozen bytes each): the oldest go first. */
const MAX_MISSES = 10_000

/**
 * Maps a worker's Ethereum address to its libp2p peer id, which the scheduler
 * needs to open an exec stream. Pairs come from what the node already
 * verified: `remember` (this node itself, a worker that answered on the exec
 * protocol) and, on a miss, one lookup of that address (signed resource
 * adverts), at most once per `minLookupIntervalMs` for an address that was
 * not found, so a deal with an unknown worker does not query the DHT on
 * every tick. Concurrent resolutions of one address share one lookup.
 */
export class PeerResolver {
  private readonly peers = new Map<string, KnownPeer>()
  private readonly misses = new BoundedCache<string, number>(MAX_MISSES)
  private readonly inFlight = new Map<string, Promise<string | undefined>>()

  constructor (private readonly lookup?: PeerLookup, private readonly minLookupIntervalMs = 10_000, private readonly clock: () => number = Date.now) {}

  remember (address: string, peerId: string, cpus?: number): void {
    if (!isAddress(address) || peerId.length === 0) return
    const key = address.toLowerCase()
    this.peers.set(key, cpus !== undefined ? { peerId, cpus } : { peerId })
    this.misses.delete(key)
  }

  /** The advertised capacity of a peer already resolved (no lookup of its own). */
  capacity (address: string): number | undefined {
    return this.peers.get(address.toLowerCase())?.cpus
  }

  /** The peer id of `address`, or undefined when nothing known maps it. */
  async resolve (address: string): Promise<string | undefined> {
    const key = address.toLowerCase()
    const known = this.peers.get(key)?.peerId
    if (known !== undefined || this.lookup === undefined || !isAddress(address)) return known
    const missed = this.misses.get(key)
    if (missed !== undefined && this.clock() - missed < this.minLookupIntervalMs) return undefined
    const running = this.inFlight.get(key)
    if (running !== undefined) return await running
    const lookup = this.lookup
    const p = (async () => {
      let peer: KnownPeer | undefined
      try {
        peer = await lookup(address)
      } catch {
        // the DHT is unreachable now: the scheduler tries again on a later tick
      }
      if (peer !== undefined) {
        this.remember(address, peer.peerId, peer.cpus)
      } else {
        this.misses.set(key, this.clock())
      }
      return peer?.peerId
    })().finally(() => { this.inFlight.delete(key) })
    this.inFlight.set(key, p)
    return await p
  }
}
