// matchOrders' rules on chain (who may match, how many bids a trust level
// takes) and the scheduler election nobody can grind: a requester contract
// that matches and reverts unless it likes the scheduler sees none, and the
// scheduler drawn afterwards is a function of the deal block's hash.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import solc from 'solc'
import { AbiCoder, ContractFactory, Interface, keccak256, type Contract } from 'ethers'
import { hashOrder, signOrder, ZERO_ADDRESS, type RequestOrder } from '../../protocols/eip712.js'
import {
  setupFixture, send, registerAssets, makeOrders, match, drawnScheduler, expectRevert, revertName, snapshot, revertTo, salt, totalRlc,
  RLC_UNIT, type Fixture, type AppSetup, type Orders
} from '../contracts/fixture.js'

/** the hub's minimum bids for a trust level: the smallest n >= 1 with 2^n >= trust */
function minBids (trust: bigint): number {
  let n = 1
  while (2n ** BigInt(n) < trust) n++
  return n
}

// solc-js takes seconds a compile: one compile serves every case of the file
let grinderBuild: { abi: unknown[], bytecode: string } | undefined
function compileGrinder (): { abi: unknown[], bytecode: string } {
  grinderBuild ??= buildGrinder()
  return grinderBuild
}

function buildGrinder (): { abi: unknown[], bytecode: string } {
  const source = readFileSync(fileURLToPath(new URL('./fixtures/Grinder.sol', import.meta.url)), 'utf8')
  const input = {
    language: 'Solidity',
    sources: { 'Grinder.sol': { content: source } },
    settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: 'cancun', outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } }
  }
  const out = JSON.parse(solc.compile(JSON.stringify(input))) as {
    errors?: Array<{ severity: string, formattedMessage: string }>
    contracts: Record<string, Record<string, { abi: unknown[], evm: { bytecode: { object: string } } }>>
  }
  const errors = (out.errors ?? []).filter((e) => e.severity === 'error')
  if (errors.length > 0) throw new Error(errors.map((e) => e.formattedMessage).join('\n'))
  const c = out.contracts['Grinder.sol'].Grinder
  return { abi: c.abi, bytecode: '0x' + c.evm.bytecode.object }
}

/** The draw the hub makes from the hash of block `seedBlock` for a deal whose draw block is `drawBlock`. */
async function expectedScheduler (f: Fixture, dealid: string, drawBlock: number, seedBlock: number): Promise<string> {
  const block = await f.provider.getBlock(seedBlock)
  if (block?.hash == null) throw new Error(`no block ${seedBlock}`)
  const u = BigInt(keccak256(AbiCoder.defaultAbiCoder().encode(['bytes32', 'bytes32', 'uint256'], [block.hash, dealid, drawBlock]))) >> 128n
  const total = await f.hub.totalStake()
  return await f.hub.drawAt((u * total) >> 128n)
}

describe('hub: who matches, how many bids, an election nobody can grind', function () {
  this.timeout(180_000)
  let f: Fixture
  let assets: AppSetup
  let snap: string

  before(async () => {
    f = await setupFixture({ nodes: 6, stake: (i) => BigInt(1000 * (i + 1)) * RLC_UNIT })
    assets = await registerAssets(f)
  })
  after(async () => { await f?.chain.stop() })
  let rlcBefore: Awaited<ReturnType<typeof totalRlc>>
  /** contracts the cases deploy that hold hub balances (the grinder) */
  const extra: string[] = []
  /** totalRlc, with the extra accounts' wallets and hub balances */
  async function rlcNow (): Promise<Awaited<ReturnType<typeof totalRlc>>> {
    const t = await totalRlc(f)
    for (const a of extra) {
      const [balance, frozen] = await f.hub.accountOf(a)
      t.accounted += balance + frozen
      t.wallets += await f.rlc.balanceOf(a)
    }
    return t
  }
  beforeEach(async () => {
    snap = await snapshot(f)
    extra.length = 0
    rlcBefore = await rlcNow()
  })
  afterEach(async function () {
    // every case: RLC conserved to the nRLC (wallets, balances, frozen, stakes, kitty), whatever was refused or made
    if (this.currentTest?.state === 'passed') {
      const after = await rlcNow()
      assert.equal(after.hubHeld, after.accounted, 'the hub holds what it accounts')
      assert.equal(after.wallets + after.accounted, rlcBefore.wallets + rlcBefore.accounted, 'no RLC made or lost')
    }
    await revertTo(f, snap)
  })

  describe('who may match', () => {
    it('a third party matching a gossiped request with its own bid at the max price: NotRequester; the requester still matches', async () => {
      const o = await makeOrders(f, assets)
      const thief = f.nodes[3]
      const greedy = await signOrder(thief, f.domain, 'Bid', { requestHash: o.requestHash, worker: thief.address, price: o.request.workerpoolmaxprice, volume: 1n, salt: salt() })
      await expectRevert(f.hub.connect(thief).matchOrders(o.appOrder, o.datasetOrder, o.request, [greedy]), 'NotRequester')
      // with the honest bid too: the caller is what is refused
      await expectRevert(f.hub.connect(thief).matchOrders(o.appOrder, o.datasetOrder, o.request, o.bids), 'NotRequester')
      assert.equal(await f.hub.consumedOf(o.requestHash), 0n, 'nothing consumed')
      const [, frozen] = await f.hub.accountOf(f.requester.address)
      assert.equal(frozen, 0n, 'nothing frozen')
      const d = await match(f, o)
      assert.deepEqual(d.workers, [f.nodes[0].address])
    })

    it('a request its requester presigned on chain is open: anyone may match it', async () => {
      const o = await makeOrders(f, assets)
      await expectRevert(f.hub.connect(f.outsider).matchOrders(o.appOrder, o.datasetOrder, o.request, o.bids), 'NotRequester')
      await send(f.hub.connect(f.requester).presignRequestOrder(o.request))
      const d = await match(f, o, f.outsider)
      assert.equal(d.info.volume, 1n)
    })
  })

  describe('bids for the trust level', () => {
    it('one bid for a trust-3 request: NotEnoughBids(1, 2); two bids match', async () => {
      const o = await makeOrders(f, assets, { trust: 3n, workers: [f.nodes[0], f.nodes[1]] })
      let err: unknown
      try { await f.hub.connect(f.requester).matchOrders(o.appOrder, o.datasetOrder, o.request, [o.bids[0]]) } catch (e) { err = e }
      assert.equal(revertName(err), 'NotEnoughBids')
      const args = f.hub.interface.parseError((err as { data: string }).data)?.args
      assert.deepEqual([args?.[0], args?.[1]], [1n, 2n])
      const d = await match(f, o)
      assert.equal(d.workers.length, 2)
    })

    for (const trust of [1n, 2n, 4n, 5n, 8n, 9n]) {
      it(`trust ${trust}: ${minBids(trust)} bid(s) needed, one fewer refused`, async () => {
        const need = minBids(trust)
        const o = await makeOrders(f, assets, { trust, workers: f.nodes.slice(0, need) })
        await expectRevert(f.hub.connect(f.requester).matchOrders(o.appOrder, o.datasetOrder, o.request, o.bids.slice(0, need - 1)), 'NotEnoughBids')
        const d = await match(f, o)
        assert.equal(d.workers.length, need)
      })
    }
  })

  describe('election', () => {
    let grinder: Contract
    let orders: Orders & { grinderRequest: RequestOrder & { sign: string } }

    beforeEach(async () => {
      const { abi, bytecode } = compileGrinder()
      const factory = new ContractFactory(abi as string[], bytecode, f.outsider)
      grinder = await factory.deploy() as unknown as Contract
      await grinder.waitForDeployment()
      const g = await grinder.getAddress()
      extra.push(g)
      await send(f.hub.connect(f.requester).depositFor(g, 1000n * RLC_UNIT))
      // the grinder is the requester: a contract cannot sign, so it presigns its request
      const base = await makeOrders(f, assets, { withDataset: false })
      const fields: RequestOrder = { ...base.request, requester: g, beneficiary: g, salt: salt() }
      const requestHash = hashOrder(f.domain, 'RequestOrder', fields)
      await send(grinder.exec(f.hubAddress, f.hub.interface.encodeFunctionData('presignRequestOrder', [{ ...fields, sign: '0x' }])))
      const bid = await signOrder(f.nodes[0], f.domain, 'Bid', { requestHash, worker: f.nodes[0].address, price: 10n * RLC_UNIT, volume: 1n, salt: salt() })
      orders = { ...base, request: { ...fields, sign: '0x' }, requestHash, bids: [bid], grinderRequest: { ...fields, sign: '0x' } }
    })

    const matchCall = (): string => f.hub.interface.encodeFunctionData('matchOrders', [orders.appOrder, orders.datasetOrder, orders.request, orders.bids])

    it('a match-then-revert contract sees no scheduler in its block, whatever it wants, and cannot force the draw', async () => {
      const grinderErrors = new Interface(compileGrinder().abi as string[])
      for (const wanted of f.nodes) {
        let err: unknown
        try { await grinder.grind(f.hubAddress, matchCall(), wanted.address) } catch (e) { err = e }
        const data = (err as { data?: string }).data
        assert.ok(typeof data === 'string', `the grind for ${wanted.address} reverted with data`)
        const parsed = grinderErrors.parseError(data)
        assert.equal(parsed?.name, 'Unlucky')
        assert.equal(parsed?.args[0], ZERO_ADDRESS, 'the draw is not readable in the matching block')
      }
      // forcing the draw in the same transaction: the hub refuses
      await expectRevert(grinder.grindByDraw(f.hubAddress, matchCall()), 'SchedulerNotDrawn')
      assert.equal(await f.hub.consumedOf(orders.requestHash), 0n, 'every attempt was undone')
    })

    it('the scheduler kept is a function of the deal block\'s hash, written by its first duty; past 256 blocks the hash of block B + 256k', async () => {
      const r = await send(grinder.grind(f.hubAddress, matchCall(), ZERO_ADDRESS))
      const ev = r.logs.map((l) => { try { return f.hub.interface.parseLog(l) } catch { return null } }).find((e) => e?.name === 'DealCreated')
      const dealid = ev?.args.dealid as string
      assert.equal(ev?.args.scheduler, ZERO_ADDRESS, 'DealCreated names no scheduler')
      const drawBlock = r.blockNumber
      const expected = await expectedScheduler(f, dealid, drawBlock, drawBlock)
      assert.equal(await drawnScheduler(f, dealid), expected)
      assert.ok(f.nodes.some((n) => n.address === expected), 'a staker')

      // left undrawn past blockhash's window: the seed moves to block B + 256
      const snap2 = await snapshot(f)
      await f.provider.send('anvil_mine', ['0x12c']) // 300 blocks
      const late = await expectedScheduler(f, dealid, drawBlock, drawBlock + 256)
      assert.equal(await f.hub.schedulerOf(dealid), late)
      await revertTo(f, snap2)

      // the first duty writes the draw the view announced, and locks its stake
      const scheduler = f.byAddress(expected)
      const locked0 = (await f.hub.stakeOf(expected)).locked
      const init = await send(f.hub.connect(scheduler).initialize(dealid, 0))
      const drawn = init.logs.map((l) => f.hub.interface.parseLog(l)).find((e) => e?.name === 'SchedulerDrawn')
      assert.equal(drawn?.args.scheduler, expected)
      assert.equal((await f.hub.dealOf(dealid)).scheduler, expected)
      assert.equal((await f.hub.stakeOf(expected)).locked - locked0, 3n * RLC_UNIT, 'its stake for the one task')
    })

    it('reelect draws lazily too: SchedulerReelected names no successor, and the late scheduler is out of the next draw', async () => {
      const d = await match(f, await makeOrders(f, assets, { volume: 2n }))
      const late = d.scheduler.address
      await f.provider.send('evm_increaseTime', [61])
      const r = await send(f.hub.reelect(d.dealid))
      const ev = r.logs.map((l) => f.hub.interface.parseLog(l)).find((e) => e?.name === 'SchedulerReelected')
      assert.equal(ev?.args.previous, late)
      assert.equal(ev?.args.scheduler, ZERO_ADDRESS, 'the next scheduler is drawn later')
      const next = await drawnScheduler(f, d.dealid)
      assert.notEqual(next, late, 'the late scheduler is out of the draw')
      assert.ok(f.nodes.some((n) => n.address === next))
    })
  })
})
