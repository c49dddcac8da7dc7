import type { EventFragment, Interface, JsonRpcProvider, Result } from 'ethers'
import { checksumAddress } from '../../protocols/address.js'
import { ChainError, isChainError } from './errors.js'
import { backoffDelay, sleep, subscriberOf, withRpcRetry } from './rpc.js'
import type { RpcSubscriber, Subscription } from './ws-transport.js'
import { defaultEventFollowerOptions, type EventFollowerOptions, type RpcOptions } from './options.js'
import { CURSOR_RECENT_MAX, type Cursor, type CursorStore } from './cursor-store.js'

/** One log, decoded when the follower was given the contract's interface. */
export interface ChainEvent {
  /** event name, when the interface knows the topic */
  name?: string
  /** decoded arguments, when the interface knows the topic */
  args?: Result
  address: string
  blockNumber: number
  blockHash: string
  logIndex: number
  transactionHash: string
  topics: readonly string[]
  data: string
}

/** What the follower reads with: a chain client fits. */
export interface LogSource {
  provider: JsonRpcProvider
  rpcUrl: string
  rpcOptions?: RpcOptions
  /** `eth_subscribe`; by default the provider's own when it runs over a ws(s) URL */
  subscriber?: RpcSubscriber
}

export interface EventFollowerInit extends Partial<EventFollowerOptions> {
  /** the contract whose logs to follow */
  address: string
  /** topic filter (e.g. `[iface.getEvent('DealCreated').topicHash]`); all logs of `address` when absent */
  topics?: Array<string | string[] | null>
  /** decodes `name` and `args` */
  iface?: Interface
  cursorStore: CursorStore
  /** called once per event, in chain order; the cursor moves past the event only after it resolves */
  handler: (event: ChainEvent) => Promise<void>
  /**
   * Called, newest first, for each delivered event whose block was replaced
   * (a reorg), before the new history is delivered; retried like `handler`.
   * Events re-mined in the new history are delivered again after it.
   */
  onRemoved?: (event: ChainEvent) => Promise<void>
  /**
   * 'poll' reads every `pollIntervalMs`; 'block' reads when the provider
   * reports a new block (its own polling, every `pollingIntervalMs`).
   */
  trigger?: 'poll' | 'block'
  /**
   * On a ws(s) endpoint (default true): subscribe to new heads and to the
   * contract's logs and read when they are pushed, polling only every
   * `resyncIntervalMs` while the subscriptions are live (and every
   * `pollIntervalMs` while they are down or refused).
   */
  subscribe?: boolean
  /** with live subscriptions, the wait between two reads when nothing is pushed; default max(10 × pollIntervalMs, 10 s) */
  resyncIntervalMs?: number
  /**
   * Told of every error; after a fatal one (CURSOR_STORE_FAILED, INVALID_ARGUMENT) the follower has stopped.
   * HANDLER_FAILED (a handler kept failing, e.g. through an RPC outage) is not fatal: the follower
   * backs off and delivers the same event again. REORG_DETECTED (not fatal) tells of a rewind done.
   * SUBSCRIPTION_REFUSED (not fatal): the endpoint refused `eth_subscribe`; the follower polls.
   * RPC_UNREACHABLE (not fatal) with `details.subscription`: the socket carrying the subscriptions dropped.
   */
  onError?: (err: ChainError, fatal: boolean) => void
}

/** A long range of logs saves the cursor this often (a crash delivers at most this many events again). */
const SAVE_EVERY_EVENTS = 256

const FATAL: ReadonlySet<string> = new Set(['CURSOR_STORE_FAILED', 'INVALID_ARGUMENT'])

/** Delivered events kept in memory to be taken back on a reorg (the oldest go first). */
const TAKEN_BACK_MAX = 4096

/** Blocks of pushed logs remembered until read (more wait for the next read anyway). */
const PENDING_LOG_BLOCKS_MAX = 1024

/** Rewinds in one poll before it gives up until the next one (a chain reorganising under us). */
const MAX_REWINDS_PER_POLL = 4

/**
 * Follows one contract's logs from a stored cursor and hands each to the
 * handler exactly once, in (block, log index) order.
 *
 * Delivery: a log is read only once `confirmations` blocks are on top of its
 * block; the cursor is saved once the logs of a range of blocks are handled
 * (every 256 events within a long range, and after the event in hand on
 * stop). A restart loads the cursor and skips what was delivered, so nothing
 * is missed. The window is a crash (or a failed handler) in the middle of a
 * range: the events handled since the last save are delivered again, so
 * handlers must be idempotent (the node's are: they read the hub or record
 * sets). A failing handler saves the cursor after the events before it. A
 * save per event was a level write per event at every node.
 *
 * Reorgs: with confirmations > 0 a reorg shallower than that never reaches
 * the handler. A deeper one (or any, with confirmations = 0) is detected by
 * comparing the hash of the last block read from (at each range read, and
 * whenever the head changes). The follower then rewinds: it looks for the
 * newest block it read from whose hash is unchanged (the cursor keeps the
 * last 32, `recent`), hands each event delivered after it to `onRemoved`
 * (newest first; only those of this process's memory, not those delivered
 * before a restart), saves the cursor there and reads on, so the events of
 * the new history are delivered. A reorg deeper than every remembered block
 * rewinds to the oldest of them.
 *
 * Failures: a handler that keeps failing (an RPC outage under a handler that
 * reads the chain) does not stop the follower: it reports HANDLER_FAILED
 * (not fatal), backs off (up to retryMaxDelayMs) and delivers the same event
 * again until it passes. A handler that can never pass holds the follower on
 * its event, reported at each retry.
 */
export class EventFollower {
  private readonly opts: EventFollowerOptions
  private cursor: Cursor | undefined
  private running = false
  private loop: Promise<void> | undefined
  private abort = new AbortController()
  private wakeUp: (() => void) | undefined
  private wakePending = false
  /** serialises `poll` between the background loop and direct callers */
  private busy: Promise<unknown> = Promise.resolve()
  private readonly onBlock = (): void => { this.wake() }
  private delivered = 0
  private rewinds = 0
  /** blocks read from, oldest first (the cursor's `recent` plus what was read since) */
  private recent: Array<{ block: number, hash: string }> = []
  /** events delivered by this process, oldest first, to take back on a reorg */
  private taken: ChainEvent[] = []
  /** the head (number and hash) seen by the last poll */
  private lastHead: { number: number, hash: string } | undefined
  /**
   * The interface's events by topic, built once: ethers' parseLog finds the
   * event by hashing every fragment's signature again for each log, most of
   * the decoding cost when every node of a process follows the hub.
   */
  private readonly events = new Map<string, EventFragment>()
  /** open `eth_subscribe` subscriptions (ws endpoints) */
  private subscriptions: Subscription[] = []
  /** the new-heads subscription is live */
  private headsLive = false
  /** the logs subscription is live: a block without a pushed log holds nothing to deliver */
  private logsLive = false
  /** the newest head pushed and not yet read from */
  private pushedHead: { number: number, hash: string } | undefined
  /** blocks of pushed logs not read yet (ascending, bounded) */
  private pendingLogBlocks: number[] = []

  constructor (private readonly source: LogSource, private readonly init: EventFollowerInit) {
    this.opts = { ...defaultEventFollowerOptions, ...source.rpcOptions, ...stripUndefined(init) }
    const o = this.opts
    if (!(o.confirmations >= 0 && o.maxBlockRange >= 1 && o.pollIntervalMs >= 0 && o.handlerAttempts >= 1 && o.fromBlock >= 0)) {
      throw new ChainError('INVALID_ARGUMENT', 'event follower needs confirmations >= 0, maxBlockRange >= 1, handlerAttempts >= 1, fromBlock >= 0', { confirmations: o.confirmations, maxBlockRange: o.maxBlockRange })
    }
    init.iface?.forEachEvent((f) => { if (!f.anonymous) this.events.set(f.topicHash, f) })
  }

  /** Events handed to the handler since this follower was created. */
  get deliveredCount (): number { return this.delivered }

  /** true while the background loop runs (from start until stop or a fatal error) */
  get following (): boolean { return this.running }

  /** Rewinds done on a replaced block since this follower was created. */
  get rewindCount (): number { return this.rewinds }

  /** true while new heads and logs are pushed over live `eth_subscribe` subscriptions (else the follower polls) */
  get subscribed (): boolean { return this.headsLive && this.logsLive }

  /** The chain's head block as the last poll saw it (undefined before one): a recent head for free, while catching up too. */
  get headSeen (): number | undefined { return this.lastHead?.number }

  /** The position reached (a copy), once loaded. */
  get position (): Cursor | undefined { return this.cursor === undefined ? undefined : { ...this.cursor } }

  /** Loads the cursor and starts following in the background. */
  async start (): Promise<void> {
    if (this.running) return
    await this.loadCursor()
    this.running = true
    this.abort = new AbortController()
    if (this.init.trigger === 'block') await this.source.provider.on('block', this.onBlock)
    else this.openSubscriptions()
    this.loop = this.run()
  }

  /**
   * New heads and this contract's logs over `eth_subscribe`, when the
   * endpoint is a WebSocket. A pushed log is noted by its block; the
   * follower reads once a pushed head puts that block `confirmations` deep
   * (at once with 0), and the pushed head spares the read its head request.
   * A block without a pushed log is not read: an idle node asks nothing of
   * its endpoint but a re-read every `resyncIntervalMs`. A reorg wakes the
   * follower at once: a log pushed as removed, a log pushed in a block
   * already read past, or a head pushed no higher than one read. Delivery still goes
   * through the same reads as polling (eth_getLogs from the cursor, the
   * block-hash checks), so confirmations, order, rewinds and the cursor
   * behave the same; what was missed while a socket was down is read when
   * both subscriptions are live again. Without the logs subscription (an
   * endpoint that refuses it), every pushed head is read.
   */
  private openSubscriptions (): void {
    const subscriber = this.init.subscribe === false ? undefined : this.source.subscriber ?? subscriberOf(this.source.provider)
    if (subscriber === undefined) return
    const refused = (err: Error): void => {
      this.init.onError?.(new ChainError('SUBSCRIPTION_REFUSED', `${err.message}: polling every ${this.opts.pollIntervalMs} ms instead`, { url: this.source.rpcUrl }, { cause: err }), false)
    }
    this.subscriptions.push(subscriber.subscribe(['newHeads'], {
      onNotify: (result) => {
        const h = result as { number?: unknown, hash?: unknown } | null
        if (typeof h?.number === 'string' && QUANTITY.test(h.number) && typeof h.hash === 'string' && HASH.test(h.hash)) {
          this.pushedHead = { number: parseInt(h.number, 16), hash: h.hash }
          // a head no higher than one read before is a replaced chain: read (and rewind) now
          const replaced = this.lastHead !== undefined && this.pushedHead.number <= this.lastHead.number
          if (this.logsLive && !replaced && !this.confirmedLogPending(this.pushedHead.number)) return
        }
        this.wake()
      },
      onLive: () => { this.headsLive = true; this.wake() },
      onLost: (err) => {
        this.headsLive = false
        this.pushedHead = undefined
        this.init.onError?.(new ChainError('RPC_UNREACHABLE', `subscriptions lost (${err.message}): polling until they are back`, { url: this.source.rpcUrl, subscription: 'newHeads' }, { cause: err }), false)
      },
      onRefused: (err) => { this.headsLive = false; refused(err) }
    }))
    this.subscriptions.push(subscriber.subscribe(['logs', { address: this.init.address, ...(this.init.topics !== undefined ? { topics: this.init.topics } : {}) }], {
      onNotify: (result) => {
        const log = result as { blockNumber?: unknown, removed?: unknown } | null
        const block = typeof log?.blockNumber === 'string' && QUANTITY.test(log.blockNumber) ? parseInt(log.blockNumber, 16) : undefined
        // removed (a reorg took back a log of ours) or not understood: read now
        if (log?.removed === true || block === undefined) { this.wake(); return }
        // a new log in a block read past: a reorg put it there
        if (block < (this.cursor?.blockNumber ?? 0)) { this.wake(); return }
        if (!this.pendingLogBlocks.includes(block)) {
          this.pendingLogBlocks.push(block)
          this.pendingLogBlocks.sort((a, b) => a - b)
          if (this.pendingLogBlocks.length > PENDING_LOG_BLOCKS_MAX) this.pendingLogBlocks.pop()
        }
        const head = Math.max(this.pushedHead?.number ?? 0, this.lastHead?.number ?? 0)
        if (this.confirmedLogPending(Math.max(head, block))) this.wake()
      },
      onLive: () => { this.logsLive = true; this.wake() },
      onLost: () => { this.logsLive = false },
      onRefused: (err) => { this.logsLive = false; refused(err) }
    }))
  }

  /** A pushed log's block is `confirmations` deep under `head`. */
  private confirmedLogPending (head: number): boolean {
    const first = this.pendingLogBlocks[0]
    return first !== undefined && head - this.opts.confirmations >= first
  }

  private closeSubscriptions (): void {
    for (const s of this.subscriptions.splice(0)) s.close()
    this.headsLive = false
    this.logsLive = false
    this.pushedHead = undefined
    this.pendingLogBlocks = []
  }

  /** Stops after the event in hand (if any) is handled and its cursor saved. */
  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    if (this.init.trigger === 'block') await this.source.provider.off('block', this.onBlock)
    this.closeSubscriptions()
    this.abort.abort(new ChainError('INVALID_ARGUMENT', 'event follower stopped', {}))
    this.wake()
    await this.loop
    await this.busy.catch(() => undefined)
    this.loop = undefined
  }

  /** Reads now instead of at the next tick. */
  wake (): void {
    const w = this.wakeUp
    this.wakeUp = undefined
    // a wake during a poll must not be lost: the loop reads again at once
    if (w === undefined) this.wakePending = true
    w?.()
  }

  /**
   * Reads and delivers everything confirmed up to the current head, in
   * ranges of at most `maxBlockRange` blocks. Returns the number of events
   * delivered. Safe to call while the background loop runs.
   */
  async poll (): Promise<number> {
    const run = this.busy.then(async () => {
      try {
        return await this.pollOnce()
      } finally {
        // pushed logs of the blocks read are delivered (or their read failed and is retried from the cursor)
        const at = this.cursor?.blockNumber ?? 0
        this.pendingLogBlocks = this.pendingLogBlocks.filter((b) => b >= at)
      }
    })
    this.busy = run.catch(() => undefined)
    return await run
  }

  private async run (): Promise<void> {
    let failures = 0
    while (this.running) {
      // this poll reads up to the current head: earlier wake-ups are served by it
      this.wakePending = false
      try {
        await this.poll()
        failures = 0
      } catch (err) {
        const e = isChainError(err) ? err : new ChainError('RPC_UNREACHABLE', `event follower: ${(err as Error).message}`, { url: this.source.rpcUrl }, { cause: err })
        if (!this.running) break
        const fatal = FATAL.has(e.code)
        this.init.onError?.(e, fatal)
        if (fatal) {
          this.running = false
          // a stopped follower can still be driven by `poll` (e.g. after the operator fixed the cause)
          this.loop = undefined
          if (this.init.trigger === 'block') await this.source.provider.off('block', this.onBlock)
          this.closeSubscriptions()
          break
        }
        failures++
      }
      if (!this.running) break
      // a failing endpoint is polled less and less often, up to retryMaxDelayMs;
      // a block-triggered follower still re-reads every max(pollIntervalMs, 1 s) in case a block event was missed
      const base = this.init.trigger === 'block' ? Math.max(this.opts.pollIntervalMs, 1000) : this.opts.pollIntervalMs
      // with heads and logs pushed, a timed read only covers a notification lost on a live socket;
      // a failed read is retried on the backoff whatever pushes it
      const quiet = this.init.trigger !== 'block' && this.subscribed ? this.init.resyncIntervalMs ?? Math.max(10 * this.opts.pollIntervalMs, 10_000) : base
      const delay = failures > 0 ? Math.max(base, backoffDelay(failures, this.opts)) : quiet
      if (this.wakePending && failures === 0) {
        this.wakePending = false
        continue
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => { this.wakeUp = undefined; resolve() }, delay)
        this.wakeUp = () => { clearTimeout(timer); resolve() }
      })
    }
  }

  /** true once `stop` was called on a started follower (a follower never started is driven by `poll` alone) */
  private stopping (): boolean {
    return !this.running && this.loop !== undefined
  }

  private async loadCursor (): Promise<void> {
    if (this.cursor !== undefined) return
    let stored: Cursor | undefined
    try {
      stored = await this.init.cursorStore.load()
    } catch (err) {
      if (isChainError(err)) throw err
      throw new ChainError('CURSOR_STORE_FAILED', 'cannot load the event cursor', {}, { cause: err })
    }
    this.cursor = stored ?? { blockNumber: this.opts.fromBlock, logIndex: 0 }
    this.recent = [...(this.cursor.recent ?? [])]
  }

  private async saveCursor (position: Cursor): Promise<void> {
    if (position.checkBlock !== undefined && position.checkHash !== undefined) this.noteBlock(position.checkBlock, position.checkHash)
    const cursor: Cursor = { ...position, recent: this.recent.map((r) => ({ ...r })) }
    try {
      await this.init.cursorStore.save(cursor)
    } catch (err) {
      if (isChainError(err)) throw err
      throw new ChainError('CURSOR_STORE_FAILED', 'cannot save the event cursor', {}, { cause: err })
    }
    this.cursor = cursor
  }

  /** Remembers a block read from (kept ascending, bounded). */
  private noteBlock (block: number, hash: string): void {
    const last = this.recent[this.recent.length - 1]
    if (last !== undefined && last.block >= block) {
      if (last.block === block) last.hash = hash
      return
    }
    this.recent.push({ block, hash })
    if (this.recent.length > CURSOR_RECENT_MAX) this.recent.splice(0, this.recent.length - CURSOR_RECENT_MAX)
  }

  /**
   * The block `cursor.checkBlock` was replaced: finds the newest remembered
   * block still on the chain, takes back the events delivered after it and
   * moves the cursor there.
   */
  private async rewind (cursor: Cursor, now: string | undefined, head: number): Promise<void> {
    const replaced = cursor.checkBlock ?? cursor.blockNumber
    let ancestor: { block: number, hash: string } | undefined
    for (const r of [...this.recent].reverse()) {
      if (r.block >= replaced || r.block > head) continue
      if (await this.blockHash(r.block) === r.hash) { ancestor = r; break }
    }
    const resumeAt = ancestor !== undefined ? ancestor.block + 1 : Math.min(replaced, ...this.recent.map((r) => r.block))
    const removed = this.taken.filter((e) => e.blockNumber >= resumeAt).reverse()
    for (const event of removed) await this.withAttempts('onRemoved', event, async () => { await this.init.onRemoved?.(event) })
    this.taken = this.taken.filter((e) => e.blockNumber < resumeAt)
    this.recent = this.recent.filter((r) => r.block < resumeAt)
    await this.saveCursor(ancestor !== undefined
      ? { blockNumber: resumeAt, logIndex: 0, checkBlock: ancestor.block, checkHash: ancestor.hash }
      : { blockNumber: resumeAt, logIndex: 0 })
    this.rewinds++
    this.init.onError?.(new ChainError('REORG_DETECTED', `block ${replaced} was replaced (${String(cursor.checkHash)} -> ${String(now)}): rewound to block ${resumeAt}, ${removed.length} events taken back`, { block: replaced, was: cursor.checkHash, now, rewoundTo: resumeAt, removed: removed.length }), false)
  }

  private async rpc<T> (what: string, fn: () => Promise<T>): Promise<T> {
    return await withRpcRetry(this.source.rpcUrl, what, this.opts, fn, this.running ? this.abort.signal : undefined)
  }

  /**
   * The raw answer of eth_getLogs, checked field by field: ethers' getLogs
   * made a Log object of each (its address checksummed by a keccak, its
   * properties frozen one by one), and every node follows every log of the
   * hub, one per task of every bag in the swarm.
   */
  private async logs (from: number, to: number): Promise<RawLog[]> {
    const filter = { address: this.init.address, topics: this.init.topics ?? [], fromBlock: '0x' + from.toString(16), toBlock: '0x' + to.toString(16) }
    const answer = await this.source.provider.send('eth_getLogs', [filter]) as unknown
    if (!Array.isArray(answer)) throw new ChainError('RPC_UNREACHABLE', 'eth_getLogs did not answer a list', { url: this.source.rpcUrl })
    return answer.map(rawLog)
  }

  private async blockHash (n: number): Promise<string | undefined> {
    return (await this.block(n))?.hash
  }

  /** Block `n`'s hash and its parent's (undefined: no such block). */
  private async block (n: number): Promise<{ hash: string, parentHash: string } | undefined> {
    // the raw answer: only its hashes are needed, and ethers' formatting of a whole
    // block was a tenth of what five followers spent on each automined block
    const block = await this.rpc('eth_getBlockByNumber', async () => await this.source.provider.send('eth_getBlockByNumber', ['0x' + n.toString(16), false]) as { hash?: unknown, parentHash?: unknown } | null)
    return typeof block?.hash === 'string' && typeof block.parentHash === 'string' ? { hash: block.hash, parentHash: block.parentHash } : undefined
  }

  /** The head's number and hash, in one request (a head replaced at the same height is seen too). */
  private async head (): Promise<{ number: number, hash: string }> {
    const block = await this.rpc('eth_getBlockByNumber', async () => await this.source.provider.send('eth_getBlockByNumber', ['latest', false]) as { number?: unknown, hash?: unknown } | null)
    if (typeof block?.number !== 'string' || !QUANTITY.test(block.number) || typeof block.hash !== 'string' || !HASH.test(block.hash)) {
      throw new ChainError('RPC_UNREACHABLE', 'eth_getBlockByNumber(latest) did not answer a block', { url: this.source.rpcUrl })
    }
    return { number: parseInt(block.number, 16), hash: block.hash }
  }

  private async pollOnce (): Promise<number> {
    await this.loadCursor()
    let delivered = 0
    // a pushed head saves the request; read once, so a timed re-read asks the endpoint again
    const pushed = this.headsLive ? this.pushedHead : undefined
    this.pushedHead = undefined
    const top = pushed ?? await this.head()
    const head = top.number
    const headMoved = this.lastHead === undefined || this.lastHead.number !== top.number || this.lastHead.hash !== top.hash
    const safe = head - this.opts.confirmations
    let rewinds = 0
    const rewindOnce = async (cursor: Cursor, now: string | undefined): Promise<void> => {
      if (++rewinds > MAX_REWINDS_PER_POLL) {
        throw new ChainError('REORG_DETECTED', `the chain kept reorganising under the follower (${MAX_REWINDS_PER_POLL} rewinds in one poll)`, { block: cursor.checkBlock })
      }
      await this.rewind(cursor, now, head)
    }
    // nothing new to read, but the block last read from may have been replaced (or dropped: a shorter chain)
    const idle = this.cursor
    if (idle?.checkBlock !== undefined && idle.checkHash !== undefined && idle.blockNumber > safe && headMoved) {
      const now = idle.checkBlock > head ? undefined : idle.checkBlock === head ? top.hash : await this.blockHash(idle.checkBlock)
      if (now !== idle.checkHash) await rewindOnce(idle, now)
    }
    // remembered once checked: a poll that failed before looks again
    this.lastHead = top
    // each round reads at least one block, so the loop ends within (safe - from) / maxBlockRange + 1 rounds (and rewinds)
    while (this.cursor !== undefined && this.cursor.blockNumber <= safe) {
      const cursor: Cursor = this.cursor
      const from = cursor.blockNumber
      const to = Math.min(from + this.opts.maxBlockRange - 1, safe)
      // the reads go together (one HTTP request: ethers batches calls of one tick): the
      // check of the last block read comes before any of these logs is delivered. Following a
      // chain block by block, the last block read is the parent of the one read now: its
      // parentHash is the check, one call fewer per block
      const checkIsParent = cursor.checkBlock === to - 1 && from === to
      const [checked, logs, toBlock] = await Promise.all([
        cursor.checkBlock !== undefined && cursor.checkHash !== undefined && !checkIsParent ? this.blockHash(cursor.checkBlock) : Promise.resolve(undefined),
        this.rpc('eth_getLogs', async () => await this.logs(from, to)),
        this.block(to)
      ])
      const now = checkIsParent ? toBlock?.parentHash : checked
      const toHash = toBlock?.hash
      if (cursor.checkBlock !== undefined && cursor.checkHash !== undefined && now !== cursor.checkHash) {
        await rewindOnce(cursor, now)
        continue
      }
      const ordered = [...logs].sort((a, b) => a.blockNumber - b.blockNumber || a.index - b.index)
      let unsaved = 0
      let last: Cursor | undefined
      for (const log of ordered) {
        if (log.removed) continue
        if (log.blockNumber === cursor.blockNumber && log.index < cursor.logIndex) continue
        try {
          await this.deliver(log)
        } catch (err) {
          // the events handled before this one stay handled
          if (last !== undefined) await this.saveCursor(last)
          throw err
        }
        delivered++
        const past: Cursor = { blockNumber: log.blockNumber, logIndex: log.index + 1, checkBlock: log.blockNumber, checkHash: log.blockHash }
        // stopping: the event in hand is done and saved; the rest waits for the next start
        if (this.stopping()) {
          await this.saveCursor(past)
          return delivered
        }
        // saved once per range read (below), and every SAVE_EVERY_EVENTS events of a long one:
        // a level write per event was most of what every node spent on the hub's events of a bag
        last = past
        if (++unsaved >= SAVE_EVERY_EVENTS) {
          await this.saveCursor(past)
          unsaved = 0
          last = undefined
        }
      }
      await this.saveCursor(toHash === undefined ? { blockNumber: to + 1, logIndex: 0 } : { blockNumber: to + 1, logIndex: 0, checkBlock: to, checkHash: toHash })
      if (this.stopping()) break
    }
    return delivered
  }

  private async deliver (log: RawLog): Promise<void> {
    const event = this.decode(log)
    await this.withAttempts('handler', event, async () => { await this.init.handler(event) })
    this.delivered++
    this.noteBlock(log.blockNumber, log.blockHash)
    this.taken.push(event)
    if (this.taken.length > TAKEN_BACK_MAX) this.taken.splice(0, this.taken.length - TAKEN_BACK_MAX)
  }

  /** Runs a handler on an event, `handlerAttempts` times at most with backoff; then HANDLER_FAILED. */
  private async withAttempts (what: string, event: ChainEvent, fn: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await fn()
        return
      } catch (err) {
        if (attempt >= this.opts.handlerAttempts) {
          throw new ChainError('HANDLER_FAILED', `event ${what} failed ${attempt} times on ${event.name ?? 'log'} at block ${event.blockNumber} index ${event.logIndex}: ${(err as Error).message}`, { blockNumber: event.blockNumber, logIndex: event.logIndex, transactionHash: event.transactionHash }, { cause: err })
        }
        await sleep(backoffDelay(attempt, this.opts))
      }
    }
  }

  private decode (log: RawLog): ChainEvent {
    const base: ChainEvent = {
      address: log.address,
      blockNumber: log.blockNumber,
      blockHash: log.blockHash,
      logIndex: log.index,
      transactionHash: log.transactionHash,
      topics: log.topics,
      data: log.data
    }
    const fragment = log.topics.length > 0 ? this.events.get(log.topics[0].toLowerCase()) : undefined
    const iface = this.init.iface
    if (iface === undefined || fragment === undefined) return base
    // decoded on first read: most events reach handlers that look at their name (or an
    // indexed topic) and move on, and every node decodes every log of the hub it follows
    let args: Result | undefined
    return Object.defineProperty({ ...base, name: fragment.name }, 'args', {
      enumerable: true,
      get: () => { args ??= iface.decodeEventLog(fragment, log.data, log.topics); return args }
    })
  }
}

/** A log as eth_getLogs gives it, its numbers parsed. */
interface RawLog {
  address: string
  blockNumber: number
  blockHash: string
  index: number
  transactionHash: string
  topics: string[]
  data: string
  removed: boolean
}

const HEX_DATA = /^0x([0-9a-fA-F]{2})*$/
const HASH = /^0x[0-9a-fA-F]{64}$/
const QUANTITY = /^0x[0-9a-fA-F]{1,15}$/

/** One entry of an eth_getLogs answer; an entry that is not a log fails the poll (the follower retries it). */
function rawLog (v: unknown): RawLog {
  const o = v as Record<string, unknown>
  const bad = (field: string): never => { throw new ChainError('RPC_UNREACHABLE', `eth_getLogs answered a log with a bad ${field}`, { field }) }
  if (typeof o !== 'object' || o === null) bad('entry')
  const address = checksumAddress(o.address) ?? bad('address')
  const quantity = (field: string): number => (typeof o[field] === 'string' && QUANTITY.test(o[field] as string) ? parseInt(o[field] as string, 16) : bad(field))
  const hash = (field: string): string => (typeof o[field] === 'string' && HASH.test(o[field] as string) ? o[field] as string : bad(field))
  const topics = Array.isArray(o.topics) && o.topics.every((t) => typeof t === 'string' && HASH.test(t)) ? o.topics as string[] : bad('topics')
  const data = typeof o.data === 'string' && HEX_DATA.test(o.data) ? o.data : bad('data')
  return {
    address,
    blockNumber: quantity('blockNumber'),
    blockHash: hash('blockHash'),
    index: quantity('logIndex'),
    transactionHash: hash('transactionHash'),
    topics,
    data,
    removed: o.removed === true
  }
}

function stripUndefined<T extends object> (o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
