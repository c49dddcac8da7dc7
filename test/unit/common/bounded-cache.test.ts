import assert from 'node:assert/strict'
import { BoundedCache } from '../../../node/common/bounded-cache.js'

describe('common: bounded cache', function () {
  it('drops the entry written longest ago past maxSize', () => {
    const c = new BoundedCache<string, number>(3)
    c.set('a', 1).set('b', 2).set('c', 3)
    assert.equal(c.size, 3)
    c.set('d', 4)
    assert.equal(c.size, 3)
    assert.equal(c.has('a'), false)
    assert.deepEqual([...c.keys()], ['b', 'c', 'd'])
  })

  it('moves a rewritten key to the newest, so it outlives older ones', () => {
    const c = new BoundedCache<string, number>(2)
    c.set('a', 1).set('b', 2).set('a', 3)
    c.set('c', 4)
    assert.deepEqual([...c.entries()], [['a', 3], ['c', 4]])
  })

  it('leaves the order alone on get and has', () => {
    const c = new BoundedCache<string, number>(2)
    c.set('a', 1).set('b', 2)
    assert.equal(c.get('a'), 1)
    assert.equal(c.has('a'), true)
    c.set('c', 3)
    assert.equal(c.get('a'), undefined)
    assert.deepEqual([...c], [['b', 2], ['c', 3]])
  })

  it('deletes, clears and iterates oldest first', () => {
    const c = new BoundedCache<number, string>(5)
    for (let i = 0; i < 4; i++) c.set(i, String(i))
    assert.equal(c.delete(1), true)
    assert.equal(c.delete(1), false)
    assert.deepEqual([...c.values()], ['0', '2', '3'])
    c.clear()
    assert.equal(c.size, 0)
  })

  it('keeps nothing with maxSize 0 and refuses a negative or NaN bound', () => {
    const off = new BoundedCache<string, number>(0)
    off.set('a', 1)
    assert.equal(off.size, 0)
    for (const n of [-1, Number.NaN]) assert.throws(() => new BoundedCache(n), RangeError, String(n))
  })
})
