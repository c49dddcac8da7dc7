import assert from 'node:assert/strict'
import type { AssignMessage } from '../../../protocols/execution.js'
import { TaskBook } from '../../../node/worker/duties-book.js'
import { DEAL, MemoryStore, rec } from './duties-fakes.js'

const assign = (n: number): AssignMessage => ({
  type: 'assign', proof: '0xp', dealid: DEAL.toUpperCase().replace('0X', '0x'), trust: 1, app: '0xApp',
  appContent: { cid: 'bafyapp', checksum: '0xABCD' }, params: '', deadline: 0,
  tasks: Array.from({ length: n }, (_, i) => ({ idx: i, authorization: `0xauth${i}` }))
})
const ids = (n: number): Array<{ taskid: string, idx: number, authorization: string }> => Array.from({ length: n }, (_, i) => ({ taskid: `t${i}`, idx: i, authorization: `0xauth${i}` }))

function book (store = new MemoryStore(), maxHeld = 2, holdCommitRecordMs?: number): TaskBook {
  return new TaskBook({ store, workDir: '/nonexistent-worker-dir', maxHeld: () => maxHeld, ...(holdCommitRecordMs !== undefined ? { holdCommitRecordMs } : {}), log: () => {} })
}

describe('worker duties: the task book', () => {
  it('admits tasks in order up to maxHeld, in one batch, starting each', async () => {
    const store = new MemoryStore()
    const b = book(store, 2)
    const started: string[] = []
    const accepted = await b.admit(assign(3), ids(3), 'peerA', (id) => { started.push(id) })
    assert.equal(accepted, 2)
    assert.deepEqual(started, ['t0', 't1'])
    assert.equal(store.batches, 1)
    assert.deepEqual([...store.map.keys()], ['t0', 't1'])
    const r = await b.record('t0')
    assert.equal(r?.dealid, DEAL, 'the deal id is kept lower case')
    assert.equal(r?.appChecksum, '0xabcd')
    assert.equal(r?.state, 'assigned')
    assert.equal(b.activeCount(), 2)
    assert.equal(b.isComputing(DEAL), true)
    assert.equal(await b.admit(assign(1), [{ taskid: 't9', idx: 9, authorization: '0x' }], 'peerA', () => {}), 0, 'full: none taken')
  })

  it('counts a task it holds as taken without starting it twice, with the new scheduler\'s authorization before its commit', async () => {
    const store = new MemoryStore()
    const b = book(store, 1)
    await b.save(rec({ taskid: 't0', state: 'computed', authorization: '0xold', schedulerPeer: 'old' }))
    await b.save(rec({ taskid: 't1', state: 'contributed', authorization: '0xold', schedulerPeer: 'old' }))
    const started: string[] = []
    assert.equal(await b.admit(assign(2), ids(2), 'new', (id) => { started.push(id) }), 2)
    assert.deepEqual(started, ['t0', 't1'], 'each is moved on, not taken anew')
    assert.deepEqual([(await b.record('t0'))?.authorization, (await b.record('t0'))?.schedulerPeer], ['0xauth0', 'new'])
    assert.deepEqual([(await b.record('t1'))?.authorization, (await b.record('t1'))?.schedulerPeer], ['0xold', 'new'], 'committed: the authorization stays')
    assert.equal(store.batches, 0)
  })

  it('takes a failed task anew', async () => {
    const b = book(new MemoryStore(), 2)
    await b.save(rec({ taskid: 't0', state: 'failed' }))
    assert.equal(await b.admit(assign(1), ids(1), 'p', () => {}), 1)
    assert.equal((await b.record('t0'))?.state, 'assigned')
  })

  it('keeps open tasks in memory, closed ones in level only, and counts them by state', async () => {
    const store = new MemoryStore()
    const b = book(store)
    await b.save(rec({ taskid: 'a', state: 'assigned' }))
    await b.save(rec({ taskid: 'c', state: 'computed' }))
    await b.save(rec({ taskid: 'd', state: 'done' }))
    assert.deepEqual(b.stateCounts(), { assigned: 1, computed: 1 })
    assert.deepEqual(b.openTasks().sort(), ['a', 'c'])
    assert.deepEqual([...b.computingDeals()], [DEAL])
    assert.equal((await b.record('d'))?.state, 'done', 'read from level')
    const again = book(store)
    await again.load()
    assert.deepEqual(again.stateCounts(), { assigned: 1, computed: 1 }, 'a restart loads the open tasks')
    assert.equal(again.activeCount(), 1)
  })

  it('runs a read-modify-write after the writes before it: a resend never puts a committed task back', async () => {
    const b = book(new MemoryStore(), 2, 30)
    await b.save(rec({ taskid: 't0', state: 'computed' }))
    const commit = b.commitRecords([rec({ taskid: 't0', state: 'done', txHash: '0xtx' })])
    // memory still reads 'computed' while the commit holds its records
    const moved = await b.update('t0', (cur) => cur.state === 'computed' ? { ...cur, schedulerPeer: 'x' } : undefined)
    await commit
    assert.equal(moved, undefined, 'the update saw the commit\'s done')
    assert.equal((await b.record('t0'))?.state, 'done')
    assert.deepEqual(b.stateCounts(), {})
  })
})
