import { IexecError } from '../common/errors.js'

/**
 * Codes of the worker's duties. Refusals of an assignment travel back to the
 * scheduler as the `error` message's code.
 */
export type DutyErrorCode =
  /** options out of range */
  | 'DUTY_INVALID_OPTIONS'
  /** taskid is not task idx of dealid, or the deal does not exist */
  | 'DUTY_BAD_TASK'
  /** the authorization is not signed by the deal's current scheduler */
  | 'DUTY_NOT_AUTHORIZED'
  /** the sending peer is not proven to be the deal's current scheduler (no ExecPeer proof of it, or another key's) */
  | 'DUTY_NOT_SCHEDULER'
  /** the assignment's app, dataset, params or result key differ from what the deal's requester signed (its DealCreated event) */
  | 'DUTY_ASSIGNMENT_MISMATCH'
  /** a result was asked for before the hub holds this result as the task's consensus */
  | 'DUTY_RESULT_NOT_DUE'
  /** this node is not one of the deal's workers */
  | 'DUTY_NOT_A_WORKER'
  /** the app's CID or checksum does not match the hub's registry, or the fetched bytes do not hash to the checksum */
  | 'DUTY_BAD_APP'
  /** datasets need a key-release dialer this service was not given */
  | 'DUTY_DATASET_UNSUPPORTED'
  /** already running as many tasks as allowed */
  | 'DUTY_BUSY'
  /** a reveal or upload was asked for a task this worker does not hold in that state */
  | 'DUTY_UNKNOWN_TASK'
  /** the app did not complete (status in details) */
  | 'DUTY_EXECUTION_FAILED'
  /** the service is stopped */
  | 'DUTY_STOPPED'
  /** a sweep's per-task parameters do not fit the deal (not one entry per task, or no entry for this task) */
  | 'DUTY_SWEEP_MISMATCH'

export class DutyError extends IexecError<DutyErrorCode> {}
