import { ProtocolError } from '../../protocols/errors.js'

/**
 * Base of every typed error in the node. Each module's `errors.ts` defines its
 * codes; callers and tests branch on `code`, never on message text. It
 * extends the protocols' ProtocolError, so that one check covers both.
 */
export class IexecError<C extends string = string> extends ProtocolError<C> {
  constructor (code: C, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(code, message, details, options)
    this.name = 'IexecError'
  }
}

/**
 * True when `err` is a typed error, optionally with the given code: the
 * node's (IexecError) and the protocols' (ProtocolError, which the wire
 * codecs and signature checks under protocols/ throw).
 */
export function isIexecError (err: unknown, code?: string): err is IexecError {
  return err instanceof ProtocolError && (code === undefined || err.code === code)
}
