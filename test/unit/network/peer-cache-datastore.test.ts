// PeerCachingDatastore on a real level store: peer records are served from
// memory after the first read or write, writes reach the disk behind (within
// FLUSH_MS, on flush and on close: a reopened store has them), deletes,
// batches and queries see no stale or missing record, a failed write to level
// is kept and retried, and a read racing a write never caches the older value.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Key } from 'interface-datastore'
import { FLUSH_MS, PeerCachingDatastore } from '../../../node/network/peer-cache-datastore.js'

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

  it('answers peer records from memory, writes them behind to level', async () => {
    const peer = new Key('/peers/abc')
    await store.put(peer, bytes('v1'))
    // level's own get is not called for a cached record: count the calls
    const levelGet = Object.getPrototypeOf(PeerCachingDatastore.prototype).get as (this: unknown, ...a: unknown[]) => Promise<Uint8Array>
    let levelReads = 0
    const db = (store as unknown as { db: { get: (k: string) => Promise<unknown> } }).db
    const orig = db.get.bind(db)
    db.get = async (k: string) => { levelReads++; return await orig(k) }
    assert.equal(text(await store.get(peer)), 'v1')
    assert.equal(await store.has(peer), true)
    assert.equal(levelReads, 0, 'served from memory')
    // not on disk yet: the write waits for the flush
    assert.equal(store.pendingWrites, 1)
    await assert.rejects(levelGet.call(store, peer), (e: Error) => e.name === 'NotFoundError')
    await store.put(peer, bytes('v2'))
    await store.flush()
    assert.equal(store.pendingWrites, 0)
    assert.equal(text(await levelGet.call(store, peer)), 'v2', 'the newest value on disk')
    // other keys are not cached, and written at once
    await store.put(new Key('/providers/x'), bytes('p'))
    assert.equal(store.pendingWrites, 0)
    levelReads = 0
    assert.equal(text(await store.get(new Key('/providers/x'))), 'p')
    assert.equal(levelReads, 1)
    // a write left pending reaches a reopened store (close writes it)
    await store.put(peer, bytes('v3'))
    await store.close()
    store = new PeerCachingDatastore(join(dir, 'ds'))
    await store.open()
    assert.equal(text(await store.get(peer)), 'v3')
  })

  it('writes a pending record to level by itself within the flush interval', async () => {
    const peer = new Key('/peers/timer')
    const levelGet = Object.getPrototypeOf(PeerCachingDatastore.prototype).get as (this: unknown, ...a: unknown[]) => Promise<Uint8Array>
    await store.put(peer, bytes('t'))
    const deadline = Date.now() + FLUSH_MS * 5 + 10_000
    while (store.pendingWrites > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(store.pendingWrites, 0, `flushed within ${FLUSH_MS * 5 + 10_000} ms`)
    assert.equal(text(await levelGet.call(store, peer)), 't')
  })

  it('keeps records whose write to level failed, and writes them on the next flush', async () => {
    const peer = new Key('/peers/fail')
    const db = (store as unknown as { db: { batch: (...a: unknown[]) => unknown } }).db
    const orig = db.batch.bind(db)
    db.batch = () => { throw new Error('disk full') }
    await store.put(peer, bytes('kept'))
    await assert.rejects(store.flush(), /disk full/)
    assert.equal(store.lastFlushError?.message, 'disk full')
    assert.equal(store.pendingWrites, 1, 'still pending')
    assert.equal(text(await store.get(peer)), 'kept', 'and still read')
    db.batch = orig
    await store.flush()
    assert.equal(store.lastFlushError, undefined)
    await store.close()
    store = new PeerCachingDatastore(join(dir, 'ds'))
    await store.open()
    assert.equal(text(await store.get(peer)), 'kept')
  })

  it('a record deleted while its flush fails is not put back by the failure', async () => {
    const peer = new Key('/peers/gone')
    const db = (store as unknown as { db: { batch: (...a: unknown[]) => Promise<unknown> } }).db
    const orig = db.batch.bind(db)
    let fail!: () => void
    const gate = new Promise<void>((resolve) => { fail = resolve })
    let writing!: () => void
    const called = new Promise<void>((resolve) => { writing = resolve })
    db.batch = async () => { writing(); await gate; throw new Error('disk full') }
    await store.put(peer, bytes('old'))
    const flushing = store.flush()
    // the delete comes while level is writing the batch that holds the record
    await called
    const deleting = store.delete(peer)
    fail()
    await assert.rejects(flushing, /disk full/)
    await deleting
    db.batch = orig
    await store.flush()
    assert.equal(store.pendingWrites, 0)
    await store.close()
    store = new PeerCachingDatastore(join(dir, 'ds'))
    await store.open()
    assert.equal(await store.has(peer), false, 'the delete stands')
  })

  it('queries list the records still pending; a closed store refuses writes', async () => {
    await store.put(new Key('/peers/q1'), bytes('a'))
    await store.put(new Key('/peers/q2'), bytes('b'))
    const keys: string[] = []
    for await (const { key } of store.query({ prefix: '/peers/' })) keys.push(key.toString())
    assert.deepEqual(keys.sort(), ['/peers/q1', '/peers/q2'])
    const only: string[] = []
    for await (const key of store.queryKeys({ prefix: '/peers/q2' })) only.push(key.toString())
    assert.deepEqual(only, ['/peers/q2'])
    await store.close()
    await assert.rejects(store.put(new Key('/peers/late'), bytes('x')))
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
    // a pending write then a delete (and a pending write then a batch delete):
    // nothing comes back after a flush and a reopen
    await store.put(peer, bytes('v4'))
    await store.delete(peer)
    const other = new Key('/peers/p2')
    await store.put(other, bytes('w1'))
    const e = store.batch()
    e.delete(other)
    await e.commit()
    await store.flush()
    await store.close()
    store = new PeerCachingDatastore(join(dir, 'ds'))
    await store.open()
    assert.equal(await store.has(peer), false)
    assert.equal(await store.has(other), false)
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
