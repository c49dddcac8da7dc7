/**
 * The dataset routes of the local API (the CLI's `dataset publish | list |
 * show | unpublish`):
 *
 * - `POST /v1/datasets` `{ path, apps | anyApp, requesters?, tags?, volume?,
 *   name?, price?, encrypt?, publishId? }`: the
 *   path is on the node's machine (the API listens on 127.0.0.1 only). A file
 *   or a folder is encrypted (streaming, to a temp file in the data dir),
 *   added to Helia, pinned, provided, registered on the hub
 *   (`registerDataset(name, cid, sha256 of the plaintext)`), its key filed
 *   under the dataset's address, and only then a DatasetOrder is signed and
 *   gossiped: one order per allowed (app, requester) pair, since the hub's
 *   restriction fields hold one address each (market/order-policy.ts). The
 *   owner must choose: `apps` (addresses or unambiguous names) or
 *   `anyApp: true`; neither is DATASET_APPS_REQUIRED, before any work.
 *   Answers `{ address, cid, checksum, orderHash, orderHashes, policy, ... }`.
 * - `GET /v1/datasets/publish/:publishId`: the phase of a publish in
 *   progress (the CLI polls it to show progress).
 * - `GET /v1/datasets`: this node's datasets with their live order hashes.
 * - `GET /v1/datasets/:address`: any dataset of the hub and its live orders.
 * - `POST /v1/datasets/:address/unpublish`: cancels this node's orders of
 *   the dataset on chain, gossips the cancels, removes the key.
 */
import { createReadStream } from 'node:fs'
import { mkdir, rm, stat } from 'node:fs/promises'
import { basename, isAbsolute, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { getAddress, isAddress } from 'ethers'
import { hubEventsNamed } from '../../chain/index.js'
import type { CID } from 'multiformats/cid'
import { HttpError } from '../errors.js'
import { bad, bodyOf } from '../route-helpers.js'
import type { ApiRequest, ApiRoute } from '../router.js'
import { isIexecError } from '../../common/errors.js'
import type { MarketService } from '../../market/index.js'
import { addressList, resolveAllowedApps, restrictionPairs, tagList, volumeOf } from '../../market/order-policy.js'
import { ZERO_ADDRESS, hashOrder, signOrder } from '../../../protocols/eip712.js'
import type { DatasetOrder } from '../../../protocols/eip712.js'
import { orderMessage, saltWithExpiry } from '../../../protocols/market.js'
import { packFolder } from '../../storage/archive.js'
import { generateContentKey, hashingTap } from '../../storage/chunked-cipher.js'
import { addFile, addStream, provideContent } from '../../storage/content.js'
import type { ContentHelia } from '../../storage/content.js'
import { encryptDataset } from '../../storage/dataset-cipher.js'
import type { DatasetPolicy, DatasetRecord, DatasetStore, SignedDatasetOrderRecord } from '../../storage/dataset-store.js'
import { StorageError } from '../../storage/errors.js'
import { DatasetKey } from '../../storage/key-store.js'
import type { KeyStore } from '../../storage/key-store.js'
import { DATASET_DEFAULTS } from '../../storage/options.js'

/** The hub's cap on a price per task (contracts-abi/README.md). */
const MAX_PRICE = (1n << 48n) - 1n
/** Publishes whose phase is remembered for polling; the oldest finished ones go first. */
const MAX_TRACKED_PUBLISHES = 64

/** Phases of a publish, in order. */
export type PublishPhase = 'checking' | 'encrypting' | 'adding' | 'providing' | 'registering' | 'storing-key' | 'signing' | 'done' | 'failed'

/** What `GET /v1/datasets/publish/:id` answers. */
export interface PublishProgress {
  publishId: string
  phase: PublishPhase
  /** plaintext bytes encrypted, or bytes added, so far in this phase */
  bytes: number
  /** plaintext size when known (a file), else undefined */
  totalBytes?: number
  error?: { code: string, message: string }
}

/** A dataset as `dataset list` and `dataset publish --json` show it. */
export interface DatasetView {
  address: string
  name: string
  cid: string
  checksum: string
  encrypted: boolean
  price: string
  bytes: number
  kind: 'file' | 'folder'
  published: boolean
  /** live orders of this dataset signed by this node */
  orders: string[]
  /** who the owner allows (absent for datasets published before owners chose) */
  policy?: DatasetPolicy
}

/** What the routes need from the node. */
export interface DatasetRoutesDeps {
  market: () => MarketService | undefined
  helia: () => ContentHelia & { pins: { add: (cid: CID, options?: { signal?: AbortSignal }) => AsyncGenerator<unknown>, isPinned: (cid: CID) => Promise<boolean> } }
  keyStore: KeyStore
  store: DatasetStore
  /** folder for the temporary ciphertext (in the data dir: same disk as the blockstore) */
  tmpDir: string
  /** called after a publish: keep the owner findable (provide its owner CID) */
  announce: () => Promise<unknown>
  log?: (msg: string, context?: Record<string, unknown>) => void
}

/** `apps`: a list of app addresses or names (names are resolved on the hub later). */
function addressOrNameList (v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 32 || v.some((x) => typeof x !== 'string' || x.length === 0 || x.length > 64 || /\s/.test(x))) {
    throw bad('apps', 'must be a list of 1-32 app addresses or names (1-64 characters without spaces)')
  }
  return [...new Set(v as string[])]
}

/** The owner's choice in a body (`apps` | `anyApp`, `requesters`, `tags`, `volume`), checked and resolved on the hub. */
async function policyOf (m: MarketService, b: Record<string, unknown>): Promise<{ anyApp: boolean, tags: { names: string[], tag: string }, volume: bigint, pairs: Array<[string, string]>, policy: DatasetPolicy }> {
  if (b.anyApp !== undefined && typeof b.anyApp !== 'boolean') throw bad('anyApp', 'must be a boolean')
  const anyApp = b.anyApp === true
  if (b.apps !== undefined && anyApp) throw bad('apps', 'and anyApp exclude each other')
  if (b.apps === undefined && !anyApp) {
    throw new HttpError(400, 'DATASET_APPS_REQUIRED', 'choose which apps may read the dataset: apps (addresses or names: only those apps) or anyApp (any app, including one that copies the data to its result)', { field: 'apps' })
  }
  const appRefs = b.apps === undefined ? undefined : addressOrNameList(b.apps)
  const requesters = addressList(b.requesters, 'requesters') ?? []
  const tags = tagList(b.tags)
  const volume = volumeOf(b.volume, DATASET_DEFAULTS.orderVolume)
  const apps = appRefs === undefined ? [] : await resolveAllowedApps(m, appRefs)
  const pairs = restrictionPairs(apps, requesters)
  return { anyApp, tags, volume, pairs, policy: { apps: anyApp ? 'any' : apps, requesters, tags: tags.names, volume: volume.toString() } }
}

function addressParam (req: ApiRequest): string {
  const a = req.params.address ?? ''
  if (!isAddress(a)) throw new HttpError(400, 'API_BAD_REQUEST', `a dataset address is 0x and 40 hex digits, got "${String(req.params.address).slice(0, 80)}"`, { field: 'address' })
  return getAddress(a)
}

/** Maps module and chain errors to HTTP statuses, keeping their codes. */
function httpError (err: unknown): unknown {
  if (err instanceof HttpError || !isIexecError(err)) return err
  const status: Record<string, number> = {
    DATASET_PATH_INVALID: 400,
    STORAGE_INVALID_ARGUMENT: 400,
    STORAGE_ARCHIVE_UNSUPPORTED_ENTRY: 400,
    STORAGE_ARCHIVE_NAME_TOO_LONG: 400,
    STORAGE_ARCHIVE_FILE_CHANGED: 409,
    DATASET_NOT_FOUND: 404,
    DATASET_NOT_OWNED: 403,
    DATASET_UNPUBLISHED: 409,
    CONTRACT_REVERT: 422,
    RPC_UNREACHABLE: 502,
    TX_TIMEOUT: 504
  }
  const s = status[err.code]
  if (s === undefined) return err
  return new HttpError(s, err.code, err.message, err.details)
}

function orderRecord (hash: string, o: DatasetOrder & { sign: string }): SignedDatasetOrderRecord {
  return {
    orderHash: hash,
    dataset: o.dataset,
    datasetprice: o.datasetprice.toString(),
    volume: o.volume.toString(),
    tag: o.tag,
    apprestrict: o.apprestrict,
    workerpoolrestrict: o.workerpoolrestrict,
    requesterrestrict: o.requesterrestrict,
    salt: o.salt,
    sign: o.sign
  }
}

function orderOf (r: SignedDatasetOrderRecord): DatasetOrder & { sign: string } {
  return {
    dataset: r.dataset,
    datasetprice: BigInt(r.datasetprice),
    volume: BigInt(r.volume),
    tag: r.tag,
    apprestrict: r.apprestrict,
    workerpoolrestrict: r.workerpoolrestrict,
    requesterrestrict: r.requesterrestrict,
    salt: r.salt,
    sign: r.sign
  }
}

/**
 * The dataset routes. Without a started market (no chain settings) every
 * route but the progress poll answers 503 CHAIN_NOT_CONFIGURED.
 */
export function datasetRoutes (deps: DatasetRoutesDeps): ApiRoute[] {
  const progress = new Map<string, PublishProgress>()
  const need = (): MarketService => {
    const m = deps.market()
    if (m === undefined || !m.started) {
      throw new HttpError(503, 'CHAIN_NOT_CONFIGURED', 'this node has no chain settings (config.json chain.rpc and chain.hub): datasets cannot be registered')
    }
    return m
  }
  const wrap = (fn: (m: MarketService, req: ApiRequest) => Promise<unknown>) => async (req: ApiRequest): Promise<unknown> => {
    try {
      return await fn(need(), req)
    } catch (err) {
      throw httpError(err)
    }
  }

  const track = (id: string, p: Omit<PublishProgress, 'publishId'>): void => {
    if (!progress.has(id) && progress.size >= MAX_TRACKED_PUBLISHES) {
      for (const [k, v] of progress) {
        if (v.phase === 'done' || v.phase === 'failed') { progress.delete(k); break }
      }
      // every tracked publish still running: forget the oldest rather than grow
      if (progress.size >= MAX_TRACKED_PUBLISHES) progress.delete(progress.keys().next().value as string)
    }
    progress.set(id, { publishId: id, ...p })
  }

  /** Live orders of a dataset in this node's book, optionally only those `signer` signed. */
  const liveOrders = async (m: MarketService, dataset: string, signer?: string): Promise<Array<{ orderHash: string, signer: string, price: string, remaining: string }>> => {
    const entries = await m.book.query({ type: 'datasetorder', dataset })
    return entries
      .filter((e) => signer === undefined || e.signer.toLowerCase() === signer.toLowerCase())
      .map((e) => ({ orderHash: e.hash, signer: e.signer, price: (e.message.order as DatasetOrder).datasetprice.toString(), remaining: e.remaining.toString() }))
  }

  const view = async (m: MarketService, r: DatasetRecord): Promise<DatasetView> => ({
    address: r.address,
    name: r.name,
    cid: r.cid,
    checksum: r.checksum,
    encrypted: r.encrypted,
    price: r.price,
    bytes: r.bytes,
    kind: r.kind,
    published: r.unpublishedAt === undefined,
    orders: (await liveOrders(m, r.address, m.address)).map((o) => o.orderHash),
    ...(r.policy !== undefined ? { policy: r.policy } : {})
  })

  const publish = async (m: MarketService, req: ApiRequest): Promise<unknown> => {
    const b = bodyOf(req)
    if (typeof b.path !== 'string' || b.path.length === 0 || b.path.length > 4096) throw bad('path', 'must be a non-empty string')
    if (!isAbsolute(b.path)) throw bad('path', 'must be absolute (it is read on the node\'s machine)')
    const path = b.path
    if (b.name !== undefined && (typeof b.name !== 'string' || b.name.length === 0 || b.name.length > 64)) throw bad('name', 'must be a string of 1-64 characters')
    if (b.price !== undefined && (typeof b.price !== 'string' || !/^(0|[1-9][0-9]{0,30})$/.test(b.price))) throw bad('price', 'must be a decimal string of nRLC')
    const price = BigInt((b.price as string | undefined) ?? '0')
    if (price > MAX_PRICE) throw bad('price', `must be at most ${MAX_PRICE} nRLC`)
    if (b.encrypt !== undefined && typeof b.encrypt !== 'boolean') throw bad('encrypt', 'must be a boolean')
    const encrypt = b.encrypt !== false
    if (b.publishId !== undefined && (typeof b.publishId !== 'string' || !/^[0-9a-f]{8,64}$/.test(b.publishId))) throw bad('publishId', 'must be 8-64 lowercase hex digits')
    const id = (b.publishId as string | undefined) ?? randomBytes(8).toString('hex')
    // who may use it: checked (apps resolved on the hub) before any work, so bad input changes nothing
    const { anyApp, tags, volume, pairs, policy } = await policyOf(m, b)

    const st = await stat(path).catch((err: unknown) => {
      throw new StorageError('DATASET_PATH_INVALID', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { path })
    })
    if (!st.isFile() && !st.isDirectory()) throw new StorageError('DATASET_PATH_INVALID', `${path} is neither a file nor a folder`, { path })
    const kind: 'file' | 'folder' = st.isFile() ? 'file' : 'folder'
    if (kind === 'file') {
      // readable now, not only listed: a clear error before any work
      await new Promise<void>((resolve, reject) => {
        const s = createReadStream(path, { start: 0, end: 0 })
        s.on('error', (err) => { reject(new StorageError('DATASET_PATH_INVALID', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, { path })) })
        s.on('close', () => { resolve() })
        s.resume()
      })
    }
    const name = (b.name as string | undefined) ?? (basename(path).slice(0, 64) || 'dataset')
    const totalBytes = kind === 'file' ? st.size : undefined
    const phase = (p: PublishPhase, bytes = 0): void => { track(id, { phase: p, bytes, ...(totalBytes !== undefined ? { totalBytes } : {}) }) }
    const h = deps.helia()
    let key: Uint8Array | undefined
    const tmp = join(deps.tmpDir, `dataset-${id}-${randomBytes(4).toString('hex')}.enc`)
    try {
      phase('checking')
      let cid: CID
      let checksum: string
      let plaintextBytes: number
      if (encrypt) {
        key = generateContentKey()
        await mkdir(deps.tmpDir, { recursive: true, mode: 0o700 })
        phase('encrypting')
        const enc = await encryptDataset(path, tmp, key, { onProgress: (n) => { phase('encrypting', n) } })
        checksum = enc.checksum
        plaintextBytes = enc.plaintextBytes
        phase('adding')
        cid = (await addFile(h, tmp, { onProgress: (n) => { phase('adding', n) } })).cid
      } else {
        phase('adding')
        const tap = hashingTap(kind === 'file' ? createReadStream(path, { highWaterMark: 64 * 1024 }) : packFolder(path))
        cid = (await addStream(h, tap.stream, { onProgress: (n) => { phase('adding', n) } })).cid
        checksum = tap.digest()
        plaintextBytes = tap.bytes()
      }
      // the owner's own copy: pinned, so no collection (nor the worker's retention sweep) ever drops it
      if (!await h.pins.isPinned(cid)) for await (const _ of h.pins.add(cid, { signal: AbortSignal.timeout(60_000) })) { /* walks local blocks */ }
      phase('providing')
      // alone (or before the DHT has peers) a provide cannot reach anyone: bitswap still serves direct asks
      await provideContent(h, cid, { signal: AbortSignal.timeout(DATASET_DEFAULTS.provideTimeoutMs) }).catch(() => false)
      phase('registering')
      const tx = await m.chain.sender.send(m.hub.registerDataset.populateTransaction(name, cid.toString(), checksum))
      let address: string | undefined
      for (const e of hubEventsNamed(tx.receipt, m.domain.verifyingContract, 'DatasetRegistered')) address = getAddress(e.args.dataset)
      if (address === undefined) throw new HttpError(502, 'DATASET_NOT_FOUND', `registerDataset ${tx.hash} emitted no DatasetRegistered`)
      const record: DatasetRecord = {
        address, name, cid: cid.toString(), checksum, encrypted: encrypt, price: price.toString(), bytes: plaintextBytes, kind, createdAt: Date.now(), orders: [], policy
      }
      if (key !== undefined) {
        phase('storing-key')
        // the key is filed before any order exists: a worker of the first deal finds it
        await deps.keyStore.put(address, new DatasetKey(key))
      }
      await deps.store.put(record)
      phase('signing')
      const messages = []
      for (const [apprestrict, requesterrestrict] of pairs) {
        const signed = await signOrder(m.signer, m.domain, 'DatasetOrder', {
          dataset: address, datasetprice: price, volume, tag: tags.tag,
          apprestrict, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict,
          // no expiry: the order lives until consumed or the dataset is unpublished
          salt: saltWithExpiry(0)
        })
        const { sign, ...order } = signed
        record.orders.push(orderRecord(hashOrder(m.domain, 'DatasetOrder', order).toLowerCase(), signed))
        messages.push(orderMessage('datasetorder', m.domain, order, sign))
      }
      // recorded before they are gossiped: unpublish can cancel them even if the node stops right after
      await deps.store.put(record)
      for (const msg of messages) await m.publishOwn('datasetorder', msg)
      const hash = record.orders[0].orderHash
      await deps.announce()
      phase('done', plaintextBytes)
      deps.log?.('dataset published', { address, cid: record.cid, encrypted: encrypt, bytes: plaintextBytes, orders: record.orders.length, anyApp })
      return { address, cid: record.cid, checksum, orderHash: hash, orderHashes: record.orders.map((o) => o.orderHash), policy, name, encrypted: encrypt, price: record.price, bytes: plaintextBytes, kind, publishId: id }
    } catch (err) {
      track(id, { phase: 'failed', bytes: 0, error: { code: isIexecError(err) ? err.code : 'INTERNAL', message: err instanceof Error ? err.message : String(err) } })
      deps.log?.('dataset publish failed', { path, code: isIexecError(err) ? err.code : 'INTERNAL' })
      throw err
    } finally {
      key?.fill(0)
      await rm(tmp, { force: true })
    }
  }

  const unpublish = async (m: MarketService, req: ApiRequest): Promise<unknown> => {
    const address = addressParam(req)
    const asset = await m.hub.datasetOf(address)
    if (asset.owner === ZERO_ADDRESS) throw new HttpError(404, 'DATASET_NOT_FOUND', `no dataset ${address} on the hub`, { address })
    if (asset.owner.toLowerCase() !== m.address.toLowerCase()) throw new StorageError('DATASET_NOT_OWNED', `dataset ${address} belongs to ${getAddress(asset.owner)}, not to this node`, { address })
    const record = await deps.store.get(address)
    // every order this node signed for it: the ones it recorded, and any its book holds
    const orders = new Map<string, DatasetOrder & { sign: string }>()
    for (const o of record?.orders ?? []) orders.set(o.orderHash.toLowerCase(), orderOf(o))
    for (const e of await m.book.query({ type: 'datasetorder', dataset: address })) {
      if (e.signer.toLowerCase() === m.address.toLowerCase()) orders.set(e.hash.toLowerCase(), { ...(e.message.order as DatasetOrder), sign: e.message.sign })
    }
    const cancelled: Array<{ orderHash: string, txHash: string }> = []
    const alreadyClosed: string[] = []
    for (const [hash, o] of orders) {
      // a fully consumed or already cancelled order needs no transaction
      if (await m.hub.consumedOf(hash) >= o.volume) {
        alreadyClosed.push(hash)
        await m.book.drop(hash, 'cancelled').catch(() => {})
        continue
      }
      const tx = await m.chain.sender.send(m.hub.cancelDatasetOrder.populateTransaction(o))
      const { sign: _sign, ...order } = o
      await m.gossipCancel('DatasetOrder', order, hash)
      cancelled.push({ orderHash: hash, txHash: tx.hash })
    }
    // after the cancels: a worker of a deal matched a moment ago could still get it until now
    const keyRemoved = await deps.keyStore.delete(address)
    if (record !== undefined) await deps.store.put({ ...record, unpublishedAt: record.unpublishedAt ?? Date.now() })
    deps.log?.('dataset unpublished', { address, cancelled: cancelled.length, keyRemoved })
    return { address, cancelled, alreadyClosed, keyRemoved }
  }


  /**
   * A new choice of who may use a dataset (`dataset allow | deny`): the new
   * orders are signed, recorded and gossiped first, then every live order
   * of the old choice is cancelled on chain. The old orders stay recorded:
   * a deal made before the cancel consumed one, and its workers still get
   * the key.
   */
  const setPolicy = async (m: MarketService, req: ApiRequest): Promise<unknown> => {
    const address = addressParam(req)
    const record = await deps.store.get(address)
    if (record === undefined) throw new StorageError('DATASET_NOT_OWNED', `dataset ${address} was not published by this node`, { address })
    if (record.unpublishedAt !== undefined) throw new HttpError(409, 'DATASET_UNPUBLISHED', `dataset ${address} is unpublished: publish it again instead`, { address })
    const { tags, volume, pairs, policy } = await policyOf(m, bodyOf(req))
    const old = [...record.orders]
    const messages = []
    const fresh: string[] = []
    for (const [apprestrict, requesterrestrict] of pairs) {
      const signed = await signOrder(m.signer, m.domain, 'DatasetOrder', {
        dataset: record.address, datasetprice: BigInt(record.price), volume, tag: tags.tag,
        apprestrict, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict, salt: saltWithExpiry(0)
      })
      const { sign, ...order } = signed
      const hash = hashOrder(m.domain, 'DatasetOrder', order).toLowerCase()
      record.orders.push(orderRecord(hash, signed))
      fresh.push(hash)
      messages.push(orderMessage('datasetorder', m.domain, order, sign))
    }
    record.policy = policy
    await deps.store.put(record)
    for (const msg of messages) await m.publishOwn('datasetorder', msg)
    const cancelled: Array<{ orderHash: string, txHash: string }> = []
    for (const r of old) {
      const o = orderOf(r)
      if (await m.hub.consumedOf(r.orderHash) >= o.volume) continue
      const tx = await m.chain.sender.send(m.hub.cancelDatasetOrder.populateTransaction(o))
      const { sign: _sign, ...order } = o
      await m.gossipCancel('DatasetOrder', order, r.orderHash)
      cancelled.push({ orderHash: r.orderHash, txHash: tx.hash })
    }
    deps.log?.('dataset policy changed', { address, orders: fresh.length, cancelled: cancelled.length })
    return { address, orderHashes: fresh, cancelled, policy }
  }

  return [
    { method: 'POST', path: '/v1/datasets', handler: wrap(publish) },
    { method: 'POST', path: '/v1/datasets/:address/policy', handler: wrap(setPolicy) },
    {
      method: 'GET',
      path: '/v1/datasets/publish/:publishId',
      handler: async (req) => {
        const p = progress.get(req.params.publishId ?? '')
        if (p === undefined) throw new HttpError(404, 'PUBLISH_NOT_FOUND', `no publish ${String(req.params.publishId).slice(0, 80)} in progress or recently done`)
        return p
      }
    },
    {
      method: 'GET',
      path: '/v1/datasets',
      handler: wrap(async (m) => ({ datasets: await Promise.all((await deps.store.list()).map(async (r) => await view(m, r))) }))
    },
    {
      method: 'GET',
      path: '/v1/datasets/:address',
      handler: wrap(async (m, req) => {
        const address = addressParam(req)
        const asset = await m.hub.datasetOf(address)
        if (asset.owner === ZERO_ADDRESS) throw new HttpError(404, 'DATASET_NOT_FOUND', `no dataset ${address} on the hub`, { address })
        const mine = await deps.store.get(address)
        return {
          address,
          owner: getAddress(asset.owner),
          name: asset.name,
          cid: asset.cid,
          checksum: asset.checksum,
          mine: mine !== undefined,
          ...(mine !== undefined ? { encrypted: mine.encrypted, published: mine.unpublishedAt === undefined, bytes: mine.bytes, kind: mine.kind } : {}),
          orders: await liveOrders(m, address)
        }
      })
    },
    { method: 'POST', path: '/v1/datasets/:address/unpublish', handler: wrap(unpublish) }
  ]
}
