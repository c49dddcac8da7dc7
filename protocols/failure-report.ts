/**
 * Failure reports: how the requester learns why a worker could not compute
 * a task (its failure code, the app's exit status and the tail of its
 * stderr).
 *
 * Pull, not push: the requester's node asks each worker of the task's deal
 * (addresses from the hub's DealCreated, peers found as for results) on
 * {@link FAILURE_REPORT_PROTOCOL}: one length-prefixed JSON
 * `{ taskid }` request, one length-prefixed JSON {@link FailureReportResponse}
 * answer, then the stream closes. A worker keeps its signed report with its
 * task record, so the requester can ask at any time (a node that was down
 * when the task failed still learns why), and nothing is broadcast.
 *
 * A report is hostile input. It is signed by the worker's Ethereum key as
 * EIP-712 typed data `FailureReport(bytes32 taskid,address worker,string
 * code,int256 exitCode,bytes32 stderrHash,bool stderrEncrypted,uint256
 * stderrBytes,uint256 at)` under the hub's domain; the requester checks the
 * signer is the report's worker and that worker is one of the deal's, that
 * the task is the one it asked for, and every size (the stderr tail at
 * most {@link MAX_STDERR_TAIL_BYTES} before sealing). The stderr tail is
 * sealed with ECIES to the requester's result key when the request asks for
 * result encryption: the relaying peers and other askers see only the code
 * and the exit status.
 */
import { getAddress, isAddress, isHexString, keccak256 } from 'ethers'
import type { TypedDataField } from 'ethers'
import { ProtocolError } from './errors.js'
import type { HubDomain } from './hub-types.js'
import { hashTypedData, recoverTypedDataSigner, signTypedData } from './typed-data.js'
import type { TypedDataSigner } from './typed-data.js'

/** The stream protocol id. */
export const FAILURE_REPORT_PROTOCOL = '/iexec-p2p/task-failure/1.0.0'

/** The stderr tail a worker keeps and sends, in bytes of the app's stderr (before sealing). */
export const MAX_STDERR_TAIL_BYTES = 4096

/** ECIES envelope overhead (version, ephemeral key, nonce, tag): storage/ecies.ts. */
const ECIES_OVERHEAD_BYTES = 1 + 33 + 12 + 16

/** Bound of a request and of a response, bytes (a tail in base64 and the fields). */
export const FAILURE_REPORT_MAX_MESSAGE_BYTES = 8 * 1024

const MAX_CODE_CHARS = 64
const CODE = /^[A-Z0-9_]{1,64}$/

export type FailureReportErrorCode =
  /** not JSON, a field of the wrong shape or size */
  | 'FAILURE_REPORT_BAD_MESSAGE'
  /** more than FAILURE_REPORT_MAX_MESSAGE_BYTES, or a stderr tail over its bound */
  | 'FAILURE_REPORT_TOO_LARGE'
  /** the signature does not recover to the report's worker */
  | 'FAILURE_REPORT_BAD_SIGNATURE'
  /** the report's worker is not a worker of the task's deal */
  | 'FAILURE_REPORT_NOT_A_WORKER'
  /** the report is about another task than the one asked for */
  | 'FAILURE_REPORT_WRONG_TASK'

export class FailureReportError extends ProtocolError<FailureReportErrorCode> {}

/** The signed part of a report. */
export interface FailureReportFields {
  /** bytes32 hex, lower case */
  taskid: string
  /** the worker's address (checksummed) */
  worker: string
  /** the executor's status (APP_ERROR, INVALID_MODULE, TIMEOUT...) or the worker's error code */
  code: string
  /** the app's exit code; null when it did not exit by itself (trap, timeout, refused module) */
  exitCode: number | null
  /** the stderr tail, base64: plain bytes, or an ECIES envelope when `stderrEncrypted` */
  stderr: string
  stderrEncrypted: boolean
  /** how many bytes the app wrote to stderr in all (the tail is the last MAX_STDERR_TAIL_BYTES) */
  stderrBytes: number
  /** unix seconds when the worker signed */
  at: number
}

export interface FailureReport extends FailureReportFields {
  /** EIP-712 signature by `worker` */
  signature: string
}

export type FailureReportResponse =
  | { ok: true, report: FailureReport }
  | { ok: false, code: 'NO_FAILURE' | 'BAD_REQUEST', reason: string }

export const FAILURE_REPORT_TYPES: Record<string, TypedDataField[]> = {
  FailureReport: [
    { name: 'taskid', type: 'bytes32' },
    { name: 'worker', type: 'address' },
    { name: 'code', type: 'string' },
    { name: 'exitCode', type: 'int256' },
    { name: 'stderrHash', type: 'bytes32' },
    { name: 'stderrEncrypted', type: 'bool' },
    { name: 'stderrBytes', type: 'uint256' },
    { name: 'at', type: 'uint256' }
  ]
}

function typedValue (f: FailureReportFields): Record<string, unknown> {
  return {
    taskid: f.taskid,
    worker: f.worker,
    code: f.code,
    // a WASI exit code is a u32: -1 never collides with one
    exitCode: BigInt(f.exitCode ?? -1),
    stderrHash: keccak256(Buffer.from(f.stderr, 'base64')),
    stderrEncrypted: f.stderrEncrypted,
    stderrBytes: BigInt(f.stderrBytes),
    at: BigInt(f.at)
  }
}

/** The ECIES context that binds a sealed stderr tail to its task and worker. */
export function failureReportContext (taskid: string, worker: string): string {
  return `iexec-p2p/failure-report/v1\u0000${taskid.toLowerCase()}\u0000${worker.toLowerCase()}`
}

/** The EIP-712 digest a worker signs. */
export function hashFailureReport (domain: HubDomain, fields: FailureReportFields): string {
  return hashTypedData(domain, FAILURE_REPORT_TYPES, typedValue(fields))
}

/** The worker signs its report. */
export async function signFailureReport (signer: TypedDataSigner, domain: HubDomain, fields: FailureReportFields): Promise<FailureReport> {
  checkFields(fields)
  const signature = await signTypedData(signer, domain, FAILURE_REPORT_TYPES, typedValue(fields))
  return { ...fields, signature }
}

const bad = (why: string, field?: string): never => {
  throw new FailureReportError('FAILURE_REPORT_BAD_MESSAGE', why, field !== undefined ? { field } : {})
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

function checkFields (f: FailureReportFields): void {
  if (typeof f.taskid !== 'string' || !isHexString(f.taskid, 32)) bad('taskid is not 32 bytes of hex', 'taskid')
  if (typeof f.worker !== 'string' || !isAddress(f.worker)) bad('worker is not an address', 'worker')
  if (typeof f.code !== 'string' || f.code.length > MAX_CODE_CHARS || !CODE.test(f.code)) bad('code is not an error code', 'code')
  if (f.exitCode !== null && (typeof f.exitCode !== 'number' || !Number.isSafeInteger(f.exitCode) || f.exitCode < 0 || f.exitCode > 0xffffffff)) bad('exitCode is not an exit status', 'exitCode')
  if (typeof f.stderrEncrypted !== 'boolean') bad('stderrEncrypted is not a boolean', 'stderrEncrypted')
  if (typeof f.stderr !== 'string' || !BASE64.test(f.stderr) || f.stderr.length % 4 !== 0) bad('stderr is not base64', 'stderr')
  const max = MAX_STDERR_TAIL_BYTES + (f.stderrEncrypted ? ECIES_OVERHEAD_BYTES : 0)
  if (Buffer.from(f.stderr, 'base64').byteLength > max) {
    throw new FailureReportError('FAILURE_REPORT_TOO_LARGE', `the stderr tail exceeds ${max} bytes`, { field: 'stderr', max })
  }
  if (typeof f.stderrBytes !== 'number' || !Number.isSafeInteger(f.stderrBytes) || f.stderrBytes < 0) bad('stderrBytes is not a byte count', 'stderrBytes')
  if (typeof f.at !== 'number' || !Number.isSafeInteger(f.at) || f.at < 0) bad('at is not unix seconds', 'at')
}

function parseJson (bytes: Uint8Array): Record<string, unknown> {
  if (bytes.byteLength > FAILURE_REPORT_MAX_MESSAGE_BYTES) {
    throw new FailureReportError('FAILURE_REPORT_TOO_LARGE', `message of ${bytes.byteLength} bytes exceeds ${FAILURE_REPORT_MAX_MESSAGE_BYTES}`, { bytes: bytes.byteLength })
  }
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch {
    bad('message is not UTF-8 JSON')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) bad('message is not a JSON object')
  return value as Record<string, unknown>
}

const utf8 = new TextEncoder()

export function encodeFailureReportRequest (taskid: string): Uint8Array {
  return utf8.encode(JSON.stringify({ taskid }))
}

/** The asked task id, lower case. @throws FailureReportError FAILURE_REPORT_BAD_MESSAGE, FAILURE_REPORT_TOO_LARGE */
export function decodeFailureReportRequest (bytes: Uint8Array): string {
  const o = parseJson(bytes)
  if (typeof o.taskid !== 'string' || !isHexString(o.taskid, 32)) bad('taskid is not 32 bytes of hex', 'taskid')
  return (o.taskid as string).toLowerCase()
}

/** @throws FailureReportError FAILURE_REPORT_TOO_LARGE when the answer would not fit a message */
export function encodeFailureReportResponse (res: FailureReportResponse): Uint8Array {
  const bytes = utf8.encode(JSON.stringify(res))
  if (bytes.byteLength > FAILURE_REPORT_MAX_MESSAGE_BYTES) throw new FailureReportError('FAILURE_REPORT_TOO_LARGE', `answer of ${bytes.byteLength} bytes exceeds ${FAILURE_REPORT_MAX_MESSAGE_BYTES}`)
  return bytes
}

/**
 * Decodes a worker's answer, checking every field and size (not the signature: see verifyFailureReport).
 * @throws FailureReportError FAILURE_REPORT_BAD_MESSAGE, FAILURE_REPORT_TOO_LARGE
 */
export function decodeFailureReportResponse (bytes: Uint8Array): FailureReportResponse {
  const o = parseJson(bytes)
  if (o.ok === false) {
    if (o.code !== 'NO_FAILURE' && o.code !== 'BAD_REQUEST') bad('unknown refusal code', 'code')
    return { ok: false, code: o.code as 'NO_FAILURE' | 'BAD_REQUEST', reason: typeof o.reason === 'string' ? o.reason.slice(0, 256) : '' }
  }
  if (o.ok !== true) bad('ok is not a boolean', 'ok')
  const r = o.report
  if (r === null || typeof r !== 'object' || Array.isArray(r)) return bad('report is not an object', 'report')
  const x = r as Record<string, unknown>
  const fields = {
    taskid: x.taskid, worker: x.worker, code: x.code, exitCode: x.exitCode, stderr: x.stderr, stderrEncrypted: x.stderrEncrypted, stderrBytes: x.stderrBytes, at: x.at
  } as unknown as FailureReportFields
  checkFields(fields)
  if (typeof x.signature !== 'string' || !isHexString(x.signature, 65)) bad('signature is not 65 bytes of hex', 'signature')
  return {
    ok: true,
    report: { ...fields, taskid: fields.taskid.toLowerCase(), worker: getAddress(fields.worker), signature: x.signature as string }
  }
}

/**
 * Checks a decoded report: about `taskid`, signed by its worker, who is one
 * of the deal's `workers`.
 * @throws FailureReportError FAILURE_REPORT_WRONG_TASK, FAILURE_REPORT_BAD_SIGNATURE, FAILURE_REPORT_NOT_A_WORKER (and the decoder's codes)
 */
export function verifyFailureReport (domain: HubDomain, report: FailureReport, expected: { taskid: string, workers: readonly string[] }): FailureReport {
  checkFields(report)
  if (report.taskid.toLowerCase() !== expected.taskid.toLowerCase()) {
    throw new FailureReportError('FAILURE_REPORT_WRONG_TASK', 'the report is about another task', { taskid: report.taskid, expected: expected.taskid })
  }
  const { signature, ...fields } = report
  let signer: string
  try {
    signer = recoverTypedDataSigner(domain, FAILURE_REPORT_TYPES, typedValue(fields), signature)
  } catch (err) {
    throw new FailureReportError('FAILURE_REPORT_BAD_SIGNATURE', 'the report\'s signature does not recover', { worker: report.worker }, { cause: err })
  }
  if (signer.toLowerCase() !== report.worker.toLowerCase()) {
    throw new FailureReportError('FAILURE_REPORT_BAD_SIGNATURE', 'the report is not signed by its worker', { worker: report.worker, signer })
  }
  if (!expected.workers.some((w) => w.toLowerCase() === report.worker.toLowerCase())) {
    throw new FailureReportError('FAILURE_REPORT_NOT_A_WORKER', 'the report\'s worker is not a worker of the deal', { worker: report.worker })
  }
  return report
}

/**
 * Failures every honest worker meets alike for the same app and inputs:
 * when the deal's workers agree on one, waiting for the final deadline
 * changes nothing. TIMEOUT, MEMORY_EXCEEDED and fetch errors depend on the
 * worker; APP_ERROR counts with its exit code.
 */
export const DETERMINISTIC_FAILURE_CODES: ReadonlySet<string> = new Set(['INVALID_MODULE', 'APP_ERROR', 'SANDBOX_VIOLATION', 'DUTY_SWEEP_MISMATCH'])

/** The key two reports must share to agree: the code, and for APP_ERROR the exit code. */
export function failureKey (r: Pick<FailureReportFields, 'code' | 'exitCode'>): string {
  return r.code === 'APP_ERROR' ? `${r.code}:${r.exitCode ?? 'none'}` : r.code
}
