/**
 * The command-line interface: parse and validate, call the node (start) or
 * its API (client commands), print human text or `--json`.
 *
 * @example
 * ```ts
 * import { runCli } from './cli/index.js'
 * process.exitCode = await runCli(['peers', '--json'])
 * ```
 */
export { runCli, buildProgram } from './program.js'
export { processIo, describeError, type CliIo } from './output.js'
export { CliError, UsageError, type CliErrorCode } from './errors.js'
export { CLI_DEFAULTS } from './options.js'
export { swarmUp, swarmDown, swarmStatus, readSwarmFile, defaultSwarmDir, type SwarmFile, type SwarmNodeRecord, type SwarmUpJson, type SwarmDownResult } from './swarm.js'
export { SWARM_FUNDING, type SwarmChainRecord } from './swarm-chain.js'
export { parseAmount, formatAmount, formatRlc } from './parse.js'
export type { StartReadyJson } from './start-command.js'
