/**
 * Results are not announced in the DHT one by one (a provide per task was
 * most of a bag's network traffic): whoever fetches a result connects to the
 * deal's workers first, found by their adverts, and bitswap asks them.
 * Real IexecNodes (libp2p on 127.0.0.1, Helia, level), a real anvil, WASI.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { parseCid } from '../../node/storage/index.js'
import { taskId } from '../../protocols/eip712.js'
import { RLC, api, ok, startSwarm, waitFor } from './market-helpers.js'
import { TaskReader__factory, TaskStatus, taskReaderAddress } from '../../contracts-abi/index.js'

const PRIMES = new URL('../../examples/apps/primes/primes.wasm', import.meta.url)

describe('results: fetched from the deal\'s workers, not announced in the DHT', function () {
  this.timeout(180_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('a requester cut off from the worker gets the result: it dials the deal\'s workers, the DHT knows no provider of it', async () => {
    const s = await startSwarm({ providers: 2, requesters: 1, market: { biddingWindowMs: 2_000 } }, cleanup)
    const requester = s.requesters[0]
    const wasm = await readFile(PRIMES)
    const added = await ok(s.providers[0], 'POST', '/v1/content', { data: wasm.toString('base64') })
    await ok(s.providers[0], 'POST', '/v1/apps', { name: 'primes', cid: added.cid, checksum: added.checksum, price: '0' })
    await waitFor(async () => ((await ok(requester, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 1, 30_000, 'the app order at the requester')

    const deal = await ok(requester, 'POST', '/v1/tasks', { app: 'primes', args: '100', trust: 1, maxPrice: (10n * RLC).toString() })
    const dealId = String(deal.dealId)
    const id = taskId(dealId, 0)
    await waitFor(async () => ((await ok(requester, 'GET', `/v1/deals/${dealId}`)).tasks as Array<{ status: string }>)[0].status === 'COMPLETED', 120_000, 'the task COMPLETED')
    const workerAddress = String((deal.workers as string[])[0]).toLowerCase()
    const worker = s.providers.find((p) => p.address.toLowerCase() === workerAddress)
    assert.ok(worker !== undefined, 'the worker is one of the providers')

    // what the chain says the result is, and that nobody announced it in the DHT
    const status = await ok(requester, 'GET', `/v1/tasks/${id}`)
    const cid = String(status.resultCid)
    // task show reads the TaskReader: a trust-1 task closed by contributeAndFinalize is COMPLETED there too
    assert.equal(status.status, 'COMPLETED')
    assert.equal(status.phase, 'finalized')
    const reader = TaskReader__factory.connect(taskReaderAddress(s.chain.hub), requester.market!.hub.runner)
    assert.equal(Number((await reader.taskOf(dealId, 0)).status), TaskStatus.COMPLETED)
    // a task no deal has: TASK_NOT_FOUND from the result route, as from the task route
    const unknown = `0x${'ab'.repeat(32)}`
    for (const path of [`/v1/results/${unknown}`, `/v1/tasks/${unknown}`]) {
      const r = await api(requester, 'GET', path)
      assert.equal(r.status, 404, path)
      assert.equal((r.body.error as { code: string }).code, 'TASK_NOT_FOUND', path)
    }
    const providers: string[] = []
    for await (const p of requester.network.findProviders(parseCid(cid), { signal: AbortSignal.timeout(3_000) })) providers.push(p.peerId)
    assert.deepEqual(providers, [], 'no DHT provider record for the result')

    // cut the requester off from the worker. In a swarm this small the DHT walk that bitswap
    // starts reaches every node, the worker too; in a large one it reaches the peers closest
    // to the CID, so the node must dial the deal's workers itself: the test watches that dial
    await requester.network.hangUp(worker.peerId)
    assert.ok(!(await requester.network.peers()).some((p) => p.peerId === worker.peerId), 'the requester is no longer connected to the worker')
    const dialled: string[] = []
    const dial = requester.network.dial.bind(requester.network)
    requester.network.dial = async (addr, options) => {
      dialled.push(addr)
      await dial(addr, options)
    }

    const result = await ok(requester, 'GET', `/v1/results/${id}`)
    assert.equal(result.cid, cid)
    assert.equal(result.stdout, 'count=25 last=97\n')
    assert.ok(dialled.includes(worker.peerId), `the requester dialled the deal's worker (dialled: ${dialled.join(', ') || 'nothing'})`)
    assert.ok((await requester.network.peers()).some((p) => p.peerId === worker.peerId), 'the requester is connected to the worker again')
  })
})
