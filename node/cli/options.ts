/** CLI-only defaults (library defaults live with each module's options.ts). */
export const CLI_DEFAULTS = {
  // quickstart shows a requester and 3 providers: the smallest swarm where
  // the DHT has to route (not every node is a direct neighbour of the asker)
  quickstartNodes: 4,
  // one requester and two providers: enough to see peers and resources
  swarmNodes: 3,
  // a swarm beyond this on one machine is a benchmark, not a dev swarm
  maxSwarmNodes: 64,
  // a node loads helia+libp2p in ~2 s alone; several starting at once on a
  // shared 2-core machine can take 10x that
  swarmReadyTimeoutMs: 120_000,
  // a node stops in 1-3 s; after this it is killed
  swarmStopGraceMs: 10_000,
  // a foreground node given SIGINT exits on its own after this, even if a
  // module hangs in stop(); below swarmStopGraceMs so `swarm down` sees a clean exit
  nodeStopTimeoutMs: 8_000,
  // after SIGKILL the kernel needs only milliseconds; bound it anyway
  swarmKillWaitMs: 5_000,
  // adverts are published right after start; a DHT lookup on a fresh swarm
  // may need a few rounds before every provider has announced
  quickstartDiscoveryTimeoutMs: 90_000,
  /** from the deal to the demo task's final status: fetch, run, contribute (seconds on a quiet machine) */
  quickstartTaskTimeoutMs: 120_000,
  // how long `start --bootstrap` waits for a first connection before saying none answered
  bootstrapCheckMs: 15_000,
  // anvil answers its RPC in well under a second; a loaded machine may need more
  chainReadyTimeoutMs: 20_000,
  // one API call that sends transactions (deposit, stake) and waits for their
  // receipts: anvil automines, so seconds at most
  chainTxTimeoutMs: 30_000,
  // task submit waits for the bidding window plus matchOrders
  taskSubmitTimeoutMs: 120_000,
  // status polling while waiting for something
  pollIntervalMs: 200,
  // task watching reads ~7 event filters per task from the node: twice a
  // second follows a 1 s-block chain closely without flooding a local node
  taskWatchIntervalMs: 500,
  // a watch without --timeout lasts until the final deadline plus this (the
  // claim that ends a failed task comes after the deadline)
  taskWatchGraceMs: 60_000,
  // lines of a failed node's log printed with the error
  logTailLines: 20
} as const
