import { appendFileSync } from 'node:fs'

/** What a component logs through (structurally the network's NetworkLogger). */
export interface ComponentLogger {
  info: (msg: string, context?: Record<string, unknown>) => void
  warn: (msg: string, context?: Record<string, unknown>) => void
}

/** What the log file needs of the process: told to flush when it exits (tests give a fake). */
export interface ExitHook {
  once: (event: 'exit', listener: () => void) => unknown
  off: (event: 'exit', listener: () => void) => unknown
}

/**
 * JSON lines in <dataDir>/node.log: the operator's record of what the node
 * did, one instance per node shared by its components. Lines logged in one
 * turn of the event loop go out in one append at its end (setImmediate,
 * before any I/O the turn started can complete): a sync append of its own
 * per line (open, write, close) was a few percent of a worker's main thread
 * in a bag of tiny tasks. Warnings go out at once, and a process that exits
 * (stop, an uncaught error) writes what it logged last.
 *
 * @example
 * ```ts
 * const logs = new LogFile(paths.logs)
 * const log = logs.logger('node')
 * log.info('node started', { peerId })
 * ```
 */
export class LogFile {
  private pending: string[] = []
  private flushScheduled = false
  // the exit listener is on only while lines wait: many nodes in one process add no lasting listeners
  private readonly onExit = (): void => { this.flush() }

  constructor (readonly file: string, private readonly exitHook: ExitHook = process, private readonly now: () => Date = () => new Date()) {}

  /** A component's logger: each line carries its name. */
  logger (component: string): ComponentLogger {
    return {
      info: (m, c) => { this.write('info', component, m, c) },
      warn: (m, c) => { this.write('warn', component, m, c) }
    }
  }

  /** Appends the pending lines in one write. */
  flush (): void {
    this.flushScheduled = false
    if (this.pending.length === 0) return
    const lines = this.pending
    this.pending = []
    this.exitHook.off('exit', this.onExit)
    try {
      appendFileSync(this.file, lines.join(''), { mode: 0o600 })
    } catch {
      // logging must never take the node down (disk full, dir removed)
    }
  }

  private write (level: string, component: string, msg: string, context?: Record<string, unknown>): void {
    let line: string
    try {
      line = JSON.stringify({ t: this.now().toISOString(), level, component, msg, ...context }) + '\n'
    } catch {
      return
    }
    if (this.pending.length === 0) this.exitHook.once('exit', this.onExit)
    this.pending.push(line)
    if (level === 'warn') {
      this.flush()
    } else if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(() => { this.flush() })
    }
  }
}
