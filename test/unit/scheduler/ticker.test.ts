import assert from 'node:assert/strict'
import { Ticker } from '../../../node/scheduler/ticker.js'
import type { TickerInit } from '../../../node/scheduler/ticker.js'
import type { DealState } from '../../../node/scheduler/hub-view.js'
import type { KnownDeal } from '../../../node/scheduler/records.js'
import { ME, OTHER, dealState, knownDeal, recordingLog } from './fakes.js'

interface Harness {
  ticker: Ticker
  reads: string[]
  scheduled: string[]
  closed: string[]
  learned: string[]
  flushes: number
  ticks: number
  lines: string[]
  allEnded: Set<string>
  /** resolves the tick in progress (each tick waits on the chain time until released) */
  release: () => void
}

const A = knownDeal({ dealid: '0x' + 'aa'.repeat(32) })
const B = knownDeal({ dealid: '0x' + 'bb'.repeat(32), scheduler: OTHER })

function make (s: { deals?: KnownDeal[], deal?: Partial<DealState>, hold?: boolean, scheduleFails?: boolean, chainNow?: number } = {}): Harness {
  const { log, lines } = recordingLog()
  const deals = s.deals ?? [A, B]
  let release: () => void = () => {}
  const h: Harness = { ticker: undefined as unknown as Ticker, reads: [], scheduled: [], closed: [], learned: [], flushes: 0, ticks: 0, lines, allEnded: new Set(), release: () => { release() } }
  const init: TickerInit = {
    book: {
      openDeals: () => deals.filter((k) => !h.closed.includes(k.deal.dealid)),
      isMine: (k) => (k.scheduler ?? k.deal.scheduler) === ME,
      allEnded: (id) => h.allEnded.has(id),
      takeAllEnded: (id) => h.allEnded.delete(id),
      learnScheduler: async (_k, scheduler) => { h.learned.push(scheduler) }
    },
    assigner: {
      loads: async () => new Map(),
      schedule: async (k) => {
        h.scheduled.push(k.deal.dealid)
        if (s.scheduleFails === true) throw new Error('boom')
      },
      flush: async () => { h.flushes++ }
    },
    finalizer: {
      doneMined: async () => true,
      closeDeal: async (k) => { h.closed.push(k.deal.dealid) }
    },
    hub: { dealOf: async (id) => { h.reads.push(id); return dealState(s.deal) } },
    chainTime: {
      now: async () => {
        h.ticks++
        if (s.hold === true) await new Promise<void>((resolve) => { release = resolve })
        return s.chainNow ?? 1_100
      }
    },
    options: { dealRefreshMs: 60_000 },
    running: () => true,
    log
  }
  h.ticker = new Ticker(init)
  return h
}

async function tick (h: Harness): Promise<void> {
  h.ticker.kick()
  await h.ticker.settle()
}

describe('scheduler ticker: which deals a tick reads and schedules', () => {
  it('schedules the deals this node schedules, reading each from the hub once per dealRefreshMs', async () => {
    const h = make()
    await tick(h)
    assert.deepEqual(h.scheduled, [A.deal.dealid])
    assert.deepEqual(h.reads, [A.deal.dealid], 'another node\'s deal is not read')
    assert.deepEqual(h.learned, [ME])
    assert.equal(h.flushes, 1)
    await tick(h)
    assert.deepEqual(h.reads, [A.deal.dealid], 'read again only after dealRefreshMs')
    assert.equal(h.scheduled.length, 2)
    h.ticker.forget(A.deal.dealid)
    await tick(h)
    assert.equal(h.reads.length, 2, 'a forgotten deal is read afresh')
  })

  it('reads another node\'s deal once events say every task ended, and closes it when done', async () => {
    const h = make({ deal: { done: 1n } })
    h.allEnded.add(B.deal.dealid)
    await tick(h)
    assert.deepEqual(h.closed, [A.deal.dealid, B.deal.dealid])
    assert.deepEqual(h.scheduled, [], 'a done deal is not scheduled')
    assert.equal(h.allEnded.size, 0, 'the mark is taken')
  })

  it('does not schedule a deal past its final deadline', async () => {
    const h = make({ chainNow: 5_000 })
    await tick(h)
    assert.deepEqual(h.scheduled, [])
  })

  it('a failed schedule is logged and the assignments queued so far still go out', async () => {
    const h = make({ scheduleFails: true })
    await tick(h)
    assert.ok(h.lines.includes('scheduling failed'))
    assert.equal(h.flushes, 1)
  })

  it('kicks during a tick coalesce into one more tick right after it', async () => {
    const h = make({ hold: true })
    h.ticker.kick()
    h.ticker.kick()
    h.ticker.kick()
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(h.ticks, 1, 'one tick at a time')
    h.release()
    await new Promise((resolve) => setImmediate(resolve))
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(h.ticks, 2, 'one more for all the kicks it missed')
    h.release()
    await h.ticker.settle()
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(h.ticks, 2)
  })
})
