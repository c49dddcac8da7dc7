import assert from 'node:assert/strict'
import { hexlify, randomBytes } from 'ethers'
import type { Wallet } from 'ethers'
import { resultHash, resultSeal } from '../../protocols/eip712.js'
import {
  DatasetKey, MemoryKeyStore, MemoryNonceRegistry, buildKeyReleaseRequest, createHubKeyReleaseView, decideKeyRelease,
  generateContentKey, openReleasedKey
} from '../../node/storage/index.js'
import type { DatasetOrderRules, KeyReleaseOwnerContext } from '../../node/storage/index.js'
import { ZERO_ADDRESS, ZERO_BYTES32 } from '../../protocols/eip712.js'
import { authorize, makeOrders, match, registerAssets, send, setupFixture } from '../contracts/fixture.js'
import type { DealResult, Fixture } from '../contracts/fixture.js'

describe('storage: key release decided against the real hub on anvil', function () {
  this.timeout(120_000)
  let f: Fixture | undefined
  let dataset: string
  let dealA: DealResult // uses the dataset, trust 3, workers nodes[0..2]
  let dealB: DealResult // no dataset, worker nodes[3]
  let ctx: KeyReleaseOwnerContext
  const key = generateContentKey()
  let app: string
  const open: DatasetOrderRules = { apprestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, tag: ZERO_BYTES32 }
  let rules: DatasetOrderRules[] = [open]

  before(async () => {
    f = await setupFixture({ nodes: 5 })
    const assets = await registerAssets(f)
    dataset = assets.dataset
    app = assets.app
    dealA = await match(f, await makeOrders(f, assets, { trust: 3n, workers: f.nodes.slice(0, 3) }))
    dealB = await match(f, await makeOrders(f, assets, { withDataset: false, workers: [f.nodes[3]] }))
    const keyStore = new MemoryKeyStore()
    await keyStore.put(dataset, new DatasetKey(key))
    ctx = { domain: f.domain, now: Date.now, seenNonces: new MemoryNonceRegistry(), chain: createHubKeyReleaseView(f.hub), keyStore, datasetOrders: async () => rules }
  })
  after(async () => { await f?.chain.stop() })

  function fx (): Fixture {
    if (f === undefined) throw new Error('fixture not set up')
    return f
  }

  async function ask (wallet: Wallet, deal: DealResult, opts: { authorization?: string, dataset?: string } = {}): Promise<{ code?: string, key?: Uint8Array }> {
    const request = await buildKeyReleaseRequest(wallet, fx().domain, { dataset: opts.dataset ?? dataset, dealid: deal.dealid, idx: 0, authorization: opts.authorization })
    const d = await decideKeyRelease(request, ctx)
    if (!d.response.ok) return { code: d.response.code }
    return { key: openReleasedKey(d.response, request, wallet.signingKey) }
  }

  it('a worker of the deal authorized by the elected scheduler gets the key', async () => {
    const w = fx().nodes[0]
    const { sign } = await authorize(fx(), dealA.scheduler, w.address, dealA.dealid, 0)
    const got = await ask(w, dealA, { authorization: sign })
    assert.equal(got.code, undefined)
    assert.deepEqual(got.key, key)
  })

  it('a worker with a contribution on chain and no authorization in hand gets the key', async () => {
    const w = fx().nodes[1]
    assert.equal((await ask(w, dealA)).code, 'NOT_A_WORKER', 'before contributing, without an authorization')
    await send(fx().hub.connect(dealA.scheduler).initialize(dealA.dealid, 0))
    const { taskid, sign } = await authorize(fx(), dealA.scheduler, w.address, dealA.dealid, 0)
    const digest = hexlify(randomBytes(32))
    await send(fx().hub.connect(w).contribute(taskid, resultHash(taskid, digest), resultSeal(w.address, taskid, digest), sign))
    assert.deepEqual((await ask(w, dealA)).key, key)
  })

  it('a node that is not a worker of the deal is refused, even holding a real authorization for someone else', async () => {
    const { sign } = await authorize(fx(), dealA.scheduler, fx().nodes[0].address, dealA.dealid, 0)
    assert.equal((await ask(fx().outsider, dealA, { authorization: sign })).code, 'NOT_A_WORKER')
    assert.equal((await ask(fx().nodes[4], dealA)).code, 'NOT_A_WORKER')
  })

  it('an authorized worker of another deal is refused', async () => {
    const w = fx().nodes[3]
    const { sign } = await authorize(fx(), dealB.scheduler, w.address, dealB.dealid, 0)
    // its own task: deal B does not use the dataset
    assert.equal((await ask(w, dealB, { authorization: sign })).code, 'WRONG_DATASET')
    // a task of deal A: not a worker there
    assert.equal((await ask(w, dealA, { authorization: sign })).code, 'NOT_A_WORKER')
  })

  it('an authorization signed by a deal worker instead of the elected scheduler is refused', async () => {
    const w = fx().nodes[2]
    const signer = [fx().nodes[0], fx().nodes[1], fx().nodes[2]].find((n) => n.address !== dealA.scheduler.address) as Wallet
    const { sign } = await authorize(fx(), signer, w.address, dealA.dealid, 0)
    assert.equal((await ask(w, dealA, { authorization: sign })).code, 'NOT_A_WORKER')
  })

  it('the deal\'s app, requester and tag as the hub recorded them are checked against the owner\'s orders', async () => {
    const w = fx().nodes[0]
    const { sign } = await authorize(fx(), dealA.scheduler, w.address, dealA.dealid, 0)
    try {
      rules = [{ ...open, apprestrict: fx().outsider.address }]
      assert.equal((await ask(w, dealA, { authorization: sign })).code, 'APP_NOT_ALLOWED')
      rules = [{ ...open, apprestrict: app, requesterrestrict: fx().outsider.address }]
      assert.equal((await ask(w, dealA, { authorization: sign })).code, 'REQUESTER_NOT_ALLOWED')
      // the request's tag is zero: any required bit is one the deal did not accept
      rules = [{ ...open, apprestrict: app, requesterrestrict: fx().requester.address, tag: '0x' + '00'.repeat(31) + '01' }]
      assert.equal((await ask(w, dealA, { authorization: sign })).code, 'TAG_NOT_ALLOWED')
      rules = [{ ...open, apprestrict: app, requesterrestrict: fx().requester.address }]
      assert.deepEqual((await ask(w, dealA, { authorization: sign })).key, key)
    } finally {
      rules = [open]
    }
  })

  it('a deal id that does not exist is UNKNOWN_TASK', async () => {
    const ghost = { ...dealA, dealid: hexlify(randomBytes(32)) }
    assert.equal((await ask(fx().nodes[0], ghost)).code, 'UNKNOWN_TASK')
  })
})
