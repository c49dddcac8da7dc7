import { ChainError } from './errors.js'

/**
 * How a node reads one chain: how many blocks it waits on top of a block
 * before acting on its events, and how often it asks the endpoint.
 */
export interface ChainProfile {
  /** blocks on top of a block before the hub follower delivers its events */
  confirmations: number
  /** wait between two polls of the hub follower, ms */
  eventPollIntervalMs: number
  /** ethers' polling (receipts of our transactions), ms */
  rpcPollingIntervalMs: number
}

/** Chain ids of local development chains (anvil, hardhat, geth --dev, ganache): one miner, no reorgs, no rate limit. */
export const DEV_CHAIN_IDS: ReadonlySet<number> = new Set([31337, 1337])

/**
 * A dev chain answers on the loopback in a millisecond and mines on demand:
 * polling fast costs nothing and every 100 ms of it is latency.
 */
const DEV: ChainProfile = { confirmations: 0, eventPollIntervalMs: 100, rpcPollingIntervalMs: 50 }

/**
 * Any other chain: a shared endpoint with a rate limit (public ones allow a
 * few requests per second per client), blocks every few seconds, and
 * competing blocks now and then. A poll with no new block is one call
 * (the head); one with new blocks is three or four (head, logs, the last
 * block's hash, the check of the block read before), batched into two HTTP
 * requests. Four seconds between polls keeps an idle node under one call
 * per second even when every poll finds a new block, at two seconds of
 * latency on average. Three confirmations keep a one- or two-block reorg
 * from ever reaching the handlers (a deeper one is rewound,
 * event-follower.ts) at three blocks of latency.
 */
const REMOTE: ChainProfile = { confirmations: 3, eventPollIntervalMs: 4_000, rpcPollingIntervalMs: 1_000 }

/** The profile of chain `chainId`, with the operator's overrides (config.json's `chain`). */
export function chainProfile (chainId: number, overrides: Partial<ChainProfile> = {}): ChainProfile {
  const base = DEV_CHAIN_IDS.has(chainId) ? DEV : REMOTE
  const p: ChainProfile = { ...base, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) }
  const nat = (x: number): boolean => Number.isSafeInteger(x) && x >= 0
  if (!nat(p.confirmations) || !nat(p.eventPollIntervalMs) || !nat(p.rpcPollingIntervalMs)) {
    throw new ChainError('INVALID_ARGUMENT', 'chain profile needs whole numbers >= 0', { ...p })
  }
  return p
}
