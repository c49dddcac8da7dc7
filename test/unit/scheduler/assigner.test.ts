import assert from 'node:assert/strict'
import { Wallet } from 'ethers'
import { TaskStatus } from '../../../contracts-abi/index.js'
import type { AssignMessage, ExecMessage } from '../../../protocols/execution.js'
import { Assigner } from '../../../node/scheduler/assigner.js'
import type { AssignerInit } from '../../../node/scheduler/assigner.js'
import type { KnownDeal, ScheduledTask } from '../../../node/scheduler/records.js'
import { FakeTasks, ME, OTHER, W1, W2, W3, knownDeal, peerOf, recordingLog, replica, task, taskState, tid } from './fakes.js'

interface Harness {
  assigner: Assigner
  tasks: FakeTasks
  sent: Array<{ peer: string, message: AssignMessage }>
  hubCalls: string[]
  assignedPeers: string[]
  handedOver: Array<{ taskid: string, contributors: string[] }>
  kicks: number
  lines: string[]
}

interface Setup {
  deals?: KnownDeal[]
  capacity?: Record<string, number>
  scores?: Record<string, bigint>
  taskStatus?: TaskStatus
  taskOf?: Array<ReturnType<typeof taskState>>
  contributors?: string[]
  /** per peer: how many tasks of an assign it takes (default all) */
  accepts?: Record<string, number>
  /** peers whose liveness says no assignment is due */
  notDue?: string[]
  ended?: string[]
  computed?: string[]
  resultEncryptionKey?: string
}

function make (s: Setup = {}): Harness {
  const tasks = new FakeTasks()
  const { log, lines } = recordingLog()
  const deals = s.deals ?? [knownDeal()]
  const taskOfs = [...(s.taskOf ?? [])]
  const h: Harness = { assigner: undefined as unknown as Assigner, tasks, sent: [], hubCalls: [], assignedPeers: [], handedOver: [], kicks: 0, lines }
  const init: AssignerInit = {
    book: {
      openDeals: () => deals,
      peekTask: async (id) => await tasks.peekTask(id),
      getTask: async (id) => await tasks.getTask(id),
      putTask: async (id, rec) => { await tasks.putTask(id, rec) },
      taskIdOf: (_dealid, idx) => tid(idx),
      hasEnded: (_dealid, taskid) => s.ended?.includes(taskid) === true
    },
    liveness: {
      expire: () => {},
      assignDue: (_taskid, peer) => s.notDue?.includes(peer) !== true,
      assigned: (_taskid, peer) => { h.assignedPeers.push(peer) },
      isComputed: (taskid, peer) => s.computed?.includes(`${taskid}:${peer}`) === true
    },
    finalizer: { revealAndFinalize: async (_known, rec, _task, contributors) => { h.handedOver.push({ taskid: rec.taskid, contributors }) } },
    hub: {
      taskStatus: async () => { h.hubCalls.push('taskStatus'); return BigInt(s.taskStatus ?? TaskStatus.UNSET) },
      taskOf: async () => { h.hubCalls.push('taskOf'); return taskOfs.shift() ?? taskState({ status: BigInt(TaskStatus.ACTIVE) }) },
      contributorsOf: async () => s.contributors ?? [],
      scoreOf: async (w) => s.scores?.[w] ?? 0n,
      initialize: async (dealid, idx) => { h.hubCalls.push(`initialize:${idx}`); return { hash: '0xinit' } }
    },
    send: async (peer: string, message: ExecMessage): Promise<ExecMessage> => {
      const m = message as AssignMessage
      h.sent.push({ peer, message: m })
      return { type: 'assigned', accepted: s.accepts?.[peer] ?? m.tasks.length }
    },
    proof: () => '0xproof',
    authorize: async (worker, taskid) => `auth:${worker}:${taskid}`,
    resolvePeer: async (w) => peerOf(w),
    workerCapacity: async (w) => s.capacity?.[w],
    resultEncryptionKey: async () => s.resultEncryptionKey,
    me: ME,
    options: { maxTasksPerWorker: 1, maxFailuresPerWorker: 2, scoreMaxAgeMs: 1_000 },
    running: () => true,
    kick: () => { h.kicks++ },
    log
  }
  h.assigner = new Assigner(init)
  return h
}

async function pass (h: Harness, known: KnownDeal, now = 1_100): Promise<void> {
  await h.assigner.schedule(known, now, await h.assigner.loads())
  await h.assigner.flush()
}

const rec = (h: Harness, idx: number): ScheduledTask | undefined => h.tasks.recs.get(tid(idx))

describe('scheduler assigner: which worker gets a task, and when', () => {
  it('trust 1: assigns a fresh task to the best-scored free worker with a signed authorization, no chain read', async () => {
    const h = make({ scores: { [W2]: 300n } })
    const known = knownDeal()
    await pass(h, known)
    assert.deepEqual(h.hubCalls, [], 'a task of a deal this node scheduled since the match needs no status read')
    assert.equal(h.sent.length, 1)
    assert.equal(h.sent[0].peer, peerOf(W2))
    const m = h.sent[0].message
    assert.equal(m.proof, '0xproof')
    assert.equal(m.dealid, known.deal.dealid)
    assert.deepEqual(m.tasks, [{ idx: 0, authorization: `auth:${W2}:${tid(0)}` }])
    assert.deepEqual(rec(h, 0)?.replicas.map((r) => r.worker), [W2])
  })

  it('spreads a bag by free capacity: a worker with more cpus takes more, one message per worker', async () => {
    const known = knownDeal({ volume: 6, workers: [W1, W2] })
    const h = make({ deals: [known], capacity: { [W1]: 1, [W2]: 2 } })
    await pass(h, known)
    const per = new Map(h.sent.map((s) => [s.peer, s.message.tasks.length]))
    // TASKS_PER_CPU (2) per cpu: W1 holds 2, W2 holds 4
    assert.deepEqual(Object.fromEntries(per), { [peerOf(W1)]: 2, [peerOf(W2)]: 4 })
  })

  it('leaves tasks waiting with no chain read while every worker is full', async () => {
    // a trust-3 deal: a task that got a worker would be read (taskOf) and initialized first
    const known = knownDeal({ volume: 7, trust: 3 })
    const h = make({ deals: [known], capacity: { [W1]: 1, [W2]: 1, [W3]: 1 }, notDue: [peerOf(W1)] })
    // each worker already holds two tasks (its capacity: TASKS_PER_CPU x 1 cpu) of the deal, not yet computed
    for (const [i, w] of [W1, W1, W2, W2, W3, W3].entries()) await h.tasks.putTask(tid(i), task(i, [replica(w)], { closed: i > 0 }))
    await h.assigner.schedule(known, 1_100, new Map([[W1, 2], [W2, 2], [W3, 2]]))
    await h.assigner.flush()
    assert.equal(rec(h, 6), undefined, 'task 6 waits')
    assert.deepEqual(h.hubCalls, ['taskOf'], 'only task 0, which a worker holds, was read')
    assert.equal(h.sent.length, 0)
  })

  it('a computed result frees its worker\'s slot in the loads', async () => {
    const known = knownDeal({ volume: 2 })
    const h = make({ deals: [known], computed: [`${tid(0)}:${peerOf(W1)}`] })
    await h.tasks.putTask(tid(0), task(0, [replica(W1)]))
    await h.tasks.putTask(tid(1), task(1, [replica(W2)]))
    assert.deepEqual(Object.fromEntries(await h.assigner.loads()), { [W2]: 1 })
  })

  it('trust 1: a live replica with no resend due is left alone; when due, the same worker is sent it again', async () => {
    const known = knownDeal({ scheduler: OTHER }, { scheduler: ME })
    const h = make({ notDue: [peerOf(W1)] })
    await h.tasks.putTask(tid(0), task(0, [replica(W1)]))
    await pass(h, known)
    assert.equal(h.sent.length, 0)
    assert.deepEqual(h.hubCalls, [], 'no status read either')
    const h2 = make()
    await h2.tasks.putTask(tid(0), task(0, [replica(W1)]))
    await pass(h2, known)
    assert.deepEqual(h2.hubCalls, ['taskStatus'], 'before a resend, the hub says whether the task is still open')
    assert.deepEqual(h2.sent.map((s) => s.peer), [peerOf(W1)])
    assert.equal(rec(h2, 0)?.replicas.length, 1, 'no second replica')
  })

  it('trust 1: a task the events said ended, or the hub says completed, closes', async () => {
    const known = knownDeal({ scheduler: OTHER }, { scheduler: ME })
    const h = make({ ended: [tid(0)] })
    await pass(h, known)
    assert.equal(rec(h, 0)?.closed, true)
    assert.deepEqual(h.hubCalls, [])
    const h2 = make({ taskStatus: TaskStatus.COMPLETED })
    await pass(h2, known)
    assert.equal(rec(h2, 0)?.closed, true)
    assert.equal(h2.sent.length, 0)
  })

  it('a refused part of an assign marks those replicas dead and ticks again', async () => {
    const h = make({ deals: [knownDeal({ volume: 2, workers: [W1] })], capacity: { [W1]: 1 }, accepts: { [peerOf(W1)]: 1 } })
    await pass(h, knownDeal({ volume: 2, workers: [W1] }))
    assert.equal(h.sent[0].message.tasks.length, 2)
    assert.equal(rec(h, 0)?.replicas[0].dead, false, 'the accepted prefix')
    assert.equal(rec(h, 1)?.replicas[0].dead, true, 'the refused rest')
    assert.equal(h.kicks, 1)
    assert.ok(h.lines.includes('assignment failed'))
  })

  it('does not ask again a worker that reported the task failed maxFailuresPerWorker times', async () => {
    const known = knownDeal({ workers: [W1, W2], scheduler: OTHER }, { scheduler: ME })
    const h = make()
    await h.tasks.putTask(tid(0), task(0, [replica(W1, { dead: true, failures: 2 }), replica(W2, { dead: true, failures: 1 })]))
    await pass(h, known)
    assert.deepEqual(h.sent.map((s) => s.peer), [peerOf(W2)], 'W2 failed once: it gets another chance')
    const h2 = make()
    await h2.tasks.putTask(tid(0), task(0, [replica(W1, { dead: true, failures: 2 })]))
    await pass(h2, knownDeal({ workers: [W1], scheduler: OTHER }, { scheduler: ME }))
    assert.equal(h2.sent.length, 0)
  })

  it('prefers a worker without a replica over retrying one whose replica died', async () => {
    const known = knownDeal({ workers: [W1, W2], scheduler: OTHER }, { scheduler: ME })
    const h = make({ scores: { [W1]: 900n } })
    await h.tasks.putTask(tid(0), task(0, [replica(W1, { dead: true })]))
    await pass(h, known)
    assert.deepEqual(h.sent.map((s) => s.peer), [peerOf(W2)])
  })

  it('result encryption asked with no requester key: nothing is sent, the replica is dead', async () => {
    const h = make()
    await pass(h, knownDeal({ params: '{"iexec_result_encryption":true}' }))
    assert.equal(h.sent.length, 0)
    assert.ok(rec(h, 0)?.replicas.every((r) => r.dead))
    const h2 = make({ resultEncryptionKey: '0x02' + 'ab'.repeat(32) })
    await pass(h2, knownDeal({ params: '{"iexec_result_encryption":true}' }))
    assert.equal(h2.sent[0].message.resultEncryptionKey, '0x02' + 'ab'.repeat(32))
  })

  it('consensus: initializes an unset task, then adds replicas until the rule can be met (trust 3: two)', async () => {
    const known = knownDeal({ trust: 3 })
    const h = make({ taskOf: [taskState({ status: BigInt(TaskStatus.UNSET) }), taskState({ status: BigInt(TaskStatus.ACTIVE) })] })
    await pass(h, known)
    assert.deepEqual(h.hubCalls.slice(0, 3), ['taskOf', 'initialize:0', 'taskOf'])
    assert.equal(rec(h, 0)?.replicas.length, 2)
    assert.equal(h.sent.length, 2)
  })

  it('consensus: an unset task past its contribution deadline is not initialized', async () => {
    const h = make({ taskOf: [taskState({ status: BigInt(TaskStatus.UNSET) })] })
    await pass(h, knownDeal({ trust: 3 }), 2_000)
    assert.ok(!h.hubCalls.includes('initialize:0'))
    assert.equal(h.sent.length, 0)
  })

  it('consensus: marks contributors\' replicas contributed and hands a revealing task to the finalizer', async () => {
    const known = knownDeal({ trust: 3 })
    const h = make({ taskOf: [taskState({ status: BigInt(TaskStatus.REVEALING) })], contributors: [W1, W2] })
    await h.tasks.putTask(tid(0), task(0, [replica(W1), replica(W2)]))
    await pass(h, known)
    assert.deepEqual(h.handedOver, [{ taskid: tid(0), contributors: [W1.toLowerCase(), W2.toLowerCase()] }])
    assert.ok(rec(h, 0)?.replicas.every((r) => r.contributed))
    assert.equal(h.sent.length, 0)
  })
})

describe('scheduler assigner: requester result key', () => {
  it('takes the key from the params only when it is the requester\'s', async () => {
    const { requesterResultKey } = await import('../../../node/scheduler/assigner.js')
    const me = Wallet.createRandom()
    const key = me.signingKey.compressedPublicKey
    const params = JSON.stringify({ iexec_result_encryption: true, iexec_p2p_result_key: key })
    assert.equal(await requesterResultKey(knownDeal({ requester: me.address, params }).deal), key)
    assert.equal(await requesterResultKey(knownDeal({ requester: W1, params }).deal), undefined)
  })
})
