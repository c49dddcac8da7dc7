import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DbController, KeySetRepository, Repository, jsonCodec, bytesCodec } from '../../../node/db/index.js'
import { isIexecError } from '../../../node/common/errors.js'

interface Task { id: string, status: 'pending' | 'done' }

function checkTask (v: unknown): Task {
  const t = v as Partial<Task>
  if (typeof t?.id !== 'string' || (t.status !== 'pending' && t.status !== 'done')) throw new Error('not a task')
  return t as Task
}

describe('db: controller and repositories', function () {
  const cleanup: Array<() => Promise<void>> = []
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-db-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
  })
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function open (): Promise<DbController> {
    const db = new DbController({ path: join(dir, 'db') })
    await db.open()
    cleanup.push(async () => { await db.close() })
    return db
  }

  it('puts, gets, deletes and iterates by prefix, isolated per repository', async () => {
    const db = await open()
    const tasks = new Repository(db, 'task', jsonCodec(checkTask))
    const blobs = new Repository(db, 'blob', bytesCodec)
    // a repository whose prefix starts like another's must not see its keys
    const tasks2 = new Repository(db, 'tasks', jsonCodec(checkTask))
    await tasks.put('deal1-0', { id: 'deal1-0', status: 'pending' })
    await tasks.put('deal1-1', { id: 'deal1-1', status: 'done' })
    await tasks.put('deal2-0', { id: 'deal2-0', status: 'pending' })
    await tasks2.put('x', { id: 'x', status: 'done' })
    await blobs.put('b', new Uint8Array([1, 2, 3]))

    assert.deepEqual(await tasks.get('deal1-1'), { id: 'deal1-1', status: 'done' })
    assert.equal(await tasks.get('nope'), undefined)
    assert.equal(await tasks.has('deal2-0'), true)
    assert.deepEqual(await blobs.get('b'), new Uint8Array([1, 2, 3]))
    assert.deepEqual((await tasks.values({ prefix: 'deal1-' })).map((t) => t.id), ['deal1-0', 'deal1-1'])
    assert.deepEqual((await tasks.values()).map((t) => t.id), ['deal1-0', 'deal1-1', 'deal2-0'])
    assert.deepEqual((await tasks.values({ limit: 1, reverse: true })).map((t) => t.id), ['deal2-0'])
    await tasks.del('deal1-0')
    assert.equal(await tasks.get('deal1-0'), undefined)
    await tasks.batch([{ type: 'del', key: 'deal1-1' }, { type: 'put', key: 'deal3-0', value: { id: 'deal3-0', status: 'done' } }])
    assert.deepEqual((await tasks.values()).map((t) => t.id), ['deal2-0', 'deal3-0'])
    assert.deepEqual((await tasks2.values()).map((t) => t.id), ['x'])
  })

  it('persists across reopen and reports bad values, keys and closed use with codes', async () => {
    const db = await open()
    const raw = new Repository(db, 'task', bytesCodec)
    await raw.put('corrupt', new TextEncoder().encode('{"id":1}'))
    const tasks = new Repository(db, 'task', jsonCodec(checkTask))
    await assert.rejects(tasks.get('corrupt'), (e: unknown) => isIexecError(e, 'DB_BAD_VALUE'))
    await assert.rejects(tasks.put('', { id: '', status: 'done' }), (e: unknown) => isIexecError(e, 'DB_BAD_KEY'))
    assert.throws(() => new Repository(db, 'a!b', bytesCodec), (e: unknown) => isIexecError(e, 'DB_BAD_KEY'))
    await raw.put('kept', new Uint8Array([9]))
    await db.close()
    await assert.rejects(raw.get('kept'), (e: unknown) => isIexecError(e, 'DB_CLOSED'))

    const again = await open()
    assert.deepEqual(await new Repository(again, 'task', bytesCodec).get('kept'), new Uint8Array([9]))
    // a second controller on the same folder cannot take the lock
    const rival = new DbController({ path: join(dir, 'db') })
    await assert.rejects(rival.open(), (e: unknown) => isIexecError(e, 'DB_OPEN_FAILED'))
  })

  describe('a repository that keeps its keys in memory', () => {
    /** counts the level reads the repository makes */
    function countReads (db: DbController): { reads: number } {
      const c = { reads: 0 }
      const store = db.store()
      const orig = store.get.bind(store)
      store.get = (async (...a: Parameters<typeof orig>) => { c.reads++; return await orig(...a) }) as typeof store.get
      return c
    }

    it('answers a missing key from memory, a present one from level, and loads its keys from disk', async () => {
      const db = await open()
      const plain = new Repository(db, 'ks', jsonCodec(checkTask))
      await plain.put('old', { id: 'old', status: 'done' })
      const ks = new KeySetRepository(db, 'ks', jsonCodec(checkTask))
      const c = countReads(db)
      assert.deepEqual(await ks.get('old'), { id: 'old', status: 'done' }, 'a key written before it existed')
      assert.equal(c.reads, 1)
      assert.equal(await ks.get('nope'), undefined)
      assert.equal(await ks.has('nope'), false)
      assert.equal(c.reads, 1, 'misses read nothing')
      await ks.put('new', { id: 'new', status: 'pending' })
      assert.equal(await ks.has('new'), true)
      await ks.del('old')
      assert.equal(await ks.get('old'), undefined)
      await ks.batch([{ type: 'put', key: 'b1', value: { id: 'b1', status: 'done' } }, { type: 'del', key: 'new' }, { type: 'put', key: 'b2', value: { id: 'b2', status: 'done' } }, { type: 'del', key: 'b2' }])
      assert.equal(await ks.has('new'), false)
      assert.equal(await ks.has('b2'), false, 'put then deleted in one batch')
      assert.equal(await ks.has('b1'), true)
      assert.equal(ks.size, 1)
      // what level holds agrees with the set
      assert.deepEqual((await plain.values()).map((t) => t.id), ['b1'])
      assert.deepEqual(await (async () => { const out: string[] = []; for await (const k of ks.keys()) out.push(k); return out })(), ['b1'])
    })

    it('never loses a key: a failed delete keeps it, a put racing a delete keeps it', async () => {
      const db = await open()
      const ks = new KeySetRepository(db, 'ks', jsonCodec(checkTask))
      await ks.put('a', { id: 'a', status: 'done' })
      const store = db.store()
      const origDel = store.del.bind(store)
      store.del = (async () => { throw new Error('disk gone') }) as unknown as typeof store.del
      await assert.rejects(ks.del('a'), /disk gone/)
      store.del = origDel
      assert.equal(await ks.has('a'), true, 'the failed delete left it on disk and in the set')
      // a delete whose level write is slow, and a put of the same key started after it
      let release!: () => void
      const gate = new Promise<void>((resolve) => { release = resolve })
      store.del = (async (...a: Parameters<typeof origDel>) => { await gate; return await origDel(...a) }) as typeof store.del
      const deleting = ks.del('a')
      const putting = ks.put('a', { id: 'a', status: 'pending' })
      await putting
      release()
      await deleting
      store.del = origDel
      // level ran the put first, then the delete: the key is gone from disk; the
      // set still holding it costs a read, never a wrong answer
      assert.equal(await ks.get('a'), undefined)
      await ks.put('a', { id: 'a', status: 'done' })
      assert.deepEqual(await ks.get('a'), { id: 'a', status: 'done' })
    })

    it('retries its first load after a failure', async () => {
      const db = await open()
      await new Repository(db, 'ks', bytesCodec).put('k', new Uint8Array([1]))
      const ks = new KeySetRepository(db, 'ks', bytesCodec)
      const store = db.store()
      const origKeys = store.keys.bind(store)
      store.keys = (() => { throw new Error('iterator failed') }) as unknown as typeof store.keys
      await assert.rejects(ks.get('k'), /iterator failed/)
      store.keys = origKeys
      assert.deepEqual(await ks.get('k'), new Uint8Array([1]))
    })
  })
})
