import assert from 'node:assert/strict'
import { BoundedCache } from '../../node/common/bounded-cache.js'
import { FreshValue, memoAsync } from '../../node/common/memo.js'

describe('memo: reads kept as promises', () => {
  it('memoAsync: one read per key shared by concurrent callers; a failed read is forgotten', async () => {
    const map = new Map<string, Promise<number>>()
    let reads = 0
    const read = async (): Promise<number> => { reads++; return reads }
    assert.deepEqual(await Promise.all([memoAsync(map, 'a', read), memoAsync(map, 'a', read)]), [1, 1])
    assert.equal(reads, 1)
    await assert.rejects(memoAsync(map, 'b', async () => { throw new Error('down') }))
    assert.equal(await memoAsync(map, 'b', read), 2, 'the failed read was not kept')
  })

  it('memoAsync: a plain Map is emptied at maxEntries, a BoundedCache drops only its oldest', async () => {
    const map = new Map<string, Promise<string>>()
    const cache = new BoundedCache<string, Promise<string>>(2)
    for (const k of ['a', 'b', 'c']) {
      await memoAsync(map, k, async () => k, 2)
      await memoAsync(cache, k, async () => k, 2)
    }
    assert.deepEqual([...map.keys()], ['c'])
    assert.deepEqual([...cache.keys()], ['b', 'c'])
  })

  it('FreshValue: read once per maxAge, shared while in flight; a failed read is not kept', async () => {
    let reads = 0
    let fail = false
    const v = new FreshValue(50, async () => {
      reads++
      await new Promise((resolve) => setTimeout(resolve, 5))
      if (fail) throw new Error('down')
      return reads
    })
    assert.deepEqual(await Promise.all([v.get(), v.get(), v.get()]), [1, 1, 1], 'concurrent callers share one read')
    assert.equal(await v.get(), 1, 'a fresh value is not read again')
    await new Promise((resolve) => setTimeout(resolve, 60))
    fail = true
    await assert.rejects(v.get(), /down/)
    fail = false
    assert.equal(await v.get(), 3, 'after a failure the next caller reads again')
    assert.equal(reads, 3)
  })
})
