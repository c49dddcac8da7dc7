// The WASI executor: validates a job and its module on the main thread, runs
// the app in a worker thread (wasi-thread.ts) under a wall-clock bound, and
// turns what happened into an ExecResult.
//
// Sandbox, layer by layer:
// - file system: only /iexec_in and /iexec_out are preopened; node:wasi
//   (uvwasi) refuses paths that resolve outside a preopen, `..` and symlinks
//   included. /iexec_in is made read-only by removing every write right from
//   its descriptor (WASI's own capability model, checked by uvwasi on each
//   call) rather than by copying the inputs: no copy cost for big datasets,
//   and the app gets a clear ENOTCAPABLE instead of writes that silently
//   vanish. Escape attempts are recorded and end as SANDBOX_VIOLATION.
// - no network: preview1 has no socket creation; the app gets exactly the
//   preview1 functions and, when it asks for it, env.memory. A module that
//   imports anything else is refused.
// - memory: the module's memory must declare a maximum within the job's
//   bound, or be imported, in which case the host's memory carries the bound.
// - time: the thread is terminated past timeoutMs.
// - output: writes are counted as they happen and refused past the bound,
//   and the output tree is measured after the run.
// Node's docs say node:wasi is not a security boundary on its own; a worker
// process under OS limits (prlimit, bubblewrap) is the stronger layer to add.
import { createHash } from 'node:crypto'
import { closeSync, mkdirSync, openSync, readdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import type { ExecJob, ExecResult, ExecStatus, Executor } from './executor.js'
import { WorkerError } from './errors.js'
import { defaultWasiExecutorOptions, IEXEC_IN, IEXEC_OUT, MAX_TIMEOUT_MS, MAX_WASM32_MEMORY_BYTES, STDERR_FILE, STDOUT_FILE } from './options.js'
import type { WasiExecutorOptions } from './options.js'
import { inspectMemories, WASM_PAGE_BYTES } from './wasm-inspect.js'
import { PREVIEW1_FUNCTIONS } from './wasi-imports.js'
import { wasm } from './wasm-api.js'
import type { WasmModule } from './wasm-api.js'
import type { ThreadJob, ThreadOutcome } from './wasi-thread.js'

/** The environment iExec's worker gives an app, for a job. */
export function iexecEnv (job: Pick<ExecJob, 'taskId' | 'datasetFilename' | 'inputFiles'>): Record<string, string> {
  const env: Record<string, string> = {
    IEXEC_TASK_ID: job.taskId,
    IEXEC_IN,
    IEXEC_OUT,
    IEXEC_INPUT_FILES_FOLDER: IEXEC_IN,
    IEXEC_INPUT_FILES_NUMBER: String(job.inputFiles.length)
  }
  if (job.datasetFilename !== undefined) env.IEXEC_DATASET_FILENAME = job.datasetFilename
  job.inputFiles.forEach((name, i) => { env[`IEXEC_INPUT_FILE_NAME_${i + 1}`] = name })
  return env
}

interface CompiledModule {
  module?: WasmModule
  /** Why the module cannot run anywhere (independent of the job's bounds). */
  invalid?: string
  /** The memory the module imports, if any. */
  importedMemory?: { minPages: number, maxPages?: number }
  /** The memory the module defines, if any. */
  definedMemory?: { minPages: number, maxPages?: number }
}

async function compileModule (bytes: Uint8Array): Promise<CompiledModule> {
  let module: WasmModule
  try {
    module = await wasm.compile(bytes)
  } catch (err) {
    return { invalid: `not a valid WebAssembly module: ${(err as Error).message}` }
  }
  const foreign = wasm.Module.imports(module).filter((imp) => {
    if (imp.module === 'wasi_snapshot_preview1' && imp.kind === 'function' && PREVIEW1_FUNCTIONS.has(imp.name)) return false
    if (imp.module === 'env' && imp.name === 'memory' && imp.kind === 'memory') return false
    return true
  })
  if (foreign.length > 0) {
    const list = foreign.slice(0, 5).map((i) => `${i.module}.${i.name} (${i.kind})`).join(', ')
    return { invalid: `imports outside WASI preview1: ${list}` }
  }
  if (!wasm.Module.exports(module).some((e) => e.name === '_start' && e.kind === 'function')) {
    return { invalid: 'not a WASI command: no _start export' }
  }
  let info
  try {
    info = inspectMemories(bytes)
  } catch (err) {
    return { invalid: `malformed module: ${(err as Error).message}` }
  }
  if (info.imported.length + info.defined.length !== 1) {
    return { invalid: `a WASI app needs exactly one memory, this one has ${info.imported.length + info.defined.length}` }
  }
  const limits = info.imported[0] ?? info.defined[0]
  if (limits.shared || limits.memory64) return { invalid: 'shared and 64-bit memories are not supported' }
  const plain = { minPages: limits.minPages, ...(limits.maxPages !== undefined ? { maxPages: limits.maxPages } : {}) }
  return info.imported.length === 1 ? { module, importedMemory: plain } : { module, definedMemory: plain }
}

// A name or relative path inside inputDir; refuses escapes and absolute paths.
function checkInputName (name: string, what: string): void {
  if (typeof name !== 'string' || name === '' || name.includes('\0') || name.startsWith('/') ||
      name.split('/').some((p) => p === '..')) {
    throw new WorkerError('WORKER_INVALID_JOB', `${what} must be a relative path inside the input dir: ${JSON.stringify(name)}`)
  }
}

function checkBound (value: number, max: number, what: string): void {
  if (!Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw new WorkerError('WORKER_INVALID_JOB', `${what} must be an integer in 1..${max}, got ${value}`)
  }
}

/** The job's own fields; its folders are checked where they are used (the output here, the input in the thread). */
function validateJob (job: ExecJob): void {
  if (typeof job.taskId !== 'string' || job.taskId === '') throw new WorkerError('WORKER_INVALID_JOB', 'taskId is required')
  checkBound(job.timeoutMs, MAX_TIMEOUT_MS, 'timeoutMs')
  checkBound(job.maxMemoryBytes, MAX_WASM32_MEMORY_BYTES, 'maxMemoryBytes')
  checkBound(job.maxOutputBytes, Number.MAX_SAFE_INTEGER, 'maxOutputBytes')
  if (job.collectBytes !== undefined && !(Number.isSafeInteger(job.collectBytes) && job.collectBytes >= 0)) {
    throw new WorkerError('WORKER_INVALID_JOB', `collectBytes must be a non-negative integer, got ${job.collectBytes}`)
  }
  if (!Array.isArray(job.args) || job.args.some((a) => typeof a !== 'string' || a.includes('\0'))) {
    throw new WorkerError('WORKER_INVALID_JOB', 'args must be strings without NUL')
  }
  if (job.appName !== undefined && (job.appName === '' || job.appName.includes('\0'))) {
    throw new WorkerError('WORKER_INVALID_JOB', 'appName must be a non-empty string without NUL')
  }
  if (!Array.isArray(job.inputFiles)) throw new WorkerError('WORKER_INVALID_JOB', 'inputFiles must be an array')
  job.inputFiles.forEach((f, i) => { checkInputName(f, `inputFiles[${i}]`) })
  if (job.datasetFilename !== undefined) checkInputName(job.datasetFilename, 'datasetFilename')
}

/**
 * Creates the output folder (it must be empty) and opens the app's stdout
 * and stderr in it. Synchronous: three metadata calls on a local folder
 * cost microseconds, where their promise forms each took a trip through
 * libuv's pool and its callbacks on the main thread, for every task.
 */
function openOutput (outputDir: string): { stdoutPath: string, stderrPath: string, stdoutFd: number, stderrFd: number } {
  try {
    mkdirSync(outputDir, { recursive: true })
  } catch (err) {
    throw new WorkerError('WORKER_INVALID_JOB', `cannot create outputDir ${outputDir}`, undefined, { cause: err })
  }
  if (readdirSync(outputDir).length > 0) throw new WorkerError('WORKER_INVALID_JOB', `outputDir must be empty: ${outputDir}`)
  const stdoutPath = join(outputDir, STDOUT_FILE)
  const stderrPath = join(outputDir, STDERR_FILE)
  const stdoutFd = openSync(stdoutPath, 'w')
  try {
    return { stdoutPath, stderrPath, stdoutFd, stderrFd: openSync(stderrPath, 'w') }
  } catch (err) {
    closeSync(stdoutFd)
    throw err
  }
}

interface PooledThread {
  worker: Worker
}

// Under tsx (tests, `node --import tsx`) this file is .ts and so is the thread
// entry: a worker does not get tsx's loader reliably, so a small bootstrap
// loads the entry through tsx's tsImport. Compiled, the .js entry loads as is.
const runningFromSource = import.meta.url.endsWith('.ts')
const threadEntry = new URL(runningFromSource ? './wasi-thread.ts' : './wasi-thread.js', import.meta.url)

// The parent's execArgv is not inherited: the thread imports what it needs
// (polyfills; tsx through the bootstrap), and loaders such as `--import tsx`
// would otherwise load into every thread (tens of ms each). node:wasi warns
// once per thread that it is experimental; the sandbox notes above say what
// that means here, so the warning is silenced in the threads (and only
// there: they run nothing but apps).
const threadExecArgv = ['--disable-warning=ExperimentalWarning']

function spawnThread (): Worker {
  if (!runningFromSource) return new Worker(threadEntry, { execArgv: threadExecArgv })
  const bootstrap = [
    'const { workerData } = require("node:worker_threads");',
    'import(workerData.tsxApi).then((m) => m.tsImport(workerData.entry, workerData.entry));'
  ].join('\n')
  return new Worker(bootstrap, {
    eval: true,
    execArgv: threadExecArgv,
    workerData: { tsxApi: import.meta.resolve('tsx/esm/api'), entry: threadEntry.href }
  })
}

/**
 * Runs WASI preview1 apps with node:wasi in worker threads.
 *
 * @example
 * ```ts
 * const executor = new WasiExecutor()
 * const result = await executor.run({ taskId, module: 'app.wasm', args: [], inputDir, outputDir,
 *   inputFiles: [], timeoutMs: 10_000, maxMemoryBytes: 64 << 20, maxOutputBytes: 10 << 20 })
 * await executor.close()
 * ```
 */
export class WasiExecutor implements Executor {
  readonly name = 'wasi'
  private readonly opts: WasiExecutorOptions
  private readonly idle: PooledThread[] = []
  private readonly busy = new Set<PooledThread>()
  private readonly modules = new Map<string, Promise<CompiledModule>>()
  private nextId = 1
  private closed = false
  private nullFd: number | undefined

  constructor (options: Partial<WasiExecutorOptions> = {}) {
    this.opts = { ...defaultWasiExecutorOptions, ...options }
  }

  /** Jobs running in a thread now; for tests and metrics. */
  get activeRuns (): number {
    return this.busy.size
  }

  /** Threads currently alive (idle and busy); for tests and metrics. */
  get threadCount (): number {
    return this.idle.length + this.busy.size
  }

  async run (job: ExecJob, signal?: AbortSignal): Promise<ExecResult> {
    if (this.closed) throw new WorkerError('WORKER_EXECUTOR_CLOSED', 'executor is closed')
    if (signal?.aborted === true) throw new WorkerError('WORKER_ABORTED', 'aborted before start')
    validateJob(job)
    let bytes: Uint8Array
    if (typeof job.module === 'string') {
      try {
        bytes = await readFile(job.module)
      } catch (err) {
        throw new WorkerError('WORKER_INVALID_JOB', `cannot read module ${job.module}`, undefined, { cause: err })
      }
    } else {
      bytes = job.module
    }
    const { stdoutPath, stderrPath, stdoutFd, stderrFd } = openOutput(job.outputDir)
    try {
      const base = { exitCode: null, durationMs: 0, stdoutPath, stderrPath }

      const compiled = await this.compile(bytes)
      if (compiled.module === undefined) return { ...base, status: 'INVALID_MODULE', message: compiled.invalid }
      const bound = job.maxMemoryBytes
      let importMemory: ThreadJob['importMemory']
      let memoryMaxBytes: number
      if (compiled.importedMemory !== undefined) {
        const { minPages, maxPages } = compiled.importedMemory
        const boundPages = Math.floor(bound / WASM_PAGE_BYTES)
        if (minPages > boundPages) {
          return { ...base, status: 'MEMORY_EXCEEDED', message: `needs ${minPages * WASM_PAGE_BYTES} bytes of memory at start, above the bound of ${bound}` }
        }
        const maximumPages = Math.min(maxPages ?? boundPages, boundPages)
        importMemory = { initialPages: minPages, maximumPages }
        memoryMaxBytes = maximumPages * WASM_PAGE_BYTES
      } else {
        const { minPages, maxPages } = compiled.definedMemory as { minPages: number, maxPages?: number }
        if (maxPages === undefined) {
          return { ...base, status: 'INVALID_MODULE', message: 'the module declares no memory maximum (build with a maximum, e.g. asc --maximumMemory, or import the memory)' }
        }
        if (maxPages * WASM_PAGE_BYTES > bound) {
          return { ...base, status: 'INVALID_MODULE', message: `the module declares a memory maximum of ${maxPages * WASM_PAGE_BYTES} bytes, above the bound of ${bound}` }
        }
        if (minPages > maxPages) return { ...base, status: 'INVALID_MODULE', message: 'memory minimum above its maximum' }
        memoryMaxBytes = maxPages * WASM_PAGE_BYTES
      }

      const threadJob: ThreadJob = {
        id: this.nextId++,
        module: compiled.module,
        argv: [job.appName ?? 'app', ...job.args],
        env: iexecEnv(job),
        inDir: job.inputDir,
        outDir: job.outputDir,
        stdinFd: this.devNull(),
        stdoutFd,
        stderrFd,
        seed: job.taskId,
        maxWriteBytes: job.maxOutputBytes,
        collectBytes: job.collectBytes ?? -1,
        removeCollected: job.removeCollected === true,
        ...(importMemory !== undefined ? { importMemory } : {})
      }
      const t0 = performance.now()
      const ended = await this.runInThread(threadJob, job.timeoutMs, signal)
      const durationMs = performance.now() - t0
      if (ended === 'timeout') {
        return { ...base, durationMs, status: 'TIMEOUT', message: `ran past its time bound of ${job.timeoutMs} ms; the thread was terminated` }
      }
      if ('crashed' in ended) {
        return { ...base, durationMs, status: 'APP_ERROR', message: `the worker thread died: ${ended.crashed}` }
      }
      if (ended.kind === 'invalid') throw new WorkerError('WORKER_INVALID_JOB', ended.message ?? 'the input cannot be given to an app', ended.path !== undefined ? { path: ended.path } : undefined)
      return this.judge(job, ended, memoryMaxBytes, { ...base, durationMs })
    } finally {
      // after the thread is done with them (a discarded thread is gone by now: see release)
      closeSync(stdoutFd)
      closeSync(stderrFd)
    }
  }

  /** The empty stdin every run reads: one descriptor of /dev/null for the executor's life (apps cannot close it: wasi-imports.ts). */
  private devNull (): number {
    if (this.closed) throw new WorkerError('WORKER_EXECUTOR_CLOSED', 'executor is closed')
    this.nullFd ??= openSync('/dev/null', 'r')
    return this.nullFd
  }

  private judge (job: ExecJob, o: ThreadOutcome, memoryMaxBytes: number, base: Omit<ExecResult, 'status'>): ExecResult {
    const failed = o.kind === 'trap' || (o.kind === 'exit' && o.exitCode !== 0)
    const exitCode = o.kind === 'exit' ? o.exitCode : null
    const result = (status: ExecStatus, message?: string): ExecResult =>
      ({ ...base, status, exitCode, ...(message !== undefined ? { message } : {}) })

    if (o.kind === 'internal') throw new WorkerError('WORKER_THREAD_FAILED', `the executor thread failed: ${o.message ?? 'unknown'}`)
    if (o.kind === 'refused') return result('INVALID_MODULE', o.message)
    if (o.violations.length > 0) {
      return result('SANDBOX_VIOLATION', `refused access outside the sandbox: ${o.violations.join(', ')}`)
    }
    const scan = o.output ?? { bytes: 0 }
    if (scan.odd !== undefined) {
      return result('SANDBOX_VIOLATION', `the output holds an entry that is not a plain file or directory: ${scan.odd}`)
    }
    if (o.outputTooLarge || scan.bytes > job.maxOutputBytes) {
      return result('OUTPUT_TOO_LARGE', `the app wrote more than its bound of ${job.maxOutputBytes} bytes`)
    }
    // The slack is capped at an eighth of the bound so a small app that fails
    // early is not taken for one that ran out of memory.
    const slack = Math.min(this.opts.memoryExceededSlackBytes, memoryMaxBytes / 8)
    if (failed && memoryMaxBytes - o.memoryBytes < slack) {
      const why = o.kind === 'trap' ? o.message ?? 'trap' : `exit code ${o.exitCode}`
      return result('MEMORY_EXCEEDED', `failed (${why}) with its memory at ${o.memoryBytes} of its ${memoryMaxBytes}-byte bound`)
    }
    if (o.kind === 'trap') return result('APP_ERROR', `trapped: ${o.message ?? 'unknown'}`)
    if (failed) return result('APP_ERROR', `exited with code ${o.exitCode}`)
    return scan.entries !== undefined ? { ...result('COMPLETED'), output: scan.entries } : result('COMPLETED')
  }

  private async compile (bytes: Uint8Array): Promise<CompiledModule> {
    const key = createHash('sha256').update(bytes).digest('hex')
    let entry = this.modules.get(key)
    if (entry === undefined) {
      entry = compileModule(bytes)
      this.modules.set(key, entry)
      // Oldest first: Map keeps insertion order.
      while (this.modules.size > this.opts.moduleCacheSize) {
        const oldest = this.modules.keys().next().value as string
        this.modules.delete(oldest)
      }
    }
    return await entry
  }

  private acquire (): PooledThread {
    const t = this.idle.pop() ?? this.spawn()
    t.worker.ref()
    this.busy.add(t)
    return t
  }

  private spawn (): PooledThread {
    const t: PooledThread = { worker: spawnThread() }
    // a thread that dies between jobs leaves the pool (a job's own listeners report one that dies during it)
    t.worker.on('error', () => {})
    t.worker.on('exit', () => {
      const i = this.idle.indexOf(t)
      if (i >= 0) this.idle.splice(i, 1)
    })
    return t
  }

  /**
   * Starts idle threads up to `count` (at most maxIdleThreads), so that the
   * first runs do not wait for a thread to start (a new isolate and its
   * modules: a few hundred milliseconds on a loaded machine, the first
   * tasks' largest cost). Does nothing when threads are not reused.
   */
  warm (count: number): void {
    if (this.closed || !this.opts.reuseThreads) return
    const want = Math.min(count, this.opts.maxIdleThreads)
    while (this.idle.length + this.busy.size < want) {
      const t = this.spawn()
      t.worker.unref()
      this.idle.push(t)
    }
  }

  // Resolves once a discarded thread is gone: the caller closes the stdout
  // and stderr descriptors after this, and a dying thread must not write into
  // a descriptor number that the process has reused.
  private async release (t: PooledThread, reusable: boolean): Promise<void> {
    this.busy.delete(t)
    if (reusable && this.opts.reuseThreads && !this.closed && this.idle.length < this.opts.maxIdleThreads) {
      // An idle thread must not keep the process alive.
      t.worker.unref()
      this.idle.push(t)
      return
    }
    await t.worker.terminate()
  }

  private async runInThread (job: ThreadJob, timeoutMs: number, signal?: AbortSignal): Promise<ThreadOutcome | 'timeout' | { crashed: string }> {
    // The signal may have fired, or the executor closed, during the awaits
    // before this point.
    if (signal?.aborted === true) throw new WorkerError('WORKER_ABORTED', 'aborted by the caller')
    if (this.closed) throw new WorkerError('WORKER_EXECUTOR_CLOSED', 'executor is closed')
    const t = this.acquire()
    const { worker } = t
    return await new Promise((resolve, reject) => {
      let done = false
      // Settles the run once: detaches the listeners, returns or discards
      // the thread, then settles the promise.
      const finish = (reusable: boolean, settle: () => void): void => {
        done = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        worker.off('message', onMessage)
        worker.off('error', onError)
        worker.off('exit', onExit)
        this.release(t, reusable).then(settle, settle)
      }
      const onMessage = (o: ThreadOutcome): void => {
        if (done || o.id !== job.id) return
        // A thread that failed by itself is not trusted with another job.
        finish(o.kind !== 'internal', () => { resolve(o) })
      }
      const onError = (err: Error): void => {
        if (done) return
        finish(false, () => { resolve({ crashed: err.message }) })
      }
      const onExit = (code: number): void => {
        if (done) return
        finish(false, () => {
          if (this.closed) reject(new WorkerError('WORKER_EXECUTOR_CLOSED', 'executor closed during the run'))
          else resolve({ crashed: `exited with code ${code}` })
        })
      }
      const onAbort = (): void => {
        if (done) return
        finish(false, () => { reject(new WorkerError('WORKER_ABORTED', 'aborted by the caller')) })
      }
      const timer = setTimeout(() => {
        if (done) return
        finish(false, () => { resolve('timeout') })
      }, timeoutMs)
      worker.on('message', onMessage)
      worker.on('error', onError)
      worker.on('exit', onExit)
      signal?.addEventListener('abort', onAbort, { once: true })
      worker.postMessage(job)
    })
  }

  /** Terminates every thread; later runs are refused. */
  async close (): Promise<void> {
    this.closed = true
    const all = [...this.idle.splice(0), ...this.busy]
    this.busy.clear()
    await Promise.all(all.map(async (t) => { await t.worker.terminate() }))
    if (this.nullFd !== undefined) closeSync(this.nullFd)
    this.nullFd = undefined
  }
}
