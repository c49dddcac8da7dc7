import assert from 'node:assert/strict'
import { ContributionStatus, TaskStatus } from '../../contracts-abi/index.js'
import { taskId } from '../../protocols/eip712.js'
import { ExecSwarm, waitFor } from './execution-harness.js'

describe('execution: restart safety (real nodes restarted on their data dirs)', function () {
  this.timeout(180_000)
  let swarm: ExecSwarm | undefined

  afterEach(async () => {
    await swarm?.close()
    swarm = undefined
  })

  it('a worker restarted after its commit never commits twice and still reveals what it owes', async () => {
    swarm = await ExecSwarm.create(4)
    const s = swarm
    // the test plays the scheduler by hand (the services' schedulers stand down) to order the steps
    for (const n of s.nodes) await n.scheduler.stop()
    const deal = await s.makeDeal({ trust: 3, workers: [0, 1, 2] })
    const sched = s.nodeIndexOf(deal.scheduler)
    const [victim, other] = [0, 1, 2].filter((i) => i !== sched)
    const taskid = taskId(deal.dealid, 0)
    await s.nodes[sched].client.sender.send(s.nodes[sched].client.hub!.initialize.populateTransaction(deal.dealid, 0))

    await s.assign(sched, victim, deal.dealid, 0, 3)
    await waitFor(async () => (await s.nodes[victim].worker.task(taskid))?.state === 'contributed', 30_000, 'the victim committed')
    const firstTx = (await s.nodes[victim].worker.task(taskid))?.txHash
    assert.equal(Number((await s.requester.hub!.taskOf(taskid)).status), TaskStatus.ACTIVE, 'one commit alone is no consensus at trust 3')
    await s.stopNode(victim)

    // consensus is reached while the victim is down
    await s.assign(sched, other, deal.dealid, 0, 3)
    await waitFor(async () => Number((await s.requester.hub!.taskOf(taskid)).status) === TaskStatus.REVEALING, 30_000, 'consensus')
    await waitFor(async () => Number((await s.requester.hub!.taskOf(taskid)).reveals) === 1, 30_000, 'the other worker revealed')

    // the restarted victim finds its commit in level, sees consensus on the hub, reveals; a resent assignment changes nothing
    await s.startNode(victim, undefined)
    await s.assign(sched, victim, deal.dealid, 0, 3)
    await waitFor(async () => Number((await s.requester.hub!.contributionOf(taskid, s.nodes[victim].node.address)).status) === ContributionStatus.PROVED, 30_000, 'the victim revealed after its restart')
    // the chain may show the reveal a moment before the worker records its receipt
    await waitFor(async () => (await s.nodes[victim].worker.task(taskid))?.state === 'revealed', 10_000, 'the victim recorded its reveal')
    const contributors = (await s.requester.hub!.contributorsOf(taskid)).map((a) => a.toLowerCase())
    assert.deepEqual(contributors.filter((a) => a === s.nodes[victim].node.address.toLowerCase()).length, 1, 'one commit only')
    assert.notEqual(firstTx, undefined)
  })

  it('a scheduler restarted mid-deal resumes from level and finalizes', async () => {
    swarm = await ExecSwarm.create(4)
    const s = swarm
    const deal = await s.makeDeal({ trust: 3, workers: [0, 1, 2, 3] })
    const sched = s.nodeIndexOf(deal.scheduler)
    const taskid = taskId(deal.dealid, 0)
    await waitFor(async () => ((await s.nodes[sched].scheduler.taskRecord(taskid))?.replicas.length ?? 0) >= 2, 30_000, 'replicas assigned')
    const assigned = (await s.nodes[sched].scheduler.taskRecord(taskid))?.replicas.map((r) => r.worker) ?? []
    await s.stopNode(sched)
    const restarted = await s.startNode(sched, undefined)
    // who was assigned when is not on the hub: only the level store can give it back after a restart
    const again = (await restarted.scheduler.taskRecord(taskid))?.replicas.map((r) => r.worker) ?? []
    for (const w of assigned) assert.ok(again.includes(w), `replica of ${w} survives the restart`)
    await s.waitCompleted(deal.dealid, 0, 90_000)
    assert.equal(await s.resultText(await s.resultsCid(deal.dealid, 0)), s.expectedOutput())
  })
})
