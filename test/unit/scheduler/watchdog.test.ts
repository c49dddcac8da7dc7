import assert from 'node:assert/strict'
import { TaskStatus } from '../../../contracts-abi/index.js'
import { Watchdog } from '../../../node/scheduler/watchdog.js'
import type { WatchdogInit } from '../../../node/scheduler/watchdog.js'
import type { DealState, TaskState } from '../../../node/scheduler/hub-view.js'
import type { KnownDeal } from '../../../node/scheduler/records.js'
import { ME, OTHER, dealState, fakeClock, knownDeal, recordingLog, taskState, tid } from './fakes.js'

interface Harness {
  watchdog: Watchdog
  clock: ReturnType<typeof fakeClock>
  calls: string[]
  learned: string[]
  closed: string[]
  mined: number
  setChainTime: (t: number) => void
  setDeal: (d: Partial<DealState>) => void
  lines: string[]
}

interface Setup {
  deals?: KnownDeal[]
  deal?: Partial<DealState>
  tasks?: Partial<TaskState>
  /** taskStatus per idx */
  statuses?: TaskStatus[]
  chainTime?: number
  offsetMs?: number
  dev?: boolean
  reelectFails?: boolean
}

function make (s: Setup = {}): Harness {
  const { log, lines } = recordingLog()
  let chainTime = s.chainTime ?? 1_500
  let deal = dealState({ scheduler: OTHER, ...s.deal })
  const deals = s.deals ?? [knownDeal({ scheduler: OTHER })]
  // the wall clock matches the chain's time unless a test moves it
  const clock = fakeClock(chainTime * 1000)
  const h: Harness = {
    watchdog: undefined as unknown as Watchdog, clock, calls: [], learned: [], closed: [], mined: 0, lines,
    setChainTime: (t) => { chainTime = t },
    setDeal: (d) => { deal = { ...deal, ...d } }
  }
  const send = (what: string) => async () => {
    h.calls.push(what)
    if (s.reelectFails === true) throw new Error('reverted')
    return { hash: '0x' }
  }
  const init: WatchdogInit = {
    book: {
      openDeals: () => deals.filter((k) => !h.closed.includes(k.deal.dealid)),
      releasingDeals: () => [],
      learnScheduler: async (_k, scheduler) => { h.learned.push(scheduler) },
      taskIdOf: (_dealid, idx) => tid(idx)
    },
    finalizer: {
      closeDeal: async (k) => { h.closed.push(k.deal.dealid) },
      doneMined: async () => true,
      releaseDue: async () => {}
    },
    hub: {
      dealOf: async () => { h.calls.push('dealOf'); return deal },
      taskOf: async () => taskState(s.tasks),
      taskStatus: async (_dealid, idx) => BigInt(s.statuses?.[idx] ?? TaskStatus.ACTIVE),
      reelect: async () => await send('reelect')(),
      reelectForTask: async (taskid) => await send(`reelectForTask:${taskid}`)(),
      claim: async (_dealid, idx) => await send(`claim:${idx}`)()
    },
    chainTime: { now: async () => chainTime, forget: () => { h.calls.push('forget') } },
    devChain: { isDev: async () => s.dev ?? false, mine: async () => { h.mined++; chainTime = Math.floor(clock.now() / 1000) } },
    clock: clock.now,
    me: ME,
    options: { reelectStaggerMs: 15_000 },
    offsetMs: s.offsetMs ?? 0,
    running: () => true,
    log
  }
  h.watchdog = new Watchdog(init)
  return h
}

const sends = (h: Harness): string[] => h.calls.filter((c) => c !== 'dealOf' && c !== 'forget')

describe('scheduler watchdog: reelect, reelectForTask, claim', () => {
  it('closes a deal the hub says is done, with no other call', async () => {
    const h = make({ deal: { done: 1n } })
    await h.watchdog.run()
    assert.deepEqual(h.closed, [knownDeal().deal.dealid])
    assert.deepEqual(sends(h), [])
  })

  it('reelects when tasks stay uninitialized a time reference past the scheduler\'s last work, not before', async () => {
    // schedulerActive 1000, time reference 100
    const early = make({ chainTime: 1_099 })
    await early.watchdog.run()
    assert.deepEqual(sends(early), [])
    const late = make({ chainTime: 1_100 })
    await late.watchdog.run()
    assert.deepEqual(sends(late), ['reelect'])
    assert.deepEqual(late.learned, [OTHER], 'the hub\'s scheduler is recorded first')
  })

  it('never reelects a deal this node schedules', async () => {
    const h = make({ deal: { scheduler: ME }, chainTime: 2_000 })
    await h.watchdog.run()
    assert.deepEqual(sends(h), [])
  })

  it('waits for its own offset in the stagger window before reelecting', async () => {
    const h = make({ chainTime: 1_200, offsetMs: 5_000 })
    await h.watchdog.run()
    assert.deepEqual(sends(h), [], 'first sight of the lateness')
    h.clock.advance(4_999)
    await h.watchdog.run()
    assert.deepEqual(sends(h), [])
    h.clock.advance(1)
    await h.watchdog.run()
    assert.deepEqual(sends(h), ['reelect'])
  })

  it('claims every unfinished task after the final deadline; a failed claim is logged, not thrown', async () => {
    const h = make({ deals: [knownDeal({ scheduler: OTHER, volume: 3 })], chainTime: 5_000, statuses: [TaskStatus.COMPLETED, TaskStatus.ACTIVE, TaskStatus.UNSET] })
    await h.watchdog.run()
    assert.deepEqual(sends(h), ['claim:1', 'claim:2'])
    const failing = make({ chainTime: 5_000, reelectFails: true })
    await failing.watchdog.run()
    assert.ok(failing.lines.includes('claim not done'))
  })

  it('trust > 1: reelectForTask for a revealed task left unfinalized a time reference past its reveal deadline', async () => {
    const deals = [knownDeal({ scheduler: OTHER, trust: 3 })]
    const tasks = { status: BigInt(TaskStatus.REVEALING), reveals: 1n, revealDeadline: 1_300n }
    const early = make({ deals, deal: { initialized: 1n }, tasks, chainTime: 1_399 })
    await early.watchdog.run()
    assert.deepEqual(sends(early), [])
    const late = make({ deals, deal: { initialized: 1n }, tasks, chainTime: 1_400 })
    await late.watchdog.run()
    assert.deepEqual(sends(late), [`reelectForTask:${tid(0)}`])
    const unrevealed = make({ deals, deal: { initialized: 1n }, tasks: { ...tasks, reveals: 0n }, chainTime: 1_400 })
    await unrevealed.watchdog.run()
    assert.deepEqual(sends(unrevealed), [], 'nothing to finalize without a reveal')
  })

  it('does not read a deal again before the earliest time it could be late', async () => {
    const h = make({ deal: { initialized: 1n }, chainTime: 1_100 })
    await h.watchdog.run()
    assert.equal(h.calls.filter((c) => c === 'dealOf').length, 1)
    h.setChainTime(1_399)
    await h.watchdog.run()
    assert.equal(h.calls.filter((c) => c === 'dealOf').length, 1, 'every task initialized: next look at now + 3 time references')
    h.setChainTime(1_400)
    await h.watchdog.run()
    assert.equal(h.calls.filter((c) => c === 'dealOf').length, 2)
    h.watchdog.forget(knownDeal().deal.dealid)
    await h.watchdog.run()
    assert.equal(h.calls.filter((c) => c === 'dealOf').length, 3, 'forget: read on the next pass')
  })

  it('on a dev chain that stopped mining, mines one block once the wall clock passed a due deadline', async () => {
    const h = make({ deal: { initialized: 1n }, chainTime: 1_100, dev: true })
    await h.watchdog.run()
    assert.equal(h.mined, 0, 'chain time is wall time')
    // the chain stays at 1100 while the wall clock passes the next check (1400)
    h.clock.advance(400_000)
    await h.watchdog.run()
    assert.equal(h.mined, 1)
    assert.ok(h.calls.includes('forget'), 'the chain time is read again after the block')
    const real = make({ deal: { initialized: 1n }, chainTime: 1_100, dev: false })
    await real.watchdog.run()
    real.clock.advance(400_000)
    await real.watchdog.run()
    assert.equal(real.mined, 0, 'never on a real chain')
  })
})
