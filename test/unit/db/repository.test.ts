import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DbController, Repository, jsonCodec, bytesCodec } from '../../../node/db/index.js'
import { isIexecError } from '../../../node/errors.js'

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
})
