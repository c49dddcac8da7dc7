// Shared set-up of the contract tests: one anvil per test file, the hub
// deployed once, and an evm snapshot reverted after each test.
import { JsonRpcProvider, Wallet, isHexString, type TransactionRequest, hexlify, randomBytes, type ContractTransactionResponse, type TransactionReceipt } from 'ethers'
import { startLocalChain, type LocalChain } from '../../node/chain/local-chain.js'
import { deployHub, Hub__factory, RLC__factory, hubInterface, rlcInterface, type Hub, type RLC } from '../../contracts-abi/index.js'
import {
  hubDomain, hashOrder, signOrder, signAuthorization, emptyDatasetOrder, taskId, ZERO_ADDRESS, ZERO_BYTES32,
  type HubDomain, type AppOrder, type DatasetOrder, type RequestOrder, type Bid, type Signed
} from '../../protocols/eip712.js'

export const RLC_UNIT = 10n ** 9n
export const FUNDS = 1_000_000n * RLC_UNIT

export interface Fixture {
  chain: LocalChain
  provider: JsonRpcProvider
  wallets: Wallet[]
  admin: Wallet
  appOwner: Wallet
  datasetOwner: Wallet
  requester: Wallet
  /** stakers: potential workers and schedulers */
  nodes: Wallet[]
  outsider: Wallet
  hub: Hub
  rlc: RLC
  hubAddress: string
  domain: HubDomain
  chainId: number
  byAddress: (address: string) => Wallet
}

export interface FixtureOptions {
  /** how many staking nodes (default 6) */
  nodes?: number
  /** stake of each node (default 10_000 RLC) */
  stake?: bigint | ((i: number) => bigint)
}

export async function send (tx: Promise<ContractTransactionResponse>): Promise<TransactionReceipt> {
  const receipt = await (await tx).wait()
  if (receipt === null) throw new Error('no receipt')
  return receipt
}

export async function setupFixture (opts: FixtureOptions = {}): Promise<Fixture> {
  const nNodes = opts.nodes ?? 6
  const chain = await startLocalChain({ accounts: 5 + nNodes })
  try {
    const provider = new HeadroomProvider(chain.rpcUrl, undefined, { staticNetwork: true, pollingInterval: 20, cacheTimeout: -1 })
    const wallets = chain.privateKeys.map((k) => new Wallet(k, provider))
    const [admin, appOwner, datasetOwner, requester, outsider] = wallets
    const nodes = wallets.slice(5)
    const deployed = await deployHub(admin, { local: true })
    const hub = Hub__factory.connect(deployed.hub, admin)
    const rlc = RLC__factory.connect(deployed.rlc, admin)
    // fund everyone and give the hub an allowance, all in parallel by explicit nonces
    let nonce = await admin.getNonce('pending')
    const mints = []
    for (const w of wallets) mints.push(await rlc.mint(w.address, FUNDS, { nonce: nonce++ }))
    await Promise.all(mints.map(async (t) => await t.wait()))
    await Promise.all(wallets.map(async (w) => { await send(rlc.connect(w).approve(deployed.hub, FUNDS * 1000n)) }))
    await Promise.all(nodes.map(async (w) => { await send(hub.connect(w).deposit(FUNDS / 2n)) }))
    // one at a time: a stake's gas depends on the tree's shape, which a concurrent stake changes
    for (const [i, w] of nodes.entries()) {
      const amount = typeof opts.stake === 'function' ? opts.stake(i) : (opts.stake ?? 10_000n * RLC_UNIT)
      if (amount > 0n) await send(hub.connect(w).stake(amount))
    }
    await send(hub.connect(requester).deposit(FUNDS / 2n))
    const map = new Map(wallets.map((w) => [w.address.toLowerCase(), w]))
    return {
      chain,
      provider,
      wallets,
      admin,
      appOwner,
      datasetOwner,
      requester,
      nodes,
      outsider,
      hub,
      rlc,
      hubAddress: deployed.hub,
      domain: hubDomain(deployed.chainId, deployed.hub),
      chainId: deployed.chainId,
      byAddress: (a) => {
        const w = map.get(a.toLowerCase())
        if (w === undefined) throw new Error(`no wallet for ${a}`)
        return w
      }
    }
  } catch (err) {
    await chain.stop()
    throw err
  }
}

export async function snapshot (f: Fixture): Promise<string> {
  return await f.provider.send('evm_snapshot', []) as string
}

export async function revertTo (f: Fixture, id: string): Promise<void> {
  const ok = await f.provider.send('evm_revert', [id]) as boolean
  if (!ok) throw new Error(`evm_revert ${id} failed`)
}

/** Moves the chain's clock forward and mines a block. */
export async function increaseTime (f: Fixture, seconds: number | bigint): Promise<void> {
  await f.provider.send('evm_increaseTime', [Number(seconds)])
  await f.provider.send('evm_mine', [])
}

const HUB_ERRORS = hubInterface()
const RLC_ERRORS = rlcInterface()

/** The custom error name of a reverted call or gas estimate, decoded with the hub's and RLC's ABIs. */
export function revertName (err: unknown): string | undefined {
  const e = err as { revert?: { name?: string } | null, data?: unknown, info?: { error?: { data?: unknown } } }
  if (e.revert?.name !== undefined) return e.revert.name
  const data = typeof e.data === 'string' ? e.data : e.info?.error?.data
  if (typeof data !== 'string' || !isHexString(data) || data.length < 10) return undefined
  return HUB_ERRORS.parseError(data)?.name ?? RLC_ERRORS.parseError(data)?.name ?? undefined
}

/**
 * A provider whose gas estimates carry 30% headroom: the scheduler draw reads
 * `block.prevrandao`, which differs between the estimate and the mined block,
 * so the exact estimate can run short.
 */
class HeadroomProvider extends JsonRpcProvider {
  override async estimateGas (tx: TransactionRequest): Promise<bigint> {
    return (await super.estimateGas(tx)) * 13n / 10n
  }
}

/** Asserts that `p` reverts with the hub's custom error `name`. */
export async function expectRevert (p: Promise<unknown>, name: string): Promise<void> {
  let result: unknown
  try {
    result = await p
  } catch (err) {
    const got = revertName(err)
    if (got !== name) throw new Error(`expected revert ${name}, got ${got ?? String(err)}`)
    return
  }
  throw new Error(`expected revert ${name}, but the call succeeded: ${String(result)}`)
}

export function salt (): string {
  return hexlify(randomBytes(32))
}

export interface AppSetup { app: string, dataset: string }

export async function registerAssets (f: Fixture): Promise<AppSetup> {
  const appTx = await send(f.hub.connect(f.appOwner).registerApp('wordcount', 'bafyapp', '0x' + '11'.repeat(32)))
  const dsTx = await send(f.hub.connect(f.datasetOwner).registerDataset('corpus', 'bafydata', '0x' + '22'.repeat(32)))
  const app = f.hub.interface.parseLog(appTx.logs[0])?.args.app as string
  const dataset = f.hub.interface.parseLog(dsTx.logs[0])?.args.dataset as string
  return { app, dataset }
}

export interface DealSpec {
  trust?: bigint
  volume?: bigint
  category?: bigint
  appprice?: bigint
  datasetprice?: bigint
  /** bid price of each worker; default 10 RLC each */
  prices?: bigint[]
  workers?: Wallet[]
  withDataset?: boolean
  params?: string
  /** the request's callback contract */
  callback?: string
}

export interface Orders {
  appOrder: Signed<AppOrder>
  datasetOrder: Signed<DatasetOrder>
  request: Signed<RequestOrder>
  requestHash: string
  bids: Array<Signed<Bid>>
}

export async function makeOrders (f: Fixture, assets: AppSetup, spec: DealSpec = {}): Promise<Orders> {
  const volume = spec.volume ?? 1n
  const workers = spec.workers ?? [f.nodes[0]]
  const prices = spec.prices ?? workers.map(() => 10n * RLC_UNIT)
  const withDataset = spec.withDataset ?? true
  const appOrder = await signOrder(f.appOwner, f.domain, 'AppOrder', {
    app: assets.app, appprice: spec.appprice ?? 2n * RLC_UNIT, volume: 1000n, tag: ZERO_BYTES32,
    datasetrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: salt()
  })
  const datasetOrder = withDataset
    ? await signOrder(f.datasetOwner, f.domain, 'DatasetOrder', {
      dataset: assets.dataset, datasetprice: spec.datasetprice ?? 3n * RLC_UNIT, volume: 1000n, tag: ZERO_BYTES32,
      apprestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: salt()
    })
    : emptyDatasetOrder()
  const request = await signOrder(f.requester, f.domain, 'RequestOrder', {
    app: assets.app, appmaxprice: 100n * RLC_UNIT, dataset: withDataset ? assets.dataset : ZERO_ADDRESS, datasetmaxprice: 100n * RLC_UNIT,
    workerpool: ZERO_ADDRESS, workerpoolmaxprice: 100n * RLC_UNIT, requester: f.requester.address, volume,
    tag: ZERO_BYTES32, category: spec.category ?? 0n, trust: spec.trust ?? 1n, beneficiary: f.requester.address,
    callback: spec.callback ?? ZERO_ADDRESS, params: spec.params ?? '{"args":"hello"}', salt: salt()
  })
  const requestHash = hashOrder(f.domain, 'RequestOrder', request)
  const bids = await Promise.all(workers.map(async (w, i) => await signOrder(w, f.domain, 'Bid', {
    requestHash, worker: w.address, price: prices[i], volume: 1000n, salt: salt()
  })))
  return { appOrder, datasetOrder, request, requestHash, bids }
}

export interface DealResult {
  dealid: string
  scheduler: Wallet
  workers: string[]
  receipt: TransactionReceipt
  info: { volume: bigint, trust: bigint, workerPrice: bigint, appPrice: bigint, datasetPrice: bigint, finalDeadline: bigint, contributionDeadline: bigint, startTime: bigint }
}

export async function match (f: Fixture, orders: Orders, from: Wallet = f.requester): Promise<DealResult> {
  const receipt = await send(f.hub.connect(from).matchOrders(orders.appOrder, orders.datasetOrder, orders.request, orders.bids))
  for (const log of receipt.logs) {
    const parsed = f.hub.interface.parseLog(log)
    if (parsed?.name === 'DealCreated') {
      const info = parsed.args.info
      const dealid = parsed.args.dealid as string
      return {
        dealid,
        scheduler: f.byAddress(await drawnScheduler(f, dealid)),
        workers: [...info.workers] as string[],
        receipt,
        info: {
          volume: info.volume, trust: info.trust, workerPrice: info.workerPrice, appPrice: info.appPrice,
          datasetPrice: info.datasetPrice, finalDeadline: info.finalDeadline, contributionDeadline: info.contributionDeadline, startTime: info.startTime
        }
      }
    }
  }
  throw new Error('no DealCreated event')
}

/**
 * The scheduler a deal's draw elects: the hub draws it from the hash of the
 * deal's block, readable from the next block on (the `pending` tag).
 */
export async function drawnScheduler (f: Fixture, dealid: string): Promise<string> {
  const s = await f.hub.schedulerOf(dealid, { blockTag: 'pending' })
  if (s === ZERO_ADDRESS) throw new Error(`no scheduler drawable for ${dealid}`)
  return s
}

export async function authorize (f: Fixture, scheduler: Wallet, worker: string, dealid: string, idx: bigint | number): Promise<{ taskid: string, sign: string }> {
  const taskid = taskId(dealid, idx)
  return { taskid, sign: await signAuthorization(scheduler, f.domain, { worker, taskid }) }
}

/** Sum of what every wallet holds and what the hub accounts: must never change. */
export async function totalRlc (f: Fixture): Promise<{ wallets: bigint, hubHeld: bigint, accounted: bigint }> {
  // every read at once: the provider sends them as one JSON-RPC batch, and no
  // transaction is in flight meanwhile, so they all see the same block
  const [perWallet, kitty, hubHeld] = await Promise.all([
    Promise.all(f.wallets.map(async (w) => await Promise.all([f.rlc.balanceOf(w.address), f.hub.accountOf(w.address), f.hub.stakeOf(w.address)]))),
    f.hub.kitty() as Promise<bigint>,
    f.rlc.balanceOf(f.hubAddress) as Promise<bigint>
  ])
  let wallets = 0n
  let accounted = kitty
  for (const [rlc, [balance, frozen], [stake]] of perWallet) {
    wallets += rlc
    accounted += balance + frozen + stake
  }
  return { wallets, hubHeld, accounted }
}
