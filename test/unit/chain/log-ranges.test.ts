import assert from 'node:assert/strict'
import { queryLogsInRanges } from '../../../node/chain/log-ranges.js'
import { isChainError } from '../../../node/chain/errors.js'

/** A fake endpoint: one log per block, and a record of every range asked. */
function fakeChain (head: number): { asked: Array<[number, number | 'latest']>, read: (a: number, b: number | 'latest') => Promise<number[]>, head: { getBlockNumber: () => Promise<number> } } {
  const asked: Array<[number, number | 'latest']> = []
  return {
    asked,
    read: async (a, b) => {
      asked.push([a, b])
      const to = b === 'latest' ? head : b
      const out: number[] = []
      for (let n = a; n <= to; n++) out.push(n)
      return out
    },
    head: { getBlockNumber: async () => head }
  }
}

describe('chain: queryLogsInRanges', () => {
  it('reads oldest first in ranges of at most maxRange, the last one up to latest', async () => {
    const c = fakeChain(25)
    const logs = await queryLogsInRanges(c.read, { fromBlock: 3, maxRange: 10, head: c.head })
    assert.deepEqual(c.asked, [[3, 12], [13, 22], [23, 'latest']])
    assert.deepEqual(logs, Array.from({ length: 23 }, (_, i) => i + 3))
  })

  it('reads newest first and stops once enough', async () => {
    const c = fakeChain(25)
    const logs = await queryLogsInRanges(c.read, { fromBlock: 0, maxRange: 10, head: c.head, newestFirst: true, enough: (found) => found.length >= 12 })
    assert.deepEqual(c.asked, [[16, 'latest'], [6, 15]])
    assert.deepEqual(logs.slice(0, 3), [25, 24, 23], 'each range newest first')
    assert.equal(logs.length, 20)
  })

  it('a fixed toBlock is never asked as latest; a start past the end reads nothing', async () => {
    const c = fakeChain(100)
    await queryLogsInRanges(c.read, { fromBlock: 0, toBlock: 4, maxRange: 2 })
    assert.deepEqual(c.asked, [[0, 1], [2, 3], [4, 4]])
    assert.deepEqual(await queryLogsInRanges(c.read, { fromBlock: 200, head: c.head }), [])
  })

  it('refuses a range of zero blocks and an open end without a head', async () => {
    const c = fakeChain(5)
    await assert.rejects(queryLogsInRanges(c.read, { fromBlock: 0, maxRange: 0, head: c.head }), (err: unknown) => isChainError(err, 'INVALID_ARGUMENT'))
    await assert.rejects(queryLogsInRanges(c.read, { fromBlock: 0 }), (err: unknown) => isChainError(err, 'INVALID_ARGUMENT'))
  })
})
