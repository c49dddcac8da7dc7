import { IexecError } from '../common/errors.js'

/** Error codes of the exec channel the scheduler and the worker talk over. */
export type ExecErrorCode =
  /** options out of range */
  | 'EXEC_INVALID_OPTIONS'
  /** the peer could not be reached, or did not answer in time */
  | 'EXEC_SEND_FAILED'
  /** the peer answered with an error message (details.code is its code) */
  | 'EXEC_REFUSED'
  /** the peer answered with a message of the wrong type */
  | 'EXEC_BAD_ANSWER'
  /** a handler for this message type is already registered */
  | 'EXEC_HANDLER_EXISTS'

export class ExecError extends IexecError<ExecErrorCode> {}
