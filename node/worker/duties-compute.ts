import { appendFile, mkdir, open as openFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { splitArgs } from '../../protocols/args.js'
import { MAX_STDERR_TAIL_BYTES } from '../../protocols/failure-report.js'
import { parseRequestParams } from '../../protocols/market.js'
import { encryptResult, packTree } from '../storage/index.js'
import type { TreeEntry } from '../storage/index.js'
import { computeResultDigest, resultDigestOfTree } from '../storage/digest.js'
import { taskDirs } from './duties-book.js'
import type { TaskRecords, WorkerTaskRecord } from './duties-book.js'
import { DutyError } from './duties-errors.js'
import type { WorkerDutiesOptions } from './duties-options.js'
import type { DealPreparer } from './duties-prepare.js'
import type { TaskFailures } from './duties-reporter.js'
import type { Executor } from './executor.js'
import { runLimits, type CategoryLimits } from './run-limits.js'

/** The last MAX_STDERR_TAIL_BYTES of a run's stderr, and its whole size (nothing when the file is gone). */
export async function stderrTail (path: string): Promise<{ tail: Uint8Array, bytes: number }> {
  let f
  try {
    f = await openFile(path, 'r')
  } catch {
    return { tail: new Uint8Array(0), bytes: 0 }
  }
  try {
    const { size } = await f.stat()
    const n = Math.min(size, MAX_STDERR_TAIL_BYTES)
    const buf = Buffer.alloc(n)
    const { bytesRead } = await f.read(buf, 0, n, size - n)
    return { tail: new Uint8Array(buf.subarray(0, bytesRead)), bytes: size }
  } finally {
    await f.close()
  }
}

export interface ComputeSlotsInit {
  records: Pick<TaskRecords, 'save'>
  failures: TaskFailures
  /** the deal's shared preparation and a task's own inputs */
  preparer: Pick<DealPreparer, 'prepare' | 'taskInputs'>
  /** the bounds of the deal's category */
  limits: (dealid: string) => Promise<CategoryLimits>
  executor: Executor
  /** adds a result archive held in memory to the content store; its CID */
  addBytes: (bytes: Uint8Array, signal: AbortSignal) => Promise<string>
  /** one folder per task goes under it */
  workDir: string
  options: Pick<WorkerDutiesOptions, 'maxConcurrentTasks' | 'collectOutputBytes' | 'maxRunMs' | 'maxMemoryBytes' | 'maxOutputBytes'>
  /** aborts runs and fetches when the worker stops */
  signal: AbortSignal
  /** test-only faults: a wrong output committed, a slow start */
  faults?: { corruptOutput?: boolean, delayBeforeRunMs?: number }
  log: (msg: string, context?: Record<string, unknown>) => void
}

/**
 * Runs tasks: at most maxConcurrentTasks at once, the others held waiting
 * their turn in order; each fetches (through the deal's preparation), runs
 * in the executor within its category's bounds, digests, and adds an output
 * held in memory to the content store. A run that does not complete fails
 * the task with its status, exit code and stderr tail; a stop aborts it.
 */
export class ComputeSlots {
  /** tasks computing now */
  private computing = 0
  private readonly waiters: Array<() => void> = []

  constructor (private readonly init: ComputeSlotsInit) {}

  /** Tasks computing now (the ones waiting for a slot aside). */
  busy (): number {
    return this.computing
  }

  /** Computes `r` in a slot, waiting for one first (first come, first served): the record computed or failed. */
  async run (r: WorkerTaskRecord): Promise<WorkerTaskRecord> {
    await this.acquire()
    try {
      return await this.compute(r)
    } finally {
      this.release()
    }
  }

  private async acquire (): Promise<void> {
    if (this.computing < this.init.options.maxConcurrentTasks) {
      this.computing++
      return
    }
    await new Promise<void>((resolve) => { this.waiters.push(resolve) })
  }

  private release (): void {
    const next = this.waiters.shift()
    // the slot passes straight to the next waiter
    if (next !== undefined) next()
    else this.computing--
  }

  /** Fetch, check, run, digest. */
  private async compute (r: WorkerTaskRecord): Promise<WorkerTaskRecord> {
    const { root, output } = taskDirs(this.init.workDir, r.taskid)
    const signal = this.init.signal
    const faults = this.init.faults ?? {}
    try {
      const delay = faults.delayBeforeRunMs ?? 0
      if (delay > 0) await sleep(delay, undefined, { signal })
      const t0 = Date.now()
      // a restart mid-run starts the run over from an empty folder
      try {
        await mkdir(root)
      } catch {
        await rm(root, { recursive: true, force: true })
        await mkdir(root, { recursive: true })
      }
      const prepared = await this.init.preparer.prepare(r)
      const { module, datasetFilename } = prepared
      const params = parseRequestParams(r.params)
      // a sweep task's own line of arguments and input files
      const sweep = await this.init.preparer.taskInputs(r, root, params, prepared)
      // split as a POSIX shell would, without expansion: the same argv on every worker (protocols/args.ts)
      const args = splitArgs(sweep.args ?? params.iexec_args ?? '')
      const { inputDir, inputFiles } = sweep
      const limits = runLimits(await this.init.limits(r.dealid), this.init.options)
      const t1 = Date.now()
      const result = await this.init.executor.run({
        taskId: r.taskid,
        taskIndex: r.idx,
        module,
        args,
        inputDir,
        outputDir: output,
        ...(datasetFilename !== undefined ? { datasetFilename } : {}),
        inputFiles,
        ...limits,
        collectBytes: this.init.options.collectOutputBytes,
        // what was read back is all a task needs of its output (the fault below rewrites the disk's)
        removeCollected: faults.corruptOutput !== true
      }, signal)
      const t2 = Date.now()
      if (result.status !== 'COMPLETED') {
        const stderr = await stderrTail(result.stderrPath)
        throw new DutyError('DUTY_EXECUTION_FAILED', `the app ended ${result.status}: ${result.message ?? ''}`, { status: result.status, exitCode: result.exitCode, stderrTail: stderr.tail, stderrBytes: stderr.bytes })
      }
      let tree = result.output
      if (faults.corruptOutput === true) {
        const { mode, path } = tree !== undefined ? resultDigestOfTree(tree) : await computeResultDigest(output)
        if (mode === 'file') await appendFile(join(output, ...path.split('/')), 'corrupted\n')
        else await writeFile(join(output, 'corrupted.txt'), 'corrupted\n')
        // what is in memory is no longer the output: the disk speaks
        tree = undefined
      }
      const digest = tree !== undefined ? resultDigestOfTree(tree) : await computeResultDigest(output)
      const t3 = Date.now()
      // an output read back whole goes to the content store now, from memory (every trust: a trust > 1
      // result waits for an upload request that then costs nothing); a larger one streams from disk at upload
      const resultsCid = tree !== undefined ? await this.addResult(r, tree) : undefined
      const next: WorkerTaskRecord = {
        ...r,
        state: 'computed',
        digest: digest.digest,
        ...(resultsCid !== undefined ? { resultsCid } : {}),
        ...(digest.callbackData !== undefined ? { callbackData: digest.callbackData } : {})
      }
      await this.init.records.save(next)
      // where a task's time on this worker went (an operator's and the bag benchmark's account)
      this.init.log('task computed', { taskid: r.taskid, prepareMs: t1 - t0, runMs: t2 - t1, digestMs: t3 - t2, storeMs: Date.now() - t3 })
      return next
    } catch (err) {
      if (signal.aborted) throw err
      return await this.init.failures.fail(r, err)
    }
  }

  /** Adds the result archive of an output held in memory (encrypted to the requester when asked); its CID. */
  private async addResult (r: WorkerTaskRecord, tree: TreeEntry[]): Promise<string> {
    let archive = packTree(tree)
    if (r.resultEncryptionKey !== undefined) {
      const parts: Uint8Array[] = []
      for await (const c of encryptResult((async function * () { yield archive })(), r.resultEncryptionKey, { taskid: r.taskid })) parts.push(c)
      archive = Buffer.concat(parts)
    }
    // not provided in the DHT: see Committer.upload
    return await this.init.addBytes(archive, this.init.signal)
  }
}
