import assert from 'node:assert/strict'
import { HubEventDispatcher, hubCursorKey } from '../../../node/chain/hub-events.js'
import type { ChainEvent } from '../../../node/chain/event-follower.js'

function event (name: string, logIndex = 0, blockHash = '0xb1'): ChainEvent {
  return { name, address: '0xhub', blockNumber: 1, blockHash, logIndex, transactionHash: '0xt', topics: [], data: '0x' }
}

describe('hub events dispatcher', () => {
  it('tells each event to its subscribers in subscription order, one after the other, by name or all (*)', async () => {
    const d = new HubEventDispatcher()
    const seen: string[] = []
    d.on('*', async (e) => { await Promise.resolve(); seen.push(`book:${e.name ?? ''}`) })
    d.on('DealCreated', (e) => { seen.push(`deals:${e.name}`) })
    d.on('*', (e) => { seen.push(`scheduler:${e.name ?? ''}`) })
    await d.dispatch(event('DealCreated'))
    await d.dispatch(event('OrderCancelled', 1))
    assert.deepEqual(seen, ['book:DealCreated', 'deals:DealCreated', 'scheduler:DealCreated', 'book:OrderCancelled', 'scheduler:OrderCancelled'])
    assert.equal(d.subscriberCount, 3)
  })

  it('a failing retry subscriber holds the later ones until it passes; the earlier ones are not told twice', async () => {
    const d = new HubEventDispatcher()
    const seen: string[] = []
    let failures = 2
    d.on('*', () => { seen.push('first') })
    d.on('*', () => {
      if (failures-- > 0) throw new Error('level write failed')
      seen.push('book')
    }, { retry: true })
    d.on('*', () => { seen.push('scheduler') })
    const e = event('DealCreated')
    await assert.rejects(d.dispatch(e), /level write failed/)
    assert.deepEqual(seen, ['first'], 'the scheduler is held')
    await assert.rejects(d.dispatch(e), /level write failed/)
    await d.dispatch(e)
    assert.deepEqual(seen, ['first', 'book', 'scheduler'])
    // the next event starts from the first subscriber again
    await d.dispatch(event('DealCreated', 1))
    assert.deepEqual(seen, ['first', 'book', 'scheduler', 'first', 'book', 'scheduler'])
  })

  it('a failing subscriber without retry is logged and the next one is told', async () => {
    const warned: string[] = []
    const d = new HubEventDispatcher({ warn: (msg) => { warned.push(msg) } })
    const seen: string[] = []
    d.on('*', () => { throw new Error('index write failed') })
    d.on('*', () => { seen.push('scheduler') })
    await d.dispatch(event('TaskFinalized'))
    assert.deepEqual(seen, ['scheduler'])
    assert.deepEqual(warned, ['hub event listener failed'])
  })

  it('an event a reorg took back goes to onRemoved in subscription order, and a retry one holds the rest there too', async () => {
    const d = new HubEventDispatcher()
    const seen: string[] = []
    let fail = true
    d.on('*', () => {}, { retry: true, onRemoved: () => { if (fail) { fail = false; throw new Error('book busy') } seen.push('book') } })
    d.on('*', () => {})
    d.on('*', () => {}, { onRemoved: () => { seen.push('scheduler') } })
    const e = event('DealCreated')
    await assert.rejects(d.dispatchRemoved(e))
    assert.deepEqual(seen, [])
    await d.dispatchRemoved(e)
    assert.deepEqual(seen, ['book', 'scheduler'])
  })

  it('an unsubscribed handler hears no more; one added by a handler hears from the next event', async () => {
    const d = new HubEventDispatcher()
    const seen: string[] = []
    let off: () => void = () => {}
    d.on('*', () => {
      seen.push('a')
      off()
      d.on('*', () => { seen.push('late') })
    })
    off = d.on('*', () => { seen.push('b') })
    await d.dispatch(event('X'))
    assert.deepEqual(seen, ['a'])
    await d.dispatch(event('X', 1))
    assert.deepEqual(seen, ['a', 'a', 'late'])
  })

  it('names the cursor by chain and hub, lowercased, as the market did (existing data dirs keep their cursor)', () => {
    assert.equal(hubCursorKey(31337, '0xAbC0000000000000000000000000000000000001'), 'hub:31337:0xabc0000000000000000000000000000000000001')
  })
})
