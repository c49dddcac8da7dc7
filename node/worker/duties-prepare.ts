import { createHash } from 'node:crypto'
import { copyFile, link, mkdir, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { MAX_SWEEP_DOCUMENT_BYTES, parseRequestParams, parseSweepDocument } from '../../protocols/market.js'
import type { FetchOptions } from '../storage/index.js'
import { memoAsync } from '../common/memo.js'
import { DutyError } from './duties-errors.js'
import type { WorkerDutiesOptions } from './duties-options.js'
import type { WorkerTaskRecord } from './duties-book.js'

/** What the tasks of one deal run on (see DealPreparer.prepare). */
export interface PreparedDeal {
  /** the deal's folder on this worker */
  root: string
  module: Uint8Array
  /** opened read-only to every run */
  inputDir: string
  inputFiles: string[]
  datasetFilename?: string
}

/** What a preparation fetches content with (storage's helpers over the node's Helia fit). */
export interface ContentSource {
  /** a whole content, bounded by `options` */
  cat: (cid: string, options: FetchOptions) => AsyncIterable<Uint8Array>
  /** a content streamed to a file, bounded by `options` */
  toFile: (cid: string, path: string, options: FetchOptions) => Promise<void>
}

/** What a dataset is fetched, decrypted and checked with (storage's helpers fit). */
export interface DatasetTools {
  isEncrypted: (path: string) => Promise<boolean>
  /** decrypts `from` into `to`; the plaintext's sha256 checksum */
  decrypt: (from: string, to: string, key: Uint8Array) => Promise<{ checksum: string }>
  /** places a dataset published in clear at `to`; its sha256 checksum */
  placePlain: (from: string, to: string) => Promise<string>
}

export interface DealPreparerInit {
  content: ContentSource
  datasets: DatasetTools
  /** deal folders go under it */
  workDir: string
  options: Pick<WorkerDutiesOptions, 'maxAppBytes' | 'maxInputBytes' | 'fetchTimeoutMs' | 'fetchMinBytesPerSecond' | 'fetchStallTimeoutMs' | 'preparedTtlMs'>
  /** stops every fetch when the worker stops */
  signal: AbortSignal
  /** the deal's task count (its DealCreated's volume) */
  volume: (dealid: string) => Promise<number>
  /** the dataset's content key from its owner; without it a deal with a dataset fails */
  datasetKey?: (request: { dataset: string, dealid: string, idx: number, authorization: string }) => Promise<Uint8Array>
  retention?: { prepare: (cids: string[]) => Promise<() => Promise<void>> }
  reachAppHolders?: (app: string) => Promise<void>
  log: (msg: string, context?: Record<string, unknown>) => void
  now?: () => number
}

/**
 * What every task of a deal runs on, made once on this worker and shared by
 * its tasks (a deal's tasks have the same app, dataset and params): the app
 * module checked against its registered checksum, and one input folder with
 * the input files and the (decrypted, checked) dataset, which the executor
 * opens read-only to each run. Fetching, hashing and writing them per task
 * would repeat the same work for every task of a bag. Forgotten, and its
 * folder removed, once the deal has had no task computing here for
 * preparedTtlMs.
 */
export class DealPreparer {
  private readonly prepared = new Map<string, { ready: Promise<PreparedDeal>, usedAt: number }>()
  /** each sweep deal's per-task lists, from its document (a failed fetch is not kept) */
  private readonly sweeps = new Map<string, Promise<{ args?: string[], inputs?: string[][] }>>()
  private readonly now: () => number

  constructor (private readonly init: DealPreparerInit) {
    this.now = init.now ?? Date.now
  }

  /** The deal's preparation, made by its first task (a failed one is not kept: the next task tries again). */
  async prepare (r: WorkerTaskRecord): Promise<PreparedDeal> {
    let entry = this.prepared.get(r.dealid)
    if (entry === undefined) {
      const made = this.make(r)
      entry = { ready: made, usedAt: this.now() }
      this.prepared.set(r.dealid, entry)
      made.catch(() => { if (this.prepared.get(r.dealid)?.ready === made) this.prepared.delete(r.dealid) })
    }
    entry.usedAt = this.now()
    return await entry.ready
  }

  /** Forgets the preparations of deals with no task computing here for preparedTtlMs, and removes their folders. */
  async evict (computing: Set<string>): Promise<void> {
    const before = this.now() - this.init.options.preparedTtlMs
    for (const [dealid, entry] of this.prepared) {
      if (computing.has(dealid) || entry.usedAt >= before) continue
      this.prepared.delete(dealid)
      const made = await entry.ready.catch(() => undefined)
      if (made !== undefined) await rm(made.root, { recursive: true, force: true }).catch(() => {})
    }
  }

  /**
   * A sweep task's own parameters (params' iexec_p2p_task_args and
   * iexec_p2p_task_inputs, signed by the requester with the request): its
   * arguments, and an input folder of its own (`taskRoot/in`) holding the
   * deal's inputs (linked) and its own files, so that no task sees
   * another's inputs. Without a sweep, the deal's shared folder.
   * @throws DutyError DUTY_SWEEP_MISMATCH when a list is not one entry per task of the deal
   */
  async taskInputs (r: WorkerTaskRecord, taskRoot: string, params: ReturnType<typeof parseRequestParams>, prepared: PreparedDeal): Promise<{ args?: string, inputDir: string, inputFiles: string[] }> {
    let taskArgs = params.iexec_p2p_task_args
    let taskInputs = params.iexec_p2p_task_inputs
    if (params.iexec_p2p_sweep !== undefined) {
      const doc = await this.sweepDocument(r.dealid, params.iexec_p2p_sweep)
      taskArgs = doc.args
      taskInputs = doc.inputs
    }
    if (taskArgs === undefined && taskInputs === undefined) return { inputDir: prepared.inputDir, inputFiles: prepared.inputFiles }
    const volume = await this.init.volume(r.dealid)
    for (const [field, list] of [['iexec_p2p_task_args', taskArgs], ['iexec_p2p_task_inputs', taskInputs]] as const) {
      if (list !== undefined && (list.length !== volume || r.idx >= list.length)) {
        throw new DutyError('DUTY_SWEEP_MISMATCH', `params.${field} has ${list.length} entries for a deal of ${volume} task(s)`, { field, entries: list.length, volume, idx: r.idx })
      }
    }
    const own = taskInputs?.[r.idx] ?? []
    if (own.length === 0) return { ...(taskArgs !== undefined ? { args: taskArgs[r.idx] } : {}), inputDir: prepared.inputDir, inputFiles: prepared.inputFiles }
    const dir = join(taskRoot, 'in')
    await mkdir(dir, { recursive: true })
    for (const name of await readdir(prepared.inputDir)) {
      await link(join(prepared.inputDir, name), join(dir, name)).catch(async () => { await copyFile(join(prepared.inputDir, name), join(dir, name)) })
    }
    // the CID is the file's name, as for the deal's inputs (checked to be letters and digits by the params parser)
    for (const cid of new Set(own)) {
      if (!prepared.inputFiles.includes(cid)) await this.init.content.toFile(cid, join(dir, cid), this.inputFetch())
    }
    return { ...(taskArgs !== undefined ? { args: taskArgs[r.idx] } : {}), inputDir: dir, inputFiles: [...prepared.inputFiles, ...own] }
  }

  /**
   * Inputs and datasets may be GiBs: their whole-fetch bound grows with
   * their size, and a fetch whose peers went away is stopped by the stall
   * bound long before that.
   */
  private inputFetch (): FetchOptions {
    const o = this.init.options
    return { maxBytes: o.maxInputBytes, timeoutMs: o.fetchTimeoutMs, minBytesPerSecond: o.fetchMinBytesPerSecond, stallTimeoutMs: o.fetchStallTimeoutMs, signal: this.init.signal }
  }

  private async make (r: WorkerTaskRecord): Promise<PreparedDeal> {
    const root = join(this.init.workDir, `deal-${r.dealid}`)
    const input = join(root, 'in')
    // left by an earlier run of this node: made again from empty
    await rm(root, { recursive: true, force: true })
    await mkdir(input, { recursive: true })
    const params = parseRequestParams(r.params)
    const inputFetch = this.inputFetch()
    // the CID is an input file's name: the same on every worker, and safe as a path
    const inputFiles = params.iexec_input_files ?? []
    // all at once, the dial of the app's holders too (bitswap asks a peer as soon as it is
    // connected): none of them waits for another
    const steps = await Promise.allSettled([
      this.fetchApp(r),
      ...[...new Set(inputFiles)].map(async (cid) => { await this.init.content.toFile(cid, join(input, cid), inputFetch) }),
      this.init.reachAppHolders?.(r.app).catch((err: unknown) => { this.init.log('app holders not reached', { app: r.app, error: err instanceof Error ? err.message : String(err) }) })
    ])
    // every fetch has ended (none writes into the folder any more) before a failure is reported
    const failed = steps.find((x): x is PromiseRejectedResult => x.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    const module = (steps[0] as PromiseFulfilledResult<Uint8Array>).value
    let datasetFilename: string | undefined
    if (r.dataset !== undefined) {
      if (this.init.datasetKey === undefined) throw new DutyError('DUTY_DATASET_UNSUPPORTED', 'this worker has no way to get dataset keys')
      const enc = join(root, 'dataset.enc')
      const keepDataset = await this.init.retention?.prepare([r.dataset.cid])
      await this.init.content.toFile(r.dataset.cid, enc, inputFetch)
      await keepDataset?.()
      datasetFilename = 'dataset'
      if (await this.init.datasets.isEncrypted(enc)) {
        const key = await this.init.datasetKey({ dataset: r.dataset.address, dealid: r.dealid, idx: r.idx, authorization: r.authorization })
        try {
          const plain = await this.init.datasets.decrypt(enc, join(input, datasetFilename), key)
          if (plain.checksum.toLowerCase() !== r.dataset.checksum) throw new DutyError('DUTY_BAD_APP', 'the decrypted dataset does not hash to its registered checksum', { expected: r.dataset.checksum, got: plain.checksum })
        } finally {
          key.fill(0)
          await rm(enc, { force: true })
        }
      } else {
        // a dataset published with --no-encrypt: no key to ask for, the same checksum to check
        const checksum = await this.init.datasets.placePlain(enc, join(input, datasetFilename))
        if (checksum !== r.dataset.checksum) throw new DutyError('DUTY_BAD_APP', 'the dataset does not hash to its registered checksum', { expected: r.dataset.checksum, got: checksum })
      }
    }
    return { root, module, inputDir: input, inputFiles, ...(datasetFilename !== undefined ? { datasetFilename } : {}) }
  }

  /**
   * A sweep's lists from the document its params name, fetched once per
   * deal and checked against the params' sha256.
   * @throws DutyError DUTY_SWEEP_MISMATCH when the bytes do not hash to it or do not parse
   */
  private async sweepDocument (dealid: string, ref: { cid: string, checksum: string }): Promise<{ args?: string[], inputs?: string[][] }> {
    const o = this.init.options
    return await memoAsync(this.sweeps, dealid, async () => {
      const chunks: Uint8Array[] = []
      for await (const c of this.init.content.cat(ref.cid, { maxBytes: MAX_SWEEP_DOCUMENT_BYTES, timeoutMs: o.fetchTimeoutMs, stallTimeoutMs: o.fetchStallTimeoutMs, signal: this.init.signal })) chunks.push(c)
      const bytes = Buffer.concat(chunks)
      const checksum = '0x' + createHash('sha256').update(bytes).digest('hex')
      if (checksum !== ref.checksum) throw new DutyError('DUTY_SWEEP_MISMATCH', 'the sweep document does not hash to the checksum in the params', { expected: ref.checksum, got: checksum })
      try {
        return parseSweepDocument(bytes)
      } catch (err) {
        throw new DutyError('DUTY_SWEEP_MISMATCH', 'the sweep document does not parse', {}, { cause: err })
      }
    }, 100)
  }

  /** The deal's app module, fetched (kept and provided a while by retention) and checked against its registered checksum. */
  private async fetchApp (r: WorkerTaskRecord): Promise<Uint8Array> {
    const o = this.init.options
    const keepApp = await this.init.retention?.prepare([r.appCid])
    const chunks: Uint8Array[] = []
    for await (const c of this.init.content.cat(r.appCid, { maxBytes: o.maxAppBytes, timeoutMs: o.fetchTimeoutMs, stallTimeoutMs: o.fetchStallTimeoutMs, signal: this.init.signal })) chunks.push(c)
    const module = new Uint8Array(Buffer.concat(chunks))
    const checksum = '0x' + createHash('sha256').update(module).digest('hex')
    if (checksum !== r.appChecksum) throw new DutyError('DUTY_BAD_APP', 'the fetched app does not hash to its registered checksum', { expected: r.appChecksum, got: checksum })
    await keepApp?.()
    return module
  }
}
