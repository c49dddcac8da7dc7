/**
 * What this node knows of the datasets it published, in its level store
 * (prefix `dataset`), so `dataset list` survives restarts and unpublish can
 * cancel every order the node signed, even one its orderbook dropped.
 * Keys are never here: they live in the key store (key-store.ts).
 */
import { Repository, jsonCodec } from '../db/index.js'
import type { DbController } from '../db/index.js'

/** A dataset order this node signed, as the hub's cancel call takes it (amounts as decimal strings). */
export interface SignedDatasetOrderRecord {
  orderHash: string
  dataset: string
  datasetprice: string
  volume: string
  tag: string
  apprestrict: string
  workerpoolrestrict: string
  requesterrestrict: string
  salt: string
  sign: string
}

/** Who the owner allows to use a dataset (what its orders restrict). */
export interface DatasetPolicy {
  /** the allowed apps (addresses), or 'any' (published with --any-app) */
  apps: string[] | 'any'
  /** the allowed requesters; empty: any */
  requesters: string[]
  /** the tags every deal must accept (named tags) */
  tags: string[]
  /** uses each order allows, decimal string */
  volume: string
}

/** One published dataset. */
export interface DatasetRecord {
  /** registry address on the hub (checksummed) */
  address: string
  name: string
  cid: string
  /** sha256 of the plaintext (the file's bytes, or the folder's archive), 0x hex */
  checksum: string
  encrypted: boolean
  /** price per task, nRLC, decimal string */
  price: string
  /** plaintext bytes */
  bytes: number
  /** file or folder */
  kind: 'file' | 'folder'
  createdAt: number
  /** set once unpublished: orders cancelled, key removed */
  unpublishedAt?: number
  orders: SignedDatasetOrderRecord[]
  /** absent on records written before owners chose */
  policy?: DatasetPolicy
}

function check (v: unknown): DatasetRecord {
  const r = v as DatasetRecord
  if (typeof r !== 'object' || r === null || typeof r.address !== 'string' || typeof r.cid !== 'string' ||
    typeof r.checksum !== 'string' || typeof r.encrypted !== 'boolean' || !Array.isArray(r.orders)) {
    throw new Error('not a dataset record')
  }
  return r
}

/** The node's published datasets, keyed by lowercase address. */
export class DatasetStore {
  private readonly repo: Repository<DatasetRecord>

  constructor (db: DbController) {
    this.repo = new Repository(db, 'dataset', jsonCodec(check))
  }

  async get (address: string): Promise<DatasetRecord | undefined> {
    return await this.repo.get(address.toLowerCase())
  }

  async put (record: DatasetRecord): Promise<void> {
    await this.repo.put(record.address.toLowerCase(), record)
  }

  /** Every record, oldest first. */
  async list (): Promise<DatasetRecord[]> {
    const out: DatasetRecord[] = []
    for await (const { value } of this.repo.entries()) out.push(value)
    return out.sort((a, b) => a.createdAt - b.createdAt)
  }

  /** Whether this node still owns a live (not unpublished) dataset: it must then be findable. */
  async hasLive (): Promise<boolean> {
    for await (const { value } of this.repo.entries()) if (value.unpublishedAt === undefined) return true
    return false
  }
}
