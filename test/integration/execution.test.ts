import assert from 'node:assert/strict'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { TaskStatus } from '../../contracts-abi/index.js'
import { taskId } from '../../protocols/eip712.js'
import { TASKS_PER_CPU } from '../../protocols/execution.js'
import { ExecSwarm, RLC, waitFor } from './execution-harness.js'
import type { WorkerFaults } from '../../node/worker/duties.js'

describe('execution: scheduler and worker duties on a 4-node swarm (real anvil, libp2p, Helia, WASI)', function () {
  this.timeout(180_000)
  let swarm: ExecSwarm | undefined

  afterEach(async () => {
    await swarm?.close()
    swarm = undefined
  })

  function sw (): ExecSwarm {
    if (swarm === undefined) throw new Error('no swarm')
    return swarm
  }

  async function balance (address: string): Promise<bigint> {
    const [b] = await sw().requester.hub!.accountOf(address)
    return b
  }

  it('runs a trust-1 task: contribute-and-finalize, the result CID holds the right output, balances follow the rules', async () => {
    swarm = await ExecSwarm.create(4)
    const s = sw()
    const worker = s.nodes[1].node.address
    const before = { worker: await balance(worker), requester: await balance(s.requester.address), app: await balance(s.appOwner.address) }
    const deal = await s.makeDeal({ trust: 1, workers: [1] })
    const schedBefore = await balance(deal.scheduler)
    await s.waitCompleted(deal.dealid, 0)
    const cid = await s.resultsCid(deal.dealid, 0)
    assert.equal(await s.resultText(cid, 0), s.expectedOutput())

    const share = deal.workerPrice * 90n / 100n
    assert.equal(await balance(s.appOwner.address) - before.app, 2n * RLC, 'the app owner is paid its price')
    assert.equal(before.requester - await balance(s.requester.address), 2n * RLC + deal.workerPrice, 'the requester paid app + task price')
    const [, frozen] = await s.requester.hub!.accountOf(s.requester.address)
    assert.equal(frozen, 0n, 'nothing stays frozen')
    if (deal.scheduler.toLowerCase() === worker.toLowerCase()) {
      assert.equal(await balance(worker) - before.worker, deal.workerPrice)
    } else {
      assert.equal(await balance(worker) - before.worker, share, 'the worker gets 90%')
      assert.equal(await balance(deal.scheduler) - schedBefore, deal.workerPrice - share, 'the scheduler gets the rest')
    }
    const { held, accounted } = await s.conservation()
    assert.equal(held, accounted, 'conservation of RLC')
    // the chain may show the task closed a moment before the worker records its receipt
    await waitFor(async () => (await s.nodes[1].worker.task(taskId(deal.dealid, 0)))?.state === 'done', 10_000, 'the worker recorded the task done')
    const rec = await s.nodes[1].worker.task(taskId(deal.dealid, 0))
    assert.equal(rec?.resultsCid, cid)
  })

  it('runs a trust-3 task: initialize, two agreeing workers, reveal, upload, finalize; winners and scheduler paid', async () => {
    swarm = await ExecSwarm.create(4)
    const s = sw()
    const workers = [0, 1, 2].map((i) => s.nodes[i].node.address)
    const requesterBefore = await balance(s.requester.address)
    const appBefore = await balance(s.appOwner.address)
    const deal = await s.makeDeal({ trust: 3, workers: [0, 1, 2] })
    const before = new Map<string, bigint>()
    for (const a of [...workers, deal.scheduler]) before.set(a, await balance(a))
    await s.waitCompleted(deal.dealid, 0, 90_000)
    // the requester pays the app and one task price, whatever the number of replicas; the app owner its price
    assert.equal(requesterBefore - await balance(s.requester.address), 2n * RLC + deal.workerPrice, 'the requester paid app + task price')
    assert.equal((await s.requester.hub!.accountOf(s.requester.address))[1], 0n, 'nothing of the requester stays frozen')
    assert.equal(await balance(s.appOwner.address) - appBefore, 2n * RLC, 'the app owner is paid its price')
    const cid = await s.resultsCid(deal.dealid, 0)
    assert.equal(await s.resultText(cid, 3), s.expectedOutput())

    const taskid = taskId(deal.dealid, 0)
    const task = await s.requester.hub!.taskOf(taskid)
    assert.equal(Number(task.status), TaskStatus.COMPLETED)
    const contributors = await s.requester.hub!.contributorsOf(taskid)
    // two new workers (weight 2 each) reach 4 * 3 > 5 * 2: a third replica is not needed
    assert.equal(contributors.length, 2, 'replicas stop once consensus can be met')
    assert.equal(Number(task.winners), 2)
    let paid = 0n
    for (const w of contributors) {
      const gain = await balance(w) - (before.get(w) ?? 0n)
      if (w.toLowerCase() !== deal.scheduler.toLowerCase()) assert.equal(gain, deal.workerPrice * 90n / 100n / 2n, 'each winner gets half of 90%')
      assert.equal(await s.requester.hub!.scoreOf(w), 1n, 'winners gain a point of score')
      paid += deal.workerPrice * 90n / 100n / 2n
    }
    if (!contributors.some((w) => w.toLowerCase() === deal.scheduler.toLowerCase())) {
      assert.equal(await balance(deal.scheduler) - (before.get(deal.scheduler) ?? 0n), deal.workerPrice - paid, 'the scheduler gets the rest')
    }
    const schedIdx = s.nodeIndexOf(deal.scheduler)
    await waitFor(async () => (await s.nodes[schedIdx].scheduler.taskRecord(taskid))?.closed === true, 10_000, 'the scheduler recorded the task closed')
    const rec = await s.nodes[schedIdx].scheduler.taskRecord(taskid)
    const { held, accounted } = await s.conservation()
    assert.equal(held, accounted, 'conservation of RLC')
    assert.equal(rec?.resultsCid, cid)

    // stakes unlocked: the scheduler's at once (its node releases it when the deal is done),
    // the spare worker's (locked for a contribution it never made) after the final deadline
    const hub = s.requester.hub!
    const lockedOf = async (a: string): Promise<bigint> => (await hub.stakeOf(a))[1]
    await waitFor(async () => (await hub.dealOf(deal.dealid)).schedulerLocked === 0n, 15_000, 'the scheduler\'s deal stake released')
    const spare = workers.find((w) => !contributors.some((c) => c.toLowerCase() === w.toLowerCase()))
    assert.ok(spare !== undefined)
    assert.ok(await lockedOf(spare) > 0n, 'the spare\'s stake stays locked until the final deadline')
    await s.increaseTime(10 * 60 + 1)
    await waitFor(async () => {
      for (const a of new Set([...workers, deal.scheduler])) if (await lockedOf(a) !== 0n) return false
      return true
    }, 30_000, 'every stake of the deal released after the final deadline')
  })

  it('one worker runs trust-1 deal after trust-1 deal: a scheduler\'s finished deals never count as work in flight', async () => {
    swarm = await ExecSwarm.create(4)
    const s = sw()
    // 9 deals among 4 possible schedulers: one of them schedules at least 3 for the same worker,
    // past maxTasksPerWorker (2) finished assignments, which must not block the next one
    const schedulers = new Map<string, number>()
    for (let i = 0; i < 9; i++) {
      const deal = await s.makeDeal({ trust: 1, workers: [0] })
      schedulers.set(deal.scheduler, (schedulers.get(deal.scheduler) ?? 0) + 1)
      await s.waitCompleted(deal.dealid, 0, 20_000)
    }
    assert.ok(Math.max(...schedulers.values()) >= 3)
  })

  it('completes a bag of 10 tasks across the workers', async () => {
    swarm = await ExecSwarm.create(4)
    const s = sw()
    const deal = await s.makeDeal({ trust: 1, volume: 10, workers: [0, 1, 2, 3] })
    await waitFor(async () => Number((await s.requester.hub!.dealOf(deal.dealid)).done) === 10, 120_000, 'all 10 tasks done', 200)
    const cids = new Set<string>()
    for (let i = 0; i < 10; i++) {
      assert.equal(await s.taskStatus(deal.dealid, i), TaskStatus.COMPLETED)
      cids.add(await s.resultsCid(deal.dealid, i))
    }
    // each task's output names the same input: identical archives, one CID
    assert.equal(cids.size, 1)
    assert.equal(await s.resultText([...cids][0]), s.expectedOutput())
    // each task recorded with its transaction by the worker that closed it (which learns it a moment after the chain)
    const committed = async (): Promise<number[]> => await Promise.all(s.nodes.map(async (n) => {
      let mine = 0
      for (let i = 0; i < 10; i++) if ((await n.worker.task(taskId(deal.dealid, i)))?.txHash !== undefined) mine++
      return mine
    }))
    await waitFor(async () => (await committed()).reduce((a, b) => a + b, 0) >= 10, 10_000, 'the 10 tasks recorded with their transactions', 50)
    const workersUsed = (await committed()).filter((mine) => mine > 0).length
    assert.ok(workersUsed >= 2, `the bag is spread over the workers (${workersUsed} used)`)
  })

  it('an assign resent while the commit records its task closed leaves the task done with its transaction', async () => {
    // the commit's written records are held a while before memory follows them: the window in which a
    // resent assign (a scheduler resends every resendMs until it sees the task closed) read 'computed'
    swarm = await ExecSwarm.create(2, { 1: { holdCommitRecordMs: 2_000 } })
    const s = sw()
    for (const n of s.nodes) await n.scheduler.stop()
    const deal = await s.makeDeal({ trust: 1, workers: [1] })
    const sched = s.nodeIndexOf(deal.scheduler)
    await s.assign(sched, 1, deal.dealid, 0, 1)
    await s.waitCompleted(deal.dealid, 0)
    // the chain says closed: the worker is writing its record now; the same assignment again
    await s.assign(sched, 1, deal.dealid, 0, 1)
    const [r] = await s.workerClosed(1, deal.dealid, [0])
    assert.equal(r?.state, 'done')
    assert.match(r?.txHash ?? '', /^0x[0-9a-f]{64}$/, 'the record keeps the transaction that closed the task')
    const receipt = await s.requester.provider.getTransactionReceipt(r?.txHash as string)
    assert.equal(receipt?.status, 1)
  })

  it('the app gets its arguments split as the shell would: --args \'a "b c"\' reaches it as a, b c', async () => {
    swarm = await ExecSwarm.create(3)
    const s = sw()
    const app = await s.registerApp('env')
    // a backslash-escaped blank and single quotes too, on two workers
    const deal = await s.makeDeal({ trust: 1, volume: 2, workers: [1, 2], app, params: JSON.stringify({ iexec_args: 'a "b c" d\\ e \'f  g\'' }) })
    for (const idx of [0, 1]) {
      await s.waitCompleted(deal.dealid, idx)
      const stdout = await s.resultText(await s.resultsCid(deal.dealid, idx), 0, 'stdout.txt')
      const args = stdout.split('\n').filter((l) => /^arg[1-9]/.test(l))
      assert.deepEqual(args, ['arg1=a', 'arg2=b c', 'arg3=d e', 'arg4=f  g'])
    }
  })

  it('a worker commits a bag\'s results together: one multicall transaction for several tasks, each task paid and closed', async () => {
    // results wait (up to 10 s here) for the deal's other tasks computing on the worker, to share a transaction
    swarm = await ExecSwarm.create(2, {}, { worker: { maxConcurrentTasks: 4, commitWaitMs: 10_000 } })
    const s = sw()
    s.advertiseCapacity(1, 4)
    const before = await balance(s.nodes[1].node.address)
    const deal = await s.makeDeal({ trust: 1, volume: 8, workers: [1] })
    await waitFor(async () => Number((await s.requester.hub!.dealOf(deal.dealid)).done) === 8, 60_000, 'the 8 tasks done', 100)
    await s.workerClosed(1, deal.dealid, [0, 1, 2, 3, 4, 5, 6, 7])
    const txs = new Map<string, number>()
    for (let idx = 0; idx < 8; idx++) {
      const r = await s.nodes[1].worker.task(taskId(deal.dealid, idx))
      assert.equal(r?.state, 'done')
      assert.equal(await s.taskStatus(deal.dealid, idx), TaskStatus.COMPLETED)
      txs.set(r?.txHash as string, (txs.get(r?.txHash as string) ?? 0) + 1)
    }
    assert.ok(txs.size < 8, `fewer transactions than tasks (${[...txs.values()].join(' + ')})`)
    for (const [hash, n] of txs) {
      const receipt = await s.requester.provider.getTransactionReceipt(hash)
      const finalized = receipt?.logs.filter((l) => s.requester.hub!.interface.parseLog(l)?.name === 'TaskFinalized').length
      assert.equal(finalized, n, `transaction ${hash} closed the ${n} tasks recorded with it`)
    }
    assert.equal(await balance(s.nodes[1].node.address) - before, 8n * deal.workerPrice * 9n / 10n + (s.nodeIndexOf(deal.scheduler) === 1 ? 8n * deal.workerPrice / 10n : 0n), 'paid for every task')
  })

  it('a worker with full batches does not wait for a block: up to maxCommitsInFlight transactions go before the first is mined', async () => {
    swarm = await ExecSwarm.create(2, {}, { worker: { maxConcurrentTasks: 4, maxCommitBatch: 2, maxCommitsInFlight: 3, commitWaitMs: 60_000 } })
    const s = sw()
    s.advertiseCapacity(1, 4)
    const provider = s.requester.provider
    const deal = await s.makeDeal({ trust: 1, volume: 8, workers: [1] })
    // nothing is mined from now on: the worker's transactions wait in the pool, as they would for a slow block
    await provider.send('evm_setAutomine', [false])
    try {
      const pending = async (): Promise<number> => Number((await provider.send('txpool_status', []) as { pending: string }).pending)
      await waitFor(async () => await pending() >= 3, 60_000, 'three commit transactions in the pool', 50)
      // more results are ready (the 8 tasks compute while nothing is mined), yet no fourth transaction goes
      await waitFor(async () => (await Promise.all(Array.from({ length: 8 }, async (_, idx) => await s.nodes[1].worker.task(taskId(deal.dealid, idx))))).filter((r) => r?.state === 'computed').length >= 7, 60_000, 'seven results computed', 50)
      assert.equal(await pending(), 3, 'maxCommitsInFlight transactions, not more')
    } finally {
      await provider.send('evm_setAutomine', [true])
    }
    await waitFor(async () => Number((await s.requester.hub!.dealOf(deal.dealid)).done) === 8, 60_000, 'the 8 tasks done', 100)
    await s.workerClosed(1, deal.dealid, [0, 1, 2, 3, 4, 5, 6, 7])
    const txs = new Set<string>()
    for (let idx = 0; idx < 8; idx++) txs.add((await s.nodes[1].worker.task(taskId(deal.dealid, idx)))?.txHash as string)
    assert.ok(txs.size <= 5, `the 8 tasks went in batches of 2 (and a last partial one): ${txs.size} transactions`)
  })

  it('a worker reaches for the app\'s holders before its deal\'s first fetch; one it cannot reach does not stop the task', async () => {
    const asked: Array<{ node: number, app: string }> = []
    swarm = await ExecSwarm.create(2, {}, { reachAppHolders: async (node, app) => { asked.push({ node, app }); throw new Error('the owner is offline') } })
    const s = sw()
    const deal = await s.makeDeal({ trust: 1, volume: 2, workers: [1] })
    await s.waitCompleted(deal.dealid, 0)
    await s.waitCompleted(deal.dealid, 1)
    assert.deepEqual(asked, [{ node: 1, app: s.app }], 'once for the deal, by its worker, with the deal\'s app')
    assert.equal(await s.resultText(await s.resultsCid(deal.dealid, 0)), s.expectedOutput())
  })

  it('a worker prepares a deal\'s app and inputs once for all its tasks, and removes them when the deal is idle', async () => {
    swarm = await ExecSwarm.create(2, {}, { worker: { preparedTtlMs: 1_000 } })
    const s = sw()
    const deal = await s.makeDeal({ trust: 1, volume: 6, workers: [1] })
    const folder = join(s.nodes[1].dataDir, 'work', `deal-${deal.dealid.toLowerCase()}`, 'in')
    const inodes = new Set<number>()
    await waitFor(async () => {
      const st = await stat(folder).catch(() => undefined)
      if (st !== undefined) inodes.add(st.ino)
      return Number((await s.requester.hub!.dealOf(deal.dealid)).done) === 6
    }, 60_000, 'the 6 tasks done', 10)
    assert.equal(inodes.size, 1, 'one input folder made once, shared by the deal\'s tasks')
    assert.deepEqual(await readdir(folder).catch(() => []), [s.inputCid], 'it holds the input file')
    for (let idx = 0; idx < 6; idx++) assert.equal(await s.resultText(await s.resultsCid(deal.dealid, idx)), s.expectedOutput())
    await waitFor(async () => await stat(folder).then(() => false, () => true), 10_000, 'the deal\'s folder removed once idle', 100)
  })

  it('a batch that cannot go whole is committed task by task: a task closed by another worker fails alone, the others complete', async () => {
    swarm = await ExecSwarm.create(3, {}, { worker: { maxConcurrentTasks: 3, commitWaitMs: 10_000 } })
    const s = sw()
    // the test plays the scheduler by hand (the services' schedulers stand down) to order the steps
    for (const n of s.nodes) await n.scheduler.stop()
    const deal = await s.makeDeal({ trust: 1, volume: 3, workers: [1, 2] })
    const sched = s.nodeIndexOf(deal.scheduler)
    // worker 2 closes task 1 first
    await s.assign(sched, 2, deal.dealid, 1, 1)
    await s.waitCompleted(deal.dealid, 1)
    // worker 1 gets all three: they compute together and go as one batch, which reverts on task 1
    for (const idx of [0, 1, 2]) await s.assign(sched, 1, deal.dealid, idx, 1)
    await s.waitCompleted(deal.dealid, 0)
    await s.waitCompleted(deal.dealid, 2)
    await waitFor(async () => (await s.nodes[1].worker.task(taskId(deal.dealid, 1)))?.state === 'failed', 30_000, 'worker 1 records task 1 failed')
    const one = await s.nodes[1].worker.task(taskId(deal.dealid, 1))
    assert.equal(one?.errorCode, 'CONTRACT_REVERT', 'its own commit was refused by the hub')
    assert.equal((await s.workerClosed(2, deal.dealid, [1]))[0]?.state, 'done')
    const [r0, r2] = await s.workerClosed(1, deal.dealid, [0, 2])
    assert.equal(r0?.state, 'done')
    assert.equal(r2?.state, 'done')
    assert.notEqual(r0?.txHash, r2?.txHash, 'after the revert each task went in its own transaction')
    assert.equal(Number((await s.requester.hub!.dealOf(deal.dealid)).done), 3)
  })

  it('a bag is spread by advertised capacity: a 1-cpu worker holds two tasks at a time (one running, one ready), a 3-cpu worker six', async () => {
    // slow runs keep the tasks in flight long enough to see how they were spread
    const slow: WorkerFaults = { delayBeforeRunMs: 2_000 }
    swarm = await ExecSwarm.create(3, { 1: slow, 2: slow }, { worker: { maxConcurrentTasks: 4 } })
    const s = sw()
    s.advertiseCapacity(1, 1)
    s.advertiseCapacity(2, 3)
    const deal = await s.makeDeal({ trust: 1, volume: 12, workers: [1, 2] })
    const held = async (i: number): Promise<number> => {
      let n = 0
      for (let idx = 0; idx < 12; idx++) if ((await s.nodes[i].worker.task(taskId(deal.dealid, idx)))?.state === 'assigned') n++
      return n
    }
    // the first round fills both workers to their capacity, no further
    await waitFor(async () => await held(1) === TASKS_PER_CPU && await held(2) === 3 * TASKS_PER_CPU, 20_000, 'the first round of assignments')
    let maxOne = 0
    let maxThree = 0
    await waitFor(async () => {
      maxOne = Math.max(maxOne, await held(1))
      maxThree = Math.max(maxThree, await held(2))
      return Number((await s.requester.hub!.dealOf(deal.dealid)).done) === 12
    }, 120_000, 'all 12 tasks done', 100)
    assert.equal(maxOne, TASKS_PER_CPU, 'never more than two tasks per cpu on the small worker')
    assert.equal(maxThree, 3 * TASKS_PER_CPU, 'never more than two tasks per cpu on the big worker')
  })

  it('a worker runs at most its maxConcurrentTasks at once; the task it holds beyond waits its turn', async () => {
    swarm = await ExecSwarm.create(2, {}, { worker: { maxConcurrentTasks: 1 } })
    const s = sw()
    s.advertiseCapacity(1, 1)
    // primes up to 3,000,000: runs of a few hundred ms
    const app = await s.registerApp('primes')
    const deal = await s.makeDeal({ trust: 1, volume: 4, workers: [1], app, params: JSON.stringify({ iexec_args: '3000000' }) })
    let maxRuns = 0
    let maxHeld = 0
    await waitFor(async () => {
      maxRuns = Math.max(maxRuns, s.nodes[1].executor.activeRuns)
      let held = 0
      for (let idx = 0; idx < 4; idx++) if ((await s.nodes[1].worker.task(taskId(deal.dealid, idx)))?.state === 'assigned') held++
      maxHeld = Math.max(maxHeld, held)
      return Number((await s.requester.hub!.dealOf(deal.dealid)).done) === 4
    }, 120_000, 'the 4 tasks done', 5)
    assert.equal(maxRuns, 1, 'one run at a time')
    assert.equal(maxHeld, TASKS_PER_CPU, 'one running and one ready')
  })

  it('a trust-1 worker\'s contributed frees its slot at once, read from the hub: no TaskFinalized event, no resend, no heartbeat expiry needed', async () => {
    // resends and heartbeat expiry far beyond the wait, TaskFinalized never
    // delivered: the only way the 1-cpu worker gets its next task is the
    // scheduler reading the task's status when the worker says it contributed
    swarm = await ExecSwarm.create(2, {}, { scheduler: { resendMs: 600_000, heartbeatIntervalMs: 600_000 } })
    const s = sw()
    s.droppedEvents.add('TaskFinalized')
    s.advertiseCapacity(1, 1)
    const deal = await s.makeDeal({ trust: 1, volume: 3, workers: [1] })
    await waitFor(async () => Number((await s.requester.hub!.dealOf(deal.dealid)).done) === 3, 30_000, 'the 3 tasks done one after the other', 100)
    for (const r of await s.workerClosed(1, deal.dealid, [0, 1, 2])) assert.equal(r?.state, 'done')
  })

  it('encrypts the result to the requester when its params ask: the archive in Helia opens only with its key', async () => {
    swarm = await ExecSwarm.create(4)
    const s = sw()
    const params = JSON.stringify({ iexec_input_files: [s.inputCid], iexec_result_encryption: true })
    const deal = await s.makeDeal({ trust: 1, workers: [2], params })
    await s.waitCompleted(deal.dealid, 0)
    const cid = await s.resultsCid(deal.dealid, 0)
    await assert.rejects(s.resultText(cid), 'not a plain archive')
    assert.equal(await s.decryptedResultText(cid, taskId(deal.dealid, 0)), s.expectedOutput())
  })

  it('runs wordcount over an encrypted dataset: fetched by CID, key released by its owner node, checksum checked', async () => {
    swarm = await ExecSwarm.create(4)
    const s = sw()
    const text = 'one two three\nfour\n'
    const dataset = await s.publishDataset(3, text)
    const ownerBefore = await balance(s.nodes[3].node.address)
    const deal = await s.makeDeal({ trust: 1, workers: [1], dataset: { address: dataset, owner: 3 } })
    await s.waitCompleted(deal.dealid, 0)
    assert.equal(await s.resultText(await s.resultsCid(deal.dealid, 0)), `dataset lines=2 words=4 bytes=19\n${s.expectedOutput()}`)
    const gain = await balance(s.nodes[3].node.address) - ownerBefore
    assert.ok(gain >= 3n * RLC, 'the dataset owner is paid its price')
  })
})
