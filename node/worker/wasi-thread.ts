// Worker-thread side of the WASI executor: runs one job per message, each in a
// fresh WASI instance and a fresh module instance, and reports how it ended.
// The main thread owns the timer and terminates this thread past the bound,
// which is the only way to stop a wasm loop that never calls out.
import '../polyfills.js'
import { rmSync, statSync } from 'node:fs'
import { parentPort } from 'node:worker_threads'
import { WASI } from 'node:wasi'
import { readTreeSync } from '../storage/archive.js'
import type { ReadTree } from '../storage/archive.js'
import { isWasmMemory, wasm } from './wasm-api.js'
import type { WasmImports, WasmInstance, WasmMemory, WasmModule } from './wasm-api.js'
import { READ_ONLY_DIR_BASE, READ_ONLY_DIR_INHERITING, wrapWasiImports } from './wasi-imports.js'

/** A job as the main thread posts it. */
export interface ThreadJob {
  id: number
  module: WasmModule
  argv: string[]
  env: Record<string, string>
  /** Host directories for /iexec_in (fd 3) and /iexec_out (fd 4), in that order. */
  inDir: string
  outDir: string
  /** An empty input (/dev/null): the app must not read the host's stdin. */
  stdinFd: number
  stdoutFd: number
  stderrFd: number
  seed: string
  maxWriteBytes: number
  /** Present when the module imports env.memory: the host memory to give it. */
  importMemory?: { initialPages: number, maximumPages: number }
  /** After the run, the output's files are read back when together they hold at most this many bytes (-1: only measured). */
  collectBytes: number
  /** An output read back is then removed from the disk. */
  removeCollected: boolean
}

/** How a job ended, as the thread reports it. */
export interface ThreadOutcome {
  id: number
  /**
   * exit: the app called proc_exit or returned from _start; trap: a wasm trap
   * or a JS error inside the run; refused: the module could not be
   * instantiated; internal: the thread itself failed (not the app);
   * invalid: the job's input folder cannot be given to an app (the app never ran).
   */
  kind: 'exit' | 'trap' | 'refused' | 'internal' | 'invalid'
  exitCode: number | null
  message?: string
  /** Size of the app's memory at the end. */
  memoryBytes: number
  outputTooLarge: boolean
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

function runJob (job: ThreadJob): ThreadOutcome {
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
    stdin: job.stdinFd,
    stdout: job.stdoutFd,
    stderr: job.stderrFd,
    returnOnExit: true
  } as ConstructorParameters<typeof WASI>[0])
  const raw = wasi.wasiImport as Record<string, unknown>
  const { imports, state } = wrapWasiImports(raw, { seed: job.seed, maxWriteBytes: job.maxWriteBytes, memory: () => memory })
  const importObject: WasmImports = { wasi_snapshot_preview1: imports }
  if (job.importMemory !== undefined) {
    memory = new wasm.Memory({ initial: job.importMemory.initialPages, maximum: job.importMemory.maximumPages })
    importObject.env = { memory }
  }
  const outcome = (kind: ThreadOutcome['kind'], exitCode: number | null, message?: string): ThreadOutcome => ({
    id: job.id,
    kind,
    exitCode,
    memoryBytes: memory?.buffer.byteLength ?? 0,
    outputTooLarge: state.outputTooLarge,
    violations: state.violations,
    ...(message !== undefined ? { message } : {})
  })

  let instance: WasmInstance
  try {
    instance = new wasm.Instance(job.module, importObject)
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
  let ended: ThreadOutcome
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
  const mayComplete = ended.kind === 'exit' && ended.exitCode === 0 && ended.violations.length === 0 && !ended.outputTooLarge
  const output = readTreeSync(job.outDir, mayComplete ? Math.min(job.collectBytes, job.maxWriteBytes) : -1)
  if (output.entries !== undefined && job.removeCollected) rmSync(job.outDir, { recursive: true, force: true })
  return { ...ended, output }
}

const port = parentPort
if (port === null) throw new Error('wasi-thread must run in a worker thread')
port.on('message', (job: ThreadJob) => {
  let outcome: ThreadOutcome
  try {
    outcome = runJob(job)
  } catch (err) {
    outcome = { id: job.id, kind: 'internal', exitCode: null, message: (err as Error).message, memoryBytes: 0, outputTooLarge: false, violations: [] }
  }
  port.postMessage(outcome)
})
