import { IexecError } from '../common/errors.js'

/**
 * Error codes of the worker module. An app that fails is not an error of the
 * executor: it is an `ExecResult` status. These codes are for bad calls and
 * for results that cannot be digested.
 */
export type WorkerErrorCode =
  /** The job is malformed (missing dir, non-empty output dir, bad bounds). */
  | 'WORKER_INVALID_JOB'
  /** The run was aborted by the caller's AbortSignal. */
  | 'WORKER_ABORTED'
  /** The executor was closed. */
  | 'WORKER_EXECUTOR_CLOSED'
  /** The runner process failed outside the app (a bug or a crash of the runtime). */
  | 'WORKER_RUNNER_FAILED'

/** A typed error of the worker module. */
export class WorkerError extends IexecError<WorkerErrorCode> {}
