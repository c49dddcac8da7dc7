/**
 * One lifecycle for every component of the node (js-libp2p's `Startable`):
 * the node starts components in dependency order and stops them in reverse,
 * the reverse order derived from the start order rather than written twice.
 */

/** A component the node starts and stops. */
export interface Startable {
  start: () => Promise<void>
  stop: () => Promise<void>
}

/** A component's stop that failed, by the name it was started under. */
export interface StopFailure {
  name: string
  error: unknown
}

/**
 * A component whose start or stop is synchronous, or which only has a stop
 * (a listener removed, a handler unregistered): `startable(() => x.start(), async () => await x.stop())`.
 */
export function startable (start: () => unknown, stop: () => unknown): Startable {
  return {
    start: async () => { await start() },
    stop: async () => { await stop() }
  }
}

/**
 * The components started so far, in order. `start` records a component
 * before starting it, so one whose start throws midway is stopped with the
 * rest (as js-libp2p does: a component's stop must be safe after a partial
 * start); `stop` stops them newest first, each failure collected without
 * aborting the rest, and forgets them.
 *
 * @example
 * ```ts
 * const started = new Lifecycle()
 * try {
 *   await started.start('db', db)
 *   await started.start('network', network)
 * } catch (err) {
 *   await started.stop() // network (if it started), then db
 *   throw err
 * }
 * ```
 */
export class Lifecycle {
  private readonly started: Array<{ name: string, component: Startable }> = []

  /** Records a component to be stopped, then starts it. */
  async start (name: string, component: Startable): Promise<void> {
    this.started.push({ name, component })
    await component.start()
  }

  /** Records a component that is already running (started elsewhere) to be stopped in turn. */
  add (name: string, component: Pick<Startable, 'stop'>): void {
    this.started.push({ name, component: { start: async () => {}, stop: async () => { await component.stop() } } })
  }

  /** Names of the recorded components, in start order. */
  names (): string[] {
    return this.started.map((s) => s.name)
  }

  /** Stops every recorded component, newest first; a failure neither throws nor stops the rest (stopAll returns them). */
  async stop (): Promise<void> {
    await this.stopAll()
  }

  /** As stop, returning each failed stop with its component's name. */
  async stopAll (): Promise<StopFailure[]> {
    const failures: StopFailure[] = []
    while (this.started.length > 0) {
      const { name, component } = this.started.pop() as { name: string, component: Startable }
      try {
        await component.stop()
      } catch (error) {
        failures.push({ name, error })
      }
    }
    return failures
  }
}
