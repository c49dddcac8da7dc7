import assert from 'node:assert/strict'
import { TaskStatus } from '../../contracts-abi/index.js'
import { taskId } from '../../protocols/eip712.js'
import type { WorkerFaults } from '../../node/worker/duties.js'
import { ExecSwarm, waitFor } from '../integration/execution-harness.js'

/** How long the endpoint stays away (OUTAGE_MS overrides it): the 60 s. */
const OUTAGE_MS = Number(process.env.OUTAGE_MS ?? 60_000)

describe('faults: the chain endpoint goes away in the middle of a deal (real nodes, real anvil behind a proxy)', function () {
  this.timeout(300_000)
  let swarm: ExecSwarm | undefined

  afterEach(async () => {
    await swarm?.close()
    swarm = undefined
  })

  it('a 60 s RPC outage while a task runs: the followers ride it out (HTTP and WebSocket), the task completes, RLC is conserved, nothing restarted', async () => {
    // the workers wait a little before running: the outage starts with the task assigned, before any contribution
    const slow: WorkerFaults = { delayBeforeRunMs: 2_000 }
    // worker 2 reads over WebSocket: its socket drops with the endpoint and must come back
    swarm = await ExecSwarm.create(3, { 1: slow, 2: slow }, { proxyRpc: true, wsNodes: [2] })
    const s = swarm
    const proxy = s.proxy!
    const deal = await s.makeDeal({ trust: 1, workers: [1, 2] })
    const taskid = taskId(deal.dealid, 0)
    await waitFor(async () => {
      for (const i of [1, 2]) if ((await s.nodes[i].worker.task(taskid)) !== undefined) return true
      return false
    }, 60_000, 'a worker holds the task')
    const before = await s.taskStatus(deal.dealid, 0)
    assert.ok(before === TaskStatus.UNSET || before === TaskStatus.ACTIVE, 'the outage starts before the task is contributed')
    const contributorsBefore = (await s.requester.hub!.contributorsOf(taskid)).length
    await waitFor(() => s.nodes[2].follower.subscribed, 30_000, 'worker 2 on live subscriptions')
    proxy.down()
    const downAt = Date.now()
    // the outage lasts OUTAGE_MS, and at least until the nodes have knocked on the closed endpoint many times
    await waitFor(() => Date.now() - downAt >= OUTAGE_MS && proxy.refused >= 20, OUTAGE_MS + 60_000, 'the outage to be felt', 250)
    assert.equal((await s.requester.hub!.contributorsOf(taskid)).length, contributorsBefore, 'no contribution reached the chain during the outage')
    const downErrors = s.followerErrors.length
    assert.ok(downErrors > 0, 'the followers felt the outage')
    assert.equal(s.nodes[2].follower.subscribed, false, 'worker 2 lost its subscriptions with the endpoint')
    proxy.up()
    await s.waitCompleted(deal.dealid, 0, 120_000)
    await waitFor(() => s.nodes[2].follower.subscribed, 30_000, 'worker 2 subscribed again')
    assert.equal(await s.resultText(await s.resultsCid(deal.dealid, 0)), s.expectedOutput())
    for (const n of s.nodes) assert.ok(n.follower.following, `${n.name}'s follower still runs`)
    assert.ok(s.followerErrors.every((e) => !e.fatal), 'no follower error was fatal')
    const { held, accounted } = await s.conservation()
    assert.equal(held, accounted, 'RLC conserved to the nRLC')
  })
})
