/**
 * The bounds of a fetch by CID (node/storage/content.ts) over a blockstore
 * that plays a slow or vanished peer: each block read can be delayed, or
 * never answered, as bitswap would when the peers that had a block are
 * slow or gone. The delays are the behaviour under test (a peer's pace),
 * not waits for something to settle.
 */
import assert from 'node:assert/strict'
import { createCipheriv } from 'node:crypto'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import type { CID } from 'multiformats/cid'
import { addBytes, addStream, catContent, fetchToFile } from '../../../node/storage/index.js'
import type { ContentHelia } from '../../../node/storage/index.js'
import { isIexecError } from '../../../node/common/errors.js'

const MiB = 1024 * 1024

type BlockBytes = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>

/**
 * A memory blockstore behind a link that serves one block at a time, each
 * taking `pace(cid)` ms (Infinity: never, until the read is aborted).
 */
class PacedBlockstore {
  private readonly blocks = new Map<string, Uint8Array[]>()
  /** when the link is free again (ms): reads asked in parallel are served one after the other */
  linkFreeAt = 0
  /** CIDs read, in order */
  readonly reads: string[] = []
  pace: (cid: CID) => number = () => 0

  async put (cid: CID, bytes: BlockBytes): Promise<CID> {
    const parts: Uint8Array[] = []
    if (bytes instanceof Uint8Array) parts.push(bytes)
    else for await (const p of bytes) parts.push(p)
    this.blocks.set(cid.toString(), parts)
    return cid
  }

  has (cid: CID): boolean {
    return this.blocks.has(cid.toString())
  }

  async * get (cid: CID, options: { signal?: AbortSignal } = {}): AsyncGenerator<Uint8Array> {
    this.reads.push(cid.toString())
    const ms = this.pace(cid)
    if (ms === Infinity) {
      // a block no peer answers for: bitswap keeps wanting it until the caller gives up
      await new Promise((_resolve, reject) => {
        options.signal?.addEventListener('abort', () => { reject(options.signal?.reason) }, { once: true })
      })
    } else if (ms > 0) {
      this.linkFreeAt = Math.max(Date.now(), this.linkFreeAt) + ms
      await delay(this.linkFreeAt - Date.now(), undefined, { signal: options.signal })
    }
    const parts = this.blocks.get(cid.toString())
    if (parts === undefined) throw new Error(`no block ${cid.toString()}`)
    yield * parts
  }
}

/** Deterministic bytes that do not repeat per MiB (so every leaf is its own block). */
function content (bytes: number): Uint8Array {
  return createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0)).update(Buffer.alloc(bytes))
}

async function drain (source: AsyncIterable<Uint8Array>, holdMs = 0): Promise<number> {
  let n = 0
  for await (const c of source) {
    n += c.byteLength
    if (holdMs > 0) await delay(holdMs)
  }
  return n
}

describe('storage: fetch bounds (stall, size-scaled whole-fetch bound, size)', function () {
  this.timeout(30_000)
  let store: PacedBlockstore
  let helia: ContentHelia
  let root: CID
  const size = 4 * MiB + 123
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-content-unit-'))
    store = new PacedBlockstore()
    helia = { blockstore: store }
    root = (await addBytes(helia, content(size))).cid
    store.reads.length = 0
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('a fetch whose next block never comes is stopped by the stall bound: STORAGE_FETCH_STALLED, no file left', async () => {
    let leaves = 0
    // the root and the first leaf come, then the peers are gone
    store.pace = (cid) => cid.equals(root) ? 0 : (leaves++ === 0 ? 0 : Infinity)
    const started = Date.now()
    await assert.rejects(fetchToFile(helia, root, join(dir, 'out'), { stallTimeoutMs: 300, timeoutMs: 20_000 }),
      (e: unknown) => isIexecError(e, 'STORAGE_FETCH_STALLED') && e.details?.bytes === MiB && e.details?.stallTimeoutMs === 300)
    const took = Date.now() - started
    assert.ok(took >= 290 && took < 5_000, `stopped after ${took} ms, near the stall bound and far before the whole-fetch bound`)
    await assert.rejects(stat(join(dir, 'out')))
    await assert.rejects(stat(join(dir, 'out.partial')))
  })

  it('a slow fetch that keeps making progress is not stalled, even when it lasts many stall bounds', async () => {
    store.pace = () => 120
    const started = Date.now()
    assert.equal(await drain(catContent(helia, root, { stallTimeoutMs: 400, timeoutMs: 20_000 })), size)
    assert.ok(Date.now() - started > 400, 'the fetch outlasted its stall bound')
  })

  it('the time a consumer holds a chunk is not counted as a stall', async () => {
    assert.equal(await drain(catContent(helia, root, { stallTimeoutMs: 100 }), 250), size)
  })

  it('the whole-fetch bound grows with the declared size: a trickle too slow for it is STORAGE_FETCH_TIMEOUT; a rate it allows completes', async () => {
    // the root and 5 leaves, one at a time, 150 ms each: ~900 ms, a block every 150 ms (no stall)
    store.pace = () => 150
    // 300 ms + 4 MiB at 16 MiB/s = ~550 ms: too short
    const fast = 16 * MiB
    const allowed = 300 + Math.ceil(size * 1000 / fast)
    await assert.rejects(drain(catContent(helia, root, { timeoutMs: 300, minBytesPerSecond: fast, stallTimeoutMs: 5_000 })),
      (e: unknown) => isIexecError(e, 'STORAGE_FETCH_TIMEOUT') && e.details?.timeoutMs === allowed && (e.details?.bytes as number) > 0)
    // 300 ms + 4 MiB at 2 MiB/s = ~2.3 s: enough, though far beyond the 300 ms base
    store.linkFreeAt = 0 // the aborted fetch's reads no longer hold the link
    assert.equal(await drain(catContent(helia, root, { timeoutMs: 300, minBytesPerSecond: 2 * MiB, stallTimeoutMs: 5_000 })), size)
    // without a rate, the base bound is the whole bound
    store.linkFreeAt = 0
    await assert.rejects(drain(catContent(helia, root, { timeoutMs: 300, stallTimeoutMs: 5_000 })),
      (e: unknown) => isIexecError(e, 'STORAGE_FETCH_TIMEOUT') && e.details?.timeoutMs === 300)
  })

  it('content larger than the bound is refused from its root block, before any leaf is fetched: STORAGE_CONTENT_TOO_LARGE', async () => {
    await assert.rejects(fetchToFile(helia, root, join(dir, 'big'), { maxBytes: 4 * MiB }),
      (e: unknown) => isIexecError(e, 'STORAGE_CONTENT_TOO_LARGE') && e.details?.size === size && e.details?.maxBytes === 4 * MiB)
    assert.deepEqual(store.reads, [root.toString()], 'only the root block was read')
    await assert.rejects(stat(join(dir, 'big.partial')))
    // at the bound exactly, it is fetched
    assert.equal((await fetchToFile(helia, root, join(dir, 'exact'), { maxBytes: size })).bytes, size)
  })

  it('a fetch reads a window ahead of its consumer, not the whole file: what it holds does not grow with the file', async () => {
    const big = new PacedBlockstore()
    const bigSize = 24 * MiB
    const bigRoot = (await addBytes({ blockstore: big }, content(bigSize))).cid
    big.reads.length = 0
    let consumed = 0
    let mostAhead = 0
    for await (const chunk of catContent({ blockstore: big }, bigRoot)) {
      consumed += chunk.byteLength
      // distinct leaves (raw blocks) read beyond those the consumer has had
      const leavesRead = new Set(big.reads.filter((c) => c.startsWith('bafk'))).size
      mostAhead = Math.max(mostAhead, leavesRead - Math.ceil(consumed / MiB))
    }
    assert.equal(consumed, bigSize)
    // one 8 MiB window of 1 MiB leaves, and the one it shares with the next window
    assert.ok(mostAhead <= 9, `at most a window of leaves ahead of the consumer, saw ${mostAhead} of ${bigSize / MiB}`)
  })

  it('bad bounds are STORAGE_INVALID_ARGUMENT', async () => {
    for (const bad of [{ stallTimeoutMs: 0 }, { timeoutMs: -1 }, { minBytesPerSecond: Number.NaN }, { maxBytes: 0 }]) {
      await assert.rejects(drain(catContent(helia, root, bad)), (e: unknown) => isIexecError(e, 'STORAGE_INVALID_ARGUMENT'), JSON.stringify(bad))
    }
  })
})

describe('storage: addBytes', () => {
  it('puts content of one chunk or less as the one raw block the importer makes (same CID), larger content through the importer', async () => {
    for (const size of [0, 1, 4096, MiB, MiB + 1, 3 * MiB]) {
      const bytes = new Uint8Array(size).map((_, i) => (i * 31) % 251)
      const fast = new PacedBlockstore()
      const imported = new PacedBlockstore()
      const got = await addBytes({ blockstore: fast as unknown as ContentHelia['blockstore'] }, bytes)
      const want = await addStream({ blockstore: imported as unknown as ContentHelia['blockstore'] }, (async function * () { yield bytes })())
      assert.equal(got.cid.toString(), want.cid.toString(), `${size} bytes`)
      assert.equal(got.bytes, size)
      const back: Uint8Array[] = []
      for await (const c of catContent({ blockstore: fast as unknown as ContentHelia['blockstore'] }, got.cid, { offline: true })) back.push(c)
      assert.deepEqual(Buffer.concat(back), Buffer.from(bytes), `${size} bytes read back`)
    }
  })

  it('an add aborted before it starts is STORAGE_ADD_FAILED and stores nothing', async () => {
    const store = new PacedBlockstore()
    await assert.rejects(addBytes({ blockstore: store as unknown as ContentHelia['blockstore'] }, new Uint8Array(10), { signal: AbortSignal.abort() }), (err: unknown) => isIexecError(err, 'STORAGE_ADD_FAILED'))
    const { cid } = await addBytes({ blockstore: new PacedBlockstore() as unknown as ContentHelia['blockstore'] }, new Uint8Array(10))
    assert.equal(store.has(cid), false)
  })
})
