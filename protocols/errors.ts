/**
 * Base of every typed error of the wire protocols, and of the node's too
 * (node/errors.ts's ProtocolError extends it): protocols/ depends on nothing
 * of the node, while the node's `isIexecError` still recognises what the
 * protocols throw. Callers and tests branch on `code`, never on message
 * text.
 */
export class ProtocolError<C extends string = string> extends Error {
  readonly code: C
  readonly details?: Record<string, unknown>

  constructor (code: C, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ProtocolError'
    this.code = code
    if (details !== undefined) this.details = details
  }
}

/** True when `err` is a ProtocolError (or any of the node's typed errors), optionally with the given code. */
export function isProtocolError (err: unknown, code?: string): err is ProtocolError {
  return err instanceof ProtocolError && (code === undefined || err.code === code)
}
