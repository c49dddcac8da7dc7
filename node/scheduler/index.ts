/**
 * Execution on the scheduler's side: the duties of the node elected for a
 * deal (initialize, assign with signed authorizations over the exec
 * protocol, replicas until consensus can be met, heartbeats and
 * reassignment, reveals, upload, finalize), the watchdog every node runs
 * (reelect / reelectForTask), and the exec channel both the scheduler and
 * the worker services register their message handlers on.
 *
 * @example
 * ```ts
 * const channel = new ExecChannel(node.network)
 * const scheduler = createSchedulerService({ channel, db: node.db, chain, domain, wallet: node.wallet, resolvePeer })
 * const worker = createWorkerDuties({ channel, helia: node.network.helia, db: node.db, chain, domain, executor, workDir })
 * await channel.start(); await scheduler.start(); await worker.start()
 * // fed by an EventFollower on the hub's DealCreated events:
 * await scheduler.onDeal(dealFromEvent(event))
 * ```
 */
export { createSchedulerService, SchedulerService } from './service.js'
export type { SchedulerInit, ScheduledTask, Replica, KnownDeal } from './service.js'
export { ExecChannel } from '../exec/exec-channel.js'
export type { ExecHandler, ExecNetwork } from '../exec/exec-channel.js'
export { dealFromEvent } from '../chain/deal.js'
export { PeerResolver } from '../exec/peer-resolver.js'
export type { PeerLookup } from '../exec/peer-resolver.js'
export type { DealInfo } from '../chain/deal.js'
export { SchedulerError } from './errors.js'
export type { SchedulerErrorCode } from './errors.js'
export { defaultSchedulerOptions, defaultExecChannelOptions } from './options.js'
export type { SchedulerOptions, ExecChannelOptions } from './options.js'
export { EXEC_PROTOCOL } from '../../protocols/execution.js'
