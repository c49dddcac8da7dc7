import type { TreeEntry } from '../storage/archive.js'

/** Final status of one execution; only COMPLETED yields a result to contribute. */
export type ExecStatus =
  /** The app exited with code 0 within every bound. */
  | 'COMPLETED'
  /** The app exited with a non-zero code or trapped. */
  | 'APP_ERROR'
  /** The app ran past `timeoutMs` and its process was killed. */
  | 'TIMEOUT'
  /** The app ran out of memory at its bound. */
  | 'MEMORY_EXCEEDED'
  /** The app wrote more than `maxOutputBytes` (stdout, stderr and files together) or created more than `maxOutputFiles` files. */
  | 'OUTPUT_TOO_LARGE'
  /** The app tried to reach outside its sandbox (path escapes, links in the output). */
  | 'SANDBOX_VIOLATION'
  /** The module cannot be run here (not WASI preview1, foreign imports, no _start, not one 32-bit memory). */
  | 'INVALID_MODULE'

/** One task to run. Paths are host paths. */
export interface ExecJob {
  /** The task id (0x-prefixed hex in iExec); seeds the app's randomness. */
  taskId: string
  /** The task's index in its deal (IEXEC_TASK_INDEX): a sweep's task picks its parameters by it. */
  taskIndex?: number
  /** The app module: its bytes or a path to a .wasm file. */
  module: Uint8Array | string
  /** argv[0] given to the app; defaults to "app". */
  appName?: string
  /** Arguments after argv[0] (the request's params). */
  args: string[]
  /** Directory holding the dataset and input files; the app sees it read-only as /iexec_in. */
  inputDir: string
  /** Empty (or missing) directory the app sees as /iexec_out; stdout.txt and stderr.txt go there too. */
  outputDir: string
  /** Name of the dataset file inside inputDir, if the task has a dataset. */
  datasetFilename?: string
  /** Names of the input files inside inputDir, in the request's order. */
  inputFiles: string[]
  /** Wall-clock bound of the run (the category's time reference). */
  timeoutMs: number
  /** Bound of the app's linear memory. */
  maxMemoryBytes: number
  /** Bound of everything the app writes (stdout, stderr and files). */
  maxOutputBytes: number
  /** Bound of the files and folders the app creates; the executor's maxOutputFiles when unset. */
  maxOutputFiles?: number
  /**
   * Read the output back into memory (ExecResult.output) when its files
   * hold at most this many bytes together: the digest and the result
   * archive are then made without reading the disk again. Unset: not read.
   */
  collectBytes?: number
  /** Remove the output folder once it was read back (the caller holds all of it): its stdout and stderr paths then name removed files. */
  removeCollected?: boolean
}

/** What came of one job. */
export interface ExecResult {
  status: ExecStatus
  /** The app's exit code; null when it never exited by itself (trap, timeout, refused). */
  exitCode: number | null
  /** Time from the start of the app to its end, in milliseconds. */
  durationMs: number
  /** Host path of the captured stdout (in the output dir). */
  stdoutPath: string
  /** Host path of the captured stderr (in the output dir). */
  stderrPath: string
  /** Why the status is not COMPLETED, for people and logs. */
  message?: string
  /**
   * COMPLETED runs of a job with `collectBytes`, when the output fits it:
   * every entry of the output folder (plain files and folders, in archive
   * order) with the files' bytes, as the run left them on disk.
   */
  output?: TreeEntry[]
}

/**
 * Runs apps. The WASI executor is the default; a Docker executor can
 * implement the same interface where an engine exists.
 */
export interface Executor {
  /** Short name advertised in resource adverts ("wasi", "docker"). */
  readonly name: string
  /**
   * Runs one job. Resolves with a status for anything the app does (including
   * failing, timing out or being refused); rejects only on a bad job
   * (`WORKER_INVALID_JOB`), an abort (`WORKER_ABORTED`) or a closed executor.
   */
  run: (job: ExecJob, signal?: AbortSignal) => Promise<ExecResult>
  /** Releases the processes kept for reuse. */
  close: () => Promise<void>
}
