/**
 * Orders as iexec-sdk has them (issue 22 item 3), on real IexecNodes
 * (libp2p, Helia, level) and a real anvil with the hub; one swarm for the
 * file (one provider, two requesters):
 *
 * - `order publish app|dataset` with every field: signed by the node's
 *   wallet, gossiped into every book with its fields as given; a dataset
 *   order is recorded with its dataset (what the key release reads);
 *   `orderbook` filters by app, dataset, requester and tag, restricted
 *   orders included (strict or not);
 * - `order publish request`: the request order carries the workerpool,
 *   prices, category, trust, params, beneficiary, callback and expiry, and
 *   the node matches it (the deal shows them);
 * - `order unpublish`: cancelled on chain, dropped from every book; a cancel
 *   sent on chain without any gossip is dropped everywhere too (the hub's
 *   OrderCancelled event); `--all` for a dataset;
 * - bad input (unknown app, someone else's app or dataset, malformed
 *   address, zero or negative volume, non-numeric price, expired order,
 *   unknown hash, someone else's hash): a coded error, nothing sent on
 *   chain, no book changed; through the CLI, exit 2;
 * - an expired order is not gossiped and not listed.
 */
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ZERO_ADDRESS, signOrder } from '../../protocols/eip712.js'
import type { AppOrder } from '../../protocols/eip712.js'
import { encodeTags, expiryOfSalt, orderMessage, saltWithExpiry } from '../../protocols/market.js'
import { hubInterface } from '../../node/chain/index.js'
import { runCli, type CliIo } from '../../node/cli/index.js'
import type { IexecNode } from '../../node/node.js'
import { DatasetStore } from '../../node/storage/dataset-store.js'
import { api, ok, startSwarm, waitFor } from './market-helpers.js'
import type { Swarm } from './market-helpers.js'

const app = (name: string): URL => new URL(`../../examples/apps/${name}/${name}.wasm`, import.meta.url)

async function publishApp (node: IexecNode, name: string): Promise<string> {
  const module = await readFile(app(name))
  const added = await ok(node, 'POST', '/v1/content', { data: module.toString('base64') })
  return String((await ok(node, 'POST', '/v1/apps', { name, cid: added.cid, checksum: added.checksum, price: '0' })).address)
}

interface Row { orderHash: string, type: string, order: Record<string, string> }

async function book (node: IexecNode, query: string): Promise<Row[]> {
  return (await ok(node, 'GET', `/v1/orderbook${query}`)).orders as Row[]
}

async function hashesOf (node: IexecNode, query: string): Promise<string[]> {
  return (await book(node, query)).map((o) => o.orderHash).sort()
}

const now = (): number => Math.floor(Date.now() / 1000)

describe('orders: publish with every field, unpublish, filters, bad input (anvil)', function () {
  this.timeout(300_000)
  const cleanup: Array<() => Promise<void>> = []
  let s: Swarm
  let owner: IexecNode
  let other: IexecNode
  let provider: IexecNode
  let wordcount: string
  let copy: string
  let dataset: string

  before(async () => {
    s = await startSwarm({ providers: 1, requesters: 2, market: { biddingWindowMs: 2_000 } }, cleanup)
    ;[owner, other] = s.requesters
    provider = s.providers[0]
    wordcount = await publishApp(owner, 'wordcount')
    copy = await publishApp(other, 'copy')
    const path = join(s.root, 'words.txt')
    await writeFile(path, 'alpha beta gamma\n')
    dataset = String((await ok(owner, 'POST', '/v1/datasets', { path, name: 'words', price: '0', apps: [wordcount] })).address)
  })
  after(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('app and dataset orders with every field reach every book as signed; the orderbook lists them by app, dataset, requester and tag', async () => {
    const expiresAt = now() + 3600
    const a = await ok(owner, 'POST', '/v1/orders/publish', {
      type: 'app', app: 'wordcount', price: '7', volume: '5', tags: ['region:eu'], datasetrestrict: dataset, requesterrestrict: other.address, expiresAt
    })
    const appHash = String(a.orderHash)
    assert.equal(a.expiresAt, String(expiresAt))
    const d = await ok(owner, 'POST', '/v1/orders/publish', {
      type: 'dataset', dataset, price: '3', volume: '2', apprestrict: 'wordcount', requesterrestrict: other.address, workerpoolrestrict: provider.address
    })
    const dataHash = String(d.orderHash)
    // on another node: every field as signed, by the owner's wallet
    await waitFor(async () => (await hashesOf(other, `?type=app&app=${wordcount}`)).includes(appHash) && (await hashesOf(other, `?type=dataset&dataset=${dataset}`)).includes(dataHash), 20_000, 'both orders on the other node')
    const seen = await ok(other, 'GET', `/v1/orders/${appHash}`)
    assert.equal(seen.signer, owner.address)
    const o = seen.order as Record<string, string>
    assert.deepEqual([o.app, o.appprice, o.volume, o.tag, o.datasetrestrict, o.requesterrestrict, o.workerpoolrestrict], [wordcount, '7', '5', encodeTags(['region:eu']), dataset, other.address, ZERO_ADDRESS])
    assert.equal(expiryOfSalt(o.salt), BigInt(expiresAt))
    const dseen = (await ok(other, 'GET', `/v1/orders/${dataHash}`)).order as Record<string, string>
    assert.deepEqual([dseen.dataset, dseen.datasetprice, dseen.volume, dseen.apprestrict, dseen.requesterrestrict, dseen.workerpoolrestrict], [dataset, '3', '2', wordcount, other.address, provider.address])
    // recorded with the dataset: the key release allows what its recorded orders allow
    const record = await new DatasetStore(owner.db).get(dataset)
    assert.ok(record?.orders.some((x) => x.orderHash === dataHash && x.apprestrict === wordcount && x.requesterrestrict === other.address), 'the dataset order is in the dataset\'s record')
    const listed = ((await ok(owner, 'GET', '/v1/datasets')).datasets as Array<{ address: string, orders: string[] }>).find((x) => x.address === dataset)
    assert.ok(listed?.orders.includes(dataHash), '`dataset list` counts it')

    // filters, answered by the other node's HTTP route
    assert.ok((await hashesOf(other, `?app=${wordcount}&strict=true`)).includes(dataHash), 'a dataset order restricted to the app is listed with the app')
    assert.ok(!(await hashesOf(other, `?type=dataset&app=${copy}`)).includes(dataHash), 'not with another app')
    assert.ok((await hashesOf(other, `?type=app&dataset=${dataset}&strict=true`)).includes(appHash), 'an app order restricted to the dataset is listed with the dataset')
    const mine = await hashesOf(other, `?requester=${other.address}&strict=true`)
    assert.ok(mine.includes(appHash) && mine.includes(dataHash), 'both are restricted to this requester')
    assert.ok(!(await hashesOf(other, `?requester=${provider.address}`)).includes(appHash), 'not usable by another requester')
    assert.deepEqual(await hashesOf(other, '?tag=region:eu'), [appHash])
    const bad = await api(other, 'GET', '/v1/orderbook?app=wordcount')
    assert.equal(bad.status, 400)
  })

  it('bad input gets a coded error and changes nothing: no transaction, no order in any book', async () => {
    const copyOrder = (await book(owner, `?type=app&app=${copy}`))[0]
    assert.ok(copyOrder !== undefined, 'the other node\'s app order is in the owner\'s book')
    const nonce = async (n: IexecNode): Promise<number> => await n.market!.chain.provider.getTransactionCount(n.address)
    const before = { nonce: await nonce(owner), owner: await owner.market!.book.size(), other: await other.market!.book.size() }
    const cases: Array<[string, Record<string, unknown>, number, string]> = [
      ['/v1/orders/publish', { type: 'app', app: 'no-such-app' }, 404, 'APP_NOT_FOUND'],
      ['/v1/orders/publish', { type: 'app', app: copy }, 403, 'NOT_ASSET_OWNER'],
      ['/v1/orders/publish', { type: 'app', app: 'wordcount', datasetrestrict: '0x12' }, 400, 'API_BAD_REQUEST'],
      ['/v1/orders/publish', { type: 'app', app: 'wordcount', requesterrestrict: 'bob' }, 400, 'API_BAD_REQUEST'],
      ['/v1/orders/publish', { type: 'app', app: 'wordcount', volume: '0' }, 400, 'API_BAD_REQUEST'],
      ['/v1/orders/publish', { type: 'app', app: 'wordcount', volume: '-1' }, 400, 'API_BAD_REQUEST'],
      ['/v1/orders/publish', { type: 'app', app: 'wordcount', price: 'abc' }, 400, 'API_BAD_REQUEST'],
      ['/v1/orders/publish', { type: 'app', app: 'wordcount', tags: ['region:mars'] }, 400, 'TAG_UNKNOWN'],
      ['/v1/orders/publish', { type: 'app', app: 'wordcount', expiresAt: now() - 10 }, 400, 'ORDER_EXPIRED'],
      ['/v1/orders/publish', { type: 'app', app: 'wordcount', salt: saltWithExpiry(now() - 10) }, 400, 'ORDER_EXPIRED'],
      ['/v1/orders/publish', { type: 'dataset', dataset, price: '1' }, 400, 'DATASET_APPS_REQUIRED'],
      ['/v1/orders/publish', { type: 'dataset', dataset, price: '1', apprestrict: 'no-such-app' }, 404, 'APP_NOT_FOUND'],
      ['/v1/orders/publish', { type: 'request', app: 'wordcount', expiresAt: now() - 10 }, 400, 'ORDER_EXPIRED'],
      ['/v1/orders/publish', { type: 'request', app: 'wordcount', volume: 0 }, 400, 'API_BAD_REQUEST'],
      ['/v1/orders/publish', { type: 'request', app: 'no-such-app' }, 404, 'APP_NOT_FOUND'],
      ['/v1/orders/publish', { type: 'bid' }, 400, 'API_BAD_REQUEST'],
      ['/v1/orders/unpublish', { orderHash: '0x' + '00'.repeat(32) }, 404, 'ORDER_NOT_FOUND'],
      ['/v1/orders/unpublish', { orderHash: copyOrder.orderHash }, 403, 'NOT_ORDER_OWNER'],
      ['/v1/orders/unpublish', { app: copy }, 403, 'NOT_ASSET_OWNER']
    ]
    for (const [path, body, status, code] of cases) {
      const r = await api(owner, 'POST', path, body)
      assert.equal(r.status, status, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`)
      assert.equal((r.body.error as { code: string }).code, code, JSON.stringify(body))
    }
    // someone else's dataset: the other node may not sign its orders
    const theirs = await api(other, 'POST', '/v1/orders/publish', { type: 'dataset', dataset, price: '1', anyApp: true })
    assert.equal(theirs.status, 403)
    assert.equal((theirs.body.error as { code: string }).code, 'NOT_ASSET_OWNER')

    // the CLI says the same with exit 2, and its own checks come first
    let out = ''
    let err = ''
    const io: CliIo = { out: (t) => { out += t }, err: (t) => { err += t } }
    for (const [argv, code] of [
      [['order', 'publish', 'app', '--app', 'no-such-app'], 'APP_NOT_FOUND'],
      [['order', 'unpublish', copyOrder.orderHash], 'NOT_ORDER_OWNER'],
      [['order', 'unpublish', '0x' + '00'.repeat(32)], 'ORDER_NOT_FOUND'],
      [['order', 'publish', 'app', '--app', 'wordcount', '--volume', '0'], 'CLI_BAD_OPTION'],
      [['order', 'publish', 'app', '--app', 'wordcount', '--expiry', String(now() - 5)], 'ORDER_EXPIRED']
    ] as Array<[string[], string]>) {
      err = ''
      const exit = await runCli([...argv, '--data-dir', owner.dataDir, '--json'], io)
      assert.equal(exit, 2, `${argv.join(' ')}: ${err}`)
      assert.equal((JSON.parse(err.trim()) as { error: { code: string } }).error.code, code, argv.join(' '))
    }
    assert.equal(out, '')

    assert.equal(await nonce(owner), before.nonce, 'no transaction sent')
    assert.equal(await owner.market!.book.size(), before.owner, 'the owner\'s book is unchanged')
    assert.equal(await other.market!.book.size(), before.other, 'the other book is unchanged')
    assert.equal(await owner.market!.hub.consumedOf(copyOrder.orderHash), 0n, 'the other node\'s order is not cancelled')
  })

  it('unpublish cancels on chain and every book drops the order; a cancel on chain alone (no gossip) is dropped everywhere too', async () => {
    const pub = await ok(owner, 'POST', '/v1/orders/publish', { type: 'app', app: wordcount, volume: '3' })
    const h = String(pub.orderHash)
    await waitFor(async () => (await hashesOf(other, `?type=app&app=${wordcount}`)).includes(h), 20_000, 'the order on the other node')
    // through the CLI, --json
    let out = ''
    const io: CliIo = { out: (t) => { out += t }, err: () => {} }
    assert.equal(await runCli(['order', 'unpublish', h, '--data-dir', owner.dataDir, '--json'], io), 0)
    assert.equal((JSON.parse(out) as { cancelled: Array<{ orderHash: string }> }).cancelled[0].orderHash, h)
    assert.equal(await owner.market!.hub.consumedOf(h), 3n, 'cancelled on chain: the whole volume is consumed')
    assert.ok(!(await hashesOf(owner, `?type=app&app=${wordcount}`)).includes(h))
    await waitFor(async () => await other.market!.book.dropped(h) === 'cancelled' && await provider.market!.book.get(h) === undefined, 20_000, 'dropped on every node')
    const again = await api(owner, 'POST', '/v1/orders/unpublish', { orderHash: h })
    assert.equal((again.body.error as { code: string }).code, 'ORDER_CLOSED')

    // an order cancelled with the hub's function directly, by the owner's wallet, with no gossip cancel: the event alone drops it
    const signed = await signOrder(owner.market!.signer, owner.market!.domain, 'AppOrder', {
      app: wordcount, appprice: 0n, volume: 4n, tag: encodeTags([]), datasetrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: saltWithExpiry(0)
    })
    const { sign, ...order } = signed
    const { hash: quiet } = await owner.market!.publishOwn('apporder', orderMessage('apporder', owner.market!.domain, order as AppOrder, sign))
    await waitFor(async () => (await other.market!.book.get(quiet)) !== undefined && (await provider.market!.book.get(quiet)) !== undefined, 20_000, 'the quiet order on every node')
    await owner.market!.chain.sender.send(owner.market!.hub.cancelAppOrder.populateTransaction(signed))
    await waitFor(async () => {
      for (const n of s.all) if (await n.market!.book.dropped(quiet) !== 'cancelled') return false
      return true
    }, 30_000, 'every node drops it on OrderCancelled')

    // --all for a dataset: every live order of this node for it
    const d1 = String((await ok(owner, 'POST', '/v1/orders/publish', { type: 'dataset', dataset, price: '0', anyApp: true })).orderHash)
    await waitFor(async () => (await hashesOf(other, `?type=dataset&dataset=${dataset}`)).includes(d1), 20_000, 'the open dataset order on the other node')
    const live = await hashesOf(owner, `?type=dataset&dataset=${dataset}`)
    assert.ok(live.length >= 2)
    const all = await ok(owner, 'POST', '/v1/orders/unpublish', { dataset })
    assert.deepEqual((all.cancelled as Array<{ orderHash: string }>).map((c) => c.orderHash).sort(), live)
    await waitFor(async () => (await hashesOf(other, `?type=dataset&dataset=${dataset}`)).length === 0, 20_000, 'no dataset order left on the other node')
  })

  it('an expired order is neither gossiped nor listed', async () => {
    const m = owner.market!
    // signed with an expiry that has passed, sent by the node's own gossip (the route refuses it)
    const stale = await signOrder(m.signer, m.domain, 'AppOrder', {
      app: wordcount, appprice: 0n, volume: 1n, tag: encodeTags([]), datasetrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: saltWithExpiry(now() - 60)
    })
    const { sign: s1, ...o1 } = stale
    const { hash: staleHash } = await m.publishOwn('apporder', orderMessage('apporder', m.domain, o1 as AppOrder, s1))
    // then one that expires soon: it arrives, then leaves every listing
    const soonAt = now() + 20
    const soon = String((await ok(owner, 'POST', '/v1/orders/publish', { type: 'app', app: wordcount, volume: '1', expiresAt: soonAt })).orderHash)
    await waitFor(async () => (await other.market!.book.get(soon)) !== undefined, 15_000, 'the short-lived order on the other node')
    assert.equal(await other.market!.book.get(staleHash), undefined, 'the expired one was refused')
    assert.equal(await owner.market!.book.get(staleHash), undefined, 'not even in its signer\'s book')
    assert.ok((await hashesOf(other, `?type=app&app=${wordcount}`)).includes(soon), 'listed while it lives')
    await waitFor(async () => !(await hashesOf(other, `?type=app&app=${wordcount}`)).includes(soon), 60_000, 'the order leaves the listing at its expiry')
    assert.ok(now() >= soonAt, 'not before its expiry')
  })

  it('a request order with every field: the node matches it and the deal carries its fields', async () => {
    const callback = '0x' + 'cb'.repeat(20)
    const expiresAt = now() + 1800
    const r = await ok(owner, 'POST', '/v1/orders/publish', {
      type: 'request', app: 'wordcount', workerpool: provider.address, appmaxprice: '9', workerpoolmaxprice: '1000000000', volume: 1, category: 0, trust: 1,
      args: 'one two three', beneficiary: other.address, callback, expiresAt, biddingWindowMs: 2_000
    })
    assert.match(String(r.dealId), /^0x[0-9a-f]{64}$/)
    assert.deepEqual(r.workers, [provider.address])
    assert.equal(r.expiresAt, String(expiresAt))
    const logs = await owner.market!.hub.queryFilter(owner.market!.hub.filters.DealCreated(String(r.dealId)), 0)
    const parsed = hubInterface().parseLog({ topics: [...logs[0].topics], data: logs[0].data })
    const info = parsed?.args.info as { beneficiary: string, callback: string, app: string, trust: bigint, category: bigint, params: string, appPrice: bigint, requestHash: string }
    assert.equal(info.beneficiary, other.address)
    assert.equal(info.callback.toLowerCase(), callback)
    assert.equal(info.app, wordcount)
    assert.equal(info.trust, 1n)
    assert.equal(info.category, 0n)
    assert.equal((JSON.parse(info.params) as { iexec_args: string }).iexec_args, 'one two three')
    assert.equal(info.requestHash.toLowerCase(), String(r.orderHash))

    // an app max price below the app order's price: refused before anything is signed, frozen or gossiped
    await ok(other, 'POST', '/v1/orders/unpublish', { app: copy })
    let out = ''
    const io: CliIo = { out: (t) => { out += t }, err: () => {} }
    assert.equal(await runCli(['order', 'publish', 'app', '--app', 'copy', '--price', '5', '--data-dir', other.dataDir], io), 0)
    assert.match(out, /^app order 0x[0-9a-f]{64} signed by this node and gossiped\n/)
    assert.match(out, /appprice +0\.000000005 RLC \(5 nRLC\)/)
    await waitFor(async () => (await book(owner, `?type=app&app=${copy}`)).length === 1, 20_000, 'the priced copy order at the owner')
    const nonce = await owner.market!.chain.provider.getTransactionCount(owner.address)
    const requests = await hashesOf(owner, '?type=request')
    const low = await api(owner, 'POST', '/v1/orders/publish', { type: 'request', app: copy, appmaxprice: '4', expiresAt })
    assert.equal(low.status, 400, JSON.stringify(low.body))
    assert.equal((low.body.error as { code: string }).code, 'MARKET_BAD_ARGUMENT')
    assert.equal(await owner.market!.chain.provider.getTransactionCount(owner.address), nonce)
    // the matched request above may leave the book meanwhile (its DealCreated): nothing new may come in
    const after = await hashesOf(owner, '?type=request')
    assert.deepEqual(after.filter((h) => !requests.includes(h)), [], 'no request order signed')
  })
})
