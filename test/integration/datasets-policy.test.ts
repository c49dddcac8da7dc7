/**
 * Who may use a dataset (issue 22), on real IexecNodes (libp2p, Helia,
 * level), a real anvil with the hub, WASI apps:
 *
 * - an owner allows only wordcount: a requester asking for the copy app
 *   (examples/apps/copy, which copies the dataset to its result) is refused
 *   before any deal (DATASET_APP_NOT_ALLOWED, nothing frozen), and the hub
 *   itself refuses the match (Restricted) to anyone who calls it directly;
 *   wordcount gets the right count, on the only provider with the tag the
 *   owner requires; a requester restriction and a tag the request does not
 *   accept are refused the same way (node, then hub);
 * - at key release: a deal made with an order the owner's key signed but its
 *   node never recorded (the owner's wallet used elsewhere) runs the copy
 *   app; every worker is refused the key with APP_NOT_ALLOWED, no plaintext
 *   reaches anyone, and past the final deadline the task is claimed and the
 *   requester refunded in full, RLC conserved.
 */
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createChainClient } from '../../node/chain/index.js'
import type { ChainClient } from '../../node/chain/index.js'
import { TaskStatus } from '../../contracts-abi/index.js'
import { dataDirPaths } from '../../node/config/index.js'
import { ZERO_ADDRESS, ZERO_BYTES32, signOrder, taskId } from '../../protocols/eip712.js'
import type { AppOrder, Bid, DatasetOrder, Signed } from '../../protocols/eip712.js'
import { encodeTags, orderMessage, saltWithExpiry } from '../../protocols/market.js'
import type { IexecNode } from '../../node/node.js'
import { RLC, api, ok, startSwarm, waitFor } from './market-helpers.js'

const MARKER = 'POLICY-PLAINTEXT-MARKER-5e0a'
const app = (name: string): URL => new URL(`../../examples/apps/${name}/${name}.wasm`, import.meta.url)

async function publishApp (node: IexecNode, name: string): Promise<string> {
  const module = await readFile(app(name))
  const added = await ok(node, 'POST', '/v1/content', { data: module.toString('base64') })
  return String((await ok(node, 'POST', '/v1/apps', { name, cid: added.cid, checksum: added.checksum, price: '0' })).address)
}

async function booked (nodes: IexecNode[], type: 'app' | 'dataset', key: string, hashes: string[]): Promise<void> {
  for (const n of nodes) {
    await waitFor(async () => {
      const got = new Set(((await ok(n, 'GET', `/v1/orderbook?type=${type}&${type}=${key}`)).orders as Array<{ orderHash: string }>).map((o) => o.orderHash))
      return hashes.every((h) => got.has(h))
    }, 20_000, `${type} orders of ${key} in every book`)
  }
}

/** The hub error a call reverts with (its custom error's name). */
async function revertOf (call: Promise<unknown>, hub: NonNullable<ChainClient['hub']>): Promise<string> {
  try {
    await call
  } catch (err) {
    const e = err as { revert?: { name?: string }, data?: string }
    if (e.revert?.name !== undefined) return e.revert.name
    if (typeof e.data === 'string') return hub.interface.parseError(e.data)?.name ?? 'unknown'
    throw err
  }
  return 'no revert'
}

describe('datasets: owners choose who may use them; the hub and the key release hold them to it (anvil, WASI)', function () {
  this.timeout(400_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('an allow-list, a requester restriction and a required tag: refused at the request and by the hub; the allowed app gets its result; an order the owner\'s node never recorded gets no key, the requester is refunded', async () => {
    // p1 alone offers region:eu
    const s = await startSwarm({ providers: 2, requesters: 2, provider: (i) => ({ tags: i === 1 ? ['region:eu'] : [] }), market: { biddingWindowMs: 10_000 } }, cleanup)
    const [owner, requester] = s.requesters
    const [p0, p1] = s.providers
    const wordcount = await publishApp(p0, 'wordcount')
    const copy = await publishApp(p1, 'copy')

    const text = `${MARKER} alpha beta\ngamma\n`
    const path = join(s.root, 'secret.txt')
    await writeFile(path, text)
    const pub = await ok(owner, 'POST', '/v1/datasets', { path, name: 'secret', price: (1n * RLC).toString(), apps: ['wordcount'], tags: ['region:eu'] })
    const dataset = String(pub.address)
    assert.deepEqual(pub.policy, { apps: [wordcount], requesters: [], tags: ['region:eu'], volume: '1000000' })
    assert.equal((pub.orderHashes as string[]).length, 1)
    // a second one, for the owner's own requests only
    const mine = await ok(owner, 'POST', '/v1/datasets', { path, name: 'mine', price: '0', apps: [wordcount], requesters: [owner.address] })
    const mineAddress = String(mine.address)
    await booked(s.all, 'dataset', dataset, pub.orderHashes as string[])
    await booked(s.all, 'dataset', mineAddress, mine.orderHashes as string[])
    await waitFor(async () => ((await ok(requester, 'GET', `/v1/orderbook?type=app&app=${copy}`)).orders as unknown[]).length === 1, 20_000, 'the copy app order on the requester')
    await waitFor(async () => ((await ok(requester, 'GET', `/v1/orderbook?type=app&app=${wordcount}`)).orders as unknown[]).length === 1, 20_000, 'the wordcount app order on the requester')

    const chain: ChainClient = await createChainClient({ rpcUrl: s.anvil.rpcUrl, privateKey: s.anvil.privateKeys[1], hub: s.chain.hub, rlc: s.chain.rlc })
    cleanup.push(async () => { await chain.close() })
    const hub = chain.hub!
    const [balance0, frozen0] = await hub.accountOf(requester.address)

    // 1. the copy app: refused by the requester's node before anything is signed or frozen
    const refused = await api(requester, 'POST', '/v1/tasks', { app: 'copy', dataset, trust: 1, maxPrice: (20n * RLC).toString() })
    assert.equal(refused.status, 403)
    assert.equal((refused.body.error as { code: string }).code, 'DATASET_APP_NOT_ALLOWED')
    // 2. the owner's own dataset, asked by someone else
    const notYou = await api(requester, 'POST', '/v1/tasks', { app: 'wordcount', dataset: mineAddress, trust: 1, maxPrice: (20n * RLC).toString() })
    assert.equal(notYou.status, 403)
    assert.equal((notYou.body.error as { code: string }).code, 'DATASET_REQUESTER_NOT_ALLOWED')
    assert.deepEqual([...await hub.accountOf(requester.address)], [balance0, frozen0], 'nothing frozen')

    // the hub refuses the same matches to a requester who skips its node (called as the requester:
    // nobody else may match its request): restrictions are checked
    // before any bid, so a bid nobody signed is enough to see which rule reverts
    const m = requester.market!
    const domain = m.domain
    const appOrderOf = async (a: string): Promise<Signed<AppOrder>> => {
      const e = (await m.book.query({ type: 'apporder', app: a }))[0]
      return { ...(e.message.order as AppOrder), sign: e.message.sign }
    }
    const datasetOrderOf = async (d: string): Promise<Signed<DatasetOrder>> => {
      const e = (await m.book.query({ type: 'datasetorder', dataset: d }))[0]
      return { ...(e.message.order as DatasetOrder), sign: e.message.sign }
    }
    const request = async (a: string, d: string, tag: string) => await signOrder(requester.wallet, domain, 'RequestOrder', {
      app: a, appmaxprice: 0n, dataset: d, datasetmaxprice: 10n * RLC, workerpool: ZERO_ADDRESS, workerpoolmaxprice: 10n * RLC,
      requester: requester.address, volume: 1n, tag, category: 0n, trust: 1n, beneficiary: requester.address, callback: ZERO_ADDRESS,
      params: '', salt: saltWithExpiry(Math.floor(Date.now() / 1000) + 3600)
    })
    const noBid: Signed<Bid> = { requestHash: ZERO_BYTES32, worker: p0.address, price: 0n, volume: 1n, salt: ZERO_BYTES32, sign: '0x' + '00'.repeat(65) }
    const eu = encodeTags(['region:eu'])
    // a call from the requester's address, with no signer that would insist on its own
    const reader = hub.connect(hub.runner!.provider!)
    assert.equal(await revertOf(reader.matchOrders.staticCall(await appOrderOf(copy), await datasetOrderOf(dataset), await request(copy, dataset, eu), [noBid], { from: requester.address }), hub), 'Restricted', 'another app')
    assert.equal(await revertOf(reader.matchOrders.staticCall(await appOrderOf(wordcount), await datasetOrderOf(mineAddress), await request(wordcount, mineAddress, ZERO_BYTES32), [noBid], { from: requester.address }), hub), 'Restricted', 'another requester')
    assert.equal(await revertOf(reader.matchOrders.staticCall(await appOrderOf(wordcount), await datasetOrderOf(dataset), await request(wordcount, dataset, ZERO_BYTES32), [noBid], { from: requester.address }), hub), 'TagNotSubset', 'a request that does not accept region:eu')

    // 3. the allowed app: the request takes the owner's tag, so only p1 (region:eu) bids; the count is right
    const deal = await ok(requester, 'POST', '/v1/tasks', { app: 'wordcount', dataset, trust: 1, maxPrice: (20n * RLC).toString() })
    assert.deepEqual(deal.workers, [p1.address], 'the provider without region:eu did not bid')
    const dealId = String(deal.dealId)
    await waitFor(async () => (((await ok(requester, 'GET', `/v1/deals/${dealId}`)).tasks as Array<{ status: string }>)[0]).status === 'COMPLETED', 120_000, 'the wordcount task COMPLETED')
    const result = await ok(requester, 'GET', `/v1/results/${taskId(dealId, 0)}`)
    assert.equal(result.stdout, `dataset lines=2 words=4 bytes=${Buffer.byteLength(text)}\n`)

    // 4. key release: an open order signed with the owner's key outside its node (so not in its records),
    // gossiped; the requester's node now finds an order that lets the copy app match
    const stray = await signOrder(owner.wallet, owner.market!.domain, 'DatasetOrder', {
      dataset, datasetprice: 1n * RLC, volume: 10n, tag: ZERO_BYTES32, apprestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: saltWithExpiry(0)
    })
    const { sign, ...strayOrder } = stray
    const { hash: strayHash } = await owner.market!.publishOwn('datasetorder', orderMessage('datasetorder', owner.market!.domain, strayOrder, sign))
    await booked([requester], 'dataset', dataset, [strayHash])

    const [before, frozenBefore] = await hub.accountOf(requester.address)
    const copyDeal = await ok(requester, 'POST', '/v1/tasks', { app: 'copy', dataset, trust: 1, maxPrice: (20n * RLC).toString() })
    const copyDealId = String(copyDeal.dealId)
    const tid = taskId(copyDealId, 0)
    const [during, frozen] = await hub.accountOf(requester.address)
    assert.ok(frozen > frozenBefore && before - during === frozen - frozenBefore, 'the payment is frozen')
    const failedOn = async (p: IexecNode): Promise<boolean> => {
      const rec = await p.execution?.worker.task(tid)
      return rec?.state === 'failed' && rec.errorCode === 'KEY_RELEASE_REFUSED'
    }
    await waitFor(async () => await failedOn(p0) || await failedOn(p1), 90_000, 'a worker refused the key')
    // the owner's log names the rule
    await waitFor(async () => (await readFile(dataDirPaths(owner.dataDir).logs, 'utf8').catch(() => '')).split('\n')
      .some((l) => l.includes('"msg":"key refused"') && l.includes(tid) && l.includes('APP_NOT_ALLOWED')), 10_000, 'the owner logged APP_NOT_ALLOWED for the task')
    assert.notEqual(Number(await hub.taskStatus(copyDealId, 0)), TaskStatus.COMPLETED, 'the copy app did not complete')

    // past the final deadline (anvil time travel), a scheduler claims the task: the requester gets it all back
    const final = Number(((await ok(requester, 'GET', `/v1/deals/${copyDealId}`)).deadlines as { final: number }).final)
    const now = (await chain.provider.getBlock('latest'))!.timestamp
    await chain.provider.send('evm_increaseTime', [final - now + 1])
    await chain.provider.send('evm_mine', [])
    await waitFor(async () => Number(await hub.taskStatus(copyDealId, 0)) === TaskStatus.FAILED, 60_000, 'the task claimed')
    const [after, frozenAfter] = await hub.accountOf(requester.address)
    assert.equal(after, before, 'the requester is refunded in full')
    assert.equal(frozenAfter, frozenBefore)

    // nothing of the plaintext reached the requester: no result, and no worker kept an output holding it
    const noResult = await api(requester, 'GET', `/v1/results/${tid}`)
    assert.notEqual(noResult.status, 200)
    for (const p of s.providers) {
      // a worker that failed once may be asked once more (and be refused again): never computed
      const rec = await p.execution?.worker.task(tid)
      assert.ok(rec === undefined || rec.state === 'failed' || rec.state === 'assigned', `no worker computed the task (${rec?.state ?? 'none'})`)
      assert.equal(rec?.digest, undefined, 'no result digest')
    }
    for (const n of s.all) {
      const log = await readFile(dataDirPaths(n.dataDir).logs, 'utf8').catch(() => '')
      assert.equal(log.includes(MARKER), false, `no plaintext in ${n.dataDir}'s log`)
    }

    // conservation: the hub holds exactly what its accounts and the kitty add up to
    let accounted = await hub.kitty()
    for (const n of s.all) {
      const [balance, locked] = await hub.accountOf(n.address)
      const [stake] = await hub.stakeOf(n.address)
      accounted += balance + locked + stake
    }
    assert.equal(await chain.rlc!.balanceOf(s.chain.hub), accounted, 'RLC conservation')
  })

  it('bad input to a publish changes nothing and gets a code: no choice of apps, an unknown or ambiguous app, a malformed requester, an unknown tag, a bad volume; a new choice (allow/deny) replaces the orders', async () => {
    const s = await startSwarm({ providers: 1, requesters: 1 }, cleanup)
    const [owner] = s.requesters
    const [p0] = s.providers
    await publishApp(p0, 'wordcount')
    const path = join(s.root, 'x.txt')
    await writeFile(path, 'x\n')
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{}, 400, 'DATASET_APPS_REQUIRED'],
      [{ apps: ['wordcount'], anyApp: true }, 400, 'API_BAD_REQUEST'],
      [{ anyApp: 'yes' }, 400, 'API_BAD_REQUEST'],
      [{ apps: [] }, 400, 'API_BAD_REQUEST'],
      [{ apps: ['no-such-app'] }, 404, 'APP_NOT_FOUND'],
      [{ apps: ['0x' + 'ab'.repeat(20)] }, 404, 'APP_NOT_FOUND'],
      [{ apps: ['0x12'] }, 400, 'API_BAD_REQUEST'],
      [{ anyApp: true, requesters: ['0x12'] }, 400, 'API_BAD_REQUEST'],
      [{ anyApp: true, tags: ['region:mars'] }, 400, 'TAG_UNKNOWN'],
      [{ anyApp: true, volume: '-1' }, 400, 'API_BAD_REQUEST'],
      [{ anyApp: true, volume: 0 }, 400, 'API_BAD_REQUEST'],
      [{ anyApp: true, requesters: Array.from({ length: 33 }, (_, i) => '0x' + (i + 1).toString(16).padStart(40, '0')) }, 400, 'API_BAD_REQUEST']
    ]
    for (const [extra, status, code] of cases) {
      const r = await api(owner, 'POST', '/v1/datasets', { path, ...extra })
      assert.equal(r.status, status, JSON.stringify(extra))
      assert.equal((r.body.error as { code: string }).code, code, JSON.stringify(extra))
    }
    // two apps of the same name: a name is not enough to allow one of them
    await publishApp(owner, 'wordcount')
    const ambiguous = await api(owner, 'POST', '/v1/datasets', { path, apps: ['wordcount'] })
    assert.equal(ambiguous.status, 409)
    assert.equal((ambiguous.body.error as { code: string }).code, 'APP_NAME_AMBIGUOUS')
    // nothing was registered, stored or offered
    assert.deepEqual((await ok(owner, 'GET', '/v1/datasets')).datasets, [])
    assert.deepEqual((await ok(owner, 'GET', '/v1/orderbook?type=dataset')).orders, [])

    // app orders: a malformed or unknown dataset, a bad requester or tag
    const added = await ok(p0, 'POST', '/v1/content', { data: (await readFile(app('copy'))).toString('base64') })
    const appCases: Array<[Record<string, unknown>, number, string]> = [
      [{ datasets: ['0x12'] }, 400, 'API_BAD_REQUEST'],
      [{ datasets: ['0x' + 'cd'.repeat(20)] }, 404, 'DATASET_NOT_FOUND'],
      [{ requesters: ['nope'] }, 400, 'API_BAD_REQUEST'],
      [{ tags: ['fast'] }, 400, 'TAG_UNKNOWN']
    ]
    for (const [extra, status, code] of appCases) {
      const r = await api(p0, 'POST', '/v1/apps', { name: 'copy', cid: added.cid, checksum: added.checksum, price: '0', ...extra })
      assert.equal(r.status, status, JSON.stringify(extra))
      assert.equal((r.body.error as { code: string }).code, code, JSON.stringify(extra))
    }
    assert.equal((await p0.market!.appsNamed('copy')).length, 0, 'no app registered')

    // dataset allow | deny: a new choice is new orders, and the old ones cancelled on chain
    const wordcount = String((await p0.market!.appsNamed('wordcount', p0.address))[0].app)
    const open = await ok(owner, 'POST', '/v1/datasets', { path, anyApp: true, price: '0' })
    const dataset = String(open.address)
    const [openHash] = open.orderHashes as string[]
    for (const [body, status, code] of [
      [{}, 400, 'DATASET_APPS_REQUIRED'],
      [{ apps: ['no-such-app'] }, 404, 'APP_NOT_FOUND'],
      [{ anyApp: true, tags: ['nope'] }, 400, 'TAG_UNKNOWN']
    ] as Array<[Record<string, unknown>, number, string]>) {
      const r = await api(owner, 'POST', `/v1/datasets/${dataset}/policy`, body)
      assert.equal(r.status, status, JSON.stringify(body))
      assert.equal((r.body.error as { code: string }).code, code, JSON.stringify(body))
    }
    assert.equal(await owner.market!.hub.consumedOf(openHash), 0n, 'bad input cancelled nothing')
    const notMine = await api(p0, 'POST', `/v1/datasets/${dataset}/policy`, { anyApp: true })
    assert.equal(notMine.status, 403)
    assert.equal((notMine.body.error as { code: string }).code, 'DATASET_NOT_OWNED')
    const narrowed = await ok(owner, 'POST', `/v1/datasets/${dataset}/policy`, { apps: [wordcount] })
    assert.deepEqual((narrowed.cancelled as Array<{ orderHash: string }>).map((c) => c.orderHash), [openHash])
    assert.equal(await owner.market!.hub.consumedOf(openHash), 1_000_000n, 'the open order is cancelled on chain')
    const [fresh] = narrowed.orderHashes as string[]
    await waitFor(async () => {
      const live = ((await ok(owner, 'GET', `/v1/orderbook?type=dataset&dataset=${dataset}`)).orders as Array<{ orderHash: string, order: { apprestrict: string } }>)
      return live.length === 1 && live[0].orderHash === fresh && live[0].order.apprestrict === wordcount
    }, 15_000, 'only the new order, for wordcount, is live')
    const listedAfter = (await ok(owner, 'GET', '/v1/datasets')).datasets as Array<{ address: string, policy: { apps: string[] } }>
    assert.deepEqual(listedAfter.find((d) => d.address === dataset)?.policy.apps, [wordcount])
  })
})
