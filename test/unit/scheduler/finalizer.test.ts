import assert from 'node:assert/strict'
import { keccak256 } from 'ethers'
import { ContributionStatus, TaskStatus } from '../../../contracts-abi/index.js'
import { resultHash } from '../../../protocols/eip712.js'
import type { ExecMessage } from '../../../protocols/execution.js'
import { ChainError, hubInterface } from '../../../node/chain/index.js'
import { Finalizer } from '../../../node/scheduler/finalizer.js'
import type { FinalizerInit, ReceiptView } from '../../../node/scheduler/finalizer.js'
import type { KnownDeal } from '../../../node/scheduler/records.js'
import { FakeTasks, ME, OTHER, W1, W2, dealState, knownDeal, peerOf, recordingLog, replica, task, taskState, tid } from './fakes.js'

const HUB = '0x00000000000000000000000000000000000000aB'
const FINALIZED = hubInterface().getEvent('TaskFinalized')?.topicHash as string

interface Harness {
  finalizer: Finalizer
  tasks: FakeTasks
  sent: Array<{ peer: string, message: ExecMessage }>
  finalizes: Array<{ taskid: string, cid: string, callbackData: string }>
  releases: string[]
  markedDone: Array<{ dealid: string, worker: boolean }>
  released: string[]
  /** releaseAt calls that left a release due (deal id, chain time) */
  dueAgain: Array<{ dealid: string, at: number }>
  receipts: string[]
  kicks: number
  lines: string[]
}

interface Setup {
  proved?: string[]
  /** the task as taskOf at the pending tag reads it (a finalize already in the pool: COMPLETED) */
  pendingStatus?: TaskStatus
  upload?: (peer: string) => ExecMessage
  receipt?: ReceiptView | null
  open?: KnownDeal[]
  releasing?: KnownDeal[]
  done?: bigint
  revealDue?: boolean
  /** the hub's release (default: mined at once) */
  release?: (dealid: string) => Promise<{ hash: string }>
}

function make (s: Setup = {}): Harness {
  const tasks = new FakeTasks()
  const { log, lines } = recordingLog()
  const h: Harness = { finalizer: undefined as unknown as Finalizer, tasks, sent: [], finalizes: [], releases: [], markedDone: [], released: [], dueAgain: [], receipts: [], kicks: 0, lines }
  const open = new Map((s.open ?? [knownDeal()]).map((k) => [k.deal.dealid, k]))
  const init: FinalizerInit = {
    book: {
      getTask: async (id) => await tasks.getTask(id),
      putTask: async (id, rec) => { await tasks.putTask(id, rec) },
      closeTask: async (id) => await tasks.closeTask(id),
      openDeal: (id) => open.get(id),
      isMine: (k) => (k.scheduler ?? k.deal.scheduler) === ME,
      markDone: async (k, worker) => { h.markedDone.push({ dealid: k.deal.dealid, worker }); open.delete(k.deal.dealid) },
      releasingDeals: () => s.releasing ?? [],
      releaseAt: async (id, at) => { if (at === undefined) h.released.push(id); else h.dueAgain.push({ dealid: id, at }) }
    },
    liveness: { revealDue: () => s.revealDue ?? true, finalizePending: () => true },
    hub: {
      address: async () => HUB,
      dealOf: async () => dealState({ done: s.done ?? 0n }),
      taskOf: async () => taskState({ status: BigInt(s.pendingStatus ?? TaskStatus.REVEALING) }),
      contributionStatus: async (_taskid, w) => BigInt(s.proved?.includes(w) === true ? ContributionStatus.PROVED : ContributionStatus.CONTRIBUTED),
      finalize: async (taskid, cid, callbackData) => { h.finalizes.push({ taskid, cid, callbackData }); return { hash: '0xfin' } },
      release: async (dealid) => { h.releases.push(dealid); return await (s.release?.(dealid) ?? Promise.resolve({ hash: '0xrel' })) }
    },
    receipt: async (tx) => { h.receipts.push(tx); return s.receipt === undefined ? null : s.receipt },
    send: async (peer, message) => {
      h.sent.push({ peer, message })
      if (message.type === 'upload-request') return s.upload?.(peer) ?? { type: 'result-uploaded', taskid: message.taskid, cid: 'bafyresult' }
      return { type: 'ack' }
    },
    proof: () => '0xproof',
    resolvePeer: async (w) => peerOf(w),
    me: ME,
    running: () => true,
    kick: () => { h.kicks++ },
    log
  }
  h.finalizer = new Finalizer(init)
  return h
}

const types = (h: Harness): string[] => h.sent.map((s) => `${s.message.type}:${s.peer}`)

describe('scheduler finalizer: reveal, upload, finalize', () => {
  it('asks the unproved contributors to reveal, a proved winner to upload, keeps the CID, then finalizes and tells the winners', async () => {
    const h = make({ proved: [W1] })
    const rec = task(0, [replica(W1, { contributed: true }), replica(W2, { contributed: true })])
    await h.finalizer.revealAndFinalize(knownDeal({ trust: 3 }), rec, taskState({ status: 2n, reveals: 1n, winners: 1n, revealDeadline: 1_200n }), [W1, W2], 1_100)
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(types(h), [`reveal-request:${peerOf(W2)}`, `upload-request:${peerOf(W1)}`, `finalized:${peerOf(W1)}`])
    assert.equal(h.tasks.recs.get(tid(0))?.resultsCid, 'bafyresult', 'the CID is kept before the transaction')
    assert.deepEqual(h.finalizes, [{ taskid: tid(0), cid: 'bafyresult', callbackData: '0x' }])
    assert.equal(rec.closed, true)
  })

  it('waits while reveals are missing and the reveal deadline has not passed', async () => {
    const h = make({ proved: [W1] })
    const rec = task(0, [replica(W1), replica(W2)])
    await h.finalizer.revealAndFinalize(knownDeal({ trust: 3 }), rec, taskState({ reveals: 1n, winners: 2n, revealDeadline: 1_200n }), [W1, W2], 1_100)
    assert.deepEqual(h.finalizes, [])
    assert.equal(rec.closed, false)
    // past the deadline, the one reveal is enough
    await h.finalizer.revealAndFinalize(knownDeal({ trust: 3 }), rec, taskState({ reveals: 1n, winners: 2n, revealDeadline: 1_200n }), [W1, W2], 1_200)
    assert.equal(h.finalizes.length, 1)
  })

  it('does not send a reveal request that liveness says is not due', async () => {
    const h = make({ proved: [], revealDue: false })
    await h.finalizer.revealAndFinalize(knownDeal({ trust: 3 }), task(0, [replica(W1)]), taskState({ reveals: 0n, winners: 1n, revealDeadline: 1_200n }), [W1], 1_100)
    assert.deepEqual(h.sent, [])
  })

  it('sends no second finalize while one of an earlier run waits in the pool', async () => {
    const h = make({ proved: [W1], pendingStatus: TaskStatus.COMPLETED })
    const rec = task(0, [replica(W1)], { resultsCid: 'bafyold' })
    await h.finalizer.revealAndFinalize(knownDeal({ trust: 3 }), rec, taskState({ reveals: 1n, winners: 1n }), [W1], 1_100)
    assert.deepEqual(h.finalizes, [])
    assert.equal(rec.closed, false)
    assert.ok(h.lines.includes('finalize of an earlier run pending: waiting for it'))
  })

  it('a callback deal finalizes only with the callback data the consensus covers', async () => {
    const data = '0x1234'
    const consensus = resultHash(tid(0), keccak256(data))
    const known = knownDeal({ trust: 3, callback: OTHER })
    const bad = make({ proved: [W1], upload: () => ({ type: 'result-uploaded', taskid: tid(0), cid: 'bafy', callbackData: '0x9999' }) })
    await bad.finalizer.revealAndFinalize(known, task(0, [replica(W1)]), taskState({ reveals: 1n, winners: 1n, consensus }), [W1], 1_100)
    assert.deepEqual(bad.finalizes, [])
    const good = make({ proved: [W1], upload: () => ({ type: 'result-uploaded', taskid: tid(0), cid: 'bafy', callbackData: data }) })
    await good.finalizer.revealAndFinalize(known, task(0, [replica(W1)]), taskState({ reveals: 1n, winners: 1n, consensus }), [W1], 1_100)
    assert.deepEqual(good.finalizes, [{ taskid: tid(0), cid: 'bafy', callbackData: data }])
  })
})

describe('scheduler finalizer: trust-1 receipts', () => {
  const log = (taskid: string): { address: string, topics: string[] } => ({ address: HUB, topics: [FINALIZED, taskid, '0x' + '00'.repeat(32)] })

  it('closes the tasks whose TaskFinalized the receipt holds, and ticks', async () => {
    const h = make({ receipt: { status: 1, logs: [log(tid(0))] } })
    await h.tasks.putTask(tid(0), task(0, [replica(W1)]))
    await h.tasks.putTask(tid(1), task(1, [replica(W1)]))
    h.finalizer.contributed({ type: 'contributed', taskids: [tid(0).toUpperCase().replace('0X', '0x'), tid(1)], txHash: '0xtx' })
    await h.finalizer.settle()
    assert.deepEqual(h.receipts, ['0xtx'])
    assert.equal(h.tasks.recs.get(tid(0))?.closed, true)
    assert.equal(h.tasks.recs.get(tid(1))?.closed, false, 'not in the receipt: the worker is not believed')
    assert.equal(h.kicks, 1)
  })

  it('a reverted transaction closes nothing; a deal scheduled by another node is not even read', async () => {
    const h = make({ receipt: { status: 0, logs: [log(tid(0))] } })
    await h.tasks.putTask(tid(0), task(0, [replica(W1)]))
    h.finalizer.contributed({ type: 'contributed', taskids: [tid(0)], txHash: '0xtx' })
    await h.finalizer.settle()
    assert.equal(h.tasks.recs.get(tid(0))?.closed, false)
    const other = make({ open: [knownDeal({ scheduler: OTHER })], receipt: { status: 1, logs: [log(tid(0))] } })
    await other.tasks.putTask(tid(0), task(0, [replica(W1)]))
    other.finalizer.contributed({ type: 'contributed', taskids: [tid(0)], txHash: '0xtx' })
    await other.finalizer.settle()
    assert.deepEqual(other.receipts, [])
  })
})

describe('scheduler finalizer: done deals and stakes', () => {
  it('closes a done deal once, as a worker of it when this node is one, and releases its own scheduler stake', async () => {
    const known = knownDeal({ workers: [W1, ME] })
    const h = make({ open: [known] })
    await h.finalizer.closeDeal(known, { scheduler: ME, schedulerLocked: 5n })
    await h.finalizer.closeDeal(known, { scheduler: ME, schedulerLocked: 5n })
    await h.finalizer.settle()
    assert.deepEqual(h.markedDone, [{ dealid: known.deal.dealid, worker: true }])
    assert.deepEqual(h.releases, [known.deal.dealid])
    // a worker of the deal: its own stake is still due at the final deadline
    assert.deepEqual(h.dueAgain, [{ dealid: known.deal.dealid, at: known.deal.finalDeadline }])
  })

  it('closing a deal does not wait for its stake release to be mined; stop (settle) does', async () => {
    const known = knownDeal()
    let mine: (v: { hash: string }) => void = () => {}
    const h = make({ open: [known], release: async () => await new Promise((resolve) => { mine = resolve }) })
    await h.finalizer.closeDeal(known, { scheduler: ME, schedulerLocked: 5n })
    assert.deepEqual(h.markedDone, [{ dealid: known.deal.dealid, worker: false }])
    assert.deepEqual(h.releases, [known.deal.dealid])
    let settled = false
    const settling = h.finalizer.settle().then(() => { settled = true })
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(settled, false)
    // a watchdog pass meanwhile sends no second release for the same deal
    await h.finalizer.releaseDue(Number.MAX_SAFE_INTEGER)
    mine({ hash: '0xrel' })
    await settling
    assert.deepEqual(h.releases, [known.deal.dealid])
    assert.deepEqual(h.released, [known.deal.dealid])
    assert.ok(h.lines.some((l) => l.includes('stake released')))
  })

  it('a scheduler stake release that failed short of a revert is due again at once; a revert is not sent again', async () => {
    const known = knownDeal()
    const down = make({ open: [known], release: async () => { throw new ChainError('TX_TIMEOUT', 'no receipt within 120000 ms') } })
    await down.finalizer.closeDeal(known, { scheduler: ME, schedulerLocked: 5n })
    await down.finalizer.settle()
    assert.deepEqual(down.dueAgain, [{ dealid: known.deal.dealid, at: 0 }])
    assert.deepEqual(down.released, [])
    assert.ok(down.lines.some((l) => l.includes('sent again later')))

    const reverted = make({ open: [known], release: async () => { throw new ChainError('CONTRACT_REVERT', 'reverted with NothingToRelease', { reason: 'NothingToRelease' }) } })
    await reverted.finalizer.closeDeal(known, { scheduler: ME, schedulerLocked: 5n })
    await reverted.finalizer.settle()
    assert.deepEqual(reverted.dueAgain, [])
    assert.deepEqual(reverted.released, [known.deal.dealid])
  })

  it('a retried release before the final deadline keeps the worker stake due at the deadline', async () => {
    const retry = knownDeal({ workers: [W1, ME] }, { done: true, releaseAt: 0 })
    const h = make({ releasing: [retry] })
    await h.finalizer.releaseDue(retry.deal.finalDeadline - 1)
    await h.finalizer.settle()
    assert.deepEqual(h.releases, [retry.deal.dealid])
    assert.deepEqual(h.dueAgain, [{ dealid: retry.deal.dealid, at: retry.deal.finalDeadline }])
    assert.deepEqual(h.released, [])
  })

  it('releases no stake of another scheduler, nor a stake already released', async () => {
    const known = knownDeal()
    const h = make({ open: [known] })
    await h.finalizer.closeDeal(known, { scheduler: OTHER, schedulerLocked: 5n })
    const h2 = make({ open: [known] })
    await h2.finalizer.closeDeal(known, { scheduler: ME, schedulerLocked: 0n })
    assert.deepEqual([...h.releases, ...h2.releases], [])
    assert.deepEqual(h.markedDone, [{ dealid: known.deal.dealid, worker: false }])
  })

  it('releases a worker stake once the deal\'s final deadline has passed', async () => {
    const due = knownDeal({ dealid: '0x' + 'aa'.repeat(32) }, { done: true, releaseAt: 5_000 })
    const later = knownDeal({ dealid: '0x' + 'bb'.repeat(32) }, { done: true, releaseAt: 6_000 })
    const h = make({ releasing: [due, later] })
    await h.finalizer.releaseDue(5_000)
    await h.finalizer.settle()
    assert.deepEqual(h.releases, [due.deal.dealid])
    assert.deepEqual(h.released, [due.deal.dealid])
  })

  it('a deal is done only when the mined state says so', async () => {
    assert.equal(await make({ done: 2n }).finalizer.doneMined('0x01', 2), true)
    assert.equal(await make({ done: 1n }).finalizer.doneMined('0x01', 2), false)
  })
})
