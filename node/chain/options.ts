/**
 * Options of the chain module and their defaults, each with its reason.
 * The CLI parses and validates its own flags, then merges these defaults in.
 */

/** How the JSON-RPC endpoint is reached and how hard we try before giving up. */
/** What a transaction became: sent (broadcast), mined (successful receipt), replaced (one per earlier hash), failed (reverted or no receipt). */
export type TxEvent = 'sent' | 'mined' | 'replaced' | 'failed'

/** Told of each RPC exchange and each transaction (the node's metrics); nothing is told when absent. */
export interface ChainObserver {
  /** one JSON-RPC call: its method, the exchange's time, and whether it failed (after retries) */
  rpc?: (method: string, ms: number, failed: boolean) => void
  /** gasUsed with `mined` and with a `failed` transaction that has a receipt */
  tx?: (event: TxEvent, gasUsed?: bigint) => void
}

export interface RpcOptions {
  /** one HTTP request's deadline */
  requestTimeoutMs: number
  /** attempts of one RPC operation on transient errors (refused, reset, timeout, 429, 5xx) */
  retryAttempts: number
  /** first backoff delay; doubles on each attempt, with jitter */
  retryBaseDelayMs: number
  /** cap of one backoff delay */
  retryMaxDelayMs: number
  /** ethers' polling interval for blocks and receipts */
  pollingIntervalMs: number
  observer?: ChainObserver
}

export const defaultRpcOptions: RpcOptions = {
  // a local or LAN node answers in milliseconds; a public endpoint under load
  // in a few seconds. ethers' own default is 5 minutes, far too long to learn
  // that the node is gone.
  requestTimeoutMs: 10_000,
  // 5 attempts with 100 ms doubling backoff span ~1.5 s of waiting: enough to
  // ride over a node restart or a burst of 429s, short enough that a dead
  // endpoint is reported within seconds (RPC_UNREACHABLE), not retried forever
  retryAttempts: 5,
  retryBaseDelayMs: 100,
  retryMaxDelayMs: 2_000,
  // STACK-NOTES: ethers' default 4 s polling made event delivery take ~3.7 s
  // on anvil; 50 ms costs little against a local node
  pollingIntervalMs: 50
}

/** How the transaction sender prices, sends and waits. */
export interface TxSenderOptions extends RpcOptions {
  /**
   * Percent added to `eth_estimateGas`. The estimate is computed against the
   * state at estimation time; by inclusion other transactions may have made
   * the call costlier (a storage slot going from zero to non-zero costs 20k
   * instead of 2.9k, a sortition tree grows a level, a loop over a list runs
   * longer) and EIP-150's 63/64 rule makes a tight limit fail deep calls.
   * 20 % covers those cases on our hub; unused gas is refunded, so headroom
   * costs nothing but a higher balance check.
   */
  gasHeadroomPercent: number
  /** how long to wait for the receipt (and the confirmations) before TX_TIMEOUT */
  receiptTimeoutMs: number
  /** blocks on top of the transaction's block before `send` resolves; 1 = mined */
  confirmations: number
  /** how old the fee data (base fee, priority fee) a transaction is priced with may be */
  feeDataMaxAgeMs: number
  /**
   * Time without a receipt after which the sender looks at its transaction
   * again (and again at each such interval): dropped from the node's pool,
   * it is sent again; still pending, it is replaced (same nonce) with fees
   * raised by `feeBumpPercent`, up to the cap.
   */
  replaceAfterMs: number
  /** percent a replacement raises both fees by (nodes want at least 10 % to replace a pending transaction) */
  feeBumpPercent: number
  /** replacements never price a transaction above this many times its first maxFeePerGas (or gas price) */
  maxFeeMultiplier: number
  /** and never above this maxFeePerGas (or gas price), wei, when set */
  maxFeePerGasWei?: bigint
}

export const defaultTxSenderOptions: TxSenderOptions = {
  ...defaultRpcOptions,
  gasHeadroomPercent: 20,
  // anvil automines in ~70 ms; a 12 s-block chain needs a few blocks under load
  receiptTimeoutMs: 120_000,
  confirmations: 1,
  // about a block on fast chains; maxFeePerGas (twice the base fee) absorbs a few blocks of rises
  feeDataMaxAgeMs: 1_000,
  // a few blocks of a 12 s chain: a transaction priced at twice the base fee is normally in
  // the next block or two, so one still pending after 30 s is stuck or dropped
  replaceAfterMs: 30_000,
  // geth and anvil replace a pending transaction for 10 % more on both fees; 13 % clears that after rounding
  feeBumpPercent: 13,
  // a spike past four times the price at sending waits (bounded by receiptTimeoutMs) rather than pays any price
  maxFeeMultiplier: 4
}

/** How the event follower reads logs. */
export interface EventFollowerOptions extends RpcOptions {
  /**
   * Blocks that must be built on top of a block before its logs are delivered.
   * Reorgs shallower than this never reach the handler. 0 delivers at once:
   * right for anvil's automine (no competing miners), wrong for a real
   * network. With 0, an `evm_revert`/`anvil_reorg` after delivery is caught
   * by the block-hash check (REORG_DETECTED), not undone.
   */
  confirmations: number
  /** largest `eth_getLogs` range; public endpoints cap it (often 1k-10k blocks) */
  maxBlockRange: number
  /** wait between polls when caught up */
  pollIntervalMs: number
  /** attempts of a failing handler on one event before the follower stops with HANDLER_FAILED */
  handlerAttempts: number
  /** first block to read when the cursor store is empty */
  fromBlock: number
}

export const defaultEventFollowerOptions: EventFollowerOptions = {
  ...defaultRpcOptions,
  // anvil has no reorgs; nodes on a real network set this (e.g. 12 on mainnet-like chains)
  confirmations: 0,
  maxBlockRange: 2_000,
  pollIntervalMs: 100,
  handlerAttempts: 5,
  fromBlock: 0
}

/** How the node follows its hub (HubEvents): the follower's pace and depth, set per chain by node/chain/profile.ts. */
export interface HubEventsOptions {
  /** blocks on top of a block before the hub's events of it are delivered */
  confirmations: number
  /** how often the follower polls when caught up (and no subscription pushes), ms */
  pollIntervalMs: number
  /** largest `eth_getLogs` range of the follower */
  maxBlockRange: number
}

export const defaultHubEventsOptions: HubEventsOptions = {
  // anvil mines in ~70 ms; 100 ms keeps the node within a block of the chain.
  // The node sets both from its chain's profile (node/chain/profile.ts)
  confirmations: defaultEventFollowerOptions.confirmations,
  pollIntervalMs: defaultEventFollowerOptions.pollIntervalMs,
  maxBlockRange: defaultEventFollowerOptions.maxBlockRange
}
