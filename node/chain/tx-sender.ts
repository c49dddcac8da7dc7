import { isError, type FeeData, type HDNodeWallet, type Interface, type JsonRpcProvider, type TransactionReceipt, type Wallet } from 'ethers'
import { FreshValue } from '../common/memo.js'
import { privateKeyOf } from '../../protocols/secp256k1.js'
import { ChainError, isChainError } from './errors.js'
import { decodeRevert, isRevert, isTransientRpcError, sleep, unreachable, withRpcRetry } from './rpc.js'
import { defaultTxSenderOptions, type TxSenderOptions } from './options.js'
import { signTransaction } from './raw-tx.js'

/** What `send` takes: typechain's `contract.fn.populateTransaction(...)` output fits as is. */
export interface TxRequest {
  to: string
  data?: string
  value?: bigint
  /** skip estimation and use this limit as is */
  gasLimit?: bigint
}

/** Per-call overrides of the sender's options. */
export interface SendOptions {
  confirmations?: number
  receiptTimeoutMs?: number
  replaceAfterMs?: number
  /** aborts waiting for the receipt (the transaction may still be mined) */
  signal?: AbortSignal
  /** told when the transaction is sent again: re-priced (replaced, same nonce) or re-sent after its node dropped it */
  onResend?: (info: ResendInfo) => void
}

/** A transaction sent again by `send` while it waited. */
export interface ResendInfo {
  reason: 'repriced' | 'resent'
  nonce: number
  /** the hash now waited for */
  hash: string
  /** the hash it replaces (the same when the same bytes were sent again) */
  previous: string
  /** its maxFeePerGas, or gas price for a legacy transaction, wei */
  maxFeePerGas: bigint
}

/** The fees a transaction is signed with. */
type Fees = { maxFeePerGas: bigint, maxPriorityFeePerGas: bigint } | { gasPrice: bigint }

/** One transaction of a `send`, as it waits: what it was signed from, and every hash it went out with. */
interface InFlight {
  req: TxRequest
  gasLimit: bigint
  nonce: number
  fees: Fees
  /** the highest price a replacement may take */
  cap: bigint
  /** the hash of the latest signed version (replacements push here) */
  hash: string
  signed: string
  hashes: string[]
}

const priceOf = (f: Fees): bigint => 'gasPrice' in f ? f.gasPrice : f.maxFeePerGas

/** A mined, successful transaction. */
export interface SentTx {
  hash: string
  nonce: number
  blockNumber: number
  blockHash: string
  gasUsed: bigint
  gasLimit: bigint
  receipt: TransactionReceipt
  /** where the wait went: `send` called -> the node accepted the transaction (fees, nonce queue, estimate, broadcast), then -> its receipt seen */
  timings: { broadcastMs: number, receiptMs: number }
  /** earlier hashes of this transaction (same nonce), replaced while it waited; empty when it was mined as first sent */
  replaced: string[]
}

/** A signing key the sender can use offline (signTransaction without a provider round trip). */
export type SigningWallet = Wallet | HDNodeWallet

/** What a sender is built from (`createChainClient` does it). */
export interface TxSenderInit {
  wallet: SigningWallet
  provider: JsonRpcProvider
  chainId: number
  /** the endpoint, for error messages */
  url: string
  options?: Partial<TxSenderOptions>
  /** ABIs whose custom errors reverts decode to */
  errorInterfaces?: Interface[]
}

/** Messages of nodes (geth, anvil, erigon, nethermind) for a nonce that is already used. */
const NONCE_USED = /nonce too low|nonce has already been used|already known|known transaction|replacement transaction underpriced|transaction already imported/i

/** Messages of nodes for a transaction priced too low to enter the pool or replace the pending one. */
const PRICE_TOO_LOW = /underpriced|less than block base fee|fee cap less than|feecap|fee too low|max fee per gas less than/i

/** Resyncs of the nonce from the chain allowed in one `send`: another process using the key can cost one; more means something is wrong. */
const MAX_NONCE_RESYNCS = 3

/**
 * Sends transactions from one wallet. Nonces are assigned in one queue per
 * wallet, so any number of concurrent `send` calls get consecutive nonces and
 * never collide, and reach the chain in the order `send` was called. Gas is estimated with headroom; transient RPC failures are
 * retried with bounded backoff; reverts are never retried and come out as
 * CONTRACT_REVERT with the custom error's name and arguments.
 *
 * One sender per wallet per process: a second sender (or another process)
 * using the same key is survived (a "nonce too low" answer makes the sender
 * ask the chain again, up to 3 times per send) but costs a round trip.
 */
export class TxSender {
  readonly address: string
  private readonly opts: TxSenderOptions
  private readonly interfaces: Interface[]
  /** next nonce to use; undefined = ask the chain (first use, or after an ambiguous failure) */
  private nextNonce: number | undefined
  /** tail of the nonce queue: each `send` chains its critical section on it */
  private queue: Promise<void> = Promise.resolve()
  /**
   * The chain's fee data, read at most once per `feeDataMaxAgeMs` (concurrent
   * sends share the read): ethers' getFeeData is three calls (the latest
   * block, the gas price, the priority fee), and a worker sending one
   * transaction per task asked them per task. A maxFeePerGas of twice the
   * base fee covers the base fee's rise over several blocks, so a value a
   * second old prices a transaction as well as a fresh one.
   */
  private readonly fees: FreshValue<FeeData>

  /** the wallet's private key (an ethers Wallet or HDNodeWallet always has one in memory) */
  private readonly key: Uint8Array
  private readonly provider: JsonRpcProvider
  private readonly chainId: number
  private readonly url: string

  constructor (init: TxSenderInit) {
    const key = privateKeyOf(init.wallet)
    if (key === undefined) throw new ChainError('INVALID_ARGUMENT', 'the sender needs a wallet holding its private key', {})
    this.key = key
    this.provider = init.provider
    this.chainId = init.chainId
    this.url = init.url
    this.address = init.wallet.address
    this.opts = { ...defaultTxSenderOptions, ...init.options }
    this.interfaces = [...(init.errorInterfaces ?? [])]
    this.fees = new FreshValue(this.opts.feeDataMaxAgeMs, async () => await this.rpc('getFeeData', async () => await this.provider.getFeeData(), {}))
    if (this.opts.gasHeadroomPercent < 0 || this.opts.confirmations < 0) {
      throw new ChainError('INVALID_ARGUMENT', 'gasHeadroomPercent and confirmations must be >= 0', { gasHeadroomPercent: this.opts.gasHeadroomPercent, confirmations: this.opts.confirmations })
    }
  }

  /** Adds an ABI whose custom errors `send` and `call` should decode. */
  addErrorInterface (iface: Interface): void {
    this.interfaces.push(iface)
  }

  /** Forgets the cached nonce: the next `send` asks the chain. */
  resetNonce (): void {
    this.nextNonce = undefined
  }

  /**
   * Estimates gas for `req` from this wallet on the pending state (so after
   * this wallet's earlier transactions), plus the headroom. Reverts become CONTRACT_REVERT.
   */
  async estimateGas (req: TxRequest): Promise<bigint> {
    const rpcTx = this.provider.getRpcTransaction({ from: this.address, to: req.to, data: req.data, value: req.value })
    const est = await this.rpc('eth_estimateGas', async () => BigInt(await this.provider.send('eth_estimateGas', [rpcTx, 'pending']) as string), { to: req.to })
    return est * BigInt(100 + this.opts.gasHeadroomPercent) / 100n
  }

  /** eth_call from this wallet; reverts become CONTRACT_REVERT. */
  async call (req: TxRequest, blockTag?: number | 'latest'): Promise<string> {
    return await this.rpc('eth_call', async () => await this.provider.call({ from: this.address, to: req.to, data: req.data, value: req.value, blockTag }), { to: req.to })
  }

  /**
   * Signs and sends `req`, then waits for its receipt (and confirmations).
   * Resolves only for a successful transaction.
   * @throws ChainError CONTRACT_REVERT (estimation or mined with status 0),
   *   RPC_UNREACHABLE, TX_TIMEOUT, TX_REJECTED
   */
  async send (request: TxRequest | Promise<TxRequest>, sendOpts: SendOptions = {}): Promise<SentTx> {
    const t0 = Date.now()
    const req = await request
    if (typeof req.to !== 'string' || req.to === '') {
      throw new ChainError('INVALID_ARGUMENT', 'transaction needs a `to` address (contract creation goes through deploy.ts)', {})
    }
    const fees = feesOf(await this.fees.get())
    // estimation runs in the queue, after this wallet's earlier sends reached
    // the node: `approve` then `deposit` sent back to back estimate the deposit
    // on the approved state. A revert here consumes no nonce.
    const tx = await this.inQueue(async () => {
      const limit = req.gasLimit ?? await this.estimateGas(req)
      const { hash, nonce, signed } = await this.signAndBroadcast(req, limit, fees)
      const cap = this.opts.maxFeePerGasWei !== undefined && this.opts.maxFeePerGasWei < priceOf(fees) * BigInt(this.opts.maxFeeMultiplier)
        ? this.opts.maxFeePerGasWei
        : priceOf(fees) * BigInt(this.opts.maxFeeMultiplier)
      const inFlight: InFlight = { req, gasLimit: limit, nonce, fees, cap, hash, signed, hashes: [hash] }
      return inFlight
    })
    const accepted = Date.now()
    const observe = this.opts.observer?.tx
    observe?.('sent')
    let receipt
    try {
      receipt = await this.waitReceipt(tx, sendOpts)
    } catch (err) {
      observe?.('failed')
      throw err
    }
    const replaced = tx.hashes.filter((h) => h !== receipt.hash)
    for (let i = 0; i < replaced.length; i++) observe?.('replaced')
    if (receipt.status !== 1) {
      observe?.('failed', receipt.gasUsed)
      throw await this.explainFailedTx(req, receipt)
    }
    observe?.('mined', receipt.gasUsed)
    const timings = { broadcastMs: accepted - t0, receiptMs: Date.now() - accepted }
    return { hash: receipt.hash, nonce: tx.nonce, blockNumber: receipt.blockNumber, blockHash: receipt.blockHash, gasUsed: receipt.gasUsed, gasLimit: tx.gasLimit, receipt, timings, replaced }
  }

  /** Signs `req` at `nonce` with `fees` (offline: libsecp256k1 in WebAssembly). */
  private sign (req: TxRequest, gasLimit: bigint, nonce: number, fees: Fees): { serialized: string, hash: string } {
    // signed here (raw-tx.ts: ethers' bytes, made without its byte-by-byte hex parsing of the calldata)
    return signTransaction({ to: req.to, data: req.data ?? '0x', value: req.value ?? 0n, gasLimit, nonce, chainId: this.chainId, fees }, this.key)
  }

  /** Runs `fn` after every earlier queued section: the nonce queue. */
  private async inQueue<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn)
    // the queue goes on whether this section succeeds or fails
    this.queue = run.then(() => undefined, () => undefined)
    return await run
  }

  /** Inside the queue: picks the nonce, signs, broadcasts; the nonce advances only once the node has the transaction. */
  private async signAndBroadcast (req: TxRequest, gasLimit: bigint, fees: Fees): Promise<{ hash: string, nonce: number, signed: string }> {
    for (let resync = 0; ; resync++) {
      if (this.nextNonce === undefined) {
        this.nextNonce = await this.rpc('eth_getTransactionCount', async () => await this.provider.getTransactionCount(this.address, 'pending'), {})
      }
      const nonce = this.nextNonce
      const { serialized: signed, hash } = this.sign(req, gasLimit, nonce, fees)
      try {
        await this.broadcast(signed, hash)
        this.nextNonce = nonce + 1
        return { hash, nonce, signed }
      } catch (err) {
        if (isChainError(err, 'RPC_UNREACHABLE')) {
          // the node may or may not hold the transaction: ask the chain next time
          this.nextNonce = undefined
          throw err
        }
        const msg = err instanceof Error ? err.message : String(err)
        if (NONCE_USED.test(msg) && resync < MAX_NONCE_RESYNCS) {
          // someone else (another process with this key) used the nonce
          this.nextNonce = undefined
          continue
        }
        if (isError(err, 'INSUFFICIENT_FUNDS')) {
          throw new ChainError('TX_REJECTED', `insufficient funds for gas * price + value from ${this.address}`, { address: this.address, nonce }, { cause: err })
        }
        throw new ChainError('TX_REJECTED', `node rejected the transaction: ${msg}`, { address: this.address, nonce }, { cause: err })
      }
    }
  }

  /**
   * eth_sendRawTransaction with bounded retries. Re-sending the same signed
   * bytes is safe (same hash); when a retry is answered "already known" or
   * "nonce too low", the transaction is looked up by hash to tell our own
   * earlier attempt from a real conflict.
   */
  private async broadcast (signed: string, hash: string): Promise<void> {
    let transportFailed = false
    let last: unknown
    for (let attempt = 1; attempt <= this.opts.retryAttempts; attempt++) {
      try {
        await this.provider.send('eth_sendRawTransaction', [signed])
        return
      } catch (err) {
        if (isTransientRpcError(err)) {
          transportFailed = true
          last = err
          if (attempt < this.opts.retryAttempts) await sleep(this.backoff(attempt))
          continue
        }
        const msg = err instanceof Error ? err.message : String(err)
        if (transportFailed && NONCE_USED.test(msg)) {
          const known = await this.rpc('eth_getTransactionByHash', async () => await this.provider.getTransaction(hash), { hash })
          if (known !== null) return
        }
        throw err
      }
    }
    throw unreachable(this.url, 'eth_sendRawTransaction', this.opts.retryAttempts, last)
  }

  private backoff (attempt: number): number {
    const exp = Math.min(this.opts.retryMaxDelayMs, this.opts.retryBaseDelayMs * 2 ** (attempt - 1))
    return Math.round(exp / 2 + Math.random() * exp / 2)
  }

  /** The receipt of any version of `tx` (the latest first: a replacement is the likelier to be mined). */
  private async anyReceipt (tx: InFlight, signal?: AbortSignal): Promise<TransactionReceipt | null> {
    for (let i = tx.hashes.length - 1; i >= 0; i--) {
      const hash = tx.hashes[i]
      const receipt = await this.rpc('eth_getTransactionReceipt', async () => await this.provider.getTransactionReceipt(hash), { hash }, signal)
      if (receipt !== null) return receipt
    }
    return null
  }

  /**
   * Polls for the receipt until it exists with enough confirmations, bounded
   * by receiptTimeoutMs. Every replaceAfterMs without one, the transaction
   * is looked at again (unstick). At the deadline, a transaction its node
   * no longer holds leaves its nonce to the next send, so later
   * transactions do not wait behind a gap.
   */
  private async waitReceipt (tx: InFlight, sendOpts: SendOptions): Promise<TransactionReceipt> {
    const confirmations = sendOpts.confirmations ?? this.opts.confirmations
    const timeoutMs = sendOpts.receiptTimeoutMs ?? this.opts.receiptTimeoutMs
    const deadline = Date.now() + timeoutMs
    const replaceAfterMs = sendOpts.replaceAfterMs ?? this.opts.replaceAfterMs
    let nextLook = Date.now() + replaceAfterMs
    for (;;) {
      const receipt = await this.anyReceipt(tx, sendOpts.signal)
      if (receipt !== null) {
        if (confirmations <= 1) return receipt
        const head = await this.rpc('eth_blockNumber', async () => await this.provider.getBlockNumber(), { hash: receipt.hash }, sendOpts.signal)
        if (head - receipt.blockNumber + 1 >= confirmations) {
          // the block may have been replaced while we waited: check the receipt again
          const again = await this.rpc('eth_getTransactionReceipt', async () => await this.provider.getTransactionReceipt(receipt.hash), { hash: receipt.hash }, sendOpts.signal)
          if (again !== null && again.blockHash === receipt.blockHash) return again
        }
      }
      if (Date.now() >= deadline) {
        const dropped = receipt === null && await this.repairGap(tx)
        throw new ChainError('TX_TIMEOUT', `transaction ${tx.hash} not ${receipt === null ? 'mined' : `confirmed ${confirmations} times`} within ${timeoutMs} ms`, { hash: tx.hash, hashes: [...tx.hashes], nonce: tx.nonce, confirmations, mined: receipt !== null, dropped })
      }
      if (receipt === null && Date.now() >= nextLook) {
        await this.unstick(tx, sendOpts)
        nextLook = Date.now() + replaceAfterMs
      }
      await sleep(this.opts.pollingIntervalMs, sendOpts.signal)
    }
  }

  /**
   * A transaction without a receipt for replaceAfterMs: dropped by its node,
   * it is sent again (re-priced if the fees allow, else the same bytes);
   * still pending, it is replaced at the same nonce with fees raised by
   * feeBumpPercent (and at least today's), up to its cap. Once the cap is
   * reached it waits as it is.
   * @throws ChainError TX_REJECTED when another transaction (not one of this
   *   send's versions) was mined at its nonce
   */
  private async unstick (tx: InFlight, sendOpts: SendOptions): Promise<void> {
    const known = await this.rpc('eth_getTransactionByHash', async () => await this.provider.getTransaction(tx.hash), { hash: tx.hash }, sendOpts.signal)
    if (known === null) {
      const used = await this.rpc('eth_getTransactionCount', async () => await this.provider.getTransactionCount(this.address, 'latest'), {}, sendOpts.signal)
      if (used > tx.nonce) {
        // mined meanwhile? then the next receipt poll finds it; otherwise the nonce went to someone else
        if (await this.anyReceipt(tx, sendOpts.signal) !== null) return
        throw new ChainError('TX_REJECTED', `nonce ${tx.nonce} of ${this.address} was used by another transaction while ${tx.hash} waited`, { address: this.address, nonce: tx.nonce, hashes: [...tx.hashes] })
      }
    }
    const bumped = bumpFees(tx.fees, feesOf(await this.fees.get()), this.opts.feeBumpPercent, tx.cap)
    const previous = tx.hash
    if (bumped !== undefined) {
      const { serialized, hash } = this.sign(tx.req, tx.gasLimit, tx.nonce, bumped)
      try {
        await this.broadcast(serialized, hash)
      } catch (err) {
        // a price still too low for this node (under the base fee, not enough of a raise): the next
        // look raises from there. Anything else (mined meanwhile, the endpoint away) waits as is:
        // the version the node holds may still be mined, and the deadline bounds the wait
        if (PRICE_TOO_LOW.test(err instanceof Error ? err.message : String(err))) tx.fees = bumped
        return
      }
      tx.fees = bumped
      tx.hash = hash
      tx.signed = serialized
      tx.hashes.push(hash)
      sendOpts.onResend?.({ reason: known === null ? 'resent' : 'repriced', nonce: tx.nonce, hash, previous, maxFeePerGas: priceOf(bumped) })
      return
    }
    if (known !== null) return
    // dropped, and at its cap: the same bytes again
    try {
      await this.broadcast(tx.signed, tx.hash)
    } catch {
      // refused again (its price, the endpoint away): the deadline bounds the wait, and a gap it leaves is repaired then
      return
    }
    sendOpts.onResend?.({ reason: 'resent', nonce: tx.nonce, hash: tx.hash, previous, maxFeePerGas: priceOf(tx.fees) })
  }

  /**
   * At a TX_TIMEOUT without a receipt: when the node no longer holds the
   * transaction and its nonce is unused, the next send takes that nonce
   * (else every later transaction would wait behind the gap). Returns
   * whether the transaction was dropped. Best effort: a failing read leaves
   * the nonce queue as it is.
   */
  private async repairGap (tx: InFlight): Promise<boolean> {
    try {
      if (await this.provider.getTransaction(tx.hash) !== null) return false
      if (await this.provider.getTransactionCount(this.address, 'latest') > tx.nonce) return false
    } catch {
      return false
    }
    await this.inQueue(async () => {
      if (this.nextNonce === undefined || this.nextNonce > tx.nonce) this.nextNonce = tx.nonce
    })
    return true
  }

  /**
   * A mined transaction with status 0 carries no revert data: replay it as a
   * call on the parent block's state to recover the custom error. Best effort:
   * transactions before it in the same block are not replayed.
   */
  private async explainFailedTx (req: TxRequest, receipt: TransactionReceipt): Promise<ChainError> {
    const context = { hash: receipt.hash, blockNumber: receipt.blockNumber }
    try {
      await this.call(req, Math.max(0, receipt.blockNumber - 1))
    } catch (err) {
      if (isChainError(err, 'CONTRACT_REVERT')) {
        return new ChainError('CONTRACT_REVERT', `transaction ${receipt.hash} ${err.message}`, { ...context, reason: err.reason, args: err.args }, { cause: err })
      }
    }
    return new ChainError('CONTRACT_REVERT', `transaction ${receipt.hash} reverted in block ${receipt.blockNumber}`, { ...context, reason: 'unknown', args: [] })
  }

  /** One RPC operation: bounded retries on transient errors, reverts decoded. */
  private async rpc<T> (what: string, fn: () => Promise<T>, context: Record<string, unknown>, signal?: AbortSignal): Promise<T> {
    try {
      return await withRpcRetry(this.url, what, this.opts, fn, signal)
    } catch (err) {
      if (isRevert(err)) throw decodeRevert(err, this.interfaces, context)
      throw err
    }
  }
}

/** The fees ethers' fee data gives: EIP-1559 when the chain has a base fee, else a legacy gas price. */
function feesOf (fd: FeeData): Fees {
  return fd.maxFeePerGas !== null
    ? { maxFeePerGas: fd.maxFeePerGas, maxPriorityFeePerGas: fd.maxPriorityFeePerGas ?? 0n }
    : { gasPrice: fd.gasPrice ?? 0n }
}

/**
 * Fees of a replacement: each raised by `percent` (plus 1 wei, so a fee of 0
 * rises too), and at least `today`'s, capped at `cap`. Undefined when the
 * cap leaves no raise.
 */
export function bumpFees (old: Fees, today: Fees, percent: number, cap: bigint): Fees | undefined {
  const raise = (v: bigint): bigint => v * BigInt(100 + percent) / 100n + 1n
  const max = (a: bigint, b: bigint): bigint => (a > b ? a : b)
  const min = (a: bigint, b: bigint): bigint => (a < b ? a : b)
  if ('gasPrice' in old) {
    const price = min(max(raise(old.gasPrice), priceOf(today)), cap)
    return price > old.gasPrice ? { gasPrice: price } : undefined
  }
  const todayPriority = 'gasPrice' in today ? 0n : today.maxPriorityFeePerGas
  const maxFee = min(max(raise(old.maxFeePerGas), priceOf(today)), cap)
  const priority = min(max(raise(old.maxPriorityFeePerGas), todayPriority), maxFee)
  return maxFee > old.maxFeePerGas ? { maxFeePerGas: maxFee, maxPriorityFeePerGas: priority } : undefined
}
