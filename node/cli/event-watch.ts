import type { ApiClient } from '../api/client.js'
import type { StreamedEvent } from '../api/event-client.js'
import type { NodeEventType } from '../api/events.js'

/**
 * What the CLI's `--watch` waits on between two reads of the state it
 * shows: the node's event stream (`GET /v1/events`), so a change is seen
 * as soon as the node sees it, without polling. A node without the stream
 * (an older node) or a stream that broke makes `wait` a plain sleep of
 * `fallbackMs`, as the watches did before. State is always re-read from the
 * node's routes after a wake-up: the output stays what it was.
 */
export class EventWake {
  private pending = false
  private wake?: () => void
  private live = false

  private constructor (private readonly fallbackMs: number) {}

  /**
   * Opens the stream and waits until it is live (so nothing that happens
   * after this resolves is missed). `relevant` picks the events that wake.
   */
  static async open (api: ApiClient, types: NodeEventType[], relevant: (e: StreamedEvent) => boolean, fallbackMs: number, safetyMs = 5_000): Promise<EventWake> {
    const w = new EventWake(fallbackMs)
    w.safetyMs = safetyMs
    const stream = api.events((e) => {
      // a reset: the node dropped events we missed; re-read the state
      if (e.type === 'reset' || (e.type !== 'hello' && relevant(e))) w.signal()
    }, () => {
      w.live = false
      w.signal()
    }, { types })
    w.close = () => { stream.close() }
    try {
      await stream.ready()
      w.live = true
    } catch {
      w.live = false
    }
    return w
  }

  /** set from open(): even with a live stream, state is re-read this often (a missed event cannot stall a watch) */
  private safetyMs = 5_000
  close: () => void = () => {}

  /** Whether waits follow the node's events (else they are plain sleeps). */
  get following (): boolean { return this.live }

  private signal (): void {
    this.pending = true
    this.wake?.()
  }

  /** Resolves at the next relevant event (or one that came since the last call), or after the bound. */
  async wait (maxMs: number): Promise<void> {
    const bound = Math.max(0, Math.min(maxMs, this.live ? this.safetyMs : this.fallbackMs))
    if (this.pending) {
      this.pending = false
      return
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, bound)
      function done (): void { clearTimeout(t); resolve() }
      this.wake = done
    })
    this.wake = undefined
    this.pending = false
  }
}
