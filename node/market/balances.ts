/**
 * Requesters' hub balances as the hub's events tell them, so that a gossiped
 * request is relayed and bid on only when its requester can pay for it,
 * with no chain read per message.
 *
 * The estimate moves with the events that move a hub balance and say by how
 * much: Deposit (+), Withdraw (-), Staked (-, balance to stake), Unstaked
 * (+), DealCreated (- the requester's frozen payment: volume x the deal's
 * prices). Rewards and refunds (TaskFinalized, TaskClaimed, StakeReleased)
 * carry no per-account amounts, so the estimate is a lower bound for an
 * account that earned (an asset owner earns without depositing). When an
 * estimate falls short, one chain read (`accountOf`) refreshes it, at most
 * once per account per `refreshMs` and at most `readsPerSecond` for all
 * accounts together: a request gossiped a moment after its requester's
 * deposit (our follower polls) is still judged right, and a flood of fresh
 * keys costs a few reads a second, never one per message.
 *
 * Persisted in level (the hub follower's cursor is, so a restarted node does
 * not replay the events it applied).
 */
import { getAddress } from 'ethers'
import { Repository, jsonCodec } from '../db/index.js'
import type { DbController } from '../db/index.js'
import type { ChainEvent } from '../chain/index.js'
import { MarketError } from './errors.js'
import { BoundedCache } from '../common/bounded-cache.js'

/** What the validators ask of the balances (injected: tests back it with a map). */
export interface BalanceLookup {
  /** whether `account`'s hub balance covers `cost` and is not empty */
  covers: (account: string, cost: bigint) => Promise<boolean>
}

interface BalanceRecord { balance: string }

function checkBalanceRecord (v: unknown): BalanceRecord {
  const r = v as Partial<BalanceRecord>
  if (typeof r !== 'object' || r === null || typeof r.balance !== 'string' || !/^-?[0-9]+$/.test(r.balance)) {
    throw new MarketError('MARKET_BAD_RECORD', 'not a balance record')
  }
  return r as BalanceRecord
}

export interface HubBalancesOptions {
  /** the hub's `accountOf` (balance first), read when a known account's estimate falls short */
  read: (account: string) => Promise<bigint>
  /** least time between two reads of one account, ms */
  refreshMs?: number
  /** most reads in flight or done per second, all accounts together (a flood of known accounts cannot turn into a read storm) */
  readsPerSecond?: number
  now?: () => number
}

export class HubBalances implements BalanceLookup {
  private readonly repo: Repository<BalanceRecord>
  private readonly balances = new Map<string, bigint>()
  private readonly lastRead = new BoundedCache<string, number>(10_000)
  private readonly refreshMs: number
  private readonly readsPerSecond: number
  private readonly now: () => number
  private readsWindowStart = 0
  private readsInWindow = 0
  private loaded = false

  constructor (db: DbController, private readonly opts: HubBalancesOptions) {
    this.repo = new Repository(db, 'mkt-bal', jsonCodec(checkBalanceRecord))
    this.refreshMs = opts.refreshMs ?? 30_000
    this.readsPerSecond = opts.readsPerSecond ?? 5
    this.now = opts.now ?? Date.now
  }

  /** Loads the persisted estimates (once; one entry per account that ever deposited or owns an asset). */
  async load (): Promise<void> {
    if (this.loaded) return
    for await (const { key, value } of this.repo.entries({ limit: Number.MAX_SAFE_INTEGER })) this.balances.set(key, BigInt(value.balance))
    this.loaded = true
  }

  /** The estimate; undefined for an account no event named. */
  estimate (account: string): bigint | undefined {
    return this.balances.get(account.toLowerCase())
  }

  /** Applies one hub event (the node's HubEvents feeds every event, in chain order). */
  async apply (event: ChainEvent): Promise<void> {
    const a = event.args
    if (a === undefined) return
    switch (event.name) {
      case 'Deposit': return await this.add(String(a.account), BigInt(a.amount as bigint))
      case 'Unstaked': return await this.add(String(a.account), BigInt(a.amount as bigint))
      case 'Withdraw': return await this.add(String(a.account), -BigInt(a.amount as bigint))
      case 'Staked': return await this.add(String(a.account), -BigInt(a.amount as bigint))
      case 'AppRegistered':
      case 'DatasetRegistered':
        return await this.add(String(a.owner), 0n)
      case 'DealCreated': {
        const info = a.info as { volume: bigint, appPrice: bigint, datasetPrice: bigint, workerPrice: bigint }
        const cost = BigInt(info.volume) * (BigInt(info.appPrice) + BigInt(info.datasetPrice) + BigInt(info.workerPrice))
        return await this.add(String(a.requester), -cost)
      }
    }
  }

  private async add (account: string, delta: bigint): Promise<void> {
    const key = getAddress(account).toLowerCase()
    const next = (this.balances.get(key) ?? 0n) + delta
    this.balances.set(key, next)
    await this.repo.put(key, { balance: next.toString() })
  }

  async covers (account: string, cost: bigint): Promise<boolean> {
    const key = account.toLowerCase()
    const est = this.balances.get(key)
    if (est !== undefined && est > 0n && est >= cost) return true
    // it may have earned what the events do not count, or deposited in a block our follower has not
    // read yet: read it, rarely
    const now = this.now()
    const last = this.lastRead.get(key)
    if (last !== undefined && now - last < this.refreshMs) return false
    if (now - this.readsWindowStart >= 1000) {
      this.readsWindowStart = now
      this.readsInWindow = 0
    }
    if (this.readsInWindow >= this.readsPerSecond) return false
    this.readsInWindow++
    this.lastRead.set(key, now)
    const read = await this.opts.read(account)
    // the read is the truth at its block; later events move it from there
    this.balances.set(key, read)
    await this.repo.put(key, { balance: read.toString() })
    return read > 0n && read >= cost
  }
}
