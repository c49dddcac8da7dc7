import assert from 'node:assert/strict'
import { HUB_RATIOS, TaskStatus } from '../../contracts-abi/index.js'
import { taskId, ZERO_ADDRESS } from '../../protocols/eip712.js'
import type { WorkerFaults } from '../../node/worker/duties.js'
import { ExecSwarm, waitFor } from '../integration/execution-harness.js'

describe('faults: dishonest, stopped and absent nodes during execution (real nodes, real anvil)', function () {
  this.timeout(240_000)
  let swarm: ExecSwarm | undefined

  afterEach(async () => {
    await swarm?.close()
    swarm = undefined
  })

  function sw (): ExecSwarm {
    if (swarm === undefined) throw new Error('no swarm')
    return swarm
  }

  it('a dishonest worker is outvoted at trust 3: the honest result is final, its stake is seized, its score falls', async () => {
    const liar: WorkerFaults = {}
    swarm = await ExecSwarm.create(4, { 0: liar })
    const s = swarm
    const hub = s.requester.hub!
    const liarAddress = s.nodes[0].node.address
    // first an honest deal, so the liar has a score to lose
    const warmup = await s.makeDeal({ trust: 3, workers: [0, 1] })
    await s.waitCompleted(warmup.dealid, 0, 60_000)
    assert.equal(await hub.scoreOf(liarAddress), 1n)

    liar.corruptOutput = true
    const [stakeBefore] = await hub.stakeOf(liarAddress)
    // the liar bids first: the scheduler picks it among the first two replicas
    const deal = await s.makeDeal({ trust: 3, workers: [0, 1, 2, 3] })
    await s.waitCompleted(deal.dealid, 0, 90_000)
    const taskid = taskId(deal.dealid, 0)
    assert.equal(await s.resultText(await s.resultsCid(deal.dealid, 0)), s.expectedOutput(), 'the honest result is final')
    const contributors = (await hub.contributorsOf(taskid)).map((a) => a.toLowerCase())
    assert.ok(contributors.includes(liarAddress.toLowerCase()), 'the liar did contribute')
    assert.ok(contributors.length >= 3, 'replicas were added until the honest group won')
    assert.equal(Number((await hub.contributionOf(taskid, liarAddress)).status), 1, 'the liar never proved its result')
    const [stakeAfter] = await hub.stakeOf(liarAddress)
    assert.equal(stakeBefore - stakeAfter, deal.workerPrice * 30n / 100n, 'its stake for the contribution is seized')
    assert.equal(await hub.scoreOf(liarAddress), 0n, 'its score falls (1 * 2/3 = 0)')
  })

  it('a worker stopped mid-task: the scheduler reassigns after missed heartbeats and the task completes', async () => {
    // slow enough to be stopped mid-task, short enough that a match thrown away below costs little;
    // it keeps sending heartbeats while it waits, so it is not dropped for being slow
    const slow: WorkerFaults = { delayBeforeRunMs: 5_000 }
    swarm = await ExecSwarm.create(4, { 1: slow })
    const s = swarm
    // the victim must not be the scheduler itself: retry the match until another node is elected
    let deal: Awaited<ReturnType<ExecSwarm['makeDeal']>> | undefined
    for (let attempt = 0; attempt < 8 && deal === undefined; attempt++) {
      const d = await s.makeDeal({ trust: 1, workers: [1, 2] })
      const sched = s.nodeIndexOf(d.scheduler)
      if (sched !== 1 && sched !== 2) deal = d
      else await s.waitCompleted(d.dealid, 0, 60_000)
    }
    if (deal === undefined) throw new Error('no deal with a non-bidding scheduler in 8 matches')
    const taskid = taskId(deal.dealid, 0)
    await waitFor(async () => (await s.nodes[1].worker.task(taskid))?.state === 'assigned', 30_000, 'the slow worker holds the task')
    await s.stopNode(1)
    await s.waitCompleted(deal.dealid, 0, 60_000)
    // the chain may show the task closed a moment before the worker records its receipt
    await waitFor(async () => (await s.nodes[2].worker.task(taskid))?.state === 'done', 10_000, 'the other worker completed it')
    const rec = await s.nodes[s.nodeIndexOf(deal.scheduler)].scheduler.taskRecord(taskid)
    const victim = rec?.replicas.find((r) => r.worker.toLowerCase() === s.nodes[1].node.address.toLowerCase())
    assert.equal(victim?.dead, true, 'the silent replica was dropped')
    assert.equal(await s.resultText(await s.resultsCid(deal.dealid, 0), 2), s.expectedOutput())
  })

  it('sandbox probes in real deals (escape, spin, grow) end with their status, the scheduler hears it at once and asks the next worker; the workers go on serving', async () => {
    // short bounds so the probes end fast: 8 s of run time (an escape must be caught, not timed out, on a
    // loaded machine where the runner's thread waits for a core), 64 MiB of memory (wordcount declares 64 MiB)
    swarm = await ExecSwarm.create(3, {}, { worker: { maxRunMs: 8_000, maxMemoryBytes: 64 << 20 } })
    const s = swarm
    const probes: Array<{ app: string, status: string }> = [
      { app: 'escape', status: 'SANDBOX_VIOLATION' },
      { app: 'spin', status: 'TIMEOUT' },
      { app: 'grow', status: 'MEMORY_EXCEEDED' }
    ]
    const workers = [1, 2]
    for (const probe of probes) {
      const app = await s.registerApp(probe.app)
      const deal = await s.makeDeal({ trust: 1, app, workers })
      const taskid = taskId(deal.dealid, 0)
      const scheduler = s.nodes[s.nodeIndexOf(deal.scheduler)].scheduler
      // each worker runs it, fails with the probe's status and says so; the scheduler moves the task on at once
      await waitFor(async () => {
        const rec = await scheduler.taskRecord(taskid)
        return rec !== undefined && rec.replicas.length === workers.length && rec.replicas.every((r) => (r.failures ?? 0) >= 1)
      }, 90_000, `${probe.app}: both workers reported the task failed`)
      const rec = await scheduler.taskRecord(taskid)
      for (const r of rec?.replicas ?? []) assert.equal(r.failure ?? probe.status, probe.status, `${probe.app}: the code the scheduler heard from ${r.worker}`)
      for (const i of workers) {
        // (the scheduler may ask it once more meanwhile: the record is failed again once that run ends)
        await waitFor(async () => {
          const held = await s.nodes[i].worker.task(taskid)
          return held?.state === 'failed' && (held.error ?? '').includes(probe.status)
        }, 90_000, `${probe.app}: worker ${i} recorded the failure with ${probe.status}`)
      }
      assert.equal(await s.taskStatus(deal.dealid, 0), TaskStatus.UNSET, `${probe.app}: nothing was contributed`)
    }
    // a worker asked twice and failing twice is asked no more
    const last = await s.makeDeal({ trust: 1, app: await s.registerApp('fail'), workers: [1] })
    const lastTask = taskId(last.dealid, 0)
    const lastScheduler = s.nodes[s.nodeIndexOf(last.scheduler)].scheduler
    await waitFor(async () => ((await lastScheduler.taskRecord(lastTask))?.replicas[0]?.failures ?? 0) >= 2, 30_000, 'fail: reported twice')
    const rec = await lastScheduler.taskRecord(lastTask)
    assert.equal(rec?.replicas[0]?.failure, 'APP_ERROR')
    assert.equal(rec?.replicas[0]?.dead, true)
    // the probes broke nothing: both workers run the next tasks
    for (const i of workers) {
      const deal = await s.makeDeal({ trust: 1, workers: [i] })
      await s.waitCompleted(deal.dealid, 0, 60_000)
      assert.equal(await s.resultText(await s.resultsCid(deal.dealid, 0)), s.expectedOutput(), `worker ${i} served the next task`)
    }
    assert.equal(((await lastScheduler.taskRecord(lastTask))?.replicas[0]?.failures ?? 0), 2, 'not asked a third time')
  })

  it('the elected scheduler stopped before it initializes: reelect brings another and the task completes', async () => {
    swarm = await ExecSwarm.create(4)
    const s = swarm
    const hub = s.requester.hub!
    // hold every scheduler service so the elected node cannot act before it is stopped
    for (const n of s.nodes) await n.scheduler.stop()
    const deal = await s.makeDeal({ trust: 3, workers: [0, 1, 2, 3] })
    const elected = s.nodeIndexOf(deal.scheduler)
    const [lockedStake] = await hub.stakeOf(deal.scheduler)
    await s.stopNode(elected)
    for (const [i, n] of s.nodes.entries()) {
      if (i === elected) continue
      await waitFor(async () => (await n.scheduler.dealRecord(deal.dealid)) !== undefined, 20_000, `node ${i} saw the deal`)
      await n.scheduler.start()
    }
    assert.equal(Number((await hub.dealOf(deal.dealid)).initialized), 0)
    // one time reference (category 0: 60 s) without work makes the scheduler late
    await s.increaseTime(61)
    // the successor is drawn from the reelecting block's hash: readable at the pending tag
    const current = async (): Promise<string> => (await hub.dealOf(deal.dealid, { blockTag: 'pending' })).scheduler.toLowerCase()
    await waitFor(async () => { const c = await current(); return c !== deal.scheduler.toLowerCase() && c !== ZERO_ADDRESS }, 30_000, 'reelection')
    const next = (await hub.dealOf(deal.dealid, { blockTag: 'pending' })).scheduler
    assert.notEqual(s.nodeIndexOf(next), elected)
    const [stakeAfter] = await hub.stakeOf(deal.scheduler)
    assert.ok(stakeAfter < lockedStake, 'the late scheduler\'s deal stake is seized')
    await s.waitCompleted(deal.dealid, 0, 90_000)
    assert.equal(Number((await hub.taskOf(taskId(deal.dealid, 0))).status), TaskStatus.COMPLETED)
    assert.equal(await s.resultText(await s.resultsCid(deal.dealid, 0), s.nodeIndexOf(next)), s.expectedOutput())
  })

  it('a task nobody can run is claimed after the final deadline and the requester is refunded in full', async () => {
    swarm = await ExecSwarm.create(4)
    const s = sw()
    const hub = s.requester.hub!
    const [before] = await hub.accountOf(s.requester.address)
    // the only bidder is down: its bid was signed, but it never answers an assignment
    await s.stopNode(1)
    const deal = await s.makeDeal({ trust: 1, workers: [1] })
    const [during, frozen] = await hub.accountOf(s.requester.address)
    assert.equal(before - during, frozen, 'the payment is frozen')
    // past the final deadline (10 time references of 60 s) a watchdog claims the task
    await s.increaseTime(10 * 60 + 1)
    await waitFor(async () => (await s.taskStatus(deal.dealid, 0)) === TaskStatus.FAILED, 30_000, 'the task claimed')
    const [after, frozenAfter] = await hub.accountOf(s.requester.address)
    assert.equal(after, before, 'refunded in full')
    assert.equal(frozenAfter, 0n)
    const { held, accounted } = await s.conservation()
    assert.equal(held, accounted, 'conservation of RLC')
  })

  it('on an idle dev chain the watchdog mines a block once the final deadline is due: the claim goes without any other transaction', async () => {
    swarm = await ExecSwarm.create(3)
    const s = sw()
    const hub = s.requester.hub!
    const provider = s.requester.provider
    const [before] = await hub.accountOf(s.requester.address)
    await s.stopNode(1)
    const deal = await s.makeDeal({ trust: 1, workers: [1] })
    const d = await hub.dealOf(deal.dealid)
    const finalDeadline = d.startTime + d.timeRef * BigInt(HUB_RATIOS.finalDeadline)
    // the next block will be past the final deadline, and the nodes' clocks are moved as far; but nothing is
    // mined: on an automining chain the latest block keeps its time until someone sends a transaction
    const head = await provider.getBlock('latest')
    const skip = Number(finalDeadline) - head!.timestamp + 1
    await provider.send('evm_increaseTime', [skip])
    s.clockOffsetMs = skip * 1_000
    await waitFor(async () => (await s.taskStatus(deal.dealid, 0)) === TaskStatus.FAILED, 60_000, 'the task claimed')
    // every block since: empty (the watchdog's) or only claims; nothing else made time pass
    const claimSig = hub.interface.getFunction('claim')!.selector
    const last = await provider.getBlockNumber()
    let empty = 0
    for (let n = head!.number + 1; n <= last; n++) {
      const block = await provider.getBlock(n, true)
      if (block!.transactions.length === 0) empty++
      for (const tx of block!.prefetchedTransactions) assert.equal(tx.data.slice(0, 10), claimSig, `block ${n} holds only claims`)
    }
    assert.ok(empty >= 1, 'a watchdog mined an empty block to let the deadline pass')
    const [after, frozenAfter] = await hub.accountOf(s.requester.address)
    assert.equal(after, before, 'refunded in full')
    assert.equal(frozenAfter, 0n)
    const { held, accounted } = await s.conservation()
    assert.equal(held, accounted, 'conservation of RLC')
  })

  it('a scheduler that never finalizes a revealed task is replaced by reelectForTask and the new one finalizes', async () => {
    swarm = await ExecSwarm.create(4)
    const s = sw()
    const hub = s.requester.hub!
    // the test plays the elected scheduler up to the reveals, then it goes silent
    for (const n of s.nodes) await n.scheduler.stop()
    const deal = await s.makeDeal({ trust: 3, workers: [0, 1, 2, 3] })
    const elected = s.nodeIndexOf(deal.scheduler)
    const [w1, w2] = [0, 1, 2, 3].filter((i) => i !== elected)
    const taskid = taskId(deal.dealid, 0)
    await s.nodes[elected].client.sender.send(s.nodes[elected].client.hub!.initialize.populateTransaction(deal.dealid, 0))
    await s.assign(elected, w1, deal.dealid, 0, 3)
    await s.assign(elected, w2, deal.dealid, 0, 3)
    await waitFor(async () => Number((await hub.taskOf(taskid)).reveals) === 2, 30_000, 'both winners revealed')
    await s.stopNode(elected)
    for (const [i, n] of s.nodes.entries()) if (i !== elected) await n.scheduler.start()
    const task = await hub.taskOf(taskid)
    assert.equal(Number(task.status), TaskStatus.REVEALING)
    // the hub allows reelectForTask one time reference after the reveal deadline
    const now = (await s.requester.provider.getBlock('latest'))!.timestamp
    await s.increaseTime(Number(task.revealDeadline) - now + 61)
    await waitFor(async () => (await hub.dealOf(deal.dealid)).scheduler.toLowerCase() !== deal.scheduler.toLowerCase(), 30_000, 'reelection')
    await s.waitCompleted(deal.dealid, 0, 60_000)
    assert.equal(await s.resultText(await s.resultsCid(deal.dealid, 0), w1), s.expectedOutput())
    const reelections = await hub.queryFilter(hub.filters.SchedulerReelected(deal.dealid), s.chain.blockNumber)
    assert.equal(reelections.length, 1, 'one reelection: the new scheduler is given its time reference')
  })
})
