import { createHash } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'

/**
 * Sharded provider keys of a category. kad-dht's findProviders stops once it
 * has found k (kBucketSize) providers of a CID, so one category CID lists at
 * most k providers. Each provider therefore also provides one of
 * CATEGORY_SHARDS shard CIDs (picked by its peer id), and a lookup whose
 * category walk comes back with k providers walks the shard CIDs too: the
 * shards together list up to CATEGORY_SHARDS x k providers.
 */

/**
 * Shard CIDs per category. 16 x k (20) = 320 providers reachable, above the
 * lookup's default maxProviders (200) with room for uneven shards: at 200
 * providers a shard holds 12.5 on average, and rarely above 20. More shards
 * would cost a lookup past the cap more parallel walks for nothing below that.
 * Changing it moves providers to other shards: old and new nodes would not
 * find each other's shard entries (the category CID still lists k of them).
 */
export const CATEGORY_SHARDS = 16

/** The shard a peer provides: sha256 of its peer id string, first 4 bytes, mod `shards`; the same on every node. */
export function categoryShardOf (peerId: string, shards: number = CATEGORY_SHARDS): number {
  return createHash('sha256').update(peerId, 'utf8').digest().readUInt32BE(0) % shards
}

/** Raw CID of sha256(`iexec-p2p/<swarm>/category/<n>/shard/<s>`), next to the category's own CID. */
export async function categoryShardCid (swarmId: string, category: number, shard: number): Promise<CID> {
  const digest = await sha256.digest(new TextEncoder().encode(`iexec-p2p/${swarmId}/category/${category}/shard/${shard}`))
  return CID.createV1(raw.code, digest)
}

export interface ProviderWalkOptions {
  findProviders: (cid: CID, options: { signal: AbortSignal }) => AsyncIterable<{ peerId: string }>
  /** the category CID, walked first */
  main: CID
  /** the shard CIDs, walked in parallel only when the main walk reached `cap` */
  shards: CID[]
  /** findProviders' own limit (the network's kBucketSize) */
  cap: number
  maxProviders: number
  /** bounds the main walk */
  signal: AbortSignal
  /** made when the shard walks begin: bounds them (with `signal`) */
  shardSignal: () => AbortSignal
  /** each distinct provider, as soon as found (at most maxProviders calls) */
  onProvider?: (peerId: string) => void
  /** a shard walk failed (other than by its signal): the others go on */
  onShardError?: (err: unknown) => void
}

export interface ProviderWalkResult {
  providers: string[]
  /** whether the shard CIDs were walked */
  sharded: boolean
}

/**
 * Walks the category CID, then, only when that walk hit findProviders' cap,
 * the shard CIDs in parallel; providers are de-duplicated by peer id and the
 * walks stop at maxProviders. A walk cut by its signal keeps what it found;
 * a main walk failing otherwise throws (as a plain lookup would).
 */
export async function walkCategoryProviders (o: ProviderWalkOptions): Promise<ProviderWalkResult> {
  const seen = new Set<string>()
  const full = (): boolean => seen.size >= o.maxProviders
  const add = (peerId: string): void => {
    if (full() || seen.has(peerId)) return
    seen.add(peerId)
    o.onProvider?.(peerId)
  }
  let mainCount = 0
  try {
    for await (const p of o.findProviders(o.main, { signal: o.signal })) {
      mainCount++
      add(p.peerId)
      if (full()) break
    }
  } catch (err) {
    if (!o.signal.aborted) throw err
  }
  if (mainCount < o.cap || full() || o.signal.aborted || o.shards.length === 0) {
    return { providers: [...seen], sharded: false }
  }
  // one walk reaching maxProviders ends the others at once, rather than
  // letting them run to the end of their DHT queries
  const enough = new AbortController()
  const signal = AbortSignal.any([o.signal, o.shardSignal(), enough.signal])
  setMaxListeners(4 * o.shards.length + 16, signal)
  await Promise.all(o.shards.map(async (cid) => {
    try {
      for await (const p of o.findProviders(cid, { signal })) {
        add(p.peerId)
        if (full()) {
          enough.abort()
          break
        }
      }
    } catch (err) {
      if (!signal.aborted) o.onShardError?.(err)
    }
  }))
  return { providers: [...seen], sharded: true }
}
