import type { EventFragment, Interface, JsonRpcProvider, Result } from 'ethers'
import { checksumAddress } from '../../protocols/address.js'
import { ChainError, isChainError } from './errors.js'
import { backoffDelay, sleep, withRpcRetry } from './rpc.js'
import { defaultEventFollowerOptions, type EventFollowerOptions, type RpcOptions } from './options.js'
import type { Cursor, CursorStore } from './cursor-store.js'

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
   * 'poll' reads every `pollIntervalMs`; 'block' reads when the provider
   * reports a new block (its own polling, every `pollingIntervalMs`).
   */
  trigger?: 'poll' | 'block'
  /** told of every error; after a fatal one (REORG_DETECTED, HANDLER_FAILED, CURSOR_STORE_FAILED) the follower has stopped */
  onError?: (err: ChainError, fatal: boolean) => void
}

/** A long range of logs saves the cursor this often (a crash delivers at most this many events again). */
const SAVE_EVERY_EVENTS = 256

const FATAL: ReadonlySet<string> = new Set(['REORG_DETECTED', 'HANDLER_FAILED', 'CURSOR_STORE_FAILED', 'INVALID_ARGUMENT'])

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
 * comparing the hash of the last block read from: the follower stops with
 * REORG_DETECTED rather than deliver a forked history. On anvil's automine
 * there are no competing blocks, so 0 is safe unless a test calls
 * `evm_revert` or `anvil_reorg` after events were delivered.
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
  /**
   * The interface's events by topic, built once: ethers' parseLog finds the
   * event by hashing every fragment's signature again for each log, most of
   * the decoding cost when every node of a process follows the hub.
   */
  private readonly events = new Map<string, EventFragment>()

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

  /** The position reached (a copy), once loaded. */
  get position (): Cursor | undefined { return this.cursor === undefined ? undefined : { ...this.cursor } }

  /** Loads the cursor and starts following in the background. */
  async start (): Promise<void> {
    if (this.running) return
    await this.loadCursor()
    this.running = true
    this.abort = new AbortController()
    if (this.init.trigger === 'block') await this.source.provider.on('block', this.onBlock)
    this.loop = this.run()
  }

  /** Stops after the event in hand (if any) is handled and its cursor saved. */
  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    if (this.init.trigger === 'block') await this.source.provider.off('block', this.onBlock)
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
    const run = this.busy.then(async () => await this.pollOnce())
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
          break
        }
        failures++
      }
      if (!this.running) break
      // a failing endpoint is polled less and less often, up to retryMaxDelayMs;
      // a block-triggered follower still re-reads every max(pollIntervalMs, 1 s) in case a block event was missed
      const base = this.init.trigger === 'block' ? Math.max(this.opts.pollIntervalMs, 1000) : this.opts.pollIntervalMs
      const delay = failures > 0 ? Math.max(base, backoffDelay(failures, this.opts)) : base
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
  }

  private async saveCursor (cursor: Cursor): Promise<void> {
    try {
      await this.init.cursorStore.save(cursor)
    } catch (err) {
      if (isChainError(err)) throw err
      throw new ChainError('CURSOR_STORE_FAILED', 'cannot save the event cursor', {}, { cause: err })
    }
    this.cursor = cursor
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
    // the raw answer: only its hash is needed, and ethers' formatting of a whole
    // block was a tenth of what five followers spent on each automined block
    const block = await this.rpc('eth_getBlockByNumber', async () => await this.source.provider.send('eth_getBlockByNumber', ['0x' + n.toString(16), false]) as { hash?: unknown } | null)
    return typeof block?.hash === 'string' ? block.hash : undefined
  }

  private async pollOnce (): Promise<number> {
    await this.loadCursor()
    let delivered = 0
    const provider = this.source.provider
    const head = await this.rpc('eth_blockNumber', async () => await provider.getBlockNumber())
    const safe = head - this.opts.confirmations
    // each round reads at least one block, so the loop ends within (safe - from) / maxBlockRange + 1 rounds
    while (this.cursor !== undefined && this.cursor.blockNumber <= safe) {
      const cursor: Cursor = this.cursor
      const from = cursor.blockNumber
      const to = Math.min(from + this.opts.maxBlockRange - 1, safe)
      // the three reads go together (one HTTP request: ethers batches calls of one tick): the
      // check of the last block read comes before any of these logs is delivered
      const [now, logs, toHash] = await Promise.all([
        cursor.checkBlock !== undefined && cursor.checkHash !== undefined ? this.blockHash(cursor.checkBlock) : Promise.resolve(undefined),
        this.rpc('eth_getLogs', async () => await this.logs(from, to)),
        this.blockHash(to)
      ])
      if (cursor.checkBlock !== undefined && cursor.checkHash !== undefined && now !== cursor.checkHash) {
        throw new ChainError('REORG_DETECTED', `block ${cursor.checkBlock} changed since its logs were read (${cursor.checkHash} -> ${String(now)}): more confirmations are needed`, { block: cursor.checkBlock, was: cursor.checkHash, now })
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
    for (let attempt = 1; ; attempt++) {
      try {
        await this.init.handler(event)
        this.delivered++
        return
      } catch (err) {
        if (attempt >= this.opts.handlerAttempts) {
          throw new ChainError('HANDLER_FAILED', `event handler failed ${attempt} times on ${event.name ?? 'log'} at block ${log.blockNumber} index ${log.index}: ${(err as Error).message}`, { blockNumber: log.blockNumber, logIndex: log.index, transactionHash: log.transactionHash }, { cause: err })
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
