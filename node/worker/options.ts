import { availableParallelism } from 'node:os'

/** Options of the WASI executor. */
export interface WasiExecutorOptions {
  /**
   * Keep worker threads between jobs. Each job still gets a fresh WASI and a
   * fresh module instance; only the thread (and its V8 isolate) is reused. A
   * thread that timed out, was aborted or crashed is never reused.
   */
  reuseThreads: boolean
  /** Idle threads kept for reuse. */
  maxIdleThreads: number
  /** Compiled modules kept, by sha256 of their bytes. */
  moduleCacheSize: number
  /**
   * When an app fails (non-zero exit or trap) with less than this much room
   * left below its memory bound, the failure is reported as MEMORY_EXCEEDED:
   * allocators fail a little before the bound (they grow by blocks), and
   * wasm gives no signal of a failed memory.grow besides what the app does.
   */
  memoryExceededSlackBytes: number
}

export const defaultWasiExecutorOptions: WasiExecutorOptions = {
  // Starting a thread costs a new isolate (milliseconds, see the executor
  // bench); reuse is safe because nothing of a job outlives it in the thread.
  reuseThreads: true,
  // One idle thread per core covers a worker that runs one task per core.
  maxIdleThreads: availableParallelism(),
  // Apps are few per deal; 16 compiled modules is a few MB at most.
  moduleCacheSize: 16,
  // AssemblyScript's and wasi-libc's allocators grow by up to ~1 MiB steps.
  memoryExceededSlackBytes: 2 * 1024 * 1024
}

/** Names of the captured streams inside the output directory (as iExec's worker names them). */
export const STDOUT_FILE = 'stdout.txt'
export const STDERR_FILE = 'stderr.txt'

/** Paths the app sees (iExec's conventions). */
export const IEXEC_IN = '/iexec_in'
export const IEXEC_OUT = '/iexec_out'

/** Largest timer Node accepts (about 24.8 days). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1
/** wasm32 can address at most 4 GiB. */
export const MAX_WASM32_MEMORY_BYTES = 4 * 1024 * 1024 * 1024
