/**
 * Base of every typed error in the node. Each module's `errors.ts` defines its
 * codes; callers and tests branch on `code`, never on message text.
 */
export class IexecError<C extends string = string> extends Error {
  readonly code: C
  readonly details?: Record<string, unknown>

  constructor (code: C, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'IexecError'
    this.code = code
    if (details !== undefined) this.details = details
  }
}

/** True when `err` is an IexecError, optionally with the given code. */
export function isIexecError (err: unknown, code?: string): err is IexecError {
  return err instanceof IexecError && (code === undefined || err.code === code)
}
