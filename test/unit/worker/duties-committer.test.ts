import assert from 'node:assert/strict'
import { ContributionStatus, TaskStatus } from '../../../contracts-abi/index.js'
import { resultHash, resultSeal } from '../../../protocols/eip712.js'
import type { ExecMessage } from '../../../protocols/execution.js'
import { isIexecError } from '../../../node/common/errors.js'
import { TaskBook } from '../../../node/worker/duties-book.js'
import type { WorkerTaskRecord } from '../../../node/worker/duties-book.js'
import { Committer } from '../../../node/worker/duties-committer.js'
import type { CommitReads, CommitSends, SentCommit } from '../../../node/worker/duties-committer.js'
import { ME, MemoryStore, rec, revert, wait } from './duties-fakes.js'

interface Harness {
  committer: Committer
  book: TaskBook
  store: MemoryStore
  sent: Array<{ kind: string, taskids: string[], args?: unknown[] }>
  told: Array<{ peer: string, message: ExecMessage }>
  failed: Array<{ taskid: string, err: unknown }>
  hub: { taskStatus: Map<string, number>, pendingStatus: Map<string, number>, contribution: Map<string, number>, pendingContribution: Map<string, number>, task: Map<string, { status: bigint, consensus: string }>, reads: string[] }
  computing: Set<string>
  running: { value: boolean }
}

function harness (opts: { maxCommitBatch?: number, maxCommitsInFlight?: number, commitWaitMs?: number, sends?: Partial<CommitSends> } = {}): Harness {
  const store = new MemoryStore()
  const computing = new Set<string>()
  const book = new TaskBook({ store, workDir: '/nonexistent-worker-dir', maxHeld: () => 4, log: () => {} })
  const h: Partial<Harness> = { store, book, sent: [], told: [], failed: [], computing, running: { value: true } }
  const hub: Harness['hub'] = { taskStatus: new Map(), pendingStatus: new Map(), contribution: new Map(), pendingContribution: new Map(), task: new Map(), reads: [] }
  h.hub = hub
  let n = 0
  const tx = async (kind: string, taskids: string[], args?: unknown[]): Promise<SentCommit> => {
    h.sent!.push({ kind, taskids, ...(args !== undefined ? { args } : {}) })
    await wait(1)
    return { hash: `0xtx${++n}` }
  }
  const reads = {
    taskStatus: async (dealid: string, idx: number, o?: { blockTag: 'pending' }) => {
      hub.reads.push(o === undefined ? 'taskStatus' : 'taskStatus:pending')
      const key = `${idx}`
      return BigInt((o === undefined ? hub.taskStatus.get(key) : hub.pendingStatus.get(key)) ?? TaskStatus.ACTIVE)
    },
    contributionOf: async (taskid: string, _worker: string, o?: { blockTag?: 'pending' }) => {
      hub.reads.push(o?.blockTag === undefined ? 'contributionOf' : 'contributionOf:pending')
      return { status: BigInt((o?.blockTag === undefined ? hub.contribution.get(taskid) : hub.pendingContribution.get(taskid)) ?? ContributionStatus.UNSET) }
    },
    taskOf: async (taskid: string) => { hub.reads.push('taskOf'); return hub.task.get(taskid) ?? { status: BigInt(TaskStatus.ACTIVE), consensus: '0x' } }
  } as unknown as CommitReads
  h.committer = new Committer({
    records: { record: async (id) => await book.record(id), save: async (r) => { await book.save(r) }, update: async (id, c) => await book.update(id, c), commitRecords: async (d) => { await book.commitRecords(d) }, freeDisk: async () => {}, isComputing: (dealid) => computing.has(dealid) },
    failures: { fail: async (r, err) => { h.failed!.push({ taskid: r.taskid, err }); const f: WorkerTaskRecord = { ...r, state: 'failed' }; await book.save(f); return f } },
    hub: reads,
    sends: {
      contributeAndFinalize: async (r) => await tx('single', [r.taskid]),
      contributeAndFinalizeBatch: async (rs) => await tx('batch', rs.map((r) => r.taskid)),
      contribute: async (taskid, hash, seal, auth) => await tx('contribute', [taskid], [hash, seal, auth]),
      reveal: async (taskid, digest) => await tx('reveal', [taskid], [digest]),
      ...opts.sends
    },
    tell: async (peer, message) => { h.told!.push({ peer, message }) },
    addStream: async () => { throw new Error('no output on disk in these tests') },
    me: ME,
    workDir: '/nonexistent-worker-dir',
    options: { maxCommitBatch: opts.maxCommitBatch ?? 32, maxCommitsInFlight: opts.maxCommitsInFlight ?? 4, commitWaitMs: opts.commitWaitMs ?? 50 },
    running: () => h.running!.value,
    signal: new AbortController().signal,
    log: () => {}
  })
  return h as Harness
}

const T = [0, 1, 2].map((i) => '0x' + (i + 1).toString(16).padStart(64, '0'))

/** A computed trust-1 task with its result already in the content store. */
const ready = (i: number, over: Partial<WorkerTaskRecord> = {}): WorkerTaskRecord => rec({ taskid: T[i], idx: i, resultsCid: `bafyres${i}`, ...over })

describe('worker duties: the committer', () => {
  describe('trust 1: group commit', () => {
    it('commits a lone task at once, alone, and tells its scheduler the transaction', async () => {
      const h = harness({ commitWaitMs: 10_000 })
      const r = ready(0)
      h.committer.computed(r.taskid)
      const done = await h.committer.commit(r)
      assert.equal(done.state, 'done')
      assert.equal(done.txHash, '0xtx1')
      assert.deepEqual(h.sent, [{ kind: 'single', taskids: [T[0]] }])
      assert.deepEqual(h.told, [{ peer: 'peerS', message: { type: 'contributed', taskids: [T[0]], txHash: '0xtx1' } }])
      assert.equal((await h.book.record(T[0]))?.state, 'done', 'the record is written done')
      assert.deepEqual(h.hub.reads, [], 'a result of this process is not looked up on the hub')
    })

    it('gathers the results of a deal still computing here into one transaction after commitWaitMs', async () => {
      const h = harness({ commitWaitMs: 40 })
      h.computing.add(ready(0).dealid)
      const rs = [0, 1, 2].map((i) => ready(i))
      for (const r of rs) h.committer.computed(r.taskid)
      const t0 = Date.now()
      const out = await Promise.all(rs.map(async (r) => await h.committer.commit(r)))
      assert.ok(Date.now() - t0 >= 35, 'the partial batch waited for the deal\'s other tasks')
      assert.deepEqual(h.sent, [{ kind: 'batch', taskids: [T[0], T[1], T[2]] }])
      assert.deepEqual(out.map((r) => [r.state, r.txHash]), [['done', '0xtx1'], ['done', '0xtx1'], ['done', '0xtx1']])
      assert.equal(h.store.batches, 1, 'the batch\'s records are written in one batch')
      assert.deepEqual(h.told.map((t) => t.message), [{ type: 'contributed', taskids: [T[0], T[1], T[2]], txHash: '0xtx1' }])
    })

    it('sends a full batch at once, and caps a transaction at maxCommitBatch', async () => {
      const h = harness({ commitWaitMs: 10_000, maxCommitBatch: 2 })
      h.computing.add(ready(0).dealid)
      const rs = [0, 1, 2].map((i) => ready(i))
      for (const r of rs) h.committer.computed(r.taskid)
      const first = Promise.all(rs.slice(0, 2).map(async (r) => await h.committer.commit(r)))
      await first
      assert.deepEqual(h.sent, [{ kind: 'batch', taskids: [T[0], T[1]] }], 'two ready: a full batch goes without waiting')
      // the third is partial, its deal computing and young: it waits
      const third = h.committer.commit(rs[2])
      await wait(20)
      assert.equal(h.sent.length, 1)
      h.computing.clear()
      h.committer.stop()
      await assert.rejects(third, (err: unknown) => isIexecError(err, 'DUTY_STOPPED'), 'a stop rejects what is still queued')
    })

    it('commits task by task when the batch reverts, and fails only the task whose own commit reverts', async () => {
      let single = 0
      let batches = 0
      const h = harness({
        commitWaitMs: 10_000,
        maxCommitBatch: 2,
        sends: {
          contributeAndFinalizeBatch: async () => { batches++; throw revert() },
          contributeAndFinalize: async (r) => { single++; if (r.taskid === T[1]) throw revert(); return { hash: `0xone${r.idx}` } }
        }
      })
      h.computing.add(ready(0).dealid)
      const rs = [0, 1].map((i) => ready(i))
      for (const r of rs) h.committer.computed(r.taskid)
      const out = await Promise.all(rs.map(async (r) => await h.committer.commit(r)))
      assert.equal(batches, 1)
      assert.equal(single, 2)
      assert.deepEqual(out.map((r) => r.state), ['done', 'failed'])
      assert.equal(out[0].txHash, '0xone0')
      assert.deepEqual(h.failed.map((f) => f.taskid), [T[1]])
      assert.deepEqual(h.hub.reads, [], 'a reverted batch left its tasks unsent: no hub read before each')
    })

    it('after a restart, asks the hub first: a closed task is done without a transaction, one waiting in the pool waits', async () => {
      const h = harness({ commitWaitMs: 0 })
      h.hub.taskStatus.set('0', TaskStatus.COMPLETED)
      const closed = await h.committer.commit(ready(0))
      assert.equal(closed.state, 'done')
      assert.equal(closed.txHash, undefined)
      h.hub.pendingStatus.set('1', TaskStatus.COMPLETED)
      const pooled = await h.committer.commit(ready(1))
      assert.equal(pooled.state, 'computed', 'left for the next tick to read again')
      assert.deepEqual(h.sent, [], 'nothing is committed twice')
      assert.deepEqual(h.hub.reads, ['taskStatus', 'taskStatus', 'taskStatus:pending'])
    })

    it('lets a transport failure of a batch throw, and asks the hub before the retry', async () => {
      let calls = 0
      const h = harness({ commitWaitMs: 10_000, maxCommitBatch: 2, sends: { contributeAndFinalizeBatch: async () => { calls++; throw new Error('rpc down') } } })
      h.computing.add(ready(0).dealid)
      const rs = [0, 1].map((i) => ready(i))
      for (const r of rs) h.committer.computed(r.taskid)
      const out = await Promise.allSettled(rs.map(async (r) => await h.committer.commit(r)))
      assert.deepEqual(out.map((o) => o.status), ['rejected', 'rejected'])
      assert.equal(calls, 1)
      assert.equal(h.failed.length, 0, 'a transport failure fails no task')
      h.computing.clear()
      await h.committer.commit(rs[0])
      assert.deepEqual(h.hub.reads.slice(0, 2), ['taskStatus', 'taskStatus:pending'], 'fate unknown: the hub is read first')
    })
  })

  describe('trust > 1: contribute and reveal', () => {
    it('contributes the result hash and seal, and finds a commit the hub already holds', async () => {
      const h = harness()
      const r = ready(0, { trust: 3 })
      h.committer.computed(r.taskid)
      const next = await h.committer.commit(r)
      assert.equal(next.state, 'contributed')
      assert.deepEqual(h.sent, [{ kind: 'contribute', taskids: [T[0]], args: [resultHash(r.taskid, r.digest as string), resultSeal(ME, r.taskid, r.digest as string), '0xauth'] }])
      assert.deepEqual(h.told.map((t) => t.message.type), ['contributed'])
      const h2 = harness()
      h2.hub.contribution.set(T[0], ContributionStatus.CONTRIBUTED)
      const found = await h2.committer.commit(ready(0, { trust: 3 }))
      assert.equal(found.state, 'contributed')
      assert.deepEqual(h2.sent, [])
    })

    it('fails a reverted commit unless its own earlier commit was mined meanwhile', async () => {
      const h = harness({ sends: { contribute: async () => { throw revert() } } })
      const a = ready(0, { trust: 3 })
      h.committer.computed(a.taskid)
      assert.equal((await h.committer.commit(a)).state, 'failed')
      let reads = 0
      const h2 = harness({ sends: { contribute: async () => { h2.hub.contribution.set(T[1], ContributionStatus.CONTRIBUTED); reads++; throw revert() } } })
      const b = ready(1, { trust: 3 })
      h2.committer.computed(b.taskid)
      assert.equal((await h2.committer.commit(b)).state, 'contributed')
      assert.equal(reads, 1)
      assert.equal(h2.failed.length, 0)
    })

    it('reveals only when the consensus is its result, and lets go of a task another result won', async () => {
      const h = harness()
      const r = ready(0, { trust: 3, state: 'contributed' })
      await h.book.save(r)
      assert.equal((await h.committer.revealIfDue(r)).state, 'contributed', 'ACTIVE: nothing to reveal yet')
      h.hub.task.set(T[0], { status: BigInt(TaskStatus.REVEALING), consensus: resultHash(T[0], r.digest as string) })
      const revealed = await h.committer.revealIfDue(r)
      assert.equal(revealed.state, 'revealed')
      assert.deepEqual(h.sent, [{ kind: 'reveal', taskids: [T[0]], args: [r.digest] }])
      assert.deepEqual(h.told.map((t) => t.message), [{ type: 'revealed', taskid: T[0], txHash: '0xtx1' }])
      const other = ready(1, { trust: 3, state: 'contributed' })
      h.hub.task.set(T[1], { status: BigInt(TaskStatus.REVEALING), consensus: '0x' + 'e'.repeat(64) })
      assert.equal((await h.committer.revealIfDue(other)).state, 'done')
      assert.equal(h.sent.length, 1, 'no reveal of a result that lost')
    })

    it('does not reveal twice: a proved contribution is found, a pending one waits, a late revert fails', async () => {
      const h = harness({ sends: { reveal: async () => { throw revert() } } })
      const mk = (i: number): WorkerTaskRecord => {
        const r = ready(i, { trust: 3, state: 'contributed' })
        h.hub.task.set(r.taskid, { status: BigInt(TaskStatus.REVEALING), consensus: resultHash(r.taskid, r.digest as string) })
        return r
      }
      const proved = mk(0)
      h.hub.contribution.set(T[0], ContributionStatus.PROVED)
      assert.equal((await h.committer.revealIfDue(proved)).state, 'revealed')
      const pending = mk(1)
      h.hub.pendingContribution.set(T[1], ContributionStatus.PROVED)
      assert.equal((await h.committer.revealIfDue(pending)).state, 'contributed')
      const late = mk(2)
      assert.equal((await h.committer.revealIfDue(late)).state, 'failed')
      assert.deepEqual(h.failed.map((f) => f.taskid), [T[2]])
    })
  })

  describe('a reorg', () => {
    const topics = (taskid: string, worker: string): string[] => ['0xevent', taskid, '0x' + '0'.repeat(24) + worker.slice(2)]

    it('takes a contributed task back to computed when its TaskContributed is gone, and starts it again', async () => {
      const h = harness()
      await h.book.save(ready(0, { trust: 3, state: 'contributed' }))
      const started: string[] = []
      await h.committer.takeBack({ name: 'TaskContributed', topics: topics(T[0], ME), transactionHash: '0xtx' }, (id) => { started.push(id) })
      assert.equal((await h.book.record(T[0]))?.state, 'computed')
      assert.deepEqual(started, [T[0]])
    })

    it('leaves a task alone when the event was another worker\'s or the hub still shows the step', async () => {
      const h = harness()
      await h.book.save(ready(0, { trust: 3, state: 'contributed' }))
      const started: string[] = []
      await h.committer.takeBack({ name: 'TaskContributed', topics: topics(T[0], '0x' + '9'.repeat(40)), transactionHash: '0xtx' }, (id) => { started.push(id) })
      h.hub.contribution.set(T[0], ContributionStatus.CONTRIBUTED)
      await h.committer.takeBack({ name: 'TaskContributed', topics: topics(T[0], ME), transactionHash: '0xtx' }, (id) => { started.push(id) })
      assert.equal((await h.book.record(T[0]))?.state, 'contributed')
      assert.deepEqual(started, [])
    })

    it('commits a trust-1 task again when the TaskFinalized of its own transaction is gone', async () => {
      const h = harness()
      await h.book.save(ready(0, { state: 'done', txHash: '0xAbC' }))
      const started: string[] = []
      await h.committer.takeBack({ name: 'TaskFinalized', topics: topics(T[0], ME), transactionHash: '0xabc' }, (id) => { started.push(id) })
      assert.equal((await h.book.record(T[0]))?.state, 'computed')
      assert.deepEqual(started, [T[0]])
    })
  })
})
