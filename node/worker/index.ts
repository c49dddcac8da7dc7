/**
 * The worker module: executors that run apps, and the result digest a worker
 * commits to.
 *
 * @example
 * ```ts
 * import { WasiExecutor, computeResultDigest } from './worker/index.js'
 *
 * const executor = new WasiExecutor()
 * const result = await executor.run({
 *   taskId, module: wasmBytes, appName: 'wordcount', args: [],
 *   inputDir, outputDir, datasetFilename: 'data.txt', inputFiles: [],
 *   timeoutMs: 30_000, maxMemoryBytes: 256 << 20, maxOutputBytes: 64 << 20
 * })
 * if (result.status === 'COMPLETED') {
 *   const { digest } = await computeResultDigest(outputDir)
 * }
 * await executor.close()
 * ```
 */
export type { Executor, ExecJob, ExecResult, ExecStatus } from './executor.js'
export { WasiExecutor, iexecEnv } from './wasi-executor.js'
export { computeResultDigest, resultDigestOfTree, treeDigest, fileDigest, resolveDeterministicPath, COMPUTED_JSON } from '../storage/digest.js'
export type { ResultDigest } from '../storage/digest.js'
export { WorkerError } from './errors.js'
export type { WorkerErrorCode } from './errors.js'
export { defaultWasiExecutorOptions, STDOUT_FILE, STDERR_FILE, IEXEC_IN, IEXEC_OUT } from './options.js'
export type { WasiExecutorOptions } from './options.js'
export { inspectMemories, WASM_PAGE_BYTES } from './wasm-inspect.js'
export type { MemoryInfo, MemoryLimits } from './wasm-inspect.js'
