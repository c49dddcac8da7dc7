import assert from 'node:assert/strict'
import { ZERO_BYTES32 } from '../../../protocols/eip712.js'
import type { RequestOrder } from '../../../protocols/eip712.js'
import { encodeTags } from '../../../protocols/market.js'
import type { BidDeclineCode } from '../../../protocols/market.js'
import { defaultBidStrategy } from '../../../node/market/bid-strategy.js'
import type { BidContext } from '../../../node/market/bid-strategy.js'
import { mallory, requestOrder, worker } from './fixture.js'

function context (over: Partial<BidContext> = {}, provider: Partial<BidContext['provider']> = {}): BidContext {
  return {
    provider: { categories: [0, 1], tags: ['region:eu', 'energy:green', 'fast-disk'], priceFloor: 3n, executors: ['wasi'], cpus: 4, memoryMb: 4096, ...provider },
    worker: worker.address,
    categoryNeeds: { cpus: 1, memoryMb: 512 },
    appExecutor: 'wasi',
    freeStake: 100n,
    workerStakeRatio: 30n,
    freeSlots: 2,
    ...over
  }
}

interface Row {
  name: string
  request?: Partial<RequestOrder>
  ctx?: Partial<BidContext>
  provider?: Partial<BidContext['provider']>
  code: BidDeclineCode | 'OK'
  /** a phrase the requester will show */
  reason: RegExp
}

const table: Row[] = [
  { name: 'a fitting request', code: 'OK', reason: /bidding 3 nRLC/ },
  { name: 'required tags the provider has (bits and free-form)', request: { tag: encodeTags(['region:eu', 'energy:green']), params: '{"iexec_p2p_tags":["fast-disk"]}' }, code: 'OK', reason: /bidding/ },
  { name: 'a category the provider does not serve', request: { category: 7n }, code: 'NO_CATEGORY', reason: /no provider for the category 7/ },
  { name: 'a category needing more than the provider has', ctx: { categoryNeeds: { cpus: 8, memoryMb: 512 } }, code: 'RESOURCES_TOO_SMALL', reason: /resources too small/ },
  { name: 'a category whose memory bound is over the provider\'s maximum', ctx: { categoryNeeds: { cpus: 1, memoryMb: 8192, diskMb: 64 } }, code: 'RESOURCES_TOO_SMALL', reason: /needs 1 cpus, 8192 MiB, 64 MiB of disk; has 4 cpus, 4096 MiB/ },
  { name: 'a category whose disk bound is over the provider\'s maximum', ctx: { categoryNeeds: { cpus: 1, memoryMb: 512, diskMb: 2048 } }, provider: { diskMb: 1024 }, code: 'RESOURCES_TOO_SMALL', reason: /2048 MiB of disk; has .*1024 MiB of disk/ },
  { name: 'a category whose bounds are the provider\'s maxima', ctx: { categoryNeeds: { cpus: 4, memoryMb: 4096, diskMb: 1024 } }, provider: { diskMb: 1024 }, code: 'OK', reason: /bidding/ },
  { name: 'a missing tag bit', request: { tag: encodeTags(['region:us']) }, code: 'TAG_MISSING', reason: /region:us/ },
  { name: 'a missing free-form tag', request: { params: '{"iexec_p2p_tags":["sgx-v9"]}' }, code: 'TAG_MISSING', reason: /sgx-v9/ },
  { name: 'a tag bit outside the registry', request: { tag: '0x' + '80'.padEnd(64, '0') }, code: 'TAG_MISSING', reason: /unknown/ },
  { name: 'an unregistered app', ctx: { appExecutor: undefined }, code: 'APP_NOT_RUNNABLE', reason: /app not runnable/ },
  { name: 'an app for an executor the provider lacks', ctx: { appExecutor: 'docker' }, code: 'APP_NOT_RUNNABLE', reason: /app not runnable.*docker/ },
  { name: 'an app whose module this executor cannot run', ctx: { appProblem: 'MODULE_NOT_COMMAND: no _start export' }, code: 'APP_NOT_RUNNABLE', reason: /app not runnable: MODULE_NOT_COMMAND/ },
  { name: 'a request restricted to another worker', request: { workerpool: mallory.address }, code: 'WORKER_RESTRICTED', reason: /restricted/ },
  { name: 'a request restricted to this worker', request: { workerpool: worker.address }, code: 'OK', reason: /bidding/ },
  { name: 'a max price under the floor', request: { workerpoolmaxprice: 2n }, code: 'PRICE_TOO_LOW', reason: /price too low/ },
  { name: 'a max price equal to the floor', request: { workerpoolmaxprice: 3n }, code: 'OK', reason: /bidding/ },
  // floor 10, ratio 30%: 3 per task, volume 5: 15 needed
  { name: 'stake that does not cover the volume', request: { volume: 5n, workerpoolmaxprice: 10n }, provider: { priceFloor: 10n }, ctx: { freeStake: 14n }, code: 'STAKE_TOO_LOW', reason: /stake too low \(needs 15, free 14/ },
  { name: 'stake that just covers it', request: { volume: 5n, workerpoolmaxprice: 10n }, provider: { priceFloor: 10n }, ctx: { freeStake: 15n }, code: 'OK', reason: /bidding 10/ },
  { name: 'no free slot', ctx: { freeSlots: 0 }, code: 'NO_CAPACITY', reason: /no free capacity/ },
  { name: 'a consumed request', ctx: { remainingVolume: 0n }, code: 'NO_CAPACITY', reason: /consumed/ },
  { name: 'unreadable params', request: { params: '{not json' }, code: 'BAD_PARAMS', reason: /params/ }
]

describe('market: default bid strategy', function () {
  for (const row of table) {
    it(`${row.code === 'OK' ? 'bids on' : 'declines'} ${row.name}`, async () => {
      const request = requestOrder({ tag: ZERO_BYTES32, workerpoolmaxprice: 5n, ...row.request })
      const d = await defaultBidStrategy(request, context(row.ctx, row.provider))
      assert.equal(d.code, row.code, `got ${d.code}: ${d.reason}`)
      assert.equal(d.bid, row.code === 'OK')
      assert.match(d.reason, row.reason)
      if (d.bid) {
        assert.equal(d.price, row.provider?.priceFloor ?? 3n, 'bids its floor')
        assert.equal(d.volume, row.ctx?.remainingVolume ?? request.volume)
      }
    })
  }

  it('bids the remaining volume, not the original one', async () => {
    const d = await defaultBidStrategy(requestOrder({ volume: 10n, workerpoolmaxprice: 5n }), context({ remainingVolume: 4n }))
    assert.ok(d.bid)
    assert.equal(d.volume, 4n)
  })
})
