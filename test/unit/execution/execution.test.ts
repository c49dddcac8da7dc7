import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { hubDomain } from '../../../protocols/eip712.js'
import { FAILURE_REPORT_PROTOCOL } from '../../../protocols/failure-report.js'
import { KEY_RELEASE_PROTOCOL } from '../../../protocols/key-release.js'
import type { ChainEvent } from '../../../node/chain/index.js'
import { DbController } from '../../../node/db/index.js'
import { Execution } from '../../../node/execution/execution.js'
import type { ExecutionInit } from '../../../node/execution/execution.js'

/**
 * Execution builds its parts from the node's (a db, a chain, a network);
 * these tests swap the parts it starts for fakes that record their start
 * and stop, so what is checked is the order Execution gives them.
 */
interface Harness {
  execution: Execution
  calls: string[]
  /** parts whose start or stop throws, by name */
  failStart: Set<string>
  failStop: Set<string>
  warnings: string[]
  network: { started: boolean }
  /** what the node's HubEvents hands its subscriber */
  emit: (event: ChainEvent) => Promise<void>
  emitRemoved: (event: ChainEvent) => Promise<void>
  events: Array<[string, ChainEvent]>
  db: DbController
  dir: string
}

const harnesses: Harness[] = []

async function harness (o: { role?: 'provider' | 'requester' } = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'execution-'))
  const db = new DbController({ path: join(dir, 'db') })
  await db.open()
  const wallet = Wallet.createRandom()
  const calls: string[] = []
  const failStart = new Set<string>()
  const failStop = new Set<string>()
  const warnings: string[] = []
  const events: Array<[string, ChainEvent]> = []
  const listeners: { events?: (e: ChainEvent) => void | Promise<void>, removed?: (e: ChainEvent) => void | Promise<void> } = {}
  const step = async (name: string, what: 'start' | 'stop'): Promise<void> => {
    calls.push(`${name}.${what}`)
    if ((what === 'start' ? failStart : failStop).has(name)) throw new Error(`${name} ${what} failed`)
  }
  const network = {
    helia: { blockstore: {} },
    started: true,
    handle: async (protocol: string) => { await step(`handle ${protocol}`, 'start') },
    unhandle: async (protocol: string) => { await step(`handle ${protocol}`, 'stop') }
  }
  const init = {
    config: { cpus: 2, executors: ['wasi'], role: o.role ?? 'provider', swarmId: 'test', advertIntervalMs: 60_000 },
    dataDir: dir,
    network,
    db,
    chain: { hub: {}, address: wallet.address, sender: { send: async () => ({ hash: '0x' }) } },
    market: {
      domain: hubDomain(31337, wallet.address),
      rejects: { record: () => {} }
    },
    hubEvents: {
      on: (name: string, fn: (e: ChainEvent) => void | Promise<void>, options: { onRemoved?: (e: ChainEvent) => void | Promise<void> } = {}) => {
        calls.push(`events.start(${name})`)
        listeners.events = fn
        listeners.removed = options.onRemoved
        return () => { calls.push('events.stop'); listeners.events = undefined; listeners.removed = undefined }
      }
    },
    adverts: { findByAddress: async () => undefined },
    wallet,
    peerId: 'peerMe',
    gpus: [],
    fromBlock: 0,
    logs: { logger: (component: string) => ({ info: () => {}, warn: (m: string) => { warnings.push(`${component}: ${m}`) } }) }
  } as unknown as ExecutionInit
  const execution = new Execution(init)
  const part = (name: string, more: Record<string, unknown> = {}): Record<string, unknown> => ({
    start: async () => { await step(name, 'start') },
    stop: async () => { await step(name, 'stop') },
    ...more
  })
  const fakes: Record<string, unknown> = {
    channel: part('channel'),
    scheduler: part('scheduler', {
      onChainEvent: async (e: ChainEvent) => { events.push(['scheduler', e]) },
      onChainEventRemoved: async (e: ChainEvent) => { events.push(['scheduler removed', e]) }
    }),
    worker: part('worker', { onChainEventRemoved: async (e: ChainEvent) => { events.push(['worker removed', e]) } }),
    // the announcer's and retention's start is synchronous
    announcer: { start: () => { calls.push('announcer.start'); if (failStart.has('announcer')) throw new Error('announcer start failed') }, stop: async () => { await step('announcer', 'stop') } },
    retention: { start: () => { calls.push('retention.start') }, stop: async () => { await step('retention', 'stop') } },
    executor: { warm: (n: number) => { calls.push(`executor.start(${n})`) }, close: async () => { await step('executor', 'stop') } }
  }
  // the parts are built in the constructor: the fakes take their place before start
  for (const [field, fake] of Object.entries(fakes)) (execution as unknown as Record<string, unknown>)[field] = fake
  const h: Harness = {
    execution,
    calls,
    failStart,
    failStop,
    warnings,
    network,
    events,
    db,
    dir,
    emit: async (e) => { await listeners.events?.(e) },
    emitRemoved: async (e) => { await listeners.removed?.(e) }
  }
  harnesses.push(h)
  return h
}

const KEYS = `handle ${KEY_RELEASE_PROTOCOL}`
const REPORTS = `handle ${FAILURE_REPORT_PROTOCOL}`
const START_ORDER = [`${KEYS}.start`, 'executor.start(2)', `${REPORTS}.start`, 'channel.start', 'scheduler.start', 'worker.start', 'announcer.start', 'retention.start', 'events.start(*)']
const STOP_ORDER = ['events.stop', 'retention.stop', 'announcer.stop', 'worker.stop', 'scheduler.stop', 'channel.stop', `${REPORTS}.stop`, 'executor.stop', `${KEYS}.stop`]

const event = (name: string): ChainEvent => ({ name, args: {}, blockNumber: 1, logIndex: 0, transactionHash: '0x' }) as unknown as ChainEvent

describe('execution: the deal duties\' lifecycle', () => {
  afterEach(async () => {
    for (const h of harnesses.splice(0)) {
      await h.db.close()
      await rm(h.dir, { recursive: true, force: true })
    }
  })

  it('starts its parts in dependency order: protocols and executor, exec channel, scheduler, worker, then the event feed', async () => {
    const h = await harness()
    await h.execution.start()
    assert.deepEqual(h.calls, START_ORDER)
  })

  it('stops them in the reverse order', async () => {
    const h = await harness()
    await h.execution.start()
    h.calls.length = 0
    await h.execution.stop()
    assert.deepEqual(h.calls, STOP_ORDER)
    assert.deepEqual(h.warnings, [])
  })

  it('does not warm the executor of a node that only requests', async () => {
    const h = await harness({ role: 'requester' })
    await h.execution.start()
    assert.equal(h.calls.some((c) => c.startsWith('executor.start')), false)
  })

  it('on a failing start, stops what started (the failing part included), newest first, and throws its error', async () => {
    const h = await harness()
    h.failStart.add('worker')
    await assert.rejects(h.execution.start(), /worker start failed/)
    const at = h.calls.indexOf('worker.start')
    assert.deepEqual(h.calls.slice(0, at + 1), START_ORDER.slice(0, START_ORDER.indexOf('worker.start') + 1))
    assert.deepEqual(h.calls.slice(at + 1), ['worker.stop', 'scheduler.stop', 'channel.stop', `${REPORTS}.stop`, 'executor.stop', `${KEYS}.stop`])
    assert.equal(h.calls.includes('announcer.start'), false, 'nothing after the failure starts')
    h.calls.length = 0
    await h.execution.stop()
    assert.deepEqual(h.calls, [], 'what was stopped is not stopped twice')
  })

  it('on a failing first start, stops only that part', async () => {
    const h = await harness()
    h.failStart.add(KEYS)
    await assert.rejects(h.execution.start(), /key-release.* start failed/)
    assert.deepEqual(h.calls, [`${KEYS}.start`, `${KEYS}.stop`])
  })

  it('a failing stop neither throws nor stops the rest; it is logged with the part\'s name', async () => {
    const h = await harness()
    await h.execution.start()
    h.calls.length = 0
    h.failStop.add('scheduler')
    h.failStop.add('retention')
    await h.execution.stop()
    assert.deepEqual(h.calls, STOP_ORDER)
    assert.deepEqual(h.warnings.sort(), ['node: block retention stop failed', 'node: scheduler stop failed'])
  })

  it('does not unregister protocols from a network that already stopped', async () => {
    const h = await harness()
    await h.execution.start()
    h.calls.length = 0
    h.network.started = false
    await h.execution.stop()
    assert.deepEqual(h.calls, STOP_ORDER.filter((c) => !c.startsWith('handle ')))
  })

  it('feeds the hub\'s events to the scheduler, and a reorg\'s removed events to the scheduler then the worker, until it stops', async () => {
    const h = await harness()
    await h.execution.start()
    await h.emit(event('DealCreated'))
    await h.emitRemoved(event('TaskFinalized'))
    assert.deepEqual(h.events.map(([to, e]) => `${to}: ${e.name}`), ['scheduler: DealCreated', 'scheduler removed: TaskFinalized', 'worker removed: TaskFinalized'])
    await h.execution.stop()
    await h.emit(event('DealCreated'))
    assert.equal(h.events.length, 3)
  })
})
