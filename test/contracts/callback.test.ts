// EIP-1154 callbacks at finalize: the data the consensus covers reaches the
// request's callback contract with a bounded gas, and a callback that reverts
// or burns its gas blocks neither finalization nor payment.
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { ContractFactory, Contract, keccak256, toUtf8Bytes, hexlify, type TransactionReceipt } from 'ethers'
import { compileSolidity, type CompiledContract } from '../../contracts-abi/compile.js'
import { TaskStatus } from '../../contracts-abi/index.js'
import { resultHash, resultSeal, taskId, ZERO_ADDRESS } from '../../protocols/eip712.js'
import {
  setupFixture, snapshot, revertTo, send, registerAssets, makeOrders, match, authorize, expectRevert, revertName,
  RLC_UNIT, type Fixture, type AppSetup
} from './fixture.js'

const DEFAULT_CALLBACK_GAS = 200_000n
// a CIDv1 (base32, sha2-256): longer than one storage slot
const CID = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'

describe('hub: EIP-1154 callbacks', function () {
  // solc-js compiles the test contracts in `before`: seconds on a quiet machine, far more on a loaded one
  this.timeout(180_000)
  let f: Fixture
  let assets: AppSetup
  let snap: string
  let compiled: Record<string, CompiledContract>

  before(async () => {
    compiled = compileSolidity([fileURLToPath(new URL('./solidity/CallbackTargets.sol', import.meta.url))])
    f = await setupFixture({ nodes: 4 })
    assets = await registerAssets(f)
  })
  after(async () => { await f?.chain.stop() })
  beforeEach(async () => { snap = await snapshot(f) })
  afterEach(async () => { await revertTo(f, snap) })

  async function deploy (name: string): Promise<Contract> {
    const c = compiled[name]
    const contract = await new ContractFactory(c.abi as never, c.bytecode, f.admin).deploy()
    await contract.waitForDeployment()
    return contract as Contract
  }

  function callbackEvent (r: TransactionReceipt): { taskid: string, callback: string, success: boolean } | undefined {
    for (const l of r.logs) {
      const e = f.hub.interface.parseLog(l)
      if (e?.name === 'CallbackCalled') return { taskid: e.args.taskid, callback: e.args.callback, success: e.args.success }
    }
    return undefined
  }

  /** a trust-1 deal with `callback`, matched; its worker, scheduler and task 0's authorization */
  async function trust1Deal (callback: string): Promise<{ dealid: string, taskid: string, sign: string, worker: typeof f.nodes[0], scheduler: typeof f.nodes[0] }> {
    const worker = f.nodes[0]
    const d = await match(f, await makeOrders(f, assets, { workers: [worker], callback, withDataset: false }))
    const { taskid, sign } = await authorize(f, d.scheduler, worker.address, d.dealid, 0)
    return { dealid: d.dealid, taskid, sign, worker, scheduler: d.scheduler }
  }

  it('trust 1: contributeAndFinalize passes the callback data to receiveResult, once, from the hub', async () => {
    const cb = await deploy('RecordingCallback')
    const cbAddress = await cb.getAddress()
    const d = await trust1Deal(cbAddress)
    assert.equal(await f.hub.callbackOf(d.dealid), cbAddress)
    const data = hexlify(toUtf8Bytes('primes below 1000: 168'))
    assert.equal(await f.hub.resultCidOf(d.taskid), '')
    const r = await send(f.hub.connect(d.worker).contributeAndFinalize(d.dealid, 0, keccak256(data), CID, d.sign, data))
    assert.deepEqual(callbackEvent(r), { taskid: d.taskid, callback: cbAddress, success: true })
    assert.equal(await cb.lastTask(), d.taskid)
    assert.equal(await cb.lastData(), data)
    assert.equal(await cb.lastCaller(), f.hubAddress)
    assert.equal(await cb.calls(), 1n)
    assert.equal(await f.hub.taskStatus(d.dealid, 0), BigInt(TaskStatus.COMPLETED))
    // the results CID is on chain for a callback deal
    assert.equal(await f.hub.resultCidOf(d.taskid), CID)
  })

  it('the callback reads the task\'s results CID from the hub (resultCidOf), already stored', async () => {
    const cb = await deploy('CidReadingCallback')
    const d = await trust1Deal(await cb.getAddress())
    const data = hexlify(toUtf8Bytes('r'))
    const r = await send(f.hub.connect(d.worker).contributeAndFinalize(d.dealid, 0, keccak256(data), CID, d.sign, data))
    assert.equal(callbackEvent(r)?.success, true)
    assert.equal(await cb.cidSeen(), CID)
  })

  it('callback data that is not what the consensus covers is refused (trust-1 and finalize paths)', async () => {
    const cb = await deploy('RecordingCallback')
    const d = await trust1Deal(await cb.getAddress())
    const data = hexlify(toUtf8Bytes('42'))
    // the digest commits to other bytes: the hub refuses to pass these
    await expectRevert(f.hub.connect(d.worker).contributeAndFinalize(d.dealid, 0, keccak256(toUtf8Bytes('43')), 'c', d.sign, data), 'BadCallbackData')
    // a digest that is not keccak256 of any data given (no callback-data in computed.json): refused too
    await expectRevert(f.hub.connect(d.worker).contributeAndFinalize(d.dealid, 0, keccak256(toUtf8Bytes('a file')), 'c', d.sign, '0x'), 'BadCallbackData')

    // the long path: initialize, contribute, reveal, then finalize checks the data against the consensus
    const d2 = await match(f, await makeOrders(f, assets, { workers: [f.nodes[1]], callback: await cb.getAddress(), withDataset: false }))
    const taskid = taskId(d2.dealid, 0)
    await send(f.hub.connect(d2.scheduler).initialize(d2.dealid, 0))
    const w = f.nodes[1]
    const digest = keccak256(data)
    const { sign } = await authorize(f, d2.scheduler, w.address, d2.dealid, 0)
    await send(f.hub.connect(w).contribute(taskid, resultHash(taskid, digest), resultSeal(w.address, taskid, digest), sign))
    await send(f.hub.connect(w).reveal(taskid, digest))
    await expectRevert(f.hub.connect(d2.scheduler).finalize(taskid, CID, hexlify(toUtf8Bytes('41'))), 'BadCallbackData')
    // a results "CID" longer than any CID is refused: a callback reading it would spend its gas on it
    await expectRevert(f.hub.connect(d2.scheduler).finalize(taskid, 'b'.repeat(129), data), 'ResultCidTooLong')
    assert.equal(await f.hub.resultCidOf(taskid), '')
    const r = await send(f.hub.connect(d2.scheduler).finalize(taskid, CID, data))
    assert.equal(callbackEvent(r)?.success, true)
    assert.equal(await cb.lastData(), data)
    assert.equal(await f.hub.resultCidOf(taskid), CID, 'finalize stores the CID too')
    assert.equal((await f.hub.taskOf(taskid)).status, BigInt(TaskStatus.COMPLETED))
  })

  it('a reverting callback: the task is finalized and everyone paid as without a callback; the failure is an event', async () => {
    const bad = await deploy('RevertingCallback')
    const data = hexlify(toUtf8Bytes('x'))
    const paid = async (callback: string): Promise<{ worker: bigint, requester: bigint, r: TransactionReceipt, dealid: string }> => {
      const d = await trust1Deal(callback)
      const [w0] = await f.hub.accountOf(d.worker.address)
      const [, frozen0] = await f.hub.accountOf(f.requester.address)
      const r = await send(f.hub.connect(d.worker).contributeAndFinalize(d.dealid, 0, keccak256(data), 'c', d.sign, callback === ZERO_ADDRESS ? '0x' : data))
      const [w1] = await f.hub.accountOf(d.worker.address)
      const [, frozen1] = await f.hub.accountOf(f.requester.address)
      return { worker: w1 - w0, requester: frozen0 - frozen1, r, dealid: d.dealid }
    }
    const withBad = await paid(await bad.getAddress())
    assert.deepEqual(callbackEvent(withBad.r), { taskid: taskId(withBad.dealid, 0), callback: await bad.getAddress(), success: false })
    assert.equal(await f.hub.taskStatus(withBad.dealid, 0), BigInt(TaskStatus.COMPLETED))
    assert.equal(await f.hub.resultCidOf(taskId(withBad.dealid, 0)), 'c', 'kept though the callback reverted')
    const without = await paid(ZERO_ADDRESS)
    assert.equal(callbackEvent(without.r), undefined)
    // a plain deal stores no CID (it stays in TaskFinalized only): its finalize costs no more than before
    assert.equal(await f.hub.taskStatus(without.dealid, 0), BigInt(TaskStatus.COMPLETED))
    assert.equal(await f.hub.resultCidOf(taskId(without.dealid, 0)), '')
    assert.ok(withBad.worker > 0n)
    // the same payment (the worker may also be the drawn scheduler of one deal and not the other: compare the requester's side too)
    assert.equal(withBad.requester, without.requester)
    assert.equal(withBad.requester, 2n * RLC_UNIT + 10n * RLC_UNIT)
  })

  it('a gas-hungry callback gets the hub\'s callback gas and no more; the task is finalized', async () => {
    const hog = await deploy('GasHogCallback')
    assert.equal(await f.hub.callbackGas(), DEFAULT_CALLBACK_GAS)
    const d = await trust1Deal(await hog.getAddress())
    const data = hexlify(toUtf8Bytes('y'))
    // a generous limit: whatever the callee burns is bounded by the hub's setting, not by the transaction
    const r = await send(f.hub.connect(d.worker).contributeAndFinalize(d.dealid, 0, keccak256(data), 'c', d.sign, data, { gasLimit: 3_000_000 }))
    assert.equal(callbackEvent(r)?.success, false)
    assert.equal(await f.hub.taskStatus(d.dealid, 0), BigInt(TaskStatus.COMPLETED))
    assert.ok(r.gasUsed > DEFAULT_CALLBACK_GAS, `the callee ran (${r.gasUsed})`)
    assert.ok(r.gasUsed < DEFAULT_CALLBACK_GAS + 200_000n, `gas used ${r.gasUsed} is bounded by the callback gas`)
  })

  it('a caller that leaves less gas than the callback needs is refused (it cannot fail the callback on purpose)', async () => {
    const cb = await deploy('RecordingCallback')
    const d = await trust1Deal(await cb.getAddress())
    const data = hexlify(toUtf8Bytes('z'))
    let name: string | undefined
    try {
      await f.hub.connect(d.worker).contributeAndFinalize.staticCall(d.dealid, 0, keccak256(data), 'c', d.sign, data, { gasLimit: 180_000, blockTag: 'pending' })
    } catch (err) {
      name = revertName(err)
    }
    assert.equal(name, 'CallbackGasShort')
  })

  it('callback gas: only the owner sets it, within bounds, and the hub uses it', async () => {
    await expectRevert(f.hub.connect(f.outsider).setCallbackGas(50_000), 'OwnableUnauthorizedAccount')
    await expectRevert(f.hub.connect(f.admin).setCallbackGas(0), 'AmountTooLarge')
    await send(f.hub.connect(f.admin).setCallbackGas(50_000))
    assert.equal(await f.hub.callbackGas(), 50_000n)
    const hog = await deploy('GasHogCallback')
    const d = await trust1Deal(await hog.getAddress())
    const data = hexlify(toUtf8Bytes('w'))
    const r = await send(f.hub.connect(d.worker).contributeAndFinalize(d.dealid, 0, keccak256(data), 'c', d.sign, data, { gasLimit: 3_000_000 }))
    assert.equal(callbackEvent(r)?.success, false)
    assert.ok(r.gasUsed < 50_000n + 200_000n, `gas used ${r.gasUsed}`)
  })
})
