import { IexecError } from '../common/errors.js'

/** Error codes of the scheduler module (the exec channel's are node/exec/errors.ts). */
export type SchedulerErrorCode =
  /** options out of range */
  | 'SCHEDULER_INVALID_OPTIONS'
  /** a DealCreated / SchedulerReelected event that does not decode */
  | 'SCHEDULER_BAD_EVENT'
  /** start/stop/onDeal called in the wrong state */
  | 'SCHEDULER_BAD_STATE'

export class SchedulerError extends IexecError<SchedulerErrorCode> {}
