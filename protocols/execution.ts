/**
 * The execution protocol between a deal's scheduler and its workers
 * (`/iexec-p2p/exec/3.0.0`): one length-prefixed JSON message per stream,
 * answered by one message on the same stream, then the stream is closed.
 *
 * Scheduler -> worker: `assign` (tasks of one deal, each with its signed
 * authorization, and what to run; answered `assigned` with how many the
 * worker took), `reveal-request`, `upload-request` (answered by
 * `result-uploaded`), `finalized`. Worker -> scheduler: `heartbeat` (every
 * task it holds for that scheduler, with its status), `contributed` (the
 * tasks one transaction committed), `revealed`. Everything else is answered
 * `ack` or `error`.
 *
 * Messages carry tasks in batches: a bag's tasks are assigned, reported and
 * confirmed several at a time, so a stream costs a batch, not a task (2.0.0;
 * 1.0.0 carried one task per message).
 *
 * What a scheduler sends (`assign`, `reveal-request`, `upload-request`,
 * `finalized`) carries its `proof`: its Ethereum key's EIP-712 signature of
 * `ExecPeer(string peer)`, its own libp2p peer id, under the hub's domain.
 * The stream's remote peer is authenticated by noise, so a worker that
 * recovers the deal's current scheduler from the proof over the sending
 * peer's id knows the sender holds the elected key (or was handed the proof
 * by its holder), and a proof replayed by another peer names the wrong peer
 * (3.0.0; 2.0.0 believed whoever sent them).
 *
 * One exchange per stream keeps both sides stateless about streams: a lost
 * connection costs one retried message, never a half-read session, and the
 * chain stays the source of truth (a message is a hint that saves a poll).
 * Decoding validates every field and bounds every size: a bad message is an
 * `ExecWireError` and the receiver drops it and closes the stream.
 */
import { ProtocolError } from './errors.js'
import type { HubDomain } from './hub-types.js'
import { hashTypedData, recoverTypedDataSigner, signTypedData } from './typed-data.js'
import type { TypedDataSigner } from './typed-data.js'

export const EXEC_PROTOCOL = '/iexec-p2p/exec/3.0.0'

/** Largest message: an assign of MAX_ASSIGN_TASKS (~150 bytes each) with params (4 KiB at most), a full heartbeat (~100 bytes a task). */
export const MAX_EXEC_MESSAGE_BYTES = 64 * 1024

/** Tasks in one `assign` (of one deal). */
export const MAX_ASSIGN_TASKS = 64

/**
 * Uncomputed tasks a worker holds per cpu it advertises: one running and one
 * ready, so a cpu goes on to its next task without waiting for the
 * scheduler's next assignment (a message away). The scheduler gives a
 * worker this many per cpu; the worker runs its cpus' worth at once.
 */
export const TASKS_PER_CPU = 2

/** Tasks in one `heartbeat` or `contributed`; a worker holding more for one scheduler sends several. */
export const MAX_REPORT_TASKS = 256

export type ExecWireErrorCode =
  /** not JSON, unknown type, or a field of the wrong shape */
  | 'EXEC_WIRE_INVALID'
  /** more than MAX_EXEC_MESSAGE_BYTES */
  | 'EXEC_WIRE_TOO_LARGE'

export class ExecWireError extends ProtocolError<ExecWireErrorCode> {}

/**
 * Refusal codes that only a peer breaking the protocol earns (a forged or
 * unproven scheduler message, an assignment that is not what the deal's
 * requester signed, an authorization by another key): the receiving
 * channel counts each against the sender, as a REJECTed gossip message is
 * (a malformed message counts too). Refusals an honest peer can meet
 * (busy, unknown task, a result not yet due) do not count.
 */
export const EXEC_OFFENCE_CODES: ReadonlySet<string> = new Set(['EXEC_WIRE_INVALID', 'EXEC_WIRE_TOO_LARGE', 'DUTY_NOT_SCHEDULER', 'DUTY_ASSIGNMENT_MISMATCH', 'DUTY_NOT_AUTHORIZED'])

const EXEC_PEER_TYPES = { ExecPeer: [{ name: 'peer', type: 'string' }] }

/** The EIP-712 digest of `ExecPeer(peer)` under the hub's domain: what a scheduler's `proof` signs. */
export function execPeerDigest (domain: HubDomain, peer: string): string {
  return hashTypedData(domain, EXEC_PEER_TYPES, { peer })
}

/** A node's proof that its Ethereum key speaks through libp2p peer `peer` (signed once per node: it holds for every deal). */
export async function signExecPeer (signer: TypedDataSigner, domain: HubDomain, peer: string): Promise<string> {
  return await signTypedData(signer, domain, EXEC_PEER_TYPES, { peer })
}

/** The address whose key signed `proof` for `peer`. @throws ProtocolError EIP712_INVALID_SIGNATURE */
export function recoverExecPeer (domain: HubDomain, peer: string, proof: string): string {
  return recoverTypedDataSigner(domain, EXEC_PEER_TYPES, { peer }, proof)
}

/** What a worker reports about a task it holds. */
export type TaskProgress = 'fetching' | 'running' | 'contributing' | 'contributed' | 'revealing' | 'revealed' | 'uploading' | 'done' | 'failed'
const PROGRESS: ReadonlySet<string> = new Set(['fetching', 'running', 'contributing', 'contributed', 'revealing', 'revealed', 'uploading', 'done', 'failed'])

/** Content named by CID with the checksum registered on the hub (sha256 of the bytes, bytes32). */
export interface ContentRef {
  cid: string
  checksum: string
}

/** One task of an `assign`: its index in the deal and the scheduler's authorization for it. */
export interface AssignedTask {
  idx: number
  /** the deal scheduler's EIP-712 Authorization(worker, taskid), taskid = keccak(dealid, idx) */
  authorization: string
}

export interface AssignMessage {
  type: 'assign'
  /** the sender's ExecPeer signature (see the header) */
  proof: string
  dealid: string
  /** 1 to MAX_ASSIGN_TASKS tasks of the deal, in the order the worker should take them */
  tasks: AssignedTask[]
  /** the deal's trust (1: contribute-and-finalize) */
  trust: number
  /** the app's address on the hub and its content */
  app: string
  appContent: ContentRef
  dataset?: { address: string } & ContentRef
  /** the request's params (iExec JSON) */
  params: string
  /** compressed secp256k1 public key of the requester (0x, 33 bytes) when the result must be encrypted */
  resultEncryptionKey?: string
  /** unix seconds: the deal's contribution deadline */
  deadline: number
}

/** The answer to an `assign`: the worker took the first `accepted` tasks (at least one; none is an `error` DUTY_BUSY). */
export interface AssignedMessage { type: 'assigned', accepted: number }

/** One task in a heartbeat. */
export interface TaskReport {
  taskid: string
  status: TaskProgress
  /** with status 'failed': why, as a code (the executor's status such as TIMEOUT, or the worker's error code) */
  code?: string
}

/** Every task a worker holds for the receiving scheduler (sent every beat, and at once when one is computed or failed). */
export interface HeartbeatMessage {
  type: 'heartbeat'
  tasks: TaskReport[]
}
/** The tasks one mined transaction committed (contribute, or contribute-and-finalize of a batch). */
export interface ContributedMessage { type: 'contributed', taskids: string[], txHash: string }
export interface RevealRequestMessage { type: 'reveal-request', taskid: string, proof: string }
export interface RevealedMessage { type: 'revealed', taskid: string, txHash: string }
export interface UploadRequestMessage { type: 'upload-request', taskid: string, proof: string }
/** `callbackData`: the result's computed.json callback-data, which the scheduler passes to finalize (the hub checks it against the consensus). */
export interface ResultUploadedMessage { type: 'result-uploaded', taskid: string, cid: string, callbackData?: string }
export interface FinalizedMessage { type: 'finalized', taskid: string, txHash: string, cid: string, proof: string }
export interface AckMessage { type: 'ack' }
export interface ErrorMessage { type: 'error', code: string, reason: string }

export type ExecMessage =
  | AssignMessage | AssignedMessage | HeartbeatMessage | ContributedMessage | RevealRequestMessage | RevealedMessage
  | UploadRequestMessage | ResultUploadedMessage | FinalizedMessage | AckMessage | ErrorMessage

const HEX32 = /^0x[0-9a-fA-F]{64}$/
const ADDRESS = /^0x[0-9a-fA-F]{40}$/
const SIGNATURE = /^0x[0-9a-fA-F]{130}$/
const PUBKEY = /^0x0[23][0-9a-fA-F]{64}$/
// CIDv0 (base58btc Qm...) or CIDv1 in a multibase of letters and digits; parsed for real by the storage module
const CID_TEXT = /^[A-Za-z0-9]{8,128}$/
const CALLBACK_DATA = /^0x(?:[0-9a-f]{2})*$/
/** the worker's bound on computed.json's callback-data (node/storage/digest.ts) */
const MAX_CALLBACK_DATA_BYTES = 16 * 1024
const MAX_PARAMS_CHARS = 4096
const MAX_REASON_CHARS = 512

function invalid (field: string, why: string): ExecWireError {
  return new ExecWireError('EXEC_WIRE_INVALID', `${field} ${why}`, { field })
}

function str (o: Record<string, unknown>, field: string, re?: RegExp, max = 256): string {
  const v = o[field]
  if (typeof v !== 'string') throw invalid(field, 'must be a string')
  if (v.length > max) throw invalid(field, `exceeds ${max} characters`)
  if (re !== undefined && !re.test(v)) throw invalid(field, 'has the wrong format')
  return v
}

function int (o: Record<string, unknown>, field: string, min: number, max: number): number {
  const v = o[field]
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(field, `must be an integer in [${min}, ${max}]`)
  return v
}

function obj (v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(field, 'must be an object')
  return v as Record<string, unknown>
}

/** A non-empty array field of at most `max` items. */
function list (o: Record<string, unknown>, field: string, max: number): unknown[] {
  const v = o[field]
  if (!Array.isArray(v) || v.length === 0) throw invalid(field, 'must be a non-empty array')
  if (v.length > max) throw invalid(field, `exceeds ${max} items`)
  return v
}

function contentRef (v: unknown, field: string): ContentRef {
  const o = obj(v, field)
  return { cid: str(o, 'cid', CID_TEXT), checksum: str(o, 'checksum', HEX32) }
}

/**
 * Validates a parsed value as an exec message (every field, every bound).
 * @throws ExecWireError EXEC_WIRE_INVALID
 */
export function validateExecMessage (value: unknown): ExecMessage {
  const o = obj(value, 'message')
  const type = o.type
  switch (type) {
    case 'assign': {
      const tasks = list(o, 'tasks', MAX_ASSIGN_TASKS).map((v, i) => {
        const t = obj(v, `tasks[${i}]`)
        return { idx: int(t, 'idx', 0, 2 ** 32 - 1), authorization: str(t, 'authorization', SIGNATURE) }
      })
      const m: AssignMessage = {
        type,
        proof: str(o, 'proof', SIGNATURE),
        dealid: str(o, 'dealid', HEX32),
        tasks,
        trust: int(o, 'trust', 1, 255),
        app: str(o, 'app', ADDRESS),
        appContent: contentRef(o.appContent, 'appContent'),
        params: str(o, 'params', undefined, MAX_PARAMS_CHARS),
        deadline: int(o, 'deadline', 0, 2 ** 40)
      }
      if (o.dataset !== undefined) {
        const d = obj(o.dataset, 'dataset')
        m.dataset = { address: str(d, 'address', ADDRESS), ...contentRef(d, 'dataset') }
      }
      if (o.resultEncryptionKey !== undefined) m.resultEncryptionKey = str(o, 'resultEncryptionKey', PUBKEY)
      return m
    }
    case 'assigned':
      return { type, accepted: int(o, 'accepted', 1, MAX_ASSIGN_TASKS) }
    case 'heartbeat': {
      const tasks = list(o, 'tasks', MAX_REPORT_TASKS).map((v, i) => {
        const t = obj(v, `tasks[${i}]`)
        const status = str(t, 'status')
        if (!PROGRESS.has(status)) throw invalid('status', 'is not a task status')
        const r: TaskReport = { taskid: str(t, 'taskid', HEX32), status: status as TaskProgress }
        if (t.code !== undefined) r.code = str(t, 'code', /^[A-Z0-9_]{1,64}$/)
        return r
      })
      return { type, tasks }
    }
    case 'contributed':
      return { type, taskids: list(o, 'taskids', MAX_REPORT_TASKS).map((v, i) => { if (typeof v !== 'string' || !HEX32.test(v)) throw invalid(`taskids[${i}]`, 'must be a 32-byte hex string'); return v }), txHash: str(o, 'txHash', HEX32) }
    case 'revealed':
      return { type, taskid: str(o, 'taskid', HEX32), txHash: str(o, 'txHash', HEX32) }
    case 'reveal-request':
    case 'upload-request':
      return { type, taskid: str(o, 'taskid', HEX32), proof: str(o, 'proof', SIGNATURE) }
    case 'result-uploaded':
      return {
        type,
        taskid: str(o, 'taskid', HEX32),
        cid: str(o, 'cid', CID_TEXT),
        ...(o.callbackData !== undefined ? { callbackData: str(o, 'callbackData', CALLBACK_DATA, 2 + 2 * MAX_CALLBACK_DATA_BYTES) } : {})
      }
    case 'finalized':
      return { type, taskid: str(o, 'taskid', HEX32), txHash: str(o, 'txHash', HEX32), cid: str(o, 'cid', CID_TEXT), proof: str(o, 'proof', SIGNATURE) }
    case 'ack':
      return { type }
    case 'error':
      return { type, code: str(o, 'code', /^[A-Z0-9_]{1,64}$/), reason: str(o, 'reason', undefined, MAX_REASON_CHARS) }
    default:
      throw invalid('type', 'is not an exec message type')
  }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * Encodes a message (validated first: a node never sends what its peers would refuse).
 * @throws ExecWireError EXEC_WIRE_INVALID, EXEC_WIRE_TOO_LARGE
 */
export function encodeExecMessage (message: ExecMessage): Uint8Array {
  validateExecMessage(message)
  const bytes = encoder.encode(JSON.stringify(message))
  if (bytes.byteLength > MAX_EXEC_MESSAGE_BYTES) {
    throw new ExecWireError('EXEC_WIRE_TOO_LARGE', `message of ${bytes.byteLength} bytes exceeds ${MAX_EXEC_MESSAGE_BYTES}`, { bytes: bytes.byteLength })
  }
  return bytes
}

/**
 * Decodes and validates one message.
 * @throws ExecWireError EXEC_WIRE_INVALID, EXEC_WIRE_TOO_LARGE
 */
export function decodeExecMessage (bytes: Uint8Array): ExecMessage {
  if (bytes.byteLength > MAX_EXEC_MESSAGE_BYTES) {
    throw new ExecWireError('EXEC_WIRE_TOO_LARGE', `message of ${bytes.byteLength} bytes exceeds ${MAX_EXEC_MESSAGE_BYTES}`, { bytes: bytes.byteLength })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(decoder.decode(bytes))
  } catch (err) {
    throw new ExecWireError('EXEC_WIRE_INVALID', 'message is not UTF-8 JSON', {}, { cause: err })
  }
  return validateExecMessage(parsed)
}
