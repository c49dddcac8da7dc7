import { availableParallelism } from 'node:os'

/** Options of the WASI executor. */
export interface WasiExecutorOptions {
  /**
   * Keep runner processes between jobs. Each job still gets a fresh WASI and
   * a fresh module instance; only the process (node, its isolate and its
   * compiled modules) is reused. A runner that timed out, was aborted or
   * crashed is killed, never reused.
   */
  reuseRunners: boolean
  /** Idle runners kept for reuse. */
  maxIdleRunners: number
  /** Compiled modules kept, by sha256 of their bytes (in the executor and in each runner). */
  moduleCacheSize: number
  /**
   * When an app fails (non-zero exit or trap) with less than this much room
   * left below its memory bound, the failure is reported as MEMORY_EXCEEDED:
   * allocators fail a little before the bound (they grow by blocks), and
   * wasm gives no signal of a failed memory.grow besides what the app does.
   */
  memoryExceededSlackBytes: number
  /** Files and folders an app may create in a run, unless its job says otherwise. */
  maxOutputFiles: number
  /** JS heap of a runner process (MiB): the app's memory is not in it, only the runner's own work and the output it reads back. */
  runnerHeapMb: number
}

export const defaultWasiExecutorOptions: WasiExecutorOptions = {
  // Starting a runner costs a new node process (tens of milliseconds, see the
  // executor bench); reuse is safe because nothing of a job outlives it.
  reuseRunners: true,
  // One idle runner per core covers a worker that runs one task per core.
  maxIdleRunners: availableParallelism(),
  // Apps are few per deal; 16 compiled modules is a few MB at most.
  moduleCacheSize: 16,
  // AssemblyScript's and wasi-libc's allocators grow by up to ~1 MiB steps.
  memoryExceededSlackBytes: 2 * 1024 * 1024,
  // far more than a result needs; an app creating files in a loop stops here
  maxOutputFiles: 10_000,
  // the output read back is at most collectBytes (4 MiB in the worker), the module is outside the heap
  runnerHeapMb: 256
}

// the captured streams' names belong to what an app sees (protocols/app-files.ts)
export { STDOUT_FILE, STDERR_FILE } from '../../protocols/app-files.js'

export { IEXEC_IN, IEXEC_OUT } from '../../protocols/app-files.js'

/**
 * Largest app module: what `app publish` accepts and what a worker fetches
 * (duties' maxAppBytes). A module is held whole in memory to be compiled.
 */
export const MAX_APP_MODULE_BYTES = 512 * 1024 * 1024

/** Largest timer Node accepts (about 24.8 days). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1
/** wasm32 can address at most 4 GiB. */
export const MAX_WASM32_MEMORY_BYTES = 4 * 1024 * 1024 * 1024
