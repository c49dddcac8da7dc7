import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TaskStatus } from '../../../contracts-abi/index.js'
import { DbController } from '../../../node/db/index.js'
import { DealBook } from '../../../node/scheduler/deal-book.js'
import type { DealBookInit } from '../../../node/scheduler/deal-book.js'
import { DEAL, ME, OTHER, W1, W2, ZERO, dealInfo, dealState, peerOf, recordingLog, replica, task, tid } from './fakes.js'

interface Harness {
  book: DealBook
  reads: string[]
  kicks: number
  closedTasks: Array<{ taskid: string, peers: string[] }>
  forgotten: string[]
  reopened: string[]
  lines: string[]
}

describe('scheduler deal book: deals and task records', function () {
  const cleanup: Array<() => Promise<void>> = []
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-dealbook-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
  })
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function openDb (): Promise<DbController> {
    const db = new DbController({ path: join(dir, 'db') })
    await db.open()
    cleanup.push(async () => { await db.close() })
    return db
  }

  function make (db: DbController, s: { maxDeals?: number, volume?: bigint, status?: TaskStatus, drawn?: string } = {}): Harness {
    const { log, lines } = recordingLog()
    const h: Harness = { book: undefined as unknown as DealBook, reads: [], kicks: 0, closedTasks: [], forgotten: [], reopened: [], lines }
    const init: DealBookInit = {
      db,
      hub: {
        appOf: async (app) => { h.reads.push(`app:${app}`); return { cid: 'bafyapp', checksum: '0x01' } },
        datasetOf: async (d) => { h.reads.push(`dataset:${d}`); return { cid: 'bafyds', checksum: '0x02' } },
        timeRefOf: async (c) => { h.reads.push(`category:${c}`); return 100n },
        schedulerOf: async (_dealid, tag) => { h.reads.push(`schedulerOf:${tag?.blockTag ?? 'latest'}`); return s.drawn ?? ME },
        dealOf: async () => dealState({ volume: s.volume ?? 0n }),
        taskStatus: async () => BigInt(s.status ?? TaskStatus.ACTIVE)
      },
      me: ME,
      maxDeals: s.maxDeals ?? 10,
      kick: () => { h.kicks++ },
      taskClosed: (taskid, peers) => { h.closedTasks.push({ taskid, peers }) },
      dealForgotten: (dealid) => { h.forgotten.push(dealid) },
      dealReopened: (dealid) => { h.reopened.push(dealid) },
      log
    }
    h.book = new DealBook(init)
    return h
  }

  it('records a deal once, reading its app and category once for every deal, its dataset when it has one', async () => {
    const h = make(await openDb())
    await h.book.add(dealInfo())
    await h.book.add(dealInfo())
    await h.book.add(dealInfo({ dealid: '0x' + 'd2'.repeat(32), dataset: OTHER }))
    assert.deepEqual(h.reads, [`app:${dealInfo().app}`, 'category:0', `dataset:${OTHER}`])
    assert.equal(h.book.openDeals().length, 2)
    assert.deepEqual((await h.book.dealRecord('0x' + 'd2'.repeat(32)))?.dataset, { cid: 'bafyds', checksum: '0x02' })
    assert.equal(h.kicks, 2)
  })

  it('reads the drawn scheduler at the pending tag when the event names none', async () => {
    const h = make(await openDb(), { drawn: OTHER })
    await h.book.add(dealInfo({ scheduler: ZERO }))
    assert.ok(h.reads.includes('schedulerOf:pending'))
    const known = h.book.openDeal(DEAL)
    assert.equal(known?.scheduler?.toLowerCase(), OTHER.toLowerCase())
    assert.equal(known !== undefined && h.book.isMine(known), false)
  })

  it('ignores deals past maxDeals open', async () => {
    const h = make(await openDb(), { maxDeals: 1 })
    await h.book.add(dealInfo())
    await h.book.add(dealInfo({ dealid: '0x' + 'd2'.repeat(32) }))
    assert.equal(h.book.openDeals().length, 1)
    assert.ok(h.lines.includes('deal ignored: too many open deals'))
  })

  it('learns a new scheduler: recorded, and work starts at once when it is this node; a zero draw is ignored', async () => {
    const h = make(await openDb())
    await h.book.add(dealInfo({ scheduler: OTHER }))
    const known = h.book.openDeal(DEAL)
    assert.ok(known !== undefined)
    h.kicks = 0
    await h.book.learnScheduler(known, ZERO)
    assert.equal(h.book.isMine(known), false)
    await h.book.learnScheduler(known, ME)
    assert.equal(h.book.isMine(known), true)
    assert.equal((await h.book.dealRecord(DEAL))?.scheduler, ME)
    assert.equal(h.kicks, 1)
  })

  it('task records: copies out, write-through, closing tells liveness which peers to forget', async () => {
    const h = make(await openDb())
    await h.book.putTask(tid(0), task(0, [replica(W1), replica(W2)]))
    const copy = await h.book.getTask(tid(0))
    assert.ok(copy !== undefined)
    copy.replicas[0].dead = true
    assert.equal((await h.book.peekTask(tid(0)))?.replicas[0].dead, false, 'a changed copy leaves the record alone')
    assert.equal(await h.book.closeTask(tid(0)), true)
    assert.equal(await h.book.closeTask(tid(0)), false, 'closed once')
    assert.deepEqual(h.closedTasks, [{ taskid: tid(0), peers: [peerOf(W1), peerOf(W2)] }])
    assert.equal(h.book.taskStateCounts().closed, 1)
  })

  it('task ends from events: the record closes on the scheduler, the deal is due a read once every task ended', async () => {
    const h = make(await openDb())
    await h.book.add(dealInfo({ volume: 2 }))
    await h.book.putTask(tid(0), task(0, [replica(W1)]))
    await h.book.taskEnded(DEAL, tid(0))
    assert.equal((await h.book.peekTask(tid(0)))?.closed, true)
    assert.equal(h.book.hasEnded(DEAL, tid(0)), true)
    assert.equal(h.book.allEnded(DEAL), false)
    await h.book.taskEnded(DEAL, tid(1))
    assert.equal(h.book.allEnded(DEAL), true)
    assert.equal(h.book.takeAllEnded(DEAL), true)
    assert.equal(h.book.allEnded(DEAL), false)
  })

  it('a done deal: tasks closed, kept for its worker stake until released, other parts told; reloaded as such', async () => {
    const db = await openDb()
    const h = make(db)
    await h.book.add(dealInfo({ volume: 2, workers: [W1, ME] }))
    await h.book.add(dealInfo({ dealid: '0x' + 'd2'.repeat(32) }))
    await h.book.putTask(tid(1), task(1, [replica(W1)]))
    const known = h.book.openDeal(DEAL)
    assert.ok(known !== undefined)
    await h.book.markDone(known, true)
    assert.equal((await h.book.peekTask(tid(1)))?.closed, true)
    assert.deepEqual(h.forgotten, [DEAL])
    assert.deepEqual(h.book.openDeals().map((k) => k.deal.dealid), ['0x' + 'd2'.repeat(32)])
    assert.deepEqual(h.book.releasingDeals().map((k) => k.releaseAt), [known.deal.finalDeadline])
    const again = make(db)
    await again.book.load()
    assert.equal(again.book.openDeals().length, 1)
    assert.equal(again.book.releasingDeals().length, 1)
    await h.book.releaseAt(DEAL, undefined)
    assert.equal(h.book.releasingDeals().length, 0)
    assert.equal((await h.book.dealRecord(DEAL))?.releaseAt, undefined)
  })

  it('a release due again is kept on the stored done record, never on an open copy, and survives a restart', async () => {
    const db = await openDb()
    const h = make(db)
    await h.book.add(dealInfo())
    const open = h.book.openDeal(DEAL)
    assert.ok(open !== undefined)
    // an open deal has no release to schedule: nothing is written
    await h.book.releaseAt(DEAL, 7)
    assert.equal((await h.book.dealRecord(DEAL))?.releaseAt, undefined)
    assert.equal(h.book.releasingDeals().length, 0)
    await h.book.markDone(open, false)
    // the caller still holds the open copy (done: false); the stored record stays done
    await h.book.releaseAt(open.deal.dealid, 0)
    assert.deepEqual(h.book.releasingDeals().map((k) => [k.done, k.releaseAt]), [[true, 0]])
    const again = make(db)
    await again.book.load()
    assert.deepEqual(again.book.releasingDeals().map((k) => [k.done, k.releaseAt]), [[true, 0]])
    assert.equal(again.book.openDeals().length, 0)
  })

  it('a DealCreated taken back by a reorg forgets the deal only when the hub no longer holds it', async () => {
    const db = await openDb()
    const kept = make(db, { volume: 1n })
    await kept.book.add(dealInfo())
    await kept.book.dealRemoved(DEAL)
    assert.equal(kept.book.openDeals().length, 1)
    const gone = make(db, { volume: 0n })
    await gone.book.load()
    await gone.book.putTask(tid(0), task(0))
    await gone.book.dealRemoved(DEAL)
    assert.equal(gone.book.openDeals().length, 0)
    assert.equal(await gone.book.dealRecord(DEAL), undefined)
    assert.equal(await gone.book.getTask(tid(0)), undefined)
    assert.deepEqual(gone.forgotten, [DEAL])
  })

  it('a task end taken back by a reorg reopens the task and its done deal', async () => {
    const h = make(await openDb(), { status: TaskStatus.ACTIVE })
    await h.book.add(dealInfo())
    await h.book.putTask(tid(0), task(0, [replica(W1)]))
    const known = h.book.openDeal(DEAL)
    assert.ok(known !== undefined)
    await h.book.markDone(known, false)
    await h.book.taskEndRemoved(DEAL, tid(0), 'TaskFinalized')
    assert.equal((await h.book.peekTask(tid(0)))?.closed, false)
    assert.equal(h.book.openDeal(DEAL)?.done, false)
    assert.deepEqual(h.reopened, [DEAL])
  })

  it('a task end taken back that the hub still holds ended changes nothing', async () => {
    const h = make(await openDb(), { status: TaskStatus.COMPLETED })
    await h.book.add(dealInfo())
    await h.book.putTask(tid(0), task(0, [], { closed: true }))
    await h.book.taskEndRemoved(DEAL, tid(0), 'TaskFinalized')
    assert.equal((await h.book.peekTask(tid(0)))?.closed, true)
    assert.deepEqual(h.reopened, [])
  })

  it('counts the tasks of the deals this node schedules by state', async () => {
    const h = make(await openDb())
    await h.book.add(dealInfo({ volume: 4 }))
    await h.book.add(dealInfo({ dealid: '0x' + 'd2'.repeat(32), scheduler: OTHER, volume: 5 }))
    for (let idx = 0; idx < 4; idx++) h.book.taskIdOf(DEAL, idx)
    await h.book.putTask(tid(0), task(0, [replica(W1)]))
    await h.book.putTask(tid(1), task(1, [replica(W1, { contributed: true })]))
    await h.book.putTask(tid(2), task(2, [replica(W1)], { resultsCid: 'bafy' }))
    assert.deepEqual(h.book.taskStateCounts(), { waiting: 1, running: 1, contributed: 1, finalizing: 1, closed: 0 })
  })
})
