// The node's executors from its `executors` setting: WASI always available,
// native where bubblewrap works. Apps go to the executor of their kind
// (app-kind.ts); a kind this node does not run ends INVALID_MODULE.
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { appKind, APP_HEAD_BYTES, EXECUTOR_OF } from './app-kind.js'
import type { ExecJob, ExecResult, Executor } from './executor.js'
import { WorkerError } from './errors.js'
import { defaultNativeExecutorOptions, NativeExecutor } from './native-executor.js'
import type { NativeStatus } from './native-executor.js'
import { OciImages } from './oci-image.js'
import { STDERR_FILE, STDOUT_FILE } from './options.js'
import { WasiExecutor } from './wasi-executor.js'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'

/** Executor names this version knows. */
export const KNOWN_EXECUTORS = ['wasi', 'native'] as const

/** The executors of a setting this host can honour, and why the others are left out. */
export interface UsableExecutors {
  executors: string[]
  dropped: Array<{ name: string, reason: string }>
}

/**
 * Resolves the setting: unknown names and a native executor without a
 * working bubblewrap are dropped (and said why), so that the resource record
 * advertises only what runs.
 */
export function usableExecutors (wanted: readonly string[], native?: () => NativeExecutor): UsableExecutors {
  const out: UsableExecutors = { executors: [], dropped: [] }
  for (const name of new Set(wanted)) {
    if (name === 'wasi') out.executors.push(name)
    else if (name === 'native') {
      const ex = (native ?? (() => new NativeExecutor()))()
      if (ex.available) out.executors.push(name)
      else out.dropped.push({ name, reason: ex.status().reason ?? 'unavailable' })
      // a probe: the node makes its own executor when execution starts
      void ex.close()
    } else {
      out.dropped.push({ name, reason: 'unknown executor' })
    }
  }
  return out
}

/** A native executor with OCI images, their cache in its stage. */
export function nativeWithImages (stageDir: string = defaultNativeExecutorOptions.stageDir, cpus = 1, devices: string[] = []): NativeExecutor {
  const images = new OciImages({ cacheDir: join(stageDir, 'images') })
  return new NativeExecutor({ stageDir, cpus, images: images.preparer, devices })
}

async function headOf (module: Uint8Array | string): Promise<Uint8Array | 'dir'> {
  if (typeof module !== 'string') return module.subarray(0, APP_HEAD_BYTES)
  const fh = await open(module, 'r').catch((err: unknown) => {
    throw new WorkerError('WORKER_INVALID_JOB', `cannot read module ${module}`, undefined, { cause: err })
  })
  try {
    if ((await fh.stat()).isDirectory()) return 'dir'
    const buf = Buffer.alloc(APP_HEAD_BYTES)
    const { bytesRead } = await fh.read(buf, 0, APP_HEAD_BYTES, 0)
    return buf.subarray(0, bytesRead)
  } finally {
    await fh.close()
  }
}

/** Sends each job to the executor of its app's kind. */
export class KindExecutor implements Executor {
  readonly name: string
  constructor (readonly wasi: WasiExecutor | undefined, readonly native: NativeExecutor | undefined) {
    this.name = [wasi?.name, native?.name].filter((n) => n !== undefined).join('+')
  }

  /** The executor names this one runs. */
  get executors (): string[] {
    return [this.wasi?.name, this.native?.name].filter((n): n is string => n !== undefined)
  }

  /** Which limits the native sandbox has in force (for `status`). */
  nativeStatus (): NativeStatus | undefined {
    return this.native?.status()
  }

  warm (count: number): void {
    this.wasi?.warm(count)
  }

  async run (job: ExecJob, signal?: AbortSignal): Promise<ExecResult> {
    const head = await headOf(job.module)
    const kind = head === 'dir' ? 'oci' : appKind(head)
    const executor = kind === undefined ? undefined : EXECUTOR_OF[kind] === 'wasi' ? this.wasi : this.native
    if (executor !== undefined) return await executor.run(job, signal)
    // refused like any module an executor cannot run: an empty output with its streams
    try {
      mkdirSync(job.outputDir, { recursive: true })
    } catch (err) {
      throw new WorkerError('WORKER_INVALID_JOB', `cannot create outputDir ${job.outputDir}`, undefined, { cause: err })
    }
    if (readdirSync(job.outputDir).length > 0) throw new WorkerError('WORKER_INVALID_JOB', `outputDir must be empty: ${job.outputDir}`)
    const stdoutPath = join(job.outputDir, STDOUT_FILE)
    const stderrPath = join(job.outputDir, STDERR_FILE)
    writeFileSync(stdoutPath, '')
    writeFileSync(stderrPath, '')
    const why = kind === undefined ? 'not a WASI module, an ELF binary or an OCI image' : `a ${kind} app needs the ${EXECUTOR_OF[kind]} executor, which this node does not run`
    return { status: 'INVALID_MODULE', exitCode: null, durationMs: 0, stdoutPath, stderrPath, message: why }
  }

  async close (): Promise<void> {
    await Promise.all([this.wasi?.close(), this.native?.close()])
  }
}

/** The kind's executor name of an app from its head; undefined when the head says nothing known. */
export function executorOfHead (head: Uint8Array): string | undefined {
  const kind = appKind(head)
  return kind === undefined ? undefined : EXECUTOR_OF[kind]
}

