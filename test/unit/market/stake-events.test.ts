import assert from 'node:assert/strict'
import { Wallet, zeroPadValue } from 'ethers'
import { StakeEvents } from '../../../node/market/stake-events.js'
import type { MarketHubEvent } from '../../../node/market/orderbook.js'

const me = Wallet.createRandom().address
const other = Wallet.createRandom().address
const topic = (address: string): string => zeroPadValue(address, 32).toLowerCase()
const id = (n: number): string => '0x' + n.toString(16).padStart(64, '0')

function dealCreated (dealid: string, scheduler: string, workers: string[]): [{ name: string, topics: string[] }, MarketHubEvent] {
  return [
    { name: 'DealCreated', topics: ['0xtopic', dealid, topic(scheduler), topic(other)] },
    { name: 'DealCreated', dealid, requestHash: id(999), app: other, dataset: other, volume: 1n, workers }
  ]
}
const taskEnd = (name: string, dealid: string): { name: string, topics: string[] } => ({ name, topics: ['0xtopic', id(12345), dealid] })

describe('market: which stake events concern a node', () => {
  it('its own account\'s events, not another\'s', () => {
    const s = new StakeEvents(me)
    for (const name of ['Staked', 'UnstakeRequested', 'Unstaked', 'StakeSeized', 'StakeReleased']) {
      assert.equal(s.concernsUs({ name, topics: ['0xtopic', topic(me)] }, undefined), true, name)
      assert.equal(s.concernsUs({ name, topics: ['0xtopic', topic(other)] }, undefined), false, name)
    }
  })

  it('a lazy scheduler draw that elects it (its stake locks then), and the deal\'s task ends after it; not another\'s draw', () => {
    const s = new StakeEvents(me)
    // the hub's DealCreated names no scheduler (zero): a deal it does not work in is not its own yet
    assert.equal(s.concernsUs(...dealCreated(id(7), '0x0000000000000000000000000000000000000000', [other])), false)
    assert.equal(s.concernsUs({ name: 'SchedulerDrawn', topics: ['0xtopic', id(8), topic(other)] }, undefined), false)
    assert.equal(s.concernsUs({ name: 'SchedulerDrawn', topics: ['0xtopic', id(7), topic(me)] }, undefined), true)
    assert.equal(s.concernsUs(taskEnd('TaskFinalized', id(7)), undefined), true, 'a task end of the deal it now schedules')
  })

  it('the deals it works in or schedules, from their creation to each task\'s end; not the others\' deals', () => {
    const s = new StakeEvents(me)
    assert.equal(s.concernsUs(...dealCreated(id(1), other, [other, me])), true, 'a worker of the deal')
    assert.equal(s.concernsUs(...dealCreated(id(2), me, [other])), true, 'its scheduler')
    assert.equal(s.concernsUs(...dealCreated(id(3), other, [other])), false, 'nobody\'s deal of ours')
    for (const name of ['TaskFinalized', 'TaskClaimed']) {
      assert.equal(s.concernsUs(taskEnd(name, id(1)), undefined), true)
      assert.equal(s.concernsUs(taskEnd(name, id(2)), undefined), true)
      assert.equal(s.concernsUs(taskEnd(name, id(3)), undefined), false, `${name} of a deal seen, not ours`)
      assert.equal(s.concernsUs(taskEnd(name, id(4)), undefined), true, `${name} of a deal this process never saw created: maybe ours`)
    }
  })

  it('a reelection that makes it the scheduler, or takes the deal from it, and later events of such a deal', () => {
    const s = new StakeEvents(me)
    s.concernsUs(...dealCreated(id(5), other, [other]))
    assert.equal(s.concernsUs({ name: 'SchedulerReelected', topics: ['0xtopic', id(5), topic(other), topic(me)] }, undefined), true)
    assert.equal(s.concernsUs(taskEnd('TaskFinalized', id(5)), undefined), true, 'now its deal')
    s.concernsUs(...dealCreated(id(6), other, [other]))
    assert.equal(s.concernsUs({ name: 'SchedulerReelected', topics: ['0xtopic', id(6), topic(other), topic(Wallet.createRandom().address)] }, undefined), false)
  })

  it('forgets old deals on the safe side: an event of a forgotten deal of ours counts as ours', () => {
    const s = new StakeEvents(me)
    s.concernsUs(...dealCreated(id(0), other, [me]))
    for (let i = 1; i <= 10_000; i++) s.concernsUs(...dealCreated(id(i), me, [other]))
    assert.equal(s.concernsUs(taskEnd('TaskFinalized', id(0)), undefined), true)
  })
})
