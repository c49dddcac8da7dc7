// The WASI executor: validates a job and its module, runs the app in a child
// process (wasi-runner.ts) under a wall-clock bound, and turns what happened
// into an ExecResult.
//
// Sandbox, layer by layer:
// - process: each run happens in a runner process, killed outright (SIGKILL)
//   past the time bound, on abort and when the executor closes, whatever the
//   app is doing (a busy loop, a host call that blocks such as poll_oneoff's
//   sleep). The node's own event loop never runs app code. Runners start
//   under setpriv --pdeathsig, so they die with the node even when it is
//   killed; they get an empty environment and a bounded JS heap.
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
// - memory: the executor sets the bound. A memory the module defines gets the
//   job's bound as its maximum (lowered or added in the module's bytes, see
//   boundMemory); an imported one is a host memory with that maximum.
// - time: the runner is killed past timeoutMs.
// - output: writes and file creations are counted as they happen and refused
//   past their bounds, and the output tree is measured after the run.
// Node's docs say node:wasi is not a security boundary on its own; an OS
// sandbox around the runner (bubblewrap, seccomp) is the stronger layer to add.
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, openSync, readdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ExecJob, ExecResult, ExecStatus, Executor } from './executor.js'
import { WorkerError } from './errors.js'
import { defaultWasiExecutorOptions, IEXEC_IN, IEXEC_OUT, MAX_TIMEOUT_MS, STDERR_FILE, STDOUT_FILE } from './options.js'
import type { WasiExecutorOptions } from './options.js'
import { checkWasiModule } from './module-check.js'
import { boundMemory, WASM_PAGE_BYTES } from './wasm-inspect.js'
import type { RunnerJob, RunnerOutcome } from './wasi-runner.js'
import { BoundedCache } from '../common/bounded-cache.js'

/** The environment iExec's worker gives an app, for a job. */
export function iexecEnv (job: Pick<ExecJob, 'taskId' | 'datasetFilename' | 'inputFiles' | 'taskIndex'>): Record<string, string> {
  const env: Record<string, string> = {
    IEXEC_TASK_ID: job.taskId,
    IEXEC_IN,
    IEXEC_OUT,
    IEXEC_INPUT_FILES_FOLDER: IEXEC_IN,
    IEXEC_INPUT_FILES_NUMBER: String(job.inputFiles.length)
  }
  if (job.taskIndex !== undefined) env.IEXEC_TASK_INDEX = String(job.taskIndex)
  if (job.datasetFilename !== undefined) env.IEXEC_DATASET_FILENAME = job.datasetFilename
  job.inputFiles.forEach((name, i) => { env[`IEXEC_INPUT_FILE_NAME_${i + 1}`] = name })
  return env
}

interface CompiledModule {
  /** Why the module cannot run anywhere (independent of the job's bounds). */
  invalid?: string
  /** The memory the module imports, if any. */
  importedMemory?: { minPages: number, maxPages?: number }
  /** The memory the module defines, if any. */
  definedMemory?: { minPages: number, maxPages?: number }
}

async function compileModule (bytes: Uint8Array): Promise<CompiledModule> {
  const checked = await checkWasiModule(bytes)
  if (!checked.ok) return { invalid: checked.message }
  return checked.memory.imported ? { importedMemory: checked.memory.limits } : { definedMemory: checked.memory.limits }
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
  // a wasm32 module addresses 4 GiB at most (MAX_WASM32_MEMORY_BYTES): a larger bound (a category's) is that
  checkBound(job.maxMemoryBytes, Number.MAX_SAFE_INTEGER, 'maxMemoryBytes')
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
 * Creates the output folder (it must be empty) and the app's stdout and
 * stderr files in it (the runner opens them again to write). Synchronous: a
 * few metadata calls on a local folder cost microseconds, where their promise
 * forms each took a trip through libuv's pool.
 */
function openOutput (outputDir: string): { stdoutPath: string, stderrPath: string } {
  try {
    mkdirSync(outputDir, { recursive: true })
  } catch (err) {
    throw new WorkerError('WORKER_INVALID_JOB', `cannot create outputDir ${outputDir}`, undefined, { cause: err })
  }
  if (readdirSync(outputDir).length > 0) throw new WorkerError('WORKER_INVALID_JOB', `outputDir must be empty: ${outputDir}`)
  const stdoutPath = join(outputDir, STDOUT_FILE)
  const stderrPath = join(outputDir, STDERR_FILE)
  closeSync(openSync(stdoutPath, 'w'))
  closeSync(openSync(stderrPath, 'w'))
  return { stdoutPath, stderrPath }
}

interface Runner {
  child: ChildProcess
  /** module keys sent to this runner (it may have evicted some: it then answers 'missing') */
  modules: Set<string>
  /** resolves once the process has exited */
  exited: Promise<void>
}

// Under tsx (tests, `node --import tsx`) this file is .ts and so is the
// runner: it is started with tsx's loader. Compiled, the .js loads as is.
const runningFromSource = import.meta.url.endsWith('.ts')
const runnerEntry = fileURLToPath(new URL(runningFromSource ? './wasi-runner.ts' : './wasi-runner.js', import.meta.url))

// setpriv (util-linux) sets the runner's parent-death signal before it execs
// node: a runner stuck in a blocking call dies with the node even when the
// node is killed with SIGKILL (its exit handler below cannot run then).
const SETPRIV = '/usr/bin/setpriv'
const useSetpriv = process.platform === 'linux' && existsSync(SETPRIV)

// Every runner alive in this process, killed on exit whatever ends the node
// (an uncaught error included): a runner must never outlive it.
const liveRunners = new Set<ChildProcess>()
let exitHookInstalled = false
function trackRunner (child: ChildProcess): void {
  liveRunners.add(child)
  child.once('exit', () => { liveRunners.delete(child) })
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.once('exit', () => { for (const c of liveRunners) c.kill('SIGKILL') })
  }
}

function spawnRunner (heapMb: number): ChildProcess {
  // The parent's execArgv is not inherited: a runner needs no loader but tsx
  // from source. node:wasi warns once per process that it is experimental;
  // the sandbox notes above say what that means here, so the warning is
  // silenced in runners (and only there: they run nothing but apps).
  const nodeFlags = [
    '--disable-warning=ExperimentalWarning',
    `--max-old-space-size=${heapMb}`,
    ...(runningFromSource ? ['--import', import.meta.resolve('tsx')] : [])
  ]
  const child = fork(runnerEntry, [], {
    ...(useSetpriv ? { execPath: SETPRIV, execArgv: ['--pdeathsig', 'KILL', '--', process.execPath, ...nodeFlags] } : { execArgv: nodeFlags }),
    // an app sees only what its job gives it: the node's environment (keys, paths) stays out
    env: {},
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'ignore', 'ipc']
  })
  trackRunner(child)
  return child
}

/**
 * Runs WASI preview1 apps with node:wasi, each run in a runner process.
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
  private readonly idle: Runner[] = []
  private readonly busy = new Set<Runner>()
  /** compiled modules by hash, the oldest dropped first past moduleCacheSize */
  private readonly modules: BoundedCache<string, Promise<CompiledModule>>
  /** the bytes a runner gets for (module, memory bound), and their key */
  private readonly runBytes: BoundedCache<string, { key: string, bytes: Uint8Array }>
  private nextId = 1
  private closed = false

  constructor (options: Partial<WasiExecutorOptions> = {}) {
    this.opts = { ...defaultWasiExecutorOptions, ...options }
    this.modules = new BoundedCache(this.opts.moduleCacheSize)
    this.runBytes = new BoundedCache(this.opts.moduleCacheSize)
  }

  /** Jobs running in a runner now; for tests and metrics. */
  get activeRuns (): number {
    return this.busy.size
  }

  /** Runner processes currently alive (idle and busy); for tests and metrics. */
  get runnerCount (): number {
    return this.idle.length + this.busy.size
  }

  /** Process ids of the runners alive; for tests. */
  get runnerPids (): number[] {
    return [...this.idle, ...this.busy].map((r) => r.child.pid).filter((p): p is number => p !== undefined)
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
    const { stdoutPath, stderrPath } = openOutput(job.outputDir)
    const base = { exitCode: null, durationMs: 0, stdoutPath, stderrPath }

    const hash = createHash('sha256').update(bytes).digest('hex')
    const compiled = await this.compile(hash, bytes)
    if (compiled.invalid !== undefined) return { ...base, status: 'INVALID_MODULE', message: compiled.invalid }
    const bound = job.maxMemoryBytes
    const boundPages = Math.min(Math.floor(bound / WASM_PAGE_BYTES), 65536)
    const { minPages, maxPages } = compiled.importedMemory ?? compiled.definedMemory as { minPages: number, maxPages?: number }
    if (minPages > boundPages) {
      return { ...base, status: 'MEMORY_EXCEEDED', message: `needs ${minPages * WASM_PAGE_BYTES} bytes of memory at start, above the bound of ${bound}` }
    }
    const maximumPages = Math.min(maxPages ?? boundPages, boundPages)
    const memoryMaxBytes = maximumPages * WASM_PAGE_BYTES
    let importMemory: RunnerJob['importMemory']
    let run: { key: string, bytes: Uint8Array }
    if (compiled.importedMemory !== undefined) {
      importMemory = { initialPages: minPages, maximumPages }
      run = { key: hash, bytes }
    } else {
      run = this.boundedBytes(hash, bytes, maximumPages)
    }
    const maxFiles = job.maxOutputFiles ?? this.opts.maxOutputFiles
    const runnerJob: RunnerJob = {
      id: this.nextId++,
      moduleKey: run.key,
      argv: [job.appName ?? 'app', ...job.args],
      env: iexecEnv(job),
      inDir: job.inputDir,
      outDir: job.outputDir,
      stdoutPath,
      stderrPath,
      seed: job.taskId,
      maxWriteBytes: job.maxOutputBytes,
      maxFiles,
      collectBytes: job.collectBytes ?? -1,
      removeCollected: job.removeCollected === true,
      ...(importMemory !== undefined ? { importMemory } : {})
    }
    const t0 = performance.now()
    const ended = await this.runInRunner(runnerJob, run.bytes, job.timeoutMs, signal)
    const durationMs = performance.now() - t0
    if (ended === 'timeout') {
      return { ...base, durationMs, status: 'TIMEOUT', message: `ran past its time bound of ${job.timeoutMs} ms; its process was killed` }
    }
    if ('crashed' in ended) {
      return { ...base, durationMs, status: 'APP_ERROR', message: `the runner process died: ${ended.crashed}` }
    }
    if (ended.kind === 'invalid') throw new WorkerError('WORKER_INVALID_JOB', ended.message ?? 'the input cannot be given to an app', ended.path !== undefined ? { path: ended.path } : undefined)
    return this.judge(job, ended, memoryMaxBytes, maxFiles, { ...base, durationMs })
  }

  private judge (job: ExecJob, o: RunnerOutcome, memoryMaxBytes: number, maxFiles: number, base: Omit<ExecResult, 'status'>): ExecResult {
    const failed = o.kind === 'trap' || (o.kind === 'exit' && o.exitCode !== 0)
    const exitCode = o.kind === 'exit' ? o.exitCode : null
    const result = (status: ExecStatus, message?: string): ExecResult =>
      ({ ...base, status, exitCode, ...(message !== undefined ? { message } : {}) })

    if (o.kind === 'internal') throw new WorkerError('WORKER_RUNNER_FAILED', `the runner failed: ${o.message ?? 'unknown'}`)
    if (o.kind === 'refused') return result('INVALID_MODULE', o.message)
    if (o.violations.length > 0) {
      return result('SANDBOX_VIOLATION', `refused access outside the sandbox: ${o.violations.join(', ')}`)
    }
    const scan = o.output ?? { bytes: 0 }
    if (scan.odd !== undefined) {
      return result('SANDBOX_VIOLATION', `the output holds an entry that is not a plain file or directory: ${scan.odd}`)
    }
    if (o.tooManyFiles === true) {
      return result('OUTPUT_TOO_LARGE', `the app created more than its bound of ${maxFiles} files and folders`)
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

  private async compile (hash: string, bytes: Uint8Array): Promise<CompiledModule> {
    let entry = this.modules.get(hash)
    if (entry === undefined) {
      entry = compileModule(bytes)
      this.modules.set(hash, entry)
    }
    return await entry
  }

  /** The module's bytes with its memory bounded at maxPages, and their key (kept: a bag runs the same module with the same bound many times). */
  private boundedBytes (hash: string, bytes: Uint8Array, maxPages: number): { key: string, bytes: Uint8Array } {
    const id = `${hash}:${maxPages}`
    let entry = this.runBytes.get(id)
    if (entry === undefined) {
      const bounded = boundMemory(bytes, maxPages)
      entry = { key: createHash('sha256').update(bounded).digest('hex'), bytes: bounded }
      this.runBytes.set(id, entry)
    }
    return entry
  }

  private acquire (): Runner {
    const r = this.idle.pop() ?? this.spawn()
    r.child.ref()
    r.child.channel?.ref()
    this.busy.add(r)
    return r
  }

  private spawn (): Runner {
    const child = spawnRunner(this.opts.runnerHeapMb)
    const r: Runner = { child, modules: new Set(), exited: new Promise((resolve) => { child.once('exit', () => { resolve() }) }) }
    // a runner that dies between jobs leaves the pool (a job's own listeners report one that dies during it)
    child.on('error', () => {})
    child.once('exit', () => {
      const i = this.idle.indexOf(r)
      if (i >= 0) this.idle.splice(i, 1)
    })
    return r
  }

  /**
   * Starts idle runners up to `count` (at most maxIdleRunners), so that the
   * first runs do not wait for a process to start (a new node and its
   * modules: a few hundred milliseconds on a loaded machine, the first
   * tasks' largest cost). Does nothing when runners are not reused.
   */
  warm (count: number): void {
    if (this.closed || !this.opts.reuseRunners) return
    const want = Math.min(count, this.opts.maxIdleRunners)
    while (this.idle.length + this.busy.size < want) {
      const r = this.spawn()
      this.park(r)
    }
  }

  // An idle runner must not keep the node's process alive.
  private park (r: Runner): void {
    r.child.unref()
    r.child.channel?.unref()
    this.idle.push(r)
  }

  // Resolves once a discarded runner is gone: the caller reads the output
  // folder after this, and a dying runner must not write into it any more.
  private async release (r: Runner, reusable: boolean): Promise<void> {
    this.busy.delete(r)
    if (reusable && this.opts.reuseRunners && !this.closed && this.idle.length < this.opts.maxIdleRunners) {
      this.park(r)
      return
    }
    r.child.kill('SIGKILL')
    await r.exited
  }

  private async runInRunner (job: RunnerJob, bytes: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<RunnerOutcome | 'timeout' | { crashed: string }> {
    // The signal may have fired, or the executor closed, during the awaits
    // before this point.
    if (signal?.aborted === true) throw new WorkerError('WORKER_ABORTED', 'aborted by the caller')
    if (this.closed) throw new WorkerError('WORKER_EXECUTOR_CLOSED', 'executor is closed')
    const r = this.acquire()
    const { child } = r
    const post = (withBytes: boolean): void => {
      r.modules.add(job.moduleKey)
      child.send(withBytes ? { ...job, moduleBytes: bytes } : job)
    }
    return await new Promise((resolve, reject) => {
      let done = false
      let resent = false
      // Settles the run once: detaches the listeners, returns or discards
      // the runner, then settles the promise.
      const finish = (reusable: boolean, settle: () => void): void => {
        done = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        child.off('message', onMessage)
        child.off('error', onError)
        child.off('exit', onExit)
        this.release(r, reusable).then(settle, settle)
      }
      const onMessage = (o: RunnerOutcome): void => {
        if (done || o.id !== job.id) return
        if (o.kind === 'missing' && !resent) {
          // the runner evicted it: once more, with the bytes
          resent = true
          post(true)
          return
        }
        // A runner that failed by itself is not trusted with another job.
        finish(o.kind !== 'internal' && o.kind !== 'missing', () => {
          if (o.kind === 'missing') resolve({ ...o, kind: 'internal', message: 'the runner lost the module it was sent' })
          else resolve(o)
        })
      }
      const onError = (err: Error): void => {
        if (done) return
        finish(false, () => { resolve({ crashed: err.message }) })
      }
      const onExit = (code: number | null, sig: string | null): void => {
        if (done) return
        finish(false, () => {
          if (this.closed) reject(new WorkerError('WORKER_EXECUTOR_CLOSED', 'executor closed during the run'))
          else resolve({ crashed: sig !== null ? `killed by ${sig}` : `exited with code ${String(code)}` })
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
      child.on('message', onMessage)
      child.on('error', onError)
      child.on('exit', onExit)
      signal?.addEventListener('abort', onAbort, { once: true })
      post(!r.modules.has(job.moduleKey))
    })
  }

  /** Kills every runner; later runs are refused. */
  async close (): Promise<void> {
    this.closed = true
    const all = [...this.idle.splice(0), ...this.busy]
    this.busy.clear()
    for (const r of all) {
      // an idle runner is unref'd: its exit must keep the loop alive until it is seen
      r.child.ref()
      r.child.kill('SIGKILL')
    }
    await Promise.all(all.map(async (r) => { await r.exited }))
  }
}
