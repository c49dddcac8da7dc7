/**
 * The wallet and stake routes of issue 24 (the CLI's `account show`, `wallet
 * send-rlc | send-eth`, `stake withdraw`, `stake unstake`). Amounts are
 * decimal strings: nRLC for RLC, wei for ETH; times are unix seconds.
 * A refused call sends nothing: balances and stake are checked first, and a
 * revert keeps the contract's reason as the code.
 */
import { getAddress, isAddress, ZeroAddress } from 'ethers'
import { HttpError } from '../errors.js'
import { bad, bodyOf, chainFailureToHttp, chainTime } from '../route-helpers.js'
import type { ApiRoute } from '../router.js'
import { isIexecError } from '../../common/errors.js'
import { isChainError } from '../../chain/index.js'
import { marketRouteMaker } from './market.js'
import type { MarketService } from '../../market/service.js'

/** `account show --json`. */
export interface AccountView {
  address: string
  /** wei */
  eth: string
  /** nRLC in the wallet */
  rlc: string
  /** nRLC in the hub, free to spend or withdraw */
  balance: string
  /** nRLC of the hub balance held for open deals */
  frozen: string
  /** nRLC staked, pending unstake included */
  stake: string
  /** nRLC of the stake bound to open deals */
  stakeLocked: string
  /** nRLC requested for unstake (out of the draw) */
  pending: string
  /** when `stake unstake` may return `pending`; 0 when nothing is pending */
  unlockAt: number
  /** the latest block's timestamp: the clock `unlockAt` is read against */
  chainTime: number
}

export interface StakeWithdrawView {
  txHash: string
  /** nRLC returned to the hub balance first (an earlier request that had unlocked), else '0' */
  unstaked: string
  pending: string
  unlockAt: number
  chainTime: number
}

export interface UnstakeView {
  txHash: string
  /** nRLC moved from the stake back to the hub balance */
  amount: string
  balance: string
  stake: string
}

export interface WalletSendView {
  txHash: string
  asset: 'eth' | 'rlc'
  to: string
  amount: string
  /** what the wallet holds of `asset` after the transfer */
  balance: string
}

// ETH and RLC amounts beyond this are typos, not transfers
const MAX_SEND = 10n ** 30n
const MAX_U64 = (1n << 64n) - 1n

function amount (v: unknown, field: string, max: bigint): bigint {
  if (typeof v !== 'string' || !/^[1-9][0-9]{0,30}$/.test(v)) throw bad(field, 'must be a positive decimal string')
  const n = BigInt(v)
  if (n > max) throw bad(field, `must be at most ${max}`)
  return n
}

/** Contract reverts a user causes, as codes the CLI can explain. */
function mapError (err: unknown): unknown {
  if (err instanceof HttpError || !isIexecError(err)) return err
  if (isChainError(err, 'CONTRACT_REVERT')) {
    const args = (err.details?.args ?? []) as readonly unknown[]
    switch (err.reason) {
      case 'CooldownNotOver':
        return new HttpError(409, 'STAKE_STILL_LOCKED', `the unstake unlocks at ${String(args[0])} (unix seconds)`, { unlockAt: Number(args[0]) })
      case 'NothingToUnstake':
        return new HttpError(409, 'NOTHING_TO_UNSTAKE', 'no unstake was requested: run `stake withdraw AMOUNT` first')
      case 'StakeLocked':
        return new HttpError(422, 'STAKE_INSUFFICIENT', `only ${String(args[1])} nRLC of the stake is free to withdraw`, { free: String(args[1]) })
    }
    return new HttpError(422, err.code, err.message, { ...(err.reason !== undefined ? { reason: err.reason } : {}) })
  }
  return chainFailureToHttp(err)
}

async function accountView (m: MarketService): Promise<AccountView> {
  const me = m.address
  const rlc = m.chain.rlc
  const [eth, rlcBalance, [balance, frozen], [stake, stakeLocked, pending, unlockAt], now] = await Promise.all([
    m.chain.ethBalance(), rlc !== undefined ? rlc.balanceOf(me) : Promise.resolve(0n), m.hub.accountOf(me), m.hub.stakeOf(me), chainTime(m)
  ])
  return {
    address: me,
    eth: eth.toString(),
    rlc: rlcBalance.toString(),
    balance: balance.toString(),
    frozen: frozen.toString(),
    stake: stake.toString(),
    stakeLocked: stakeLocked.toString(),
    pending: pending.toString(),
    unlockAt: pending > 0n ? Number(unlockAt) : 0,
    chainTime: now
  }
}

/**
 * `market` is undefined when the node has no chain settings: every route
 * then answers 503 CHAIN_NOT_CONFIGURED.
 */
export function walletRoutes (getMarket: () => MarketService | undefined): ApiRoute[] {
  const route = marketRouteMaker(getMarket, mapError)

  return [
    route('GET', '/v1/account', async (m) => await accountView(m)),

    route('POST', '/v1/wallet/send', async (m, req): Promise<WalletSendView> => {
      const b = bodyOf(req)
      if (b.asset !== 'eth' && b.asset !== 'rlc') throw bad('asset', 'must be eth or rlc')
      if (typeof b.to !== 'string' || !isAddress(b.to)) throw bad('to', 'must be an address')
      const to = getAddress(b.to)
      if (to === ZeroAddress) throw bad('to', 'is the zero address: the funds would be lost')
      const n = amount(b.amount, 'amount', b.asset === 'rlc' ? MAX_U64 : MAX_SEND)
      if (b.asset === 'rlc') {
        const rlc = m.chain.rlc
        if (rlc === undefined) throw new HttpError(503, 'CHAIN_NOT_CONFIGURED', 'the RLC token is unknown')
        const have = await rlc.balanceOf(m.address)
        if (have < n) throw new HttpError(422, 'INSUFFICIENT_FUNDS', `the wallet holds ${have} nRLC, less than ${n}`, { have: have.toString() })
        const tx = await m.chain.sender.send(rlc.transfer.populateTransaction(to, n))
        return { txHash: tx.hash, asset: 'rlc', to, amount: n.toString(), balance: (await rlc.balanceOf(m.address)).toString() }
      }
      const have = await m.chain.ethBalance()
      if (have < n) throw new HttpError(422, 'INSUFFICIENT_FUNDS', `the wallet holds ${have} wei, less than ${n}`, { have: have.toString() })
      // gas is paid on top: the node refuses a value that leaves too little for it (TX_REJECTED)
      const tx = await m.chain.sender.send({ to, value: n })
      return { txHash: tx.hash, asset: 'eth', to, amount: n.toString(), balance: (await m.chain.ethBalance()).toString() }
    }),

    route('POST', '/v1/stake/withdraw', async (m, req): Promise<StakeWithdrawView> => {
      const n = amount(bodyOf(req).amount, 'amount', MAX_U64)
      // a new request moves the unlock time of everything pending: return
      // what has already unlocked first, so it does not wait a second time
      let unstaked = 0n
      const [staked, locked, pending, unlockAt] = await m.hub.stakeOf(m.address)
      // checked before the unstake below, so a refused request sends nothing
      // (that unstake leaves the free part unchanged)
      const free = staked - locked - pending
      if (n > free) throw new HttpError(422, 'STAKE_INSUFFICIENT', `only ${free} nRLC of the stake is free to withdraw`, { free: free.toString() })
      if (pending > 0n && BigInt(await chainTime(m)) >= unlockAt) {
        await m.chain.sender.send(m.hub.unstake.populateTransaction())
        unstaked = pending
      }
      const tx = await m.chain.sender.send(m.hub.requestUnstake.populateTransaction(n))
      const [, , pendingNow, unlockNow] = await m.hub.stakeOf(m.address)
      return { txHash: tx.hash, unstaked: unstaked.toString(), pending: pendingNow.toString(), unlockAt: Number(unlockNow), chainTime: await chainTime(m) }
    }),

    route('POST', '/v1/stake/unstake', async (m): Promise<UnstakeView> => {
      const [, , pending] = await m.hub.stakeOf(m.address)
      const tx = await m.chain.sender.send(m.hub.unstake.populateTransaction())
      const [[balance], [stake]] = await Promise.all([m.hub.accountOf(m.address), m.hub.stakeOf(m.address)])
      return { txHash: tx.hash, amount: pending.toString(), balance: balance.toString(), stake: stake.toString() }
    })
  ]
}
