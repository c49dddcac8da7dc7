import assert from 'node:assert/strict'
import { Wallet, hexlify, randomBytes, getBytes } from 'ethers'
import { hubDomain, signAuthorization, taskId } from '../../../protocols/eip712.js'
import {
  decodeKeyReleaseRequest, decodeKeyReleaseResponse, encodeKeyReleaseRequest, encodeKeyReleaseResponse, keyReleaseContext
} from '../../../protocols/key-release.js'
import type { KeyReleaseRequest } from '../../../protocols/key-release.js'
import { generateContentKey } from '../../../node/storage/chunked-cipher.js'
import { eciesDecrypt } from '../../../node/storage/ecies.js'
import { DatasetKey, MemoryKeyStore } from '../../../node/storage/key-store.js'
import {
  MemoryNonceRegistry, buildKeyReleaseRequest, decideKeyRelease, openReleasedKey
} from '../../../node/storage/key-release.js'
import type { DatasetOrderRules, DealView, KeyReleaseChainView, KeyReleaseOwnerContext } from '../../../node/storage/key-release.js'
import { isIexecError } from '../../../node/common/errors.js'

const domain = hubDomain(31337, Wallet.createRandom().address)
const addr = (): string => Wallet.createRandom().address
const newWallet = (): Wallet => new Wallet(hexlify(randomBytes(32)))
const ZERO = '0x0000000000000000000000000000000000000000'
const ZERO32 = '0x' + '00'.repeat(32)
const open: DatasetOrderRules = { apprestrict: ZERO, requesterrestrict: ZERO, workerpoolrestrict: ZERO, tag: ZERO32 }

describe('storage: key release decision', () => {
  const scheduler = newWallet()
  const workerA = newWallet() // worker of deal A (uses dataset A)
  const workerA2 = newWallet() // also in deal A, never authorized for task A
  const workerB = newWallet() // worker of deal B (uses dataset B)
  const outsider = newWallet()
  const datasetA = addr()
  const datasetB = addr()
  const dealA = hexlify(randomBytes(32))
  const dealB = hexlify(randomBytes(32))
  const taskA = taskId(dealA, 0)
  const taskB = taskId(dealB, 0)
  // deal A has 2 tasks, deal B 1
  const appA = addr()
  const requesterA = addr()
  // deal A's request accepts tag bits 0x10000 (region:eu) and 0x1 (tee)
  const tagA = '0x' + (0x10001).toString(16).padStart(64, '0')
  const deals = new Map<string, DealView & { workers: string[] }>([
    [dealA, { dataset: datasetA, workers: [workerA.address, workerA2.address], scheduler: scheduler.address, volume: 2n, app: appA, requester: requesterA, tag: tagA }],
    [dealB, { dataset: datasetB, workers: [workerB.address], scheduler: scheduler.address, volume: 1n, app: addr(), requester: addr(), tag: ZERO32 }]
  ])
  // the owner's signed orders per dataset (lowercase address)
  let orders = new Map<string, DatasetOrderRules[]>()
  const contributions = new Set<string>()
  const chain: KeyReleaseChainView = {
    deal: async (d) => deals.get(d),
    isDealWorker: async (d, w) => deals.get(d)?.workers.includes(w) ?? false,
    hasContributed: async (t, w) => contributions.has(`${t}:${w.toLowerCase()}`)
  }
  const dealOf = new Map([[taskA, dealA], [taskB, dealB]])
  const keyA = generateContentKey()
  const nowMs = 1_800_000_000_000
  let ctx: KeyReleaseOwnerContext

  beforeEach(async () => {
    const keyStore = new MemoryKeyStore()
    await keyStore.put(datasetA, new DatasetKey(keyA))
    orders = new Map([[datasetA.toLowerCase(), [open]], [datasetB.toLowerCase(), [open]]])
    ctx = { domain, now: () => nowMs, seenNonces: new MemoryNonceRegistry(), chain, keyStore, datasetOrders: async (d) => orders.get(d.toLowerCase()) }
    contributions.clear()
  })

  async function req (wallet: Wallet, dataset: string, taskid: string, opts: { auth?: string, nowMs?: number } = {}): Promise<KeyReleaseRequest> {
    const dealid = dealOf.get(taskid) ?? hexlify(randomBytes(32))
    return await buildKeyReleaseRequest(wallet, domain, { dataset, dealid, idx: 0, authorization: opts.auth, nowMs: opts.nowMs ?? nowMs })
  }
  const auth = async (worker: Wallet, taskid: string, by: Wallet = scheduler): Promise<string> => await signAuthorization(by, domain, { worker: worker.address, taskid })

  async function refusedWith (request: KeyReleaseRequest, code: string): Promise<void> {
    const d = await decideKeyRelease(request, ctx)
    assert.equal(d.response.ok, false, `expected a refusal ${code}`)
    assert.equal(d.refused, code)
    if (!d.response.ok) assert.equal(d.response.code, code)
  }

  it('an authorized worker (scheduler authorization) gets the key and only it can open it', async () => {
    const request = await req(workerA, datasetA, taskA, { auth: await auth(workerA, taskA) })
    const d = await decideKeyRelease(request, ctx)
    assert.equal(d.refused, undefined)
    assert.equal(d.response.ok, true)
    assert.deepEqual(openReleasedKey(d.response, request, workerA.signingKey), keyA)
    assert.throws(() => openReleasedKey(d.response, request, outsider.signingKey), (e: unknown) => isIexecError(e, 'STORAGE_NOT_RECIPIENT'))
    // the envelope is bound to this request's nonce: it cannot answer another request
    if (d.response.ok) {
      const other = { ...request, nonce: hexlify(randomBytes(32)) }
      assert.throws(() => eciesDecrypt(workerA.signingKey, getBytes(d.response.ok ? d.response.encryptedKey : '0x'), keyReleaseContext(other)), (e: unknown) => isIexecError(e, 'STORAGE_NOT_RECIPIENT'))
    }
    // the key never appears in the response
    assert.equal(JSON.stringify(d.response).includes(Buffer.from(keyA).toString('hex')), false)
  })

  it('an authorized worker (contribution on chain, no authorization) gets the key', async () => {
    contributions.add(`${taskA}:${workerA.address.toLowerCase()}`)
    const request = await req(workerA, datasetA, taskA)
    const d = await decideKeyRelease(request, ctx)
    assert.deepEqual(openReleasedKey(d.response, request, workerA.signingKey), keyA)
  })

  it('a node that is not a worker of the deal is refused NOT_A_WORKER, even with a forged authorization', async () => {
    await refusedWith(await req(outsider, datasetA, taskA), 'NOT_A_WORKER')
    await refusedWith(await req(outsider, datasetA, taskA, { auth: await auth(outsider, taskA, outsider) }), 'NOT_A_WORKER')
  })

  it('a deal worker not authorized for the task is refused NOT_A_WORKER', async () => {
    await refusedWith(await req(workerA2, datasetA, taskA), 'NOT_A_WORKER')
    // an authorization signed by someone other than the deal's scheduler
    await refusedWith(await req(workerA2, datasetA, taskA, { auth: await auth(workerA2, taskA, workerA) }), 'NOT_A_WORKER')
    // another worker's authorization does not transfer
    await refusedWith(await req(workerA2, datasetA, taskA, { auth: await auth(workerA, taskA) }), 'NOT_A_WORKER')
    // an authorization for another task does not transfer
    await refusedWith(await req(workerA2, datasetA, taskA, { auth: await signAuthorization(scheduler, domain, { worker: workerA2.address, taskid: taskB }) }), 'NOT_A_WORKER')
  })

  it('an authorized worker of another deal is refused', async () => {
    // with its own task: that deal does not use dataset A
    await refusedWith(await req(workerB, datasetA, taskB, { auth: await auth(workerB, taskB) }), 'WRONG_DATASET')
    // with a task of deal A: it is not a worker there
    await refusedWith(await req(workerB, datasetA, taskA, { auth: await auth(workerB, taskB) }), 'NOT_A_WORKER')
  })

  it('a replayed nonce is refused REPLAYED_NONCE', async () => {
    const request = await req(workerA, datasetA, taskA, { auth: await auth(workerA, taskA) })
    assert.equal((await decideKeyRelease(request, ctx)).response.ok, true)
    await refusedWith(request, 'REPLAYED_NONCE')
  })

  it('a bad signature is refused BAD_SIGNATURE (other signer, altered field, garbage)', async () => {
    const byOutsider = await req(outsider, datasetA, taskA)
    await refusedWith({ ...byOutsider, worker: workerA.address, authorization: await auth(workerA, taskA) }, 'BAD_SIGNATURE')
    const good = await req(workerA, datasetA, taskA, { auth: await auth(workerA, taskA) })
    await refusedWith({ ...good, nonce: hexlify(randomBytes(32)) }, 'BAD_SIGNATURE')
    await refusedWith({ ...good, signature: '0x' + '11'.repeat(65) }, 'BAD_SIGNATURE')
    // a signature under another hub's domain
    const otherDomain = hubDomain(31337, addr())
    const foreign = await buildKeyReleaseRequest(workerA, otherDomain, { dataset: datasetA, dealid: dealA, idx: 0, nowMs })
    await refusedWith(foreign, 'BAD_SIGNATURE')
  })

  it('a high-s or malformed signature is refused BAD_SIGNATURE (the strict recovery orders go through)', async () => {
    const good = await req(workerA, datasetA, taskA, { auth: await auth(workerA, taskA) })
    const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
    const sig = good.signature
    const highS = sig.slice(0, 66) + (N - BigInt('0x' + sig.slice(66, 130))).toString(16).padStart(64, '0') + (sig.slice(-2) === '1b' ? '1c' : '1b')
    const vAsRecoveryId = sig.slice(0, -2) + (parseInt(sig.slice(-2), 16) - 27).toString(16).padStart(2, '0')
    await refusedWith({ ...good, signature: highS }, 'BAD_SIGNATURE')
    await refusedWith({ ...good, signature: vAsRecoveryId }, 'BAD_SIGNATURE')
    await refusedWith({ ...good, signature: sig.slice(0, -2) }, 'BAD_SIGNATURE')
  })

  it('an old or future timestamp is refused STALE_REQUEST', async () => {
    await refusedWith(await req(workerA, datasetA, taskA, { auth: await auth(workerA, taskA), nowMs: nowMs - 10 * 60_000 }), 'STALE_REQUEST')
    await refusedWith(await req(workerA, datasetA, taskA, { auth: await auth(workerA, taskA), nowMs: nowMs + 10 * 60_000 }), 'STALE_REQUEST')
    const slightlyOld = await req(workerA, datasetA, taskA, { auth: await auth(workerA, taskA), nowMs: nowMs - 60_000 })
    assert.equal((await decideKeyRelease(slightlyOld, ctx)).response.ok, true)
  })

  it('an unknown task, a dataset without a key, a failing chain: UNKNOWN_TASK, UNKNOWN_DATASET, INTERNAL_ERROR', async () => {
    // a deal that does not exist
    await refusedWith(await req(workerA, datasetA, hexlify(randomBytes(32))), 'UNKNOWN_TASK')
    // a task index past the deal's volume (deal A has 2 tasks)
    const auth2 = await signAuthorization(scheduler, domain, { worker: workerA.address, taskid: taskId(dealA, 1) })
    assert.equal((await decideKeyRelease(await buildKeyReleaseRequest(workerA, domain, { dataset: datasetA, dealid: dealA, idx: 1, authorization: auth2, nowMs }), ctx)).response.ok, true)
    await refusedWith(await buildKeyReleaseRequest(workerA, domain, { dataset: datasetA, dealid: dealA, idx: 2, nowMs }), 'UNKNOWN_TASK')
    // dealid/idx hints that do not hash to the signed taskid
    const good = await req(workerA, datasetA, taskA, { auth: await auth(workerA, taskA) })
    await refusedWith({ ...good, idx: 1 }, 'UNKNOWN_TASK')
    await refusedWith({ ...good, dealid: dealB }, 'UNKNOWN_TASK')
    await refusedWith(await req(workerB, datasetB, taskB, { auth: await auth(workerB, taskB) }), 'UNKNOWN_DATASET')
    const broken = { ...ctx, chain: { ...chain, deal: async (): Promise<DealView> => { throw new Error('rpc down') } } }
    const d = await decideKeyRelease(await req(workerA, datasetA, taskA), broken)
    assert.equal(d.refused, 'INTERNAL_ERROR')
    const badStore = { ...ctx, keyStore: { ...ctx.keyStore, get: async (): Promise<DatasetKey> => { throw new Error('EIO') } } }
    const d2 = await decideKeyRelease(await req(workerA, datasetA, taskA, { auth: await auth(workerA, taskA) }), badStore)
    assert.equal(d2.refused, 'INTERNAL_ERROR')
  })

  it('the computation must be one the owner allowed: its app, requester, tag and worker against the orders it signed, the rule named', async () => {
    const ask = async (): Promise<KeyReleaseRequest> => await req(workerA, datasetA, taskA, { auth: await auth(workerA, taskA) })
    const set = (...rules: Array<Partial<DatasetOrderRules>>): void => { orders.set(datasetA.toLowerCase(), rules.map((r) => ({ ...open, ...r }))) }
    // an order for another app only: the deal's app is refused, whatever else matches
    set({ apprestrict: addr() })
    await refusedWith(await ask(), 'APP_NOT_ALLOWED')
    // one order per allowed app: the deal's app among them is enough
    set({ apprestrict: addr() }, { apprestrict: appA })
    assert.equal((await decideKeyRelease(await ask(), ctx)).response.ok, true)
    // the app allowed, for another requester only
    set({ apprestrict: appA, requesterrestrict: addr() })
    await refusedWith(await ask(), 'REQUESTER_NOT_ALLOWED')
    set({ apprestrict: appA, requesterrestrict: requesterA.toLowerCase() })
    assert.equal((await decideKeyRelease(await ask(), ctx)).response.ok, true, 'addresses compare case-insensitively')
    // a tag the deal did not accept (gpu, bit 8), then one it did (region:eu)
    set({ apprestrict: appA, tag: '0x' + (0x100).toString(16).padStart(64, '0') })
    await refusedWith(await ask(), 'TAG_NOT_ALLOWED')
    set({ apprestrict: appA, tag: '0x' + (0x10000).toString(16).padStart(64, '0') })
    assert.equal((await decideKeyRelease(await ask(), ctx)).response.ok, true)
    // restricted to another worker
    set({ workerpoolrestrict: addr() })
    await refusedWith(await ask(), 'WORKER_NOT_ALLOWED')
    // no order at all (none recorded, or an empty list), and a store that fails
    orders.delete(datasetA.toLowerCase())
    await refusedWith(await ask(), 'NO_DATASET_ORDER')
    set()
    orders.set(datasetA.toLowerCase(), [])
    await refusedWith(await ask(), 'NO_DATASET_ORDER')
    const failing = { ...ctx, datasetOrders: async (): Promise<DatasetOrderRules[]> => { throw new Error('EIO') } }
    assert.equal((await decideKeyRelease(await ask(), failing)).refused, 'INTERNAL_ERROR')
    // the rules are checked after the worker's authorization: an outsider learns nothing of them
    set({ apprestrict: addr() })
    await refusedWith(await req(outsider, datasetA, taskA), 'NOT_A_WORKER')
  })

  it('openReleasedKey turns a refusal into KEY_RELEASE_REFUSED with the owner\'s code', async () => {
    const request = await req(outsider, datasetA, taskA)
    const d = await decideKeyRelease(request, ctx)
    assert.throws(() => openReleasedKey(d.response, request, outsider.signingKey), (e: unknown) => isIexecError(e, 'KEY_RELEASE_REFUSED') && e.details?.code === 'NOT_A_WORKER')
  })

  it('the nonce registry forgets expired nonces and stays bounded', () => {
    const reg = new MemoryNonceRegistry(3)
    assert.equal(reg.remember('0xa', '0x1', 2000, 1000), true)
    assert.equal(reg.remember('0xa', '0x1', 2000, 1500), false)
    assert.equal(reg.remember('0xb', '0x1', 2000, 1500), true, 'nonces are per worker')
    assert.equal(reg.remember('0xa', '0x1', 5000, 2500), true, 'expired nonce is forgotten')
    for (let i = 0; i < 10; i++) reg.remember('0xc', `0x${i}`, 10_000, 3000)
    assert.ok(reg.size <= 3)
  })
})

describe('protocols: key-release wire format', () => {
  it('round-trips requests and responses; rejects malformed ones with KEY_RELEASE_BAD_MESSAGE', async () => {
    const w = Wallet.createRandom()
    const r = await buildKeyReleaseRequest(w, domain, { dataset: addr(), dealid: hexlify(randomBytes(32)), idx: 3, authorization: '0x' + '22'.repeat(65) })
    assert.deepEqual(decodeKeyReleaseRequest(encodeKeyReleaseRequest(r)), r)
    const ok = { ok: true as const, encryptedKey: '0x1234' }
    assert.deepEqual(decodeKeyReleaseResponse(encodeKeyReleaseResponse(ok)), ok)
    const no = { ok: false as const, code: 'NOT_A_WORKER' as const, reason: 'x' }
    assert.deepEqual(decodeKeyReleaseResponse(encodeKeyReleaseResponse(no)), no)
    const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v))
    const isBad = (e: unknown): boolean => isIexecError(e, 'KEY_RELEASE_BAD_MESSAGE')
    for (const bad of [
      { ...r, dataset: 'nope' }, { ...r, worker: 1 }, { ...r, taskid: '0x12' }, { ...r, nonce: undefined },
      { ...r, timestamp: -1 }, { ...r, timestamp: 1.5 }, { ...r, idx: -1 }, { ...r, dealid: '0x00' }, { ...r, signature: '0x00' }, { ...r, authorization: 'x' }, [r], null
    ]) assert.throws(() => decodeKeyReleaseRequest(enc(bad)), isBad)
    assert.throws(() => decodeKeyReleaseRequest(new Uint8Array([0xff, 0xfe])), isBad)
    assert.throws(() => decodeKeyReleaseRequest(new Uint8Array(20_000).fill(0x20)), isBad)
    assert.throws(() => decodeKeyReleaseResponse(enc({ ok: false, code: 'SOMETHING', reason: '' })), isBad)
    assert.throws(() => decodeKeyReleaseResponse(enc({ ok: 'yes' })), isBad)
    assert.throws(() => decodeKeyReleaseResponse(enc({ ok: true, encryptedKey: 'zz' })), isBad)
  })
})
