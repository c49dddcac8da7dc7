import assert from 'node:assert/strict'
import { Wallet } from 'ethers'
import { lpStream, streamPair } from '@libp2p/utils'
import type { Connection, Stream } from '@libp2p/interface'
import { hubDomain } from '../../../protocols/eip712.js'
import {
  FAILURE_REPORT_MAX_MESSAGE_BYTES, FailureReportError, MAX_STDERR_TAIL_BYTES, decodeFailureReportResponse, encodeFailureReportResponse,
  failureReportContext, signFailureReport, verifyFailureReport
} from '../../../protocols/failure-report.js'
import type { FailureReportFields } from '../../../protocols/failure-report.js'
import { FailureCollector, createFailureReportHandler, summarizeFailures } from '../../../node/worker/failure-reports.js'
import { eciesEncrypt } from '../../../node/storage/ecies.js'

const domain = hubDomain(31337, '0x' + '11'.repeat(20))
const taskid = '0x' + 'ab'.repeat(32)
const worker = Wallet.createRandom()
const other = Wallet.createRandom()
const requester = Wallet.createRandom()

function fields (over: Partial<FailureReportFields> = {}): FailureReportFields {
  return {
    taskid,
    worker: worker.address,
    code: 'APP_ERROR',
    exitCode: 3,
    stderr: Buffer.from('boom: bad input\n').toString('base64'),
    stderrEncrypted: false,
    stderrBytes: 16,
    at: 1_800_000_000,
    ...over
  }
}

function codeOf (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof FailureReportError) return err.code
    throw err
  }
  return undefined
}

async function rejectsCode (p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
  } catch (err) {
    if (err instanceof FailureReportError) return err.code
    throw err
  }
  return undefined
}

const wire = (res: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(res))

describe('protocols/failure-report: a worker\'s signed failure report is hostile input to the requester', () => {
  it('a signed report decodes and verifies against its task and the deal\'s workers', async () => {
    const report = await signFailureReport(worker, domain, fields())
    const back = decodeFailureReportResponse(encodeFailureReportResponse({ ok: true, report }))
    assert.ok(back.ok)
    assert.deepEqual(verifyFailureReport(domain, back.report, { taskid, workers: [other.address, worker.address] }), report)
  })

  it('forged reports are refused with codes: altered, signed by another key, not a deal worker, another task', async () => {
    const report = await signFailureReport(worker, domain, fields())
    const expected = { taskid, workers: [worker.address] }
    // a relay that changes the exit code or the tail breaks the signature
    assert.equal(codeOf(() => verifyFailureReport(domain, { ...report, exitCode: 0 }, expected)), 'FAILURE_REPORT_BAD_SIGNATURE')
    assert.equal(codeOf(() => verifyFailureReport(domain, { ...report, stderr: Buffer.from('other').toString('base64') }, expected)), 'FAILURE_REPORT_BAD_SIGNATURE')
    // another key speaking for the worker
    const forged = await signFailureReport(other, domain, fields())
    assert.equal(codeOf(() => verifyFailureReport(domain, forged, expected)), 'FAILURE_REPORT_BAD_SIGNATURE')
    // a well-signed report of someone who is not a worker of the deal
    const outsider = await signFailureReport(other, domain, fields({ worker: other.address }))
    assert.equal(codeOf(() => verifyFailureReport(domain, outsider, expected)), 'FAILURE_REPORT_NOT_A_WORKER')
    // a report about another task, replayed
    assert.equal(codeOf(() => verifyFailureReport(domain, report, { taskid: '0x' + 'cd'.repeat(32), workers: [worker.address] })), 'FAILURE_REPORT_WRONG_TASK')
    // another hub's domain
    assert.equal(codeOf(() => verifyFailureReport(hubDomain(1, '0x' + '22'.repeat(20)), report, expected)), 'FAILURE_REPORT_BAD_SIGNATURE')
  })

  it('oversized and malformed reports are refused with codes', async () => {
    const big = Buffer.alloc(MAX_STDERR_TAIL_BYTES + 1, 0x61).toString('base64')
    assert.equal(await rejectsCode(signFailureReport(worker, domain, fields({ stderr: big }))), 'FAILURE_REPORT_TOO_LARGE')
    const report = await signFailureReport(worker, domain, fields())
    assert.equal(codeOf(() => decodeFailureReportResponse(wire({ ok: true, report: { ...report, stderr: big } }))), 'FAILURE_REPORT_TOO_LARGE')
    assert.equal(codeOf(() => decodeFailureReportResponse(new Uint8Array(FAILURE_REPORT_MAX_MESSAGE_BYTES + 1))), 'FAILURE_REPORT_TOO_LARGE')
    assert.equal(codeOf(() => decodeFailureReportResponse(new TextEncoder().encode('{not json'))), 'FAILURE_REPORT_BAD_MESSAGE')
    for (const bad of [
      { ...report, exitCode: -5 }, { ...report, exitCode: 1.5 }, { ...report, code: 'lower case' }, { ...report, code: 'X'.repeat(65) },
      { ...report, stderr: 'not base64!' }, { ...report, worker: 'nobody' }, { ...report, taskid: '0x12' }, { ...report, signature: '0x00' },
      { ...report, stderrBytes: -1 }, { ...report, stderrEncrypted: 'yes' }
    ]) {
      assert.equal(codeOf(() => decodeFailureReportResponse(wire({ ok: true, report: bad }))), 'FAILURE_REPORT_BAD_MESSAGE', JSON.stringify(bad).slice(0, 80))
    }
    assert.equal(codeOf(() => decodeFailureReportResponse(wire({ ok: false, code: 'WHATEVER' }))), 'FAILURE_REPORT_BAD_MESSAGE')
    assert.equal(codeOf(() => decodeFailureReportResponse(wire([1, 2]))), 'FAILURE_REPORT_BAD_MESSAGE')
  })

  it('agreement: the same deterministic failure from as many workers as a consensus needs; worker-dependent codes never agree', () => {
    const r = (w: string, code: string, exitCode: number | null): Parameters<typeof summarizeFailures>[0][number] =>
      ({ worker: w, code, exitCode, stderr: '', stderrEncrypted: false, stderrBytes: 0, at: 1 })
    const deal = { workers: 3, needed: 3, contributions: 0, finalDeadline: 2_000_000_000 }
    assert.equal(summarizeFailures([], deal), null)
    const two = summarizeFailures([r('a', 'APP_ERROR', 3), r('b', 'APP_ERROR', 3)], deal)
    assert.equal(two?.agreed, false, 'two of three needed')
    assert.equal(summarizeFailures([r('a', 'APP_ERROR', 3), r('b', 'APP_ERROR', 3)], { ...deal, needed: 2 })?.agreed, true, 'a consensus of two')
    assert.equal(summarizeFailures([r('a', 'APP_ERROR', 3)], { ...deal, needed: 2, workers: 1 })?.agreed, true, 'at most the deal\'s workers')
    const three = summarizeFailures([r('a', 'APP_ERROR', 3), r('b', 'APP_ERROR', 3), r('c', 'APP_ERROR', 3)], deal)
    assert.equal(three?.agreed, true)
    assert.equal(three?.reason, 'APP_ERROR (exit code 3) reported by 3 of 3 worker(s)')
    assert.equal(three?.refundAfter, 2_000_000_000)
    assert.equal(summarizeFailures([r('a', 'APP_ERROR', 3), r('b', 'APP_ERROR', 4), r('c', 'APP_ERROR', 3)], deal)?.agreed, false, 'exit codes differ')
    assert.equal(summarizeFailures([r('a', 'TIMEOUT', null), r('b', 'TIMEOUT', null), r('c', 'TIMEOUT', null)], deal)?.agreed, false, 'a timeout depends on the worker')
    assert.equal(summarizeFailures([r('a', 'INVALID_MODULE', null)], { ...deal, needed: 1, workers: 1 })?.agreed, true)
    assert.equal(summarizeFailures([r('a', 'INVALID_MODULE', null)], { ...deal, needed: 1, workers: 1, contributions: 1 })?.agreed, false, 'a contribution on chain: not settled')
  })
})

describe('node/worker/failure-reports: the requester\'s collector over streams', () => {
  /** A dialer whose every peer answers with `respond` on the other end of a stream pair. */
  function dialer (respond: (stream: Stream) => Promise<void>): (peer: string, protocol: string) => Promise<Stream> {
    return async () => {
      const [a, b] = await streamPair()
      void respond(b)
      return a
    }
  }
  const collectorWith = (respond: (stream: Stream) => Promise<void>): FailureCollector => new FailureCollector({
    domain, privateKey: requester.signingKey, resolve: async (a) => `peer-${a}`, dial: dialer(respond), missTtlMs: 0
  })

  it('an honest worker\'s report comes through; a tail sealed to the requester is opened', async () => {
    const tail = Buffer.from('segfault at 0x0\n')
    const sealed = eciesEncrypt(requester.signingKey.compressedPublicKey, tail, failureReportContext(taskid, worker.address))
    const report = await signFailureReport(worker, domain, fields({ stderr: Buffer.from(sealed).toString('base64'), stderrEncrypted: true }))
    const handler = createFailureReportHandler(async (t) => t === taskid ? report : undefined)
    const c = collectorWith(async (s) => { await handler(s, {} as unknown as Connection) })
    const got = await c.collect(taskid, [worker.address])
    assert.deepEqual(got.errors, [])
    assert.equal(got.reports.length, 1)
    assert.equal(got.reports[0].stderr, tail.toString())
    assert.equal(got.reports[0].exitCode, 3)
    // no report for another task: nothing, and no error
    const none = await c.collect('0x' + 'cd'.repeat(32), [worker.address])
    assert.deepEqual(none, { reports: [], errors: [] })
  })

  it('a peer answering a forged or oversized report is refused with a code and nothing is kept', async () => {
    const forged = await signFailureReport(other, domain, fields({ worker: other.address }))
    const answer = async (s: Stream, bytes: Uint8Array): Promise<void> => {
      const lp = lpStream(s)
      await lp.read()
      await lp.write(bytes)
      await s.close().catch(() => {})
    }
    const notWorker = await collectorWith(async (s) => { await answer(s, wire({ ok: true, report: forged })) }).collect(taskid, [worker.address])
    assert.deepEqual(notWorker.reports, [])
    assert.deepEqual(notWorker.errors.map((e) => e.code), ['FAILURE_REPORT_NOT_A_WORKER'])
    const honest = await signFailureReport(worker, domain, fields())
    const altered = await collectorWith(async (s) => { await answer(s, wire({ ok: true, report: { ...honest, code: 'INVALID_MODULE' } })) }).collect(taskid, [worker.address])
    assert.deepEqual(altered.errors.map((e) => e.code), ['FAILURE_REPORT_BAD_SIGNATURE'])
    const huge = await collectorWith(async (s) => { await answer(s, new Uint8Array(FAILURE_REPORT_MAX_MESSAGE_BYTES + 100).fill(0x20)) }).collect(taskid, [worker.address])
    assert.deepEqual(huge.reports, [])
    assert.deepEqual(huge.errors.map((e) => e.code), ['FAILURE_REPORT_TOO_LARGE'])
  })
})
