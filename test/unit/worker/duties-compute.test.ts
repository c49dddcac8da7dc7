import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { isIexecError } from '../../../node/common/errors.js'
import { decryptResult, packTree } from '../../../node/storage/index.js'
import type { TreeEntry } from '../../../node/storage/index.js'
import { resultDigestOfTree } from '../../../node/storage/digest.js'
import { taskDirs } from '../../../node/worker/duties-book.js'
import type { WorkerTaskRecord } from '../../../node/worker/duties-book.js'
import { ComputeSlots } from '../../../node/worker/duties-compute.js'
import { DutyError } from '../../../node/worker/duties-errors.js'
import type { PreparedDeal } from '../../../node/worker/duties-prepare.js'
import type { ExecJob, ExecResult } from '../../../node/worker/executor.js'
import { rec, until } from './duties-fakes.js'

const MiB = 1024 * 1024
const TREE: TreeEntry[] = [{ path: 'result.txt', kind: 'file', size: 5, content: new Uint8Array(Buffer.from('hello')) }]

/** A run that the test ends: `finish` resolves it with `result`. */
interface PendingRun { job: ExecJob, finish: (result?: Partial<ExecResult>) => void }

interface Harness {
  slots: ComputeSlots
  workDir: string
  jobs: ExecJob[]
  saved: WorkerTaskRecord[]
  failed: Array<{ taskid: string, err: unknown }>
  added: Uint8Array[]
  /** runs waiting for the test when `hold` is set */
  pending: PendingRun[]
  abort: AbortController
  /** what the next run ends with (unless held) */
  result: { value: Partial<ExecResult> }
  /** what the preparation does */
  prepare: { fails?: Error }
}

const harnesses: Harness[] = []

async function harness (o: { maxConcurrentTasks?: number, hold?: boolean, onRun?: (job: ExecJob) => Promise<void> } = {}): Promise<Harness> {
  const workDir = await mkdtemp(join(tmpdir(), 'compute-slots-'))
  const h: Harness = { workDir, jobs: [], saved: [], failed: [], added: [], pending: [], abort: new AbortController(), result: { value: { output: TREE } }, prepare: {}, slots: undefined as unknown as ComputeSlots }
  const prepared: PreparedDeal = { root: join(workDir, 'deal'), module: new Uint8Array([0, 0x61, 0x73, 0x6d]), inputDir: join(workDir, 'deal', 'in'), inputFiles: ['bafyin'] }
  const ended = (job: ExecJob, over: Partial<ExecResult> = {}): ExecResult => ({ status: 'COMPLETED', exitCode: 0, durationMs: 1, stdoutPath: join(job.outputDir, 'stdout.txt'), stderrPath: join(job.outputDir, 'stderr.txt'), ...over })
  h.slots = new ComputeSlots({
    records: { save: async (r) => { h.saved.push(r) } },
    failures: { fail: async (r, err) => { h.failed.push({ taskid: r.taskid, err }); return { ...r, state: 'failed' } } },
    preparer: {
      prepare: async () => {
        if (h.prepare.fails !== undefined) throw h.prepare.fails
        return prepared
      },
      taskInputs: async (_r, _root, params, p) => ({ ...(params.iexec_p2p_task_args !== undefined ? { args: params.iexec_p2p_task_args[0] } : {}), inputDir: p.inputDir, inputFiles: p.inputFiles })
    },
    limits: async () => ({ timeRef: 100, memoryMiB: 256, diskMiB: 64 }),
    executor: {
      name: 'fake',
      run: async (job) => {
        h.jobs.push(job)
        await o.onRun?.(job)
        if (o.hold === true) return await new Promise<ExecResult>((resolve) => { h.pending.push({ job, finish: (r) => { resolve(ended(job, r ?? { output: TREE })) } }) })
        return ended(job, h.result.value)
      },
      close: async () => {}
    },
    addBytes: async (bytes) => { h.added.push(bytes); return `bafyresult${h.added.length}` },
    workDir,
    options: { maxConcurrentTasks: o.maxConcurrentTasks ?? 2, collectOutputBytes: 1 * MiB, maxRunMs: 30_000, maxMemoryBytes: 512 * MiB, maxOutputBytes: 1 * MiB },
    signal: h.abort.signal,
    log: () => {}
  })
  harnesses.push(h)
  return h
}

const task = (n: number, over: Partial<WorkerTaskRecord> = {}): WorkerTaskRecord => rec({ taskid: `0xtask${n}`, idx: n, state: 'assigned', ...over })

describe('worker duties: the compute slots', () => {
  afterEach(async () => {
    for (const h of harnesses.splice(0)) {
      h.abort.abort()
      await rm(h.workDir, { recursive: true, force: true })
    }
  })

  it('runs a task within its category\'s bounds capped by the worker\'s, and records it computed with its digest and result CID', async () => {
    const h = await harness()
    const done = await h.slots.run(task(0, { params: JSON.stringify({ iexec_args: 'a "b c"' }) }))
    assert.equal(h.jobs.length, 1)
    const job = h.jobs[0]
    assert.deepEqual(job.args, ['a', 'b c'], 'split as a shell would')
    assert.equal(job.taskId, '0xtask0')
    assert.equal(job.taskIndex, 0)
    assert.deepEqual(job.inputFiles, ['bafyin'])
    assert.equal(job.outputDir, taskDirs(h.workDir, '0xtask0').output)
    // the category: 100 s, 256 MiB, 64 MiB of output; the worker caps time and output lower
    assert.equal(job.timeoutMs, 30_000)
    assert.equal(job.maxMemoryBytes, 256 * MiB)
    assert.equal(job.maxOutputBytes, 1 * MiB)
    assert.equal(job.collectBytes, 1 * MiB)
    assert.equal(job.removeCollected, true)
    assert.equal(done.state, 'computed')
    assert.equal(done.digest, resultDigestOfTree(TREE).digest)
    assert.equal(done.resultsCid, 'bafyresult1')
    assert.deepEqual(h.added, [packTree(TREE)])
    assert.deepEqual(h.saved, [done])
    assert.deepEqual(h.failed, [])
  })

  it('takes a sweep task\'s own arguments over the request\'s', async () => {
    const h = await harness()
    await h.slots.run(task(0, { params: JSON.stringify({ iexec_p2p_task_args: ['--only x', '--only y'] }) }))
    assert.deepEqual(h.jobs[0].args, ['--only', 'x'])
  })

  it('digests an output left on disk and adds nothing to the content store then', async () => {
    const h = await harness({ onRun: async (job) => { await mkdir(job.outputDir, { recursive: true }); await writeFile(join(job.outputDir, 'result.txt'), 'hello') } })
    h.result.value = {}
    const done = await h.slots.run(task(0))
    assert.equal(done.state, 'computed')
    assert.equal(done.resultsCid, undefined)
    assert.deepEqual(h.added, [])
    assert.match(done.digest ?? '', /^0x[0-9a-f]{64}$/)
  })

  it('encrypts the result archive to the requester\'s key when the task has one', async () => {
    const h = await harness()
    const requester = Wallet.createRandom()
    await h.slots.run(task(0, { resultEncryptionKey: requester.signingKey.compressedPublicKey }))
    assert.equal(h.added.length, 1)
    assert.notDeepEqual(h.added[0], packTree(TREE))
    const parts: Uint8Array[] = []
    for await (const c of decryptResult((async function * () { yield h.added[0] })(), requester.signingKey, { taskid: '0xtask0' })) parts.push(c)
    assert.deepEqual(new Uint8Array(Buffer.concat(parts)), packTree(TREE))
  })

  it('fails a run that does not complete with DUTY_EXECUTION_FAILED, its status, exit code and stderr tail', async () => {
    const h = await harness({ onRun: async (job) => { await mkdir(job.outputDir, { recursive: true }); await writeFile(join(job.outputDir, 'stderr.txt'), 'x'.repeat(10_000) + 'the end') } })
    h.result.value = { status: 'APP_ERROR', exitCode: 3, message: 'exit 3' }
    const done = await h.slots.run(task(0))
    assert.equal(done.state, 'failed')
    assert.deepEqual(h.saved, [])
    assert.equal(h.failed.length, 1)
    const err = h.failed[0].err
    assert.ok(err instanceof DutyError && err.code === 'DUTY_EXECUTION_FAILED')
    const d = err.details as { status: string, exitCode: number, stderrTail: Uint8Array, stderrBytes: number }
    assert.equal(d.status, 'APP_ERROR')
    assert.equal(d.exitCode, 3)
    assert.equal(d.stderrBytes, 10_007)
    assert.equal(d.stderrTail.byteLength, 4096, 'only the tail is kept')
    assert.ok(Buffer.from(d.stderrTail).toString().endsWith('the end'))
  })

  it('fails a task whose preparation is refused, without running it', async () => {
    const h = await harness()
    h.prepare.fails = new DutyError('DUTY_BAD_APP', 'the fetched app does not hash to its registered checksum')
    const done = await h.slots.run(task(0))
    assert.equal(done.state, 'failed')
    assert.equal(h.jobs.length, 0)
    assert.ok(isIexecError(h.failed[0].err) && h.failed[0].err.code === 'DUTY_BAD_APP')
  })

  it('starts a task restarted mid-run from an empty folder', async () => {
    const h = await harness({ onRun: async (job) => { assert.deepEqual(await readdir(join(job.outputDir, '..')), []) } })
    const { root } = taskDirs(h.workDir, '0xtask0')
    await mkdir(join(root, 'out'), { recursive: true })
    await writeFile(join(root, 'out', 'stale.txt'), 'from the last run')
    const done = await h.slots.run(task(0))
    assert.equal(done.state, 'computed', String(h.failed[0]?.err))
  })

  it('runs at most maxConcurrentTasks at once; the others wait their turn, first come first served', async () => {
    const h = await harness({ maxConcurrentTasks: 2, hold: true })
    const runs = [0, 1, 2, 3].map(async (n) => await h.slots.run(task(n)))
    await until(() => h.pending.length === 2)
    assert.equal(h.slots.busy(), 2)
    // both took a slot at once: which reaches the executor first is a race of their file-system steps
    assert.deepEqual(h.jobs.map((j) => j.taskId).sort(), ['0xtask0', '0xtask1'])
    h.pending[1].finish()
    await until(() => h.pending.length === 3)
    assert.equal(h.jobs[2].taskId, '0xtask2', 'the first waiting task takes the freed slot')
    assert.equal(h.slots.busy(), 2)
    h.pending[0].finish()
    await until(() => h.pending.length === 4)
    assert.equal(h.jobs[3].taskId, '0xtask3')
    h.pending[2].finish()
    h.pending[3].finish()
    const done = await Promise.all(runs)
    assert.deepEqual(done.map((r) => r.state), ['computed', 'computed', 'computed', 'computed'])
    assert.equal(h.slots.busy(), 0)
  })

  it('lets an abort through: a stopped worker does not record the task failed', async () => {
    const h = await harness({ onRun: async () => { h.abort.abort(); throw new Error('aborted') } })
    await assert.rejects(h.slots.run(task(0)), /aborted/)
    assert.deepEqual(h.failed, [])
    assert.equal(h.slots.busy(), 0, 'the slot is given back')
  })
})
