// PeerCachingDatastore on a real level store: peer records are served from
// memory after the first read or write, writes still reach the disk (a
// reopened store has them), deletes and batches leave nothing stale, and a
// read racing a write never caches the older value.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Key } from 'interface-datastore'
import { PeerCachingDatastore } from '../../../node/network/peer-cache-datastore.js'

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (b: Uint8Array): string => new TextDecoder().decode(b)

describe('network: the peer-caching datastore', () => {
  let dir: string
  let store: PeerCachingDatastore
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-peer-ds-'))
    store = new PeerCachingDatastore(join(dir, 'ds'))
    await store.open()
  })
  afterEach(async () => {
    await store.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })

  it('answers peer records from memory, writes them through to level', async () => {
    const peer = new Key('/peers/abc')
    await store.put(peer, bytes('v1'))
    // level's own get is not called for a cached record: count the calls
    const levelGet = Object.getPrototypeOf(PeerCachingDatastore.prototype).get as (this: unknown, ...a: unknown[]) => Promise<Uint8Array>
    let levelReads = 0
    const db = (store as unknown as { db: { get: (k: string) => Promise<unknown> } }).db
    const orig = db.get.bind(db)
    db.get = async (k: string) => { levelReads++; return await orig(k) }
    assert.equal(text(await store.get(peer)), 'v1')
    assert.equal(levelReads, 0, 'served from memory')
    assert.equal(text(await levelGet.call(store, peer)), 'v1', 'and on disk')
    // other keys are not cached
    await store.put(new Key('/providers/x'), bytes('p'))
    levelReads = 0
    assert.equal(text(await store.get(new Key('/providers/x'))), 'p')
    assert.equal(levelReads, 1)
    // a reopened store (a restart) has the record
    await store.close()
    store = new PeerCachingDatastore(join(dir, 'ds'))
    await store.open()
    assert.equal(text(await store.get(peer)), 'v1')
  })

  it('deletes and batches leave no stale record; a missing record stays missing', async () => {
    const peer = new Key('/peers/p1')
    await store.put(peer, bytes('v1'))
    await store.delete(peer)
    await assert.rejects(store.get(peer), (e: Error) => e.name === 'NotFoundError')
    assert.equal(await store.has(peer), false)
    await store.put(peer, bytes('v2'))
    assert.equal(text(await store.get(peer)), 'v2')
    const b = store.batch()
    b.put(peer, bytes('v3'))
    await b.commit()
    assert.equal(text(await store.get(peer)), 'v3')
    const d = store.batch()
    d.delete(peer)
    await d.commit()
    assert.equal(await store.has(peer), false)
  })

  it('a read that raced a write does not cache the older value', async () => {
    const peer = new Key('/peers/race')
    await store.put(peer, bytes('old'))
    await store.close()
    store = new PeerCachingDatastore(join(dir, 'ds'))
    await store.open()
    // the read starts first (a miss: it goes to level), the write lands while it is in flight
    const db = (store as unknown as { db: { get: (k: string) => Promise<unknown> } }).db
    const orig = db.get.bind(db)
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    db.get = async (k: string) => { const v = await orig(k); await gate; return v }
    const read = store.get(peer)
    await store.put(peer, bytes('new'))
    release()
    assert.equal(text(await read), 'old', 'the racing read returns what it read')
    db.get = orig
    assert.equal(text(await store.get(peer)), 'new', 'the cache holds the newer value')
  })
})
