/**
 * The XtremWeb-HEP work API end to end: a real swarm (anvil with the hub,
 * 2 providers and 1 requester as IexecNodes in this process, libp2p on
 * 127.0.0.1, Helia, level), the primes example app published through the
 * nodes' own API, and the WorkClient over the requester's HTTP API. Every
 * task really runs: request gossiped, bids, matchOrders, the elected
 * scheduler assigns, a worker runs the WASI module and contributes, the
 * result is fetched from the swarm and checked against the chain.
 *
 * One swarm serves the tests of this file (starting one takes several
 * seconds); each test makes its own works. Cleanup runs in `after`.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ApiClient } from '../../node/api/client.js'
import { WorkClient, isWorkError } from '../../node/api/work-client.js'
import type { WorkStatus } from '../../node/api/work-client.js'
import type { WorkErrorCode } from '../../node/market/works.js'
import { dataDirPaths } from '../../node/config/index.js'
import { isIexecError } from '../../node/common/errors.js'
import type { IexecNode } from '../../node/node.js'
import { startSwarm, waitFor } from './market-helpers.js'
import type { Swarm } from './market-helpers.js'

const PRIMES = new URL('../../examples/apps/primes/primes.wasm', import.meta.url)
/** a category no provider serves (they serve their config's category, 0 by default) */
const NOBODY_CATEGORY = 2

function code (c: WorkErrorCode): (e: unknown) => boolean {
  return (e: unknown) => isWorkError(e, c)
}

async function clientOf (node: IexecNode): Promise<ApiClient> {
  return new ApiClient(node.apiUrl(), (await readFile(dataDirPaths(node.dataDir).apiToken, 'utf8')).trim(), { timeoutMs: 30_000 })
}

describe('work API (XtremWeb-HEP) over a real swarm: anvil, 2 providers, 1 requester', function () {
  this.timeout(240_000)
  const cleanup: Array<() => Promise<void>> = []
  let s: Swarm
  let requester: IexecNode
  let works: WorkClient
  let appAddress: string

  before(async function () {
    this.timeout(180_000)
    s = await startSwarm({ providers: 2, requesters: 1 }, cleanup)
    requester = s.requesters[0]
    // the app developer is a provider: its node adds the module to Helia and registers the app
    const owner = await clientOf(s.providers[0])
    const added = await owner.addContent(new Uint8Array(await readFile(PRIMES)))
    const app = await owner.registerApp({ name: 'primes', cid: added.cid, checksum: added.checksum, price: 0n })
    appAddress = app.address
    const api = await clientOf(requester)
    await waitFor(async () => (await api.orderbook({ type: 'app', app: app.address })).some((o) => o.orderHash === app.orderHash), 20_000, 'the app order at the requester')
    works = new WorkClient(api, { pollIntervalMs: 100 })
  })

  after(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('submitAndWait runs the app and resolves with the matching result file; getStdout is the app\'s real stdout', async () => {
    const t0 = Date.now()
    const file = await works.submitAndWait('primes', '1000', 'primes.txt', { timeoutMs: 120_000 })
    const ms = Date.now() - t0
    const primes = (await readFile(file, 'utf8')).trim().split('\n').map(Number)
    assert.equal(primes.length, 168, 'the sieve up to 1000 (the work\'s cmdline) found 168 primes')
    assert.deepEqual(primes.slice(0, 5), [2, 3, 5, 7, 11])
    assert.equal(primes[primes.length - 1], 997)
    const mine = (await works.list()).filter((w) => w.params.cmdline === '1000' && w.status === 'COMPLETED')
    assert.equal(mine.length, 1)
    const uid = mine[0].uid
    assert.equal(await works.getStdout(uid), 'count=168 last=997\n')
    assert.equal(await works.getParam(uid, 'stdout'), 'count=168 last=997\n')
    const dir = await works.getResultPath(uid)
    assert.equal(file, join(dir, 'primes.txt'))
    assert.equal(await works.getParam(uid, 'resultpath'), dir)
    assert.equal(await works.getParam(uid, 'app'), appAddress, 'the name was resolved to the registered app')
    // the other pattern forms, on the same result
    assert.equal(await works.waitResult(uid, /^stdout\.txt$/), join(dir, 'stdout.txt'))
    assert.equal(await works.waitResult(uid, 'std*.txt'), join(dir, 'stderr.txt'))
    await assert.rejects(works.waitResult(uid, 'nothing-*.bin'), code('WORK_RESULT_NOT_FOUND'))
    await assert.rejects(works.waitResult(uid, '/(/'), code('WORK_BAD_PATTERN'))
    process.stderr.write(`      submitAndWait (trust 1, automine): ${ms} ms\n`)
  })

  it('register, setParam, setPending: UNAVAILABLE -> PENDING -> RUNNING -> COMPLETED; parameters are frozen after setPending', async () => {
    const uid = await works.register('primes')
    assert.equal(await works.getStatus(uid), 'UNAVAILABLE')
    await works.setParam(uid, 'cmdline', '20000')
    await works.setParam(uid, 'trust', 1)
    assert.equal(await works.getParam(uid, 'cmdline'), '20000')
    assert.equal(await works.getParam(uid, 'dealid'), null)
    // read-only, unknown and bad values, each with its own code
    await assert.rejects(works.setParam(uid, 'status', 'COMPLETED'), code('WORK_READ_ONLY_PARAM'))
    await assert.rejects(works.setParam(uid, 'resultcid', 'bafy'), code('WORK_READ_ONLY_PARAM'))
    await assert.rejects(works.setParam(uid, 'priority', 1), code('WORK_UNKNOWN_PARAM'))
    await assert.rejects(works.setParam(uid, 'trust', 0), code('WORK_BAD_VALUE'))
    await assert.rejects(works.waitResult(uid, 'primes.txt', { timeoutMs: 1_000 }), code('WORK_BAD_STATE'))
    await assert.rejects(works.getStdout(uid), code('WORK_BAD_STATE'))

    const seen: WorkStatus[] = [await works.getStatus(uid)]
    seen.push(await works.setPending(uid))
    await assert.rejects(works.setParam(uid, 'cmdline', '30'), code('WORK_BAD_STATE'))
    await assert.rejects(works.setPending(uid), code('WORK_BAD_STATE'))
    let refusedWhileRunning = false
    await waitFor(async () => {
      const st = await works.getStatus(uid)
      if (st !== seen[seen.length - 1]) seen.push(st)
      if (st === 'RUNNING' && !refusedWhileRunning) {
        await assert.rejects(works.remove(uid), code('WORK_BAD_STATE'))
        refusedWhileRunning = true
      }
      if (st === 'ERROR') throw new Error(`the work failed: ${JSON.stringify((await works.getWork(uid)).error)}`)
      return st === 'COMPLETED'
    }, 120_000, 'the work COMPLETED')
    assert.deepEqual(seen, ['UNAVAILABLE', 'PENDING', 'RUNNING', 'COMPLETED'])
    assert.ok(refusedWhileRunning)
    const view = await works.getWork(uid)
    assert.match(view.dealId ?? '', /^0x[0-9a-f]{64}$/)
    assert.match(view.taskId ?? '', /^0x[0-9a-f]{64}$/)
    assert.equal(view.taskStatus, 'COMPLETED')
    // the deal on chain is the one the work recorded, and its task is COMPLETED there
    const deal = await works.api.deal(view.dealId as string)
    assert.equal(deal.tasks[0].taskId, view.taskId)
    assert.equal(deal.tasks[0].status, 'COMPLETED')
    assert.match(deal.params, /"iexec_args":"20000"/)
    assert.match(await works.getStdout(uid), /^count=2262 last=19997\n$/)
  })

  it('a work no provider can bid on ends in ERROR with the reason readable through getParam', async () => {
    const uid = await works.submit('primes', '10', { params: { category: NOBODY_CATEGORY, biddingwindow: 2_000 } })
    await assert.rejects(works.waitResult(uid, 'primes.txt', { timeoutMs: 30_000 }), (e: unknown) => {
      assert.ok(isWorkError(e, 'WORK_FAILED'), String(e))
      assert.equal((e.details?.error as { code: string }).code, 'NO_BIDS')
      return true
    })
    assert.equal(await works.getStatus(uid), 'ERROR')
    assert.equal(await works.getParam(uid, 'errorcode'), 'NO_BIDS')
    assert.match(await works.getParam(uid, 'error') ?? '', /no bid within 2000 ms/)
    const reasons = (await works.getWork(uid)).error?.details?.reasons as Array<{ code: string, reason: string }>
    assert.equal(reasons.length, 2, 'both providers said why')
    assert.ok(reasons.every((r) => r.code === 'NO_CATEGORY' && r.reason.length > 0), JSON.stringify(reasons))
  })

  it('remove deletes drafts and finished works; unknown uids and apps are refused', async () => {
    const draft = await works.register('primes')
    await works.remove(draft)
    await assert.rejects(works.getStatus(draft), code('WORK_NOT_FOUND'))
    await assert.rejects(works.remove(draft), code('WORK_NOT_FOUND'))
    const failed = await works.submit('primes', '10', { params: { category: NOBODY_CATEGORY, biddingwindow: 500 } })
    await assert.rejects(works.waitResult(failed, 'x', { timeoutMs: 30_000 }), code('WORK_FAILED'))
    await works.remove(failed)
    assert.ok(!(await works.list()).some((w) => w.uid === failed || w.uid === draft))
    await assert.rejects(works.getParam('not-a-uid', 'status'), code('WORK_NOT_FOUND'))
    await assert.rejects(works.register('no-such-app'), (e: unknown) => isIexecError(e, 'API_ERROR') && e.details?.serverCode === 'APP_NOT_FOUND')
  })

  it('works survive a restart of the requester node; a PENDING one cut off by the stop becomes ERROR WORK_INTERRUPTED', async () => {
    // one completed, one draft, one failed, one PENDING when the node stops
    const done = await works.submit('primes', '100')
    await works.waitResult(done, 'stdout.txt', { timeoutMs: 120_000 })
    const stdout = await works.getStdout(done)
    assert.equal(stdout, 'count=25 last=97\n')
    const draft = await works.register('primes')
    await works.setParam(draft, 'cmdline', '77')
    await works.setParam(draft, 'tags', 'region:eu')
    const failed = await works.submit('primes', '10', { params: { category: NOBODY_CATEGORY, biddingwindow: 300 } })
    await waitFor(async () => (await works.getStatus(failed)) === 'ERROR', 30_000, 'the unmatched work in ERROR')
    const cut = await works.submit('primes', '13', { params: { category: NOBODY_CATEGORY, biddingwindow: 600_000 } })
    // its request is out (in the requester's own book): the node is inside the bidding window
    await waitFor(async () => (await works.api.orderbook({ type: 'request', requester: requester.address })).some((o) => o.order.params === JSON.stringify({ iexec_args: '13' }) && o.order.category === String(NOBODY_CATEGORY) && o.remaining === '1'),
      20_000, 'the request order in the requester\'s book')
    assert.equal(await works.getStatus(cut), 'PENDING')

    const t0 = Date.now()
    await requester.stop()
    assert.ok(Date.now() - t0 < 30_000, 'the stop cut the 10-minute bidding window short')
    const again = await s.restart(requester.dataDir, { bootstrap: s.providers.map((p) => p.multiaddrs()[0]) })
    const after = new WorkClient(await clientOf(again), { pollIntervalMs: 100 })

    assert.equal(await after.getStatus(done), 'COMPLETED')
    assert.equal(await after.getStdout(done), stdout)
    assert.equal(await after.getStatus(draft), 'UNAVAILABLE')
    assert.equal(await after.getParam(draft, 'cmdline'), '77')
    assert.equal(await after.getParam(draft, 'tags'), 'region:eu')
    assert.equal(await after.getStatus(failed), 'ERROR')
    assert.equal(await after.getParam(failed, 'errorcode'), 'NO_BIDS')
    assert.equal(await after.getStatus(cut), 'ERROR')
    assert.equal(await after.getParam(cut, 'errorcode'), 'WORK_INTERRUPTED')
    // the draft kept after the restart can still be edited and removed
    await after.setParam(draft, 'cmdline', '78')
    assert.equal(await after.getParam(draft, 'cmdline'), '78')
    await after.remove(draft)
    await assert.rejects(after.getStatus(draft), code('WORK_NOT_FOUND'))
  })
})
