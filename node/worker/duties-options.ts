import { MAX_APP_MODULE_BYTES } from './options.js'
/** Options of the worker's duties, with their reasons. */
export interface WorkerDutiesOptions {
  /** tasks computed at once (the node's advertised capacity) */
  maxConcurrentTasks: number
  /** heartbeat period while a task is being fetched, run or committed (one heartbeat per scheduler for all its tasks) */
  heartbeatIntervalMs: number
  /** a computed or failed task is reported to its scheduler within this delay, with whatever else changed meanwhile */
  reportDelayMs: number
  /** trust-1 results of one deal committed in one transaction at most */
  maxCommitBatch: number
  /** group-commit transactions of full batches sent before the first one is mined (a partial batch waits for none in flight) */
  maxCommitsInFlight: number
  /** how long a trust-1 result may wait for other tasks of its deal still computing here, to share their transaction */
  commitWaitMs: number
  /** a deal's prepared app and inputs are kept this long after its last task here started computing */
  preparedTtlMs: number
  /** how often held tasks are checked against the hub (reveals owed, restarts) */
  tickMs: number
  /** bound of the app module fetched from Helia */
  maxAppBytes: number
  /** bound of each input file and of the dataset (its ciphertext, or its archive when published in clear) */
  maxInputBytes: number
  /** bound of one content fetch that does not depend on its size, ms */
  fetchTimeoutMs: number
  /** an input or dataset fetch gets this much more time per byte of its size: the rate below which it is given up */
  fetchMinBytesPerSecond: number
  /** a fetch that receives no byte for this long is stopped, ms */
  fetchStallTimeoutMs: number
  /**
   * Caps below the deal's category's bounds (run-limits.ts): a run's time,
   * memory and output are its category's (time reference, memoryMiB,
   * diskMiB) unless one of these is lower. Unset by default: the operator's
   * maxima are its advertised resources, which its provider bids within.
   */
  maxRunMs?: number
  maxMemoryBytes?: number
  maxOutputBytes?: number
  /**
   * An output of at most this many bytes is read back into memory by the
   * executor, digested and archived from there and added to Helia at once;
   * a larger one is digested and archived from the disk, streaming
   */
  collectOutputBytes: number
}

export const defaultWorkerDutiesOptions: WorkerDutiesOptions = {
  // one task per core of the 2-core dev machines; an operator raises it with its cpus
  maxConcurrentTasks: 2,
  // must match the scheduler's expectation (its heartbeatIntervalMs)
  heartbeatIntervalMs: 2_000,
  // short against a task, long enough that results finishing together share a message
  reportDelayMs: 5,
  // a contributeAndFinalize is ~80k gas: 32 of them are ~2.6M, a tenth of a block on most chains,
  // and a revert (one task closed by someone else) costs one estimate before the tasks go one by one
  maxCommitBatch: 32,
  // four full batches a block: 128 tiny tasks a second per worker with 1 s blocks; more in flight
  // only lengthens the nonce queue a failed broadcast would have to resync
  maxCommitsInFlight: 4,
  // a tenth of a second against a block time of seconds; a task alone on the worker never waits
  commitWaitMs: 100,
  // a bag's next task usually comes within a scheduler tick; a minute covers a slow one
  // without keeping a finished deal's inputs on disk for long
  preparedTtlMs: 60_000,
  // a reveal is owed within the reveal deadline (2 time references: minutes); 250 ms reacts within a block on anvil
  tickMs: 250,
  // what app publish accepts: apps of hundreds of MiB (a runtime with its libraries) run
  maxAppBytes: MAX_APP_MODULE_BYTES,
  // 4 GiB, the bound a folder dataset's archive already has (storage ARCHIVE_DEFAULTS.maxBytes),
  // so whatever `dataset publish` packs a worker can use, plus room for the cipher's tags
  // (16 bytes per 64 KiB chunk: 1 MiB per 4 GiB). A task needs up to ~3x that on disk (the
  // retained blocks, the fetched ciphertext, the plaintext), never in memory: the fetch
  // streams to a file and decryption streams file to file
  maxInputBytes: 4 * 1024 * 1024 * 1024 + (16 << 20),
  // the size-independent part: a provider lookup, a dial and the app module; a LAN bitswap
  // fetch of 10 MiB takes ~1 s
  fetchTimeoutMs: 60_000,
  // 1 MiB/s (8 Mbit/s, a modest uplink; bitswap moved 1 GiB at ~34 MiB/s between two local
  // nodes, test/bench/dataset.bench.ts): 1 GiB gets 60 s + ~17 min, while a peer that
  // trickles bytes just fast enough to beat the stall bound is still stopped
  fetchMinBytesPerSecond: 1024 * 1024,
  // a missing block costs a provider lookup, a dial and one 1 MiB leaf: 30 s is ample, and a
  // fetch whose peers went away ends in 30 s rather than at the size-scaled bound
  fetchStallTimeoutMs: 30_000,
  // most results are a few small files; 4 MiB held while a task is digested and archived is
  // little next to the app's own memory bound, and a larger output streams as before
  collectOutputBytes: 4 << 20
}
