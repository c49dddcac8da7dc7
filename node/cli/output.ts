import { isIexecError } from '../common/errors.js'
import { USAGE_CODES } from './errors.js'

/** Where the CLI prints. The one place allowed to write to stdout/stderr. */
export interface CliIo {
  out: (text: string) => void
  err: (text: string) => void
}

export const processIo: CliIo = {
  out: (text) => { process.stdout.write(text) },
  err: (text) => { process.stderr.write(text) }
}

export function printJson (io: CliIo, value: unknown): void {
  io.out(JSON.stringify(value, (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v) + '\n')
}

/** Left-aligned columns, as `docker ps` prints them. */
export function table (header: string[], rows: string[][]): string {
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)))
  return all.map((r) => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n'
}

export interface FormattedError {
  code: string
  message: string
  exitCode: number
  /** the server's error details (e.g. NO_BIDS reasons), passed on in --json */
  details?: Record<string, unknown>
}

/**
 * What the node refuses in a request's arguments is the command line's
 * fault too (a value the CLI cannot check offline): exit 2, like a usage
 * error found here.
 */
const SERVER_USAGE_CODES: ReadonlySet<string> = new Set([
  'MARKET_BAD_ARGUMENT', 'MARKET_BAD_QUERY', 'API_BAD_REQUEST', 'ARGS_UNTERMINATED_QUOTE', 'ARGS_TRAILING_BACKSLASH', 'ARGS_NUL_CHARACTER'
])

/** Code, one-line message and exit code of anything a command threw. */
export function describeError (err: unknown): FormattedError {
  if (isIexecError(err)) {
    // the API client wraps a server-side failure; the server's code is the useful one
    const serverCode = err.code === 'API_ERROR' && typeof err.details?.serverCode === 'string' ? err.details.serverCode : undefined
    const code = serverCode ?? err.code
    const usage = USAGE_CODES.has(code) || SERVER_USAGE_CODES.has(code) || (err as { usage?: unknown }).usage === true
    const details = serverCode !== undefined ? err.details?.serverDetails : undefined
    return { code, message: oneLine(err.message), exitCode: usage ? 2 : 1, ...(typeof details === 'object' && details !== null ? { details: details as Record<string, unknown> } : {}) }
  }
  const message = err instanceof Error ? err.message : String(err)
  return { code: 'INTERNAL', message: oneLine(message), exitCode: 1 }
}

/** `iexec-p2p: <message> (<CODE>)`, or the JSON envelope with --json; on stderr. */
export function printError (io: CliIo, err: FormattedError, json: boolean): void {
  if (json) {
    io.err(JSON.stringify({ ok: false, error: { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) } }) + '\n')
  } else {
    io.err(`iexec-p2p: ${err.message} (${err.code})\n`)
  }
}

function oneLine (s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim()
}
