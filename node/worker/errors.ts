import { IexecError } from '../errors.js'

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
  /** computed.json is not valid JSON or its deterministic-output-path is not a string. */
  | 'WORKER_DIGEST_BAD_COMPUTED'
  /** computed.json names a path outside the output directory. */
  | 'WORKER_DIGEST_PATH_ESCAPE'
  /** computed.json names a path that does not exist. */
  | 'WORKER_DIGEST_PATH_MISSING'
  /** The output holds a symbolic link or a special file, which a digest refuses. */
  | 'WORKER_DIGEST_UNSUPPORTED_ENTRY'

/** A typed error of the worker module. */
export class WorkerError extends IexecError<WorkerErrorCode> {}
