// The Solidity DApp API (contracts-abi/contracts/P2PDapp.sol) through the
// example DApp (examples/dapp/PrimeTable.sol) on a real hub: a submit is a
// request published on chain, a third party matches it, finalize calls the
// DApp back; the status goes PENDING -> RUNNING -> COMPLETED, or REMOVED,
// or FAILED after a claim.
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { AbiCoder, ContractFactory, Contract, keccak256, type TransactionReceipt } from 'ethers'
import { compileSolidity } from '../../contracts-abi/compile.js'
import { emptyDatasetOrder, hashOrder, signOrder, ZERO_ADDRESS, ZERO_BYTES32, type RequestOrder } from '../../protocols/eip712.js'
import { requestFromEvent } from '../../node/market/onchain-requests.js'
import {
  setupFixture, snapshot, revertTo, send, increaseTime, authorize, drawnScheduler, expectRevert, salt,
  RLC_UNIT, type Fixture
} from './fixture.js'

const STATUS = { NONE: 0n, PENDING: 1n, RUNNING: 2n, COMPLETED: 3n, FAILED: 4n, REMOVED: 5n }
const abi = AbiCoder.defaultAbiCoder()

describe('DApp API: P2PDapp and the example PrimeTable', function () {
  // solc-js compiles the test contracts in `before`: seconds on a quiet machine, far more on a loaded one
  this.timeout(180_000)
  let f: Fixture
  let snap: string
  let dapp: Contract
  let compiledDapp: { abi: unknown[], bytecode: string }
  let dappAddress: string
  let app: string
  const PRICE = 100_000_000n // 0.1 RLC

  before(async () => {
    const c = compileSolidity([fileURLToPath(new URL('../../examples/dapp/PrimeTable.sol', import.meta.url))]).PrimeTable
    compiledDapp = c
    f = await setupFixture({ nodes: 3 })
    const r = await send(f.hub.connect(f.appOwner).registerApp('primecount', 'bafyapp', '0x' + '11'.repeat(32)))
    app = f.hub.interface.parseLog(r.logs[0])?.args.app as string
    // the DApp's owner is the fixture's requester
    const deployed = await new ContractFactory(c.abi as never, c.bytecode, f.requester).deploy(f.hubAddress, app, PRICE, 1n)
    await deployed.waitForDeployment()
    dapp = deployed as Contract
    dappAddress = await dapp.getAddress()
    // anyone funds the DApp's hub balance
    await send(f.hub.connect(f.outsider).depositFor(dappAddress, 10n * RLC_UNIT))
  })
  after(async () => { await f?.chain.stop() })
  beforeEach(async () => { snap = await snapshot(f) })
  afterEach(async () => { await revertTo(f, snap) })

  /** expects a revert with the DApp's custom error `name` */
  async function expectDappRevert (p: Promise<unknown>, name: string): Promise<void> {
    try {
      await p
    } catch (err) {
      const data = (err as { data?: string }).data
      const got = typeof data === 'string' ? dapp.interface.parseError(data)?.name : undefined
      assert.equal(got, name, `expected ${name}, got ${String(err)}`)
      return
    }
    assert.fail(`expected revert ${name}, but the call succeeded`)
  }

  /** ask(n): the work id and the full request order the hub published */
  async function ask (n: bigint): Promise<{ id: string, request: RequestOrder, requestHash: string, receipt: TransactionReceipt }> {
    const receipt = await send((dapp.connect(f.requester) as Contract).ask(n) as never)
    let id = ''
    let request: RequestOrder | undefined
    let requestHash = ''
    for (const l of receipt.logs) {
      if (l.address.toLowerCase() === f.hubAddress.toLowerCase()) {
        const e = f.hub.interface.parseLog(l)
        if (e?.name === 'RequestOrderPublished') {
          request = requestFromEvent(e.args.order)
          requestHash = e.args.requestHash
        }
      } else {
        const e = dapp.interface.parseLog(l)
        if (e?.name === 'WorkSubmitted') id = e.args.id
      }
    }
    assert.ok(request !== undefined, 'the hub published the request order')
    return { id, request, requestHash, receipt }
  }

  /** a provider (f.nodes[0]) matches the published request with its own bid and a free app order */
  async function matchAsProvider (request: RequestOrder, requestHash: string): Promise<string> {
    const w = f.nodes[0]
    const appOrder = await signOrder(f.appOwner, f.domain, 'AppOrder', {
      app, appprice: 0n, volume: 1000n, tag: ZERO_BYTES32, datasetrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: salt()
    })
    const bid = await signOrder(w, f.domain, 'Bid', { requestHash, worker: w.address, price: PRICE, volume: 1n, salt: salt() })
    const r = await send(f.hub.connect(w).matchOrders(appOrder, emptyDatasetOrder(), { ...request, sign: '0x' }, [bid]))
    const ev = r.logs.map((l) => { try { return f.hub.interface.parseLog(l) } catch { return null } }).find((e) => e?.name === 'DealCreated')
    return ev?.args.dealid as string
  }

  it('ask: a request of volume 1 presigned on the hub with the DApp as requester, beneficiary and callback; its id is the task id', async () => {
    const { id, request, requestHash } = await ask(1000n)
    assert.equal(requestHash, hashOrder(f.domain, 'RequestOrder', request))
    assert.equal(request.requester, dappAddress)
    assert.equal(request.callback, dappAddress)
    assert.equal(request.beneficiary, dappAddress)
    assert.equal(request.volume, 1n)
    assert.equal(request.params, '{"iexec_args":"1000"}')
    assert.equal(await f.hub.presignedOf(requestHash), true)
    assert.equal(await dapp.getStatus(id), STATUS.PENDING)
    assert.equal(await dapp.requestHashOf(id), requestHash)
    assert.equal(await dapp.getStatus(ZERO_BYTES32), STATUS.NONE)
    await expectDappRevert((dapp.connect(f.outsider) as Contract).ask(1000n) as Promise<unknown>, 'NotOwner')
  })

  it('PENDING -> RUNNING -> COMPLETED: a third party matches, finalize calls back, the table stores the count', async () => {
    const { id, request, requestHash } = await ask(1000n)
    const [before] = await f.hub.accountOf(dappAddress)
    const dealid = await matchAsProvider(request, requestHash)
    assert.equal(await dapp.getStatus(id), STATUS.RUNNING)
    const [afterMatch, frozen] = await f.hub.accountOf(dappAddress)
    assert.equal(before - afterMatch, PRICE, 'the DApp pays from its hub balance')
    assert.equal(frozen, PRICE)
    const scheduler = f.byAddress(await drawnScheduler(f, dealid))
    const { taskid, sign } = await authorize(f, scheduler, f.nodes[0].address, dealid, 0)
    assert.equal(taskid, id, 'the work id is the task id')
    const data = abi.encode(['uint256', 'uint256'], [1000n, 168n])
    assert.equal(await dapp.getResultPath(id), '')
    await send(f.hub.connect(f.nodes[0]).contributeAndFinalize(dealid, 0, keccak256(data), 'bafyresult', sign, data))
    assert.equal(await dapp.getStatus(id), STATUS.COMPLETED)
    assert.equal(await dapp.primeCount(1000n), 168n)
    assert.equal(await dapp.getResult(id), data)
    assert.equal(await dapp.getResultPath(id), 'bafyresult', 'the results CID, read from the hub')
    assert.equal((await f.hub.accountOf(dappAddress))[1], 0n, 'paid: nothing frozen left')
  })

  it('a result for another question is ignored by the example; receiveResult refuses any caller but the hub', async () => {
    const { id, request, requestHash } = await ask(1000n)
    await expectDappRevert((dapp.connect(f.outsider) as Contract).receiveResult(id, '0x') as Promise<unknown>, 'NotHub')
    const dealid = await matchAsProvider(request, requestHash)
    const scheduler = f.byAddress(await drawnScheduler(f, dealid))
    const { sign } = await authorize(f, scheduler, f.nodes[0].address, dealid, 0)
    const data = abi.encode(['uint256', 'uint256'], [999n, 5n])
    await send(f.hub.connect(f.nodes[0]).contributeAndFinalize(dealid, 0, keccak256(data), 'c', sign, data))
    assert.equal(await dapp.primeCount(999n), 0n)
    assert.equal(await dapp.primeCount(1000n), 0n)
  })

  it('remove before a match: REMOVED, the hub no longer matches it; not removable once matched', async () => {
    const a = await ask(2000n)
    await send((dapp.connect(f.requester) as Contract).cancel(a.id) as never)
    assert.equal(await dapp.getStatus(a.id), STATUS.REMOVED)
    await expectRevert(matchAsProvider(a.request, a.requestHash), 'VolumeExhausted')
    await expectDappRevert((dapp.connect(f.requester) as Contract).cancel(a.id) as Promise<unknown>, 'NotRemovable')
    const b = await ask(3000n)
    await matchAsProvider(b.request, b.requestHash)
    await expectDappRevert((dapp.connect(f.requester) as Contract).cancel(b.id) as Promise<unknown>, 'NotRemovable')
  })

  it('trust 3: bids presigned on chain are published in full (BidPublished) and anyone matches the request with them', async () => {
    const deployed = await new ContractFactory(compiledDapp.abi as never, compiledDapp.bytecode, f.requester).deploy(f.hubAddress, app, PRICE, 3n)
    await deployed.waitForDeployment()
    const dapp3 = deployed as Contract
    await send(f.hub.connect(f.outsider).depositFor(await dapp3.getAddress(), 10n * RLC_UNIT))
    const receipt = await send((dapp3.connect(f.requester) as Contract).ask(500n) as never)
    const published = receipt.logs.map((l) => { try { return f.hub.interface.parseLog(l) } catch { return null } }).find((e) => e?.name === 'RequestOrderPublished')
    assert.ok(published != null)
    const request = requestFromEvent(published.args.order)
    const requestHash = published.args.requestHash as string
    assert.equal(request.trust, 3n)
    const bids = []
    for (const w of [f.nodes[0], f.nodes[1]]) {
      const bid = { requestHash, worker: w.address, price: PRICE, volume: 1n, salt: salt(), sign: '0x' }
      const r = await send(f.hub.connect(w).presignBid(bid))
      const ev = r.logs.map((l) => f.hub.interface.parseLog(l)).find((e) => e?.name === 'BidPublished')
      assert.equal(ev?.args.requestHash, requestHash)
      assert.equal(ev?.args.bid.worker, w.address)
      assert.equal(ev?.args.bidHash, hashOrder(f.domain, 'Bid', bid))
      bids.push(bid)
    }
    // a bid presigned by someone else than its worker is refused
    await expectRevert(f.hub.connect(f.outsider).presignBid({ ...bids[0], salt: salt() }), 'NotOwner')
    const appOrder = await signOrder(f.appOwner, f.domain, 'AppOrder', {
      app, appprice: 0n, volume: 1000n, tag: ZERO_BYTES32, datasetrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: salt()
    })
    const r = await send(f.hub.connect(f.nodes[2]).matchOrders(appOrder, emptyDatasetOrder(), { ...request, sign: '0x' }, bids))
    const deal = r.logs.map((l) => { try { return f.hub.interface.parseLog(l) } catch { return null } }).find((e) => e?.name === 'DealCreated')
    assert.deepEqual([...deal?.args.info.workers], [f.nodes[0].address, f.nodes[1].address])
    assert.equal(await dapp3.getStatus(await dapp3.taskIdOf(requestHash)), STATUS.RUNNING)
  })

  it('FAILED: a matched task nobody finalizes is claimed after its final deadline; the DApp is refunded', async () => {
    const { id, request, requestHash } = await ask(1000n)
    const dealid = await matchAsProvider(request, requestHash)
    const [balanceAfterMatch] = await f.hub.accountOf(dappAddress)
    await increaseTime(f, 60 * 10 + 1)
    await send(f.hub.connect(f.outsider).claim(dealid, 0))
    assert.equal(await dapp.getStatus(id), STATUS.FAILED)
    assert.equal((await f.hub.accountOf(dappAddress))[0] - balanceAfterMatch, PRICE)
  })
})
