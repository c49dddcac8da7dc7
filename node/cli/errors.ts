import { IexecError } from '../common/errors.js'

/** Codes the CLI itself raises (the modules it calls raise theirs). */
export type CliErrorCode =
  /** usage errors (exit code 2): the command line itself is wrong */
  | 'CLI_UNKNOWN_COMMAND'
  | 'CLI_UNKNOWN_OPTION'
  | 'CLI_MISSING_ARGUMENT'
  | 'CLI_BAD_OPTION'
  | 'CLI_USAGE'
  /** task show / result get --tx: the transaction created no task (yet) */
  | 'TX_NO_TASKS'
  /** a file named on the command line cannot be read */
  | 'CLI_FILE_UNREADABLE'
  /** no running node found for a client command (no api.json) */
  | 'NODE_NOT_RUNNING'
  /** no API token file for a client command */
  | 'API_TOKEN_MISSING'
  /** swarm: a swarm already runs in that dir */
  | 'SWARM_ALREADY_RUNNING'
  /** swarm: no swarm.json in that dir */
  | 'SWARM_NOT_FOUND'
  /** swarm: swarm.json is unreadable */
  | 'SWARM_FILE_CORRUPT'
  /** swarm: a node process exited before it was ready */
  | 'SWARM_NODE_FAILED'
  /** swarm / quickstart: a bounded wait ran out */
  | 'SWARM_TIMEOUT'
  /** swarm up: stopped by SIGINT/SIGTERM (what had started was stopped) */
  | 'SWARM_INTERRUPTED'
  /** swarm up: anvil did not start, or deploying/funding the hub failed */
  | 'SWARM_CHAIN_FAILED'
  /** swarm down: a process survived SIGKILL */
  | 'SWARM_STOP_FAILED'
  /** deal show --watch: a task of the deal was not final within the wait */
  | 'DEAL_WATCH_TIMEOUT'
  /** task show --watch / task submit --watch: the task was not final within the wait */
  | 'TASK_WATCH_TIMEOUT'
  /** task submit --watch: a task ended without a result (failed, refunded) */
  | 'TASK_FAILED'
  /** swarm fund: the swarm was started with --no-chain (no local chain, no deployer to fund from) */
  | 'SWARM_NO_CHAIN'
  /** swarm key --out: the file exists (a swarm key is never overwritten) */
  | 'CLI_FILE_EXISTS'
  /** --chain NAME: no such profile in the chains file (nor a running swarm for `local`) */
  | 'CHAIN_PROFILE_NOT_FOUND'
  /** contracts deploy --profile NAME: the chains file has that name (never replaced) */
  | 'CHAIN_PROFILE_EXISTS'
  /** the chains file is not {"chains": {NAME: {rpc, chainId, hub, ...}}} */
  | 'CHAINS_FILE_INVALID'
  /** dataset allow/deny: the dataset is not one this node published */
  | 'DATASET_NOT_OWNED'
  /** dataset deny on a dataset open to any app: restrictions name who may, not who may not */
  | 'DATASET_DENY_FROM_ANY'
  /** dataset deny would leave no app allowed */
  | 'DATASET_APPS_REQUIRED'

/** Usage errors exit with 2, everything else with 1 (the usual Unix split). */
export const USAGE_CODES: ReadonlySet<string> = new Set<CliErrorCode>([
  'CLI_UNKNOWN_COMMAND', 'CLI_UNKNOWN_OPTION', 'CLI_MISSING_ARGUMENT', 'CLI_BAD_OPTION', 'CLI_USAGE'
])

export class CliError extends IexecError<CliErrorCode> {}

/**
 * A bad option value found while validating the command line. Keeps the
 * module's own code (e.g. BAD_MULTIADDR) but exits like a usage error.
 */
export class UsageError extends IexecError {
  readonly usage = true
}
