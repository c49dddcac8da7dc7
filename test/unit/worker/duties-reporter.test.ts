import assert from 'node:assert/strict'
import { MAX_REPORT_TASKS } from '../../../protocols/execution.js'
import type { ExecMessage, TaskReport } from '../../../protocols/execution.js'
import type { FailureReport, FailureReportFields } from '../../../protocols/failure-report.js'
import { DutyError } from '../../../node/worker/duties-errors.js'
import type { WorkerTaskRecord } from '../../../node/worker/duties-book.js'
import { Reporter, failureCode } from '../../../node/worker/duties-reporter.js'
import { ME, rec, until, wait } from './duties-fakes.js'

function harness (o: { reportDelayMs?: number, sign?: (f: FailureReportFields) => Promise<FailureReport> } = {}): { reporter: Reporter, beats: Array<{ peer: string, tasks: TaskReport[] }>, saved: WorkerTaskRecord[], sealed: Array<{ key: string, taskid: string }>, logs: string[] } {
  const beats: Array<{ peer: string, tasks: TaskReport[] }> = []
  const saved: WorkerTaskRecord[] = []
  const sealed: Array<{ key: string, taskid: string }> = []
  const logs: string[] = []
  const reporter = new Reporter({
    records: { save: async (r) => { saved.push(r) } },
    send: async (peer: string, m: ExecMessage) => { beats.push({ peer, tasks: (m as { tasks: TaskReport[] }).tasks }) },
    sign: o.sign ?? (async (fields) => ({ ...fields, signature: '0xsig' })),
    seal: (key, tail, taskid) => { sealed.push({ key, taskid }); return new Uint8Array([0xee, ...tail]) },
    me: ME,
    reportDelayMs: o.reportDelayMs ?? 5,
    signal: new AbortController().signal,
    log: (msg) => { logs.push(msg) },
    now: () => 1_700_000_000_000
  })
  return { reporter, beats, saved, sealed, logs }
}

describe('worker duties: the reporter', () => {
  it('sends a status marked soon within reportDelayMs, coalesced into one heartbeat per scheduler', async () => {
    const h = harness({ reportDelayMs: 20 })
    h.reporter.report(rec({ taskid: 'a', schedulerPeer: 'p1' }), 'contributing', true)
    h.reporter.report(rec({ taskid: 'b', schedulerPeer: 'p1' }), 'contributing', true)
    h.reporter.report(rec({ taskid: 'c', schedulerPeer: 'p2' }), 'running')
    await wait(5)
    assert.equal(h.beats.length, 0, 'not before the delay')
    await until(() => h.beats.length > 0)
    assert.deepEqual(h.beats, [{ peer: 'p1', tasks: [{ taskid: 'a', status: 'contributing' }, { taskid: 'b', status: 'contributing' }] }], 'only the scheduler with a report due')
  })

  it('beats every scheduler with all its tasks, split by MAX_REPORT_TASKS; a settled task is no longer reported', () => {
    const h = harness()
    for (let i = 0; i < MAX_REPORT_TASKS + 1; i++) h.reporter.report(rec({ taskid: `t${i}`, schedulerPeer: 'p1' }), 'running')
    h.reporter.report(rec({ taskid: 'x', schedulerPeer: 'p2' }), 'running')
    h.reporter.beat()
    assert.deepEqual(h.beats.map((b) => [b.peer, b.tasks.length]), [['p1', MAX_REPORT_TASKS], ['p1', 1], ['p2', 1]])
    h.reporter.settle('x')
    h.beats.length = 0
    h.reporter.beat()
    assert.deepEqual(h.beats.map((b) => b.peer), ['p1', 'p1'])
  })

  it('fails a task: record saved failed with its code, scheduler told at once, a failure sent once and kept past settle', async () => {
    const h = harness({ reportDelayMs: 1 })
    const err = new DutyError('DUTY_EXECUTION_FAILED', 'app ended', { status: 'APP_FAILED', exitCode: 3, stderrTail: new Uint8Array(Buffer.from('boom')), stderrBytes: 4 })
    const failed = await h.reporter.fail(rec({ taskid: 'f', state: 'assigned' }), err)
    assert.equal(failed.state, 'failed')
    assert.equal(failed.errorCode, 'APP_FAILED')
    assert.deepEqual(h.saved.map((r) => r.state), ['failed'])
    assert.deepEqual(failed.failureReport, { taskid: 'f', worker: ME, code: 'APP_FAILED', exitCode: 3, stderr: Buffer.from('boom').toString('base64'), stderrEncrypted: false, stderrBytes: 4, at: 1_700_000_000, signature: '0xsig' })
    h.reporter.settle('f')
    await until(() => h.beats.length > 0)
    assert.deepEqual(h.beats, [{ peer: 'peerS', tasks: [{ taskid: 'f', status: 'failed', code: 'APP_FAILED' }] }])
    h.reporter.beat()
    assert.equal(h.beats.length, 1, 'a failure once sent is forgotten')
  })

  it('seals the stderr tail to the requester\'s key when the result is encrypted, and fails without a report when signing fails', async () => {
    const h = harness()
    const sealed = await h.reporter.fail(rec({ taskid: 's', resultEncryptionKey: '0xkey' }), new DutyError('DUTY_EXECUTION_FAILED', 'x', { status: 'TIMEOUT', stderrTail: new Uint8Array([1]) }))
    assert.deepEqual(h.sealed, [{ key: '0xkey', taskid: 's' }])
    assert.equal(sealed.failureReport?.stderrEncrypted, true)
    assert.equal(sealed.failureReport?.stderr, Buffer.from([0xee, 1]).toString('base64'))
    h.reporter.stop()
    const h2 = harness({ sign: async () => { throw new Error('no wallet') } })
    const bare = await h2.reporter.fail(rec({ taskid: 'n' }), new Error('plain'))
    assert.equal(bare.state, 'failed')
    assert.equal(bare.failureReport, undefined)
    assert.equal(bare.errorCode, 'DUTY_FAILED')
    assert.ok(h2.logs.includes('failure report not signed'))
    h2.reporter.stop()
  })

  it('turns an error into a wire code: the run\'s status, the error\'s code, else DUTY_FAILED', () => {
    assert.equal(failureCode(new DutyError('DUTY_EXECUTION_FAILED', 'x', { status: 'MEMORY_EXCEEDED' })), 'MEMORY_EXCEEDED')
    assert.equal(failureCode(new DutyError('DUTY_BAD_APP', 'x')), 'DUTY_BAD_APP')
    assert.equal(failureCode(new Error('x')), 'DUTY_FAILED')
  })
})
