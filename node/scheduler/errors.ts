import { IexecError } from '../errors.js'

/** Error codes of the scheduler module and of the exec channel both services use. */
export type SchedulerErrorCode =
  /** options out of range */
  | 'SCHEDULER_INVALID_OPTIONS'
  /** a DealCreated / SchedulerReelected event that does not decode */
  | 'SCHEDULER_BAD_EVENT'
  /** start/stop/onDeal called in the wrong state */
  | 'SCHEDULER_BAD_STATE'
  /** the peer could not be reached, or did not answer in time */
  | 'EXEC_SEND_FAILED'
  /** the peer answered with an error message (details.code is its code) */
  | 'EXEC_REFUSED'
  /** the peer answered with a message of the wrong type */
  | 'EXEC_BAD_ANSWER'
  /** a handler for this message type is already registered */
  | 'EXEC_HANDLER_EXISTS'

export class SchedulerError extends IexecError<SchedulerErrorCode> {}
