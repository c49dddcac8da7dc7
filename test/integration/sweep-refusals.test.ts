import assert from 'node:assert/strict'
import { taskId } from '../../protocols/eip712.js'
import { verifyFailureReport } from '../../protocols/failure-report.js'
import { ExecSwarm } from './execution-harness.js'
import { waitFor } from '../helpers/wait.js'

/**
 * A requester that signs a sweep its deal cannot run (a list that is not one
 * entry per task, a document that does not hash to its checksum): every
 * worker fails the task with DUTY_SWEEP_MISMATCH and keeps a signed report
 * saying so, which verifies against the deal's workers.
 */
describe('execution: workers refuse sweeps that do not fit their deal, with a code and a signed report', function () {
  this.timeout(180_000)
  let swarm: ExecSwarm | undefined

  before(async () => { swarm = await ExecSwarm.create(2) })
  after(async () => { await swarm?.close() })

  async function failedWith (s: ExecSwarm, dealid: string, idx: number): Promise<string | undefined> {
    const id = taskId(dealid, idx)
    await waitFor(async () => (await s.nodes[1].worker.task(id))?.state === 'failed', 60_000, `task ${idx} of ${dealid} failed on the worker`)
    const rec = await s.nodes[1].worker.task(id)
    const report = await s.nodes[1].worker.failureReport(id)
    assert.ok(report !== undefined, 'a signed report is kept')
    verifyFailureReport(s.domain, report, { taskid: id, workers: [s.nodes[1].node.address] })
    assert.equal(report.code, rec?.errorCode)
    assert.equal(report.exitCode, null, 'the app never ran')
    return rec?.errorCode
  }

  it('a per-task list shorter than the volume, and a sweep document whose bytes are not the signed checksum', async () => {
    const s = swarm as ExecSwarm
    const short = await s.makeDeal({ trust: 1, workers: [1], volume: 2, params: JSON.stringify({ iexec_p2p_task_args: ['only one line'] }) })
    assert.equal(await failedWith(s, short.dealid, 0), 'DUTY_SWEEP_MISMATCH')
    assert.equal(await failedWith(s, short.dealid, 1), 'DUTY_SWEEP_MISMATCH')
    // the document named is real content (the harness's input file), but not what the requester signed
    const forged = await s.makeDeal({ trust: 1, workers: [1], params: JSON.stringify({ iexec_p2p_sweep: { cid: s.inputCid, checksum: '0x' + '00'.repeat(32) } }) })
    assert.equal(await failedWith(s, forged.dealid, 0), 'DUTY_SWEEP_MISMATCH')
  })
})
