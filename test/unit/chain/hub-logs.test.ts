import assert from 'node:assert/strict'
import { lastHubLog, queryHubLogs } from '../../../node/chain/hub-logs.js'
import type { HubLogReader } from '../../../node/chain/hub-logs.js'
import { findFinalizedTask } from '../../../node/chain/finalized-task.js'
import { isChainError } from '../../../node/chain/errors.js'
import type { Hub } from '../../../contracts-abi/index.js'

interface FakeLog { blockNumber: number, args: Record<string, string> }

/**
 * A hub with logs at given blocks: records each query's range and answers
 * what falls inside it, refusing a range wider than a public endpoint's cap.
 */
function fakeHub (logs: FakeLog[], head: number, cap = Infinity): HubLogReader & Pick<Hub, 'filters'> & { ranges: Array<[number, number | 'latest']>, headReads: number } {
  const ranges: Array<[number, number | 'latest']> = []
  const hub = {
    ranges,
    headReads: 0,
    runner: { provider: { getBlockNumber: async () => { hub.headReads++; return head } } },
    filters: { TaskFinalized: (id: string) => ({ id }) },
    queryFilter: async (_filter: unknown, from: number, to: number | 'latest') => {
      ranges.push([from, to])
      const end = to === 'latest' ? head : to
      // as an endpoint answers a range that starts past its head
      if (from > end) throw new Error('invalid block range params')
      if (end - from + 1 > cap) throw new Error('query returned more than 10000 results or range too large')
      return logs.filter((l) => l.blockNumber >= from && l.blockNumber <= end)
    }
  }
  return hub as unknown as HubLogReader & Pick<Hub, 'filters'> & { ranges: Array<[number, number | 'latest']>, headReads: number }
}

const filter = {} as never

describe('chain: queryHubLogs / lastHubLog (bounded eth_getLogs ranges)', () => {
  it('reads from fromBlock to the head in ranges of at most maxRange blocks, oldest first', async () => {
    const hub = fakeHub([{ blockNumber: 3, args: {} }, { blockNumber: 12, args: {} }, { blockNumber: 25, args: {} }], 25, 10)
    const logs = await queryHubLogs(hub, filter, 0, undefined, 10)
    assert.deepEqual(logs.map((l) => l.blockNumber), [3, 12, 25])
    assert.deepEqual(hub.ranges, [[0, 9], [10, 19], [20, 25]])
  })

  it('stops at an explicit toBlock and makes ceil(span / maxRange) requests', async () => {
    const hub = fakeHub([{ blockNumber: 5, args: {} }, { blockNumber: 50, args: {} }], 100)
    const logs = await queryHubLogs(hub, filter, 5, 24, 7)
    assert.deepEqual(logs.map((l) => l.blockNumber), [5])
    assert.deepEqual(hub.ranges, [[5, 11], [12, 18], [19, 24]])
  })

  it('makes no request for an empty span (fromBlock past the head)', async () => {
    const hub = fakeHub([], 10)
    assert.deepEqual(await queryHubLogs(hub, filter, 11, undefined, 5), [])
    assert.deepEqual(hub.ranges, [])
  })

  it('refuses a range bound below 1 with INVALID_ARGUMENT', async () => {
    const hub = fakeHub([], 10)
    await assert.rejects(queryHubLogs(hub, filter, 0, undefined, 0), (e: unknown) => isChainError(e, 'INVALID_ARGUMENT'))
    await assert.rejects(lastHubLog(hub, filter, 0, undefined, 1.5), (e: unknown) => isChainError(e, 'INVALID_ARGUMENT'))
    assert.deepEqual(hub.ranges, [])
  })

  it('lastHubLog walks newest first and stops at the first range with a log', async () => {
    const hub = fakeHub([{ blockNumber: 2, args: { n: 'old' } }, { blockNumber: 31, args: { n: 'a' } }, { blockNumber: 33, args: { n: 'b' } }], 45, 10)
    const last = await lastHubLog(hub, filter, 0, undefined, 10)
    assert.equal(last?.args.n, 'b')
    assert.deepEqual(hub.ranges, [[36, 45], [26, 35]])
  })

  it('lastHubLog reads down to fromBlock and no lower when nothing matches', async () => {
    const hub = fakeHub([{ blockNumber: 1, args: {} }], 25, 10)
    assert.equal(await lastHubLog(hub, filter, 3, undefined, 10), undefined)
    assert.deepEqual(hub.ranges, [[16, 25], [6, 15], [3, 5]])
  })

  it('lastHubLog with a head hint reads up to latest in one request and never asks the head', async () => {
    const hub = fakeHub([{ blockNumber: 40, args: { n: 'a' } }, { blockNumber: 44, args: { n: 'b' } }], 45, 10)
    assert.equal((await lastHubLog(hub, filter, 0, undefined, 10, { headHint: 43 }))?.args.n, 'b', 'a log past the hint is found too')
    assert.deepEqual(hub.ranges, [[39, 'latest']])
    assert.equal(hub.headReads, 0)
  })

  it('lastHubLog with a head hint goes on back in bounded ranges from below its first read, to fromBlock', async () => {
    const hub = fakeHub([{ blockNumber: 1, args: {} }, { blockNumber: 9, args: { n: 'old' } }], 30, 10)
    // the hint lags the head by 3 blocks: the first read spans 8 blocks, within the cap
    assert.equal((await lastHubLog(hub, filter, 2, undefined, 10, { headHint: 27 }))?.args.n, 'old')
    assert.deepEqual(hub.ranges, [[23, 'latest'], [13, 22], [3, 12]])
    assert.equal(hub.headReads, 0)
    const none = fakeHub([], 30, 10)
    assert.equal(await lastHubLog(none, filter, 2, undefined, 10, { headHint: 27 }), undefined)
    assert.deepEqual(none.ranges, [[23, 'latest'], [13, 22], [3, 12], [2, 2]])
  })

  it('lastHubLog falls back to the head when a hinted read fails (a hint past a shorter chain\'s head), and ignores a hint below fromBlock', async () => {
    const hub = fakeHub([{ blockNumber: 18, args: { n: 'x' } }], 20, 10)
    assert.equal((await lastHubLog(hub, filter, 0, undefined, 10, { headHint: 40 }))?.args.n, 'x')
    assert.deepEqual(hub.ranges, [[36, 'latest'], [11, 20]])
    assert.equal(hub.headReads, 1)
    const low = fakeHub([{ blockNumber: 18, args: { n: 'x' } }], 20, 10)
    assert.equal((await lastHubLog(low, filter, 5, undefined, 10, { headHint: 3 }))?.args.n, 'x')
    assert.deepEqual(low.ranges, [[11, 20]])
  })

  it('findFinalizedTask gives the TaskFinalized event\'s fields within the bound', async () => {
    const hub = fakeHub([{ blockNumber: 4100, args: { resultsCid: 'bafy', resultHash: '0xab', dealid: '0xd' } }], 5000, 2000)
    const found = await findFinalizedTask(hub, '0x01', { fromBlock: 0, maxBlockRange: 2000 })
    assert.deepEqual(found, { resultsCid: 'bafy', resultHash: '0xab', dealid: '0xd' })
    assert.deepEqual(hub.ranges, [[3001, 5000]])
    const none = fakeHub([], 5000, 2000)
    assert.equal(await findFinalizedTask(none, '0x01', { fromBlock: 0, maxBlockRange: 2000 }), undefined)
    assert.deepEqual(none.ranges, [[3001, 5000], [1001, 3000], [0, 1000]])
    const hinted = fakeHub([{ blockNumber: 4999, args: { resultsCid: 'bafy', resultHash: '0xab', dealid: '0xd' } }], 5000, 2000)
    assert.equal((await findFinalizedTask(hinted, '0x01', { fromBlock: 0, maxBlockRange: 2000, headHint: 4998 }))?.resultsCid, 'bafy')
    assert.deepEqual(hinted.ranges, [[3999, 'latest']])
    assert.equal(hinted.headReads, 0)
  })
})
