/**
 * Names that cross the wire and are derived from the swarm id: gossip
 * topics, the DHT protocol id and DHT keys. Two swarms with different ids
 * never share a topic or a DHT, even if their nodes meet.
 */
import { sha256 } from 'multiformats/hashes/sha2'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'

/** The gossip topics of the market (issue 4 defines the messages). */
export type TopicName = 'apporder' | 'datasetorder' | 'requestorder' | 'bid' | 'cancel'

export const TOPIC_NAMES: readonly TopicName[] = ['apporder', 'datasetorder', 'requestorder', 'bid', 'cancel']

/** `/iexec-p2p/<swarm>/<name>/1` */
export function topic (swarmId: string, name: TopicName): string {
  return `/iexec-p2p/${swarmId}/${name}/1`
}

/** Every market topic of a swarm, by name. */
export function swarmTopics (swarmId: string): Record<TopicName, string> {
  const out = {} as Record<TopicName, string>
  for (const n of TOPIC_NAMES) out[n] = topic(swarmId, n)
  return out
}

/** Kademlia protocol id of a swarm: a private prefix keeps its DHT apart from IPFS's and other swarms'. */
export function dhtProtocol (swarmId: string): string {
  return `/iexec-p2p/${swarmId}/kad/1.0.0`
}

/** DHT record namespace of resource adverts (kad-dht validators/selectors are keyed by it). */
export const RESOURCE_NAMESPACE = 'iexec-res'

const utf8 = new TextEncoder()

/** DHT key of a provider's resource record: `/iexec-res/<peerId>`. */
export function resourceKey (peerId: string): Uint8Array {
  return utf8.encode(`/${RESOURCE_NAMESPACE}/${peerId}`)
}

/**
 * Stream protocol on which a provider answers its own signed resource record
 * (one length-prefixed frame of at most RESOURCE_RECORD_MAX_BYTES, then the
 * stream closes; the asker sends nothing). The record is the one the DHT holds
 * under resourceKey, verified the same way, so asking the provider is one
 * round trip where a DHT get walks the key space.
 */
export function resourceRecordProtocol (swarmId: string): string {
  return `/iexec-p2p/${swarmId}/advert/1.0.0`
}

/** The peer id in a resource key, or undefined when the key is not one. */
export function peerIdOfResourceKey (key: Uint8Array): string | undefined {
  const s = new TextDecoder().decode(key)
  const prefix = `/${RESOURCE_NAMESPACE}/`
  if (!s.startsWith(prefix)) return undefined
  const id = s.slice(prefix.length)
  return id.length > 0 && !id.includes('/') ? id : undefined
}

/**
 * CID that the providers of a category announce with `provide`, so a
 * requester finds them with `findProviders`: a raw CID of
 * sha256(`iexec-p2p/<swarm>/category/<n>`).
 */
export async function categoryCid (swarmId: string, category: number): Promise<CID> {
  const digest = await sha256.digest(utf8.encode(`iexec-p2p/${swarmId}/category/${category}`))
  return CID.createV1(raw.code, digest)
}

/**
 * CID that a provider announces with `provide` next to its category's: a
 * node holding only a worker's wallet address (a deal's workers on the hub)
 * finds the worker's peer with one `findProviders` and one advert `get`,
 * instead of fetching the advert of every provider of a category.
 */
export async function nodeAddressCid (swarmId: string, address: string): Promise<CID> {
  const digest = await sha256.digest(utf8.encode(`iexec-p2p/${swarmId}/address/${address.toLowerCase()}`))
  return CID.createV1(raw.code, digest)
}

/**
 * CID that a node owning datasets announces with `provide`, so a worker
 * holding only the owner's wallet address (from the hub's registry) finds
 * the owner's peer with `findProviders`, even when the owner is a
 * requester that publishes no resource advert: a raw CID of
 * sha256(`iexec-p2p/<swarm>/dataset-owner/<lowercase address>`).
 * Anyone may provide it; a wrong peer cannot hurt, as a key it sends does
 * not pass the ciphertext's key check.
 */
export async function datasetOwnerCid (swarmId: string, address: string): Promise<CID> {
  const digest = await sha256.digest(utf8.encode(`iexec-p2p/${swarmId}/dataset-owner/${address.toLowerCase()}`))
  return CID.createV1(raw.code, digest)
}
