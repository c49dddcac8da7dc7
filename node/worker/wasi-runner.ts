// Child-process side of the WASI executor: runs one job per message, each in
// a fresh WASI instance and a fresh module instance, and reports how it ended
// over the IPC channel. The executor owns the timer and kills this process
// past the bound (SIGKILL), which stops anything: a wasm loop that never calls
// out, a host call that blocks (poll_oneoff's sleep), an allocation storm.
import '../common/polyfills.js'
import { createHash } from 'node:crypto'
import { closeSync, openSync, rmSync, statSync } from 'node:fs'
import { WASI } from 'node:wasi'
import { readTreeSync } from '../storage/archive.js'
import type { ReadTree } from '../storage/archive.js'
import { isWasmMemory, wasm } from './wasm-api.js'
import type { WasmImports, WasmInstance, WasmMemory, WasmModule } from './wasm-api.js'
import { READ_ONLY_DIR_BASE, READ_ONLY_DIR_INHERITING, wrapWasiImports } from './wasi-imports.js'
import { BoundedCache } from '../common/bounded-cache.js'

/** A job as the executor sends it. */
export interface RunnerJob {
  id: number
  /** sha256 of the module's bytes as run (after the executor bounded its memory): the runner's cache key */
  moduleKey: string
  /** the module's bytes; left out when the executor believes this runner has it compiled already */
  moduleBytes?: Uint8Array
  argv: string[]
  env: Record<string, string>
  /** Host directories for /iexec_in (fd 3) and /iexec_out (fd 4), in that order. */
  inDir: string
  outDir: string
  /** Files the app's stdout and stderr go to (created by the executor, truncated here). */
  stdoutPath: string
  stderrPath: string
  seed: string
  maxWriteBytes: number
  /** Files and folders the app may create, all together. */
  maxFiles: number
  /** Present when the module imports env.memory: the host memory to give it. */
  importMemory?: { initialPages: number, maximumPages: number }
  /** After the run, the output's files are read back when together they hold at most this many bytes (-1: only measured). */
  collectBytes: number
  /** An output read back is then removed from the disk. */
  removeCollected: boolean
}

/** How a job ended, as the runner reports it. */
export interface RunnerOutcome {
  id: number
  /**
   * exit: the app called proc_exit or returned from _start; trap: a wasm trap
   * or a JS error inside the run; refused: the module could not be
   * instantiated; internal: the runner itself failed (not the app);
   * invalid: the job's input folder cannot be given to an app (the app never ran);
   * missing: the job named a module this runner does not hold (the executor sends it again with its bytes).
   */
  kind: 'exit' | 'trap' | 'refused' | 'internal' | 'invalid' | 'missing'
  exitCode: number | null
  message?: string
  /** Size of the app's memory at the end. */
  memoryBytes: number
  outputTooLarge: boolean
  /** The app tried to create more than maxFiles files and folders. */
  tooManyFiles?: boolean
  violations: string[]
  /** exit and trap: what the run left in /iexec_out (its size, a link or special file, and its files when collected) */
  output?: ReadTree
  /** invalid: the input entry at fault */
  path?: string
}

// Link rights removed from /iexec_out: a result must be plain files, and a
// link could point the digest (or the uploader) at something outside.
const LINK_RIGHTS = (1n << 11n) | (1n << 12n) | (1n << 24n)
const ALL_RIGHTS = (1n << 29n) - 1n
// uvwasi's rights for a preopened directory (UVWASI__RIGHTS_DIRECTORY_BASE).
const UVWASI_DIR_BASE = [3, 4, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27]
  .reduce((acc, bit) => acc | (1n << BigInt(bit)), 0n)

/**
 * Why the input folder cannot be preopened, if it cannot: node:wasi follows
 * symlinks wherever they point (its `..` check is on the path text only), so
 * a link in the input would open a host file. Checked here, synchronously,
 * for every run: nothing else runs on this thread meanwhile.
 */
function inputProblem (dir: string): { message: string, path?: string } | undefined {
  let isDir = false
  try {
    isDir = statSync(dir).isDirectory()
  } catch {
    isDir = false
  }
  if (!isDir) return { message: `inputDir is not a directory: ${dir}` }
  const { odd } = readTreeSync(dir, -1)
  return odd === undefined ? undefined : { message: `the input holds a link or special file: ${odd}`, path: odd }
}

// Compiled modules by key, oldest first (Map keeps insertion order); the
// executor's module cache bounds what it sends, this bounds what is kept.
const MODULE_CACHE_SIZE = 16
const modules = new BoundedCache<string, WasmModule>(MODULE_CACHE_SIZE)

/** The job's module, compiled from its bytes (checked against its key) or from the cache; undefined when neither has it. */
function moduleOf (job: RunnerJob): WasmModule | undefined {
  const cached = modules.get(job.moduleKey)
  if (cached !== undefined) return cached
  if (job.moduleBytes === undefined) return undefined
  if (createHash('sha256').update(job.moduleBytes).digest('hex') !== job.moduleKey) throw new Error('module bytes do not match their key')
  const module = new wasm.Module(job.moduleBytes)
  modules.set(job.moduleKey, module)
  return module
}

// The app's stdin: one descriptor of /dev/null for the runner's life (apps cannot close it: wasi-imports.ts).
let nullFd: number | undefined

function runJob (job: RunnerJob): RunnerOutcome {
  const module = moduleOf(job)
  if (module === undefined) return { id: job.id, kind: 'missing', exitCode: null, memoryBytes: 0, outputTooLarge: false, violations: [] }
  nullFd ??= openSync('/dev/null', 'r')
  const stdoutFd = openSync(job.stdoutPath, 'w')
  let stderrFd: number | undefined
  try {
    stderrFd = openSync(job.stderrPath, 'w')
    return runOpened(job, module, nullFd, stdoutFd, stderrFd)
  } finally {
    closeSync(stdoutFd)
    if (stderrFd !== undefined) closeSync(stderrFd)
  }
}

function runOpened (job: RunnerJob, module: WasmModule, stdinFd: number, stdoutFd: number, stderrFd: number): RunnerOutcome {
  const bad = inputProblem(job.inDir)
  if (bad !== undefined) return { id: job.id, kind: 'invalid', exitCode: null, memoryBytes: 0, outputTooLarge: false, violations: [], ...bad }
  let memory: WasmMemory | undefined
  let sandboxFailed = false
  const wasi = new WASI({
    version: 'preview1',
    args: job.argv,
    env: job.env,
    // Insertion order fixes the fds: /iexec_in is 3, /iexec_out is 4.
    preopens: { '/iexec_in': job.inDir, '/iexec_out': job.outDir },
    stdin: stdinFd,
    stdout: stdoutFd,
    stderr: stderrFd,
    returnOnExit: true
  } as ConstructorParameters<typeof WASI>[0])
  const raw = wasi.wasiImport as Record<string, unknown>
  const { imports, state } = wrapWasiImports(raw, { seed: job.seed, maxWriteBytes: job.maxWriteBytes, maxFiles: job.maxFiles, memory: () => memory })
  const importObject: WasmImports = { wasi_snapshot_preview1: imports }
  if (job.importMemory !== undefined) {
    memory = new wasm.Memory({ initial: job.importMemory.initialPages, maximum: job.importMemory.maximumPages })
    importObject.env = { memory }
  }
  const outcome = (kind: RunnerOutcome['kind'], exitCode: number | null, message?: string): RunnerOutcome => ({
    id: job.id,
    kind,
    exitCode,
    memoryBytes: memory?.buffer.byteLength ?? 0,
    outputTooLarge: state.outputTooLarge,
    ...(state.tooManyFiles ? { tooManyFiles: true } : {}),
    violations: state.violations,
    ...(message !== undefined ? { message } : {})
  })

  let instance: WasmInstance
  try {
    instance = new wasm.Instance(module, importObject)
  } catch (err) {
    return outcome('refused', null, `cannot instantiate: ${(err as Error).message}`)
  }
  const exported = instance.exports.memory
  if (isWasmMemory(exported)) memory = exported
  const start = instance.exports._start
  if (memory === undefined || typeof start !== 'function') {
    return outcome('refused', null, 'a WASI command needs a memory and a _start export')
  }
  const mem = memory
  // node:wasi accepts any object with exports.memory and exports._start; the
  // rights can only be reduced once wasi.start has bound the memory, so the
  // reduction runs first thing inside _start.
  const proxy = {
    exports: {
      memory: mem,
      _start: (): void => {
        const setRights = imports.fd_fdstat_set_rights
        if (setRights(3, READ_ONLY_DIR_BASE, READ_ONLY_DIR_INHERITING) !== 0) {
          // Fail closed: the app must not run with a writable input.
          sandboxFailed = true
          throw new Error('could not make /iexec_in read-only')
        }
        // A second layer only: the wrapped imports refuse links already and
        // the output scan refuses them too, so the result is not checked.
        setRights(4, UVWASI_DIR_BASE & ~LINK_RIGHTS, ALL_RIGHTS & ~LINK_RIGHTS)
        ;(start as () => void)()
      }
    }
  }
  let ended: RunnerOutcome
  try {
    const code = wasi.start(proxy as unknown as Parameters<WASI['start']>[0])
    ended = outcome('exit', code ?? 0)
  } catch (err) {
    const e = err as Error
    if (sandboxFailed) return outcome('internal', null, e.message)
    ended = outcome('trap', null, `${e.name}: ${e.message}`)
  }
  // measured (and read back, when small) here with sync calls: on the main
  // thread each of these was a promise and a trip through libuv's pool. Only
  // a run that can complete is read back (and removed): a failed one keeps
  // its output on disk, stdout and stderr included
  const mayComplete = ended.kind === 'exit' && ended.exitCode === 0 && ended.violations.length === 0 && !ended.outputTooLarge && ended.tooManyFiles !== true
  const output = readTreeSync(job.outDir, mayComplete ? Math.min(job.collectBytes, job.maxWriteBytes) : -1)
  if (output.entries !== undefined && job.removeCollected) rmSync(job.outDir, { recursive: true, force: true })
  return { ...ended, output }
}

if (process.send === undefined) throw new Error('wasi-runner must run as a child process with an IPC channel')
const send = process.send.bind(process)
process.on('message', (job: RunnerJob) => {
  let outcome: RunnerOutcome
  try {
    outcome = runJob(job)
  } catch (err) {
    outcome = { id: job.id, kind: 'internal', exitCode: null, message: (err as Error).message, memoryBytes: 0, outputTooLarge: false, violations: [] }
  }
  send(outcome)
})
// the executor gone (closed or dead): nothing left to run for
process.on('disconnect', () => { process.exit(0) })
