/**
 * Finding a dataset owner's node from its wallet address, both sides.
 *
 * The hub's registry gives a worker the owner's address, not its peer id.
 * Providers' signed resource adverts map addresses to peers, but a data
 * owner may be a requester that advertises nothing. So every node that owns
 * live datasets `provide`s a CID derived from (swarm, address)
 * (`datasetOwnerCid`), on start, after each publish and on its advert
 * interval; a worker looks the address up with `findProviders`.
 *
 * Anyone can provide any CID: a peer answering for an address is only a
 * candidate. The worker checks each released key against the ciphertext's
 * header (the key check of chunked-cipher.ts) and moves on to the next
 * candidate on a refusal, a broken exchange or a key that does not fit.
 */
import { setMaxListeners } from 'node:events'
import type { CID } from 'multiformats/cid'
import { datasetOwnerCid } from '../../protocols/topics.js'
import { isIexecError } from '../common/errors.js'
import { CIPHER_HEADER_BYTES, contentKindOf, decryptStream } from './chunked-cipher.js'
import { catContent } from './content.js'
import type { ContentHelia } from './content.js'
import { StorageError } from './errors.js'
import { DATASET_DEFAULTS } from './options.js'

/** What the announcer and the lookup use of the network. */
export interface OwnerNetwork {
  provide: (cid: CID, options?: { signal?: AbortSignal }) => Promise<void>
  findProviders: (cid: CID, options?: { signal?: AbortSignal }) => AsyncIterable<{ peerId: string }>
  dhtPeerCount: () => number
  waitForDhtPeers: (min: number, timeoutMs: number, signal?: AbortSignal) => Promise<boolean>
}

/** Options of {@link DatasetOwnerAnnouncer}. */
export interface DatasetOwnerAnnouncerInit {
  network: OwnerNetwork
  swarmId: string
  /** this node's wallet address */
  address: string
  /** whether this node owns live datasets now (nothing is announced otherwise) */
  ownsDatasets: () => Promise<boolean>
  /** refresh period (the node's advert interval: provider records expire) */
  intervalMs: number
  provideTimeoutMs?: number
  log?: (msg: string, context?: Record<string, unknown>) => void
}

/**
 * Keeps the owner CID provided while this node owns live datasets.
 *
 * @example
 * ```ts
 * const announcer = new DatasetOwnerAnnouncer({ network, swarmId, address: wallet.address, ownsDatasets: () => store.hasLive(), intervalMs: 600_000 })
 * announcer.start()
 * await announcer.announceNow() // after a publish
 * await announcer.stop()
 * ```
 */
export class DatasetOwnerAnnouncer {
  private timer?: NodeJS.Timeout
  private inFlight?: Promise<boolean>
  private readonly abort = new AbortController()
  private running = false
  /** when the last successful announcement reached at least one DHT peer */
  lastAnnouncedAt?: number

  constructor (private readonly init: DatasetOwnerAnnouncerInit) {}

  /** Announces once the DHT has a peer (bounded wait), then every interval. */
  start (): void {
    if (this.running) return
    this.running = true
    this.inFlight = (async () => {
      // a provide with an empty routing table reaches nobody: wait (bounded) for a first peer
      await this.init.network.waitForDhtPeers(1, 10_000, this.abort.signal).catch(() => false)
      return await this.announceIfOwner()
    })().finally(() => { this.inFlight = undefined })
    this.timer = setInterval(() => {
      if (this.inFlight !== undefined) return
      this.inFlight = this.announceIfOwner().finally(() => { this.inFlight = undefined })
    }, this.init.intervalMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    this.running = false
    this.abort.abort()
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    await this.inFlight?.catch(() => false)
  }

  /** Provides the owner CID now (after a publish); false when it failed or reached no peer. Never throws. */
  async announceNow (): Promise<boolean> {
    const o = this.init
    if (this.abort.signal.aborted) return false
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(o.provideTimeoutMs ?? DATASET_DEFAULTS.provideTimeoutMs)])
    // a provide attaches a listener per query path to the one signal
    setMaxListeners(64, signal)
    try {
      const alone = o.network.dhtPeerCount() === 0
      await o.network.provide(await datasetOwnerCid(o.swarmId, o.address), { signal })
      if (!alone) this.lastAnnouncedAt = Date.now()
      o.log?.('dataset owner announced', { alone })
      return !alone
    } catch (err) {
      o.log?.('dataset owner announcement failed', { error: err instanceof Error ? err.message : String(err) })
      return false
    }
  }

  private async announceIfOwner (): Promise<boolean> {
    if (!this.running) return false
    let owns: boolean
    try {
      owns = await this.init.ownsDatasets()
    } catch {
      return false
    }
    return owns ? await this.announceNow() : false
  }
}

/**
 * Peers that answer for an owner's address: `known` first (a resolver over
 * resource adverts), then the providers of the owner CID; deduplicated,
 * bounded in number and time, this node itself excluded.
 */
export async function * ownerCandidates (opts: {
  network: OwnerNetwork
  swarmId: string
  owner: string
  selfPeerId: string
  known?: () => Promise<string | undefined>
  timeoutMs?: number
  maxCandidates?: number
}): AsyncGenerator<string> {
  const max = opts.maxCandidates ?? DATASET_DEFAULTS.maxOwnerCandidates
  const seen = new Set<string>([opts.selfPeerId])
  let count = 0
  const first = await opts.known?.().catch(() => undefined)
  if (first !== undefined && !seen.has(first)) {
    seen.add(first)
    count++
    yield first
  }
  const signal = AbortSignal.timeout(opts.timeoutMs ?? DATASET_DEFAULTS.ownerLookupTimeoutMs)
  setMaxListeners(64, signal)
  const cid = await datasetOwnerCid(opts.swarmId, opts.owner)
  try {
    for await (const p of opts.network.findProviders(cid, { signal })) {
      if (count >= max) return
      if (seen.has(p.peerId)) continue
      seen.add(p.peerId)
      count++
      yield p.peerId
    }
  } catch {
    // a lookup that timed out or found nobody ends the candidates; the caller says why
  }
}

/**
 * Whether `key` encrypted the ciphertext whose first bytes are `header`
 * (the header's key check): true, false, or STORAGE_BAD_HEADER when the
 * header is not one of ours.
 */
export async function keyFitsHeader (header: Uint8Array, key: Uint8Array): Promise<boolean> {
  const head = header.subarray(0, CIPHER_HEADER_BYTES)
  try {
    // only the header is given: a right key gets past the key check and then finds the stream truncated
    for await (const _ of decryptStream((async function * () { yield head })(), key)) break
    return true
  } catch (err) {
    if (isIexecError(err, 'STORAGE_WRONG_KEY')) return false
    if (isIexecError(err, 'STORAGE_TRUNCATED')) return true
    throw err
  }
}

/** The first bytes (the cipher header) of a content, read through Helia (local blocks after a fetch). */
export async function ciphertextHeader (helia: ContentHelia, cid: string, timeoutMs = 30_000): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  let n = 0
  for await (const chunk of catContent(helia, cid, { timeoutMs })) {
    parts.push(chunk)
    n += chunk.byteLength
    if (n >= CIPHER_HEADER_BYTES) break
  }
  return Buffer.concat(parts).subarray(0, CIPHER_HEADER_BYTES)
}

/** One failed attempt, for the final error's details. */
export interface OwnerAttempt {
  peer: string
  code: string
}

/**
 * Gets a dataset key from the first candidate that releases one which fits
 * the ciphertext. Tries the next on a refusal, a broken exchange or a
 * wrong key. Fails with KEY_RELEASE_REFUSED when a candidate refused (its
 * code in `details.code`; all attempts in `details.attempts`),
 * DATASET_KEY_MISMATCH when keys came but none fitted, otherwise
 * DATASET_OWNER_UNREACHABLE.
 */
export async function fetchKeyFromOwner (opts: {
  owner: string
  candidates: AsyncIterable<string>
  fetchFrom: (peer: string) => Promise<Uint8Array>
  /** the first bytes of the dataset's ciphertext (the worker fetched it already) */
  header: () => Promise<Uint8Array>
  log?: (msg: string, context?: Record<string, unknown>) => void
}): Promise<Uint8Array> {
  const attempts: OwnerAttempt[] = []
  let refusal: StorageError | undefined
  // read first: content that is not ours to decrypt needs no owner at all
  const header = await opts.header()
  try {
    contentKindOf(header)
  } catch (err) {
    throw new StorageError('STORAGE_BAD_HEADER', 'the dataset is not encrypted in the iexec-p2p format (published with --no-encrypt?): there is no key to ask its owner for', { owner: opts.owner }, { cause: err })
  }
  for await (const peer of opts.candidates) {
    let key: Uint8Array
    try {
      key = await opts.fetchFrom(peer)
    } catch (err) {
      const code = isIexecError(err) ? err.code : 'ERROR'
      attempts.push({ peer, code: isIexecError(err, 'KEY_RELEASE_REFUSED') ? String(err.details?.code ?? code) : code })
      if (isIexecError(err, 'KEY_RELEASE_REFUSED') && refusal === undefined) refusal = err as StorageError
      opts.log?.('dataset key attempt failed', { peer, code })
      continue
    }
    if (await keyFitsHeader(header, key)) return key
    key.fill(0)
    attempts.push({ peer, code: 'DATASET_KEY_MISMATCH' })
    opts.log?.('dataset key does not fit the ciphertext', { peer })
  }
  if (refusal !== undefined) {
    throw new StorageError('KEY_RELEASE_REFUSED', refusal.message, { ...refusal.details, owner: opts.owner, attempts })
  }
  if (attempts.some((a) => a.code === 'DATASET_KEY_MISMATCH')) {
    throw new StorageError('DATASET_KEY_MISMATCH', `no peer answering for ${opts.owner} released a key that opens the dataset`, { owner: opts.owner, attempts })
  }
  throw new StorageError('DATASET_OWNER_UNREACHABLE', attempts.length === 0
    ? `no peer found for dataset owner ${opts.owner} (no advert, no provider of its owner CID)`
    : `no peer answering for dataset owner ${opts.owner} completed a key release`, { owner: opts.owner, attempts })
}
