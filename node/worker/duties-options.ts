/** Options of the worker's duties, with their reasons. */
export interface WorkerDutiesOptions {
  /** tasks computed at once (the node's advertised capacity) */
  maxConcurrentTasks: number
  /** heartbeat period while a task is being fetched, run or committed */
  heartbeatIntervalMs: number
  /** how often held tasks are checked against the hub (reveals owed, restarts) */
  tickMs: number
  /** bound of the app module fetched from Helia */
  maxAppBytes: number
  /** bound of each input file */
  maxInputBytes: number
  /** bound of one content fetch */
  fetchTimeoutMs: number
  /** upper bound of one run; the deal's time reference bounds it too */
  maxRunMs: number
  maxMemoryBytes: number
  maxOutputBytes: number
}

export const defaultWorkerDutiesOptions: WorkerDutiesOptions = {
  // one task per core of the 2-core dev machines; an operator raises it with its cpus
  maxConcurrentTasks: 2,
  // must match the scheduler's expectation (its heartbeatIntervalMs)
  heartbeatIntervalMs: 2_000,
  // a reveal is owed within the reveal deadline (2 time references: minutes); 250 ms reacts within a block on anvil
  tickMs: 250,
  // wasm apps are small (the examples are < 10 KiB); 64 MiB refuses junk early
  maxAppBytes: 64 << 20,
  maxInputBytes: 256 << 20,
  // a LAN bitswap fetch of 10 MiB takes ~1 s; 60 s covers slow links without hanging a task
  fetchTimeoutMs: 60_000,
  // the smallest category's time reference is 60 s: a task must end well within it
  maxRunMs: 30_000,
  maxMemoryBytes: 256 << 20,
  maxOutputBytes: 64 << 20
}
