import type { DbController } from '../db/index.js'
import { hubInterface } from '../../contracts-abi/index.js'
import { EventFollower } from './event-follower.js'
import type { ChainEvent, LogSource } from './event-follower.js'
import type { Cursor, CursorStore } from './cursor-store.js'
import { LevelCursorStore } from './level-cursor-store.js'
import { defaultHubEventsOptions } from './options.js'
import type { HubEventsOptions } from './options.js'
import type { HubEvent, HubEventName } from './hub-event-decoder.js'

/** What a subscriber is handed: the event typed by its name, or any of the hub's logs with '*'. */
export type HubEventOf<N extends HubEventName | '*'> = N extends HubEventName ? HubEvent<N> : ChainEvent

export interface HubEventSubscribeOptions<E> {
  /**
   * Called, newest first, for each delivered event a reorg took back
   * (before the new history is delivered), in the same subscriber order.
   */
  onRemoved?: (event: E) => void | Promise<void>
  /**
   * A failure holds the follower on the event: it backs off and delivers
   * the event again (from this subscriber on; the ones before it are not
   * told twice) until it passes. Without it a failure is logged and the
   * next subscriber is told. For records the node cannot do without (the
   * market's book); the handler must be idempotent.
   */
  retry?: boolean
}

export interface HubEventsLogger {
  warn: (msg: string, context?: Record<string, unknown>) => void
}

interface Subscription {
  name: HubEventName | '*'
  handler: (event: ChainEvent) => void | Promise<void>
  onRemoved?: (event: ChainEvent) => void | Promise<void>
  retry: boolean
  active: boolean
}

/**
 * The subscribers of the hub's events and their dispatch, apart from the
 * follower that feeds them (unit-testable alone).
 *
 * Order: each event goes to the subscribers in the order they subscribed,
 * one after the other (each awaited): the node subscribes the market's book
 * first, so the scheduler sees an event after the book applied it.
 */
export class HubEventDispatcher {
  private readonly subs: Subscription[] = []
  /** the event a `retry` subscriber failed on, and who was told of it already */
  private pending: { key: string, done: Set<Subscription> } | undefined

  constructor (protected readonly log: HubEventsLogger = { warn: () => {} }) {}

  /**
   * Subscribes to one event of the hub (its args typed by name) or to every
   * log of the hub ('*'). Returns the unsubscribe function.
   *
   * @example
   * ```ts
   * const off = hubEvents.on('DealCreated', (e) => { deals.add(e.args.dealid) }, { onRemoved: (e) => { deals.delete(e.args.dealid) } })
   * ```
   */
  on<N extends HubEventName | '*'> (name: N, handler: (event: HubEventOf<N>) => void | Promise<void>, options: HubEventSubscribeOptions<HubEventOf<N>> = {}): () => void {
    const sub: Subscription = {
      name,
      handler: handler as Subscription['handler'],
      ...(options.onRemoved !== undefined ? { onRemoved: options.onRemoved as Subscription['handler'] } : {}),
      retry: options.retry === true,
      active: true
    }
    this.subs.push(sub)
    return () => {
      sub.active = false
      const i = this.subs.indexOf(sub)
      if (i >= 0) this.subs.splice(i, 1)
    }
  }

  /** Number of live subscriptions. */
  get subscriberCount (): number { return this.subs.length }

  /** Hands a delivered event to its subscribers (the follower's handler). */
  async dispatch (event: ChainEvent): Promise<void> {
    await this.run('event', event, (s) => s.handler, 'hub event listener failed')
  }

  /** Hands an event a reorg took back to its subscribers' `onRemoved` (the follower's onRemoved). */
  async dispatchRemoved (event: ChainEvent): Promise<void> {
    await this.run('removed', event, (s) => s.onRemoved, 'hub event removal listener failed')
  }

  private async run (kind: string, event: ChainEvent, pick: (s: Subscription) => Subscription['handler'] | undefined, failed: string): Promise<void> {
    const key = `${kind}:${event.blockHash}:${event.logIndex}`
    const done = this.pending?.key === key ? this.pending.done : new Set<Subscription>()
    this.pending = undefined
    // a snapshot: a subscriber added by a handler hears from the next event on
    for (const s of [...this.subs]) {
      const fn = pick(s)
      if (!s.active || fn === undefined || done.has(s) || (s.name !== '*' && s.name !== event.name)) continue
      try {
        await fn(event)
      } catch (err) {
        if (s.retry) {
          // the follower backs off and delivers this event again: on from here
          this.pending = { key, done }
          throw err
        }
        this.log.warn(failed, { event: event.name, error: err instanceof Error ? err.message : String(err) })
      }
      done.add(s)
    }
  }
}

export interface HubEventsInit extends Partial<HubEventsOptions> {
  /** where the logs are read (a chain client fits) */
  chain: LogSource & { chainId: number }
  /** the hub's address */
  hub: string
  /** the node's db: the cursor lives there */
  db: DbController
  /** first block of the hub's events (its deploy block) when there is no cursor */
  fromBlock: number
  /**
   * Forget the stored cursor at start and read the hub's events again from
   * `fromBlock` (a damaged cursor; every handler takes an event twice
   * without harm).
   */
  resync?: boolean
  /** the cursor's store; the db's by default (tests) */
  cursorStore?: CursorStore & { clear?: () => Promise<void> }
  log?: HubEventsLogger
}

/**
 * The node's one source of the hub's events: one follower, one cursor,
 * every subscriber (the market's book and stake cache, the explorer, the
 * scheduler, the worker) told in subscription order. Delivery is the
 * follower's (node/chain/event-follower.ts): chain order, confirmations,
 * reorgs handed back through `onRemoved`, a failing `retry` subscriber
 * retried with backoff.
 *
 * @example
 * ```ts
 * const hubEvents = new HubEvents({ chain: client, hub, db, fromBlock })
 * hubEvents.on('*', async (e) => { await scheduler.onChainEvent(e) }, { onRemoved: async (e) => { await scheduler.onChainEventRemoved(e) } })
 * await hubEvents.start()
 * ```
 */
export class HubEvents extends HubEventDispatcher {
  readonly follower: EventFollower
  readonly options: HubEventsOptions
  private readonly cursorStore: CursorStore & { clear?: () => Promise<void> }
  /** `resync` is done once, at the first start */
  private resynced = false

  constructor (private readonly init: HubEventsInit) {
    super(init.log)
    this.options = { ...defaultHubEventsOptions, ...stripUndefined({ confirmations: init.confirmations, pollIntervalMs: init.pollIntervalMs, maxBlockRange: init.maxBlockRange }) }
    // keyed by chain and hub: a dev chain restarted from scratch deploys the
    // hub at the same address, and an old cursor would skip its events
    this.cursorStore = init.cursorStore ?? new LevelCursorStore(init.db, hubCursorKey(init.chain.chainId, init.hub))
    this.follower = new EventFollower(init.chain, {
      address: init.hub,
      iface: hubInterface(),
      fromBlock: init.fromBlock,
      cursorStore: this.cursorStore,
      confirmations: this.options.confirmations,
      pollIntervalMs: this.options.pollIntervalMs,
      maxBlockRange: this.options.maxBlockRange,
      handler: async (event) => { await this.dispatch(event) },
      onRemoved: async (event) => { await this.dispatchRemoved(event) },
      onError: (err, fatal) => { this.log.warn('hub event follower error', { code: err.code, fatal, error: err.message }) }
    })
  }

  /**
   * Where the follower will start (the stored cursor), read before it
   * starts; undefined without one, or when `resync` forgets it.
   */
  async storedPosition (): Promise<Cursor | undefined> {
    if (this.init.resync === true && !this.resynced) return undefined
    return await this.cursorStore.load()
  }

  /** Starts following (after `resync`, from `fromBlock`). Subscribe first: nothing is replayed to a late subscriber. */
  async start (): Promise<void> {
    if (this.follower.following) return
    if (this.init.resync === true && !this.resynced && this.cursorStore.clear !== undefined) {
      await this.cursorStore.clear()
      this.resynced = true
      this.log.warn('event cursor cleared (--resync-events): reading the hub\'s events again', { fromBlock: this.init.fromBlock })
    }
    await this.follower.start()
  }

  /** Stops after the event in hand is handled and its cursor saved. */
  async stop (): Promise<void> {
    await this.follower.stop()
  }

  /** Reads and delivers everything confirmed now (e.g. after our own transaction) instead of at the next tick. */
  async poll (): Promise<number> {
    return await this.follower.poll()
  }

  /** The position reached, once loaded. */
  get position (): Cursor | undefined { return this.follower.position }
}

/** The cursor's name in the db: by chain and hub, as the market named it (existing data dirs keep their cursor). */
export function hubCursorKey (chainId: number, hub: string): string {
  return `hub:${chainId}:${hub.toLowerCase()}`
}

function stripUndefined<T extends object> (o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
