import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildCApps, type CApp } from '../../../examples/build-c-apps.js'
import { REPO_ROOT } from '../../../examples/build-apps.js'
import { isIexecError } from '../../../node/common/errors.js'
import { computeResultDigest } from '../../../node/storage/digest.js'
import { WasiExecutor } from '../../../node/worker/wasi-executor.js'
import type { ExecJob } from '../../../node/worker/executor.js'
import { inspectMemories } from '../../../node/worker/wasm-inspect.js'
import { waitFor } from '../../helpers/wait.js'

const MiB = 1024 * 1024

// A killed process whose new parent has not reaped it yet is a zombie: dead.
function alive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

// The second toolchain: C built with Debian's clang and wasi-libc (no memory
// maximum declared), run unchanged by the executor, and the probes that must
// be stopped at their bounds whatever they do (a blocking sleep included).
describe('worker/wasi-executor with clang-built modules', function () {
  this.timeout(120_000)
  let root: string
  let apps: Record<CApp, string>
  let executor: WasiExecutor
  let n = 0

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-exec-c-test-'))
    apps = await buildCApps(join(root, 'apps'))
    await mkdir(join(root, 'in'))
    await writeFile(join(root, 'in', 'data.txt'), 'one\ntwo\nthree\n')
    await writeFile(join(root, 'in', 'a.txt'), 'x\n')
  })
  after(async () => { await rm(root, { recursive: true, force: true }) })
  beforeEach(() => { executor = new WasiExecutor() })
  afterEach(async () => { await executor.close() })

  function job (app: CApp, over: Partial<ExecJob> = {}): ExecJob {
    return {
      taskId: '0x' + 'cd'.repeat(32),
      module: apps[app],
      appName: app,
      args: [],
      inputDir: join(root, 'in'),
      outputDir: join(root, `out-${++n}`),
      datasetFilename: 'data.txt',
      inputFiles: ['a.txt'],
      timeoutMs: 20_000,
      maxMemoryBytes: 64 * MiB,
      maxOutputBytes: MiB,
      ...over
    }
  }

  it('the modules declare no memory maximum', async () => {
    for (const path of Object.values(apps)) {
      const info = inspectMemories(await readFile(path))
      assert.equal(info.defined.length, 1)
      assert.equal(info.defined[0].maxPages, undefined, path)
    }
  })

  it('linecount gets the right result, named by its computed.json', async () => {
    const j = job('linecount', { args: ['--mode', 'fast'] })
    const r = await executor.run(j)
    assert.equal(r.status, 'COMPLETED', r.message)
    assert.equal(r.exitCode, 0)
    const expected = 'args --mode fast\ndataset lines=3 bytes=14\na.txt lines=1 bytes=2\n'
    assert.equal(await readFile(join(j.outputDir, 'result.txt'), 'utf8'), expected)
    assert.equal(await readFile(r.stdoutPath, 'utf8'), 'counted 1 input file(s)\n')
    const d = await computeResultDigest(j.outputDir)
    assert.equal(d.mode, 'file')
    assert.equal(d.digest, '0x' + createHash('sha256').update(expected).digest('hex'))
  })

  it('a sleep in poll_oneoff is killed at the time bound, and the executor goes on serving', async () => {
    const timeoutMs = 1000
    const r = await executor.run(job('sleep', { args: ['30'], timeoutMs }))
    assert.equal(r.status, 'TIMEOUT', r.message)
    assert.ok(r.durationMs >= timeoutMs - 5 && r.durationMs < timeoutMs + 5000, `stopped after ${r.durationMs} ms`)
    assert.equal(executor.runnerCount, 0, 'the sleeping runner was killed')
    const short = await executor.run(job('sleep', { args: ['0'] }))
    assert.equal(short.status, 'COMPLETED', short.message)
    assert.equal(await readFile(short.stdoutPath, 'utf8'), 'woke\n')
  })

  it('a memory hog ends MEMORY_EXCEEDED at the bound set by the executor', async () => {
    const r = await executor.run(job('hog', { maxMemoryBytes: 32 * MiB }))
    assert.equal(r.status, 'MEMORY_EXCEEDED', r.message)
    const said = /out of memory after (\d+) MiB/.exec(await readFile(r.stderrPath, 'utf8'))
    assert.ok(said !== null, 'the app saw malloc fail')
    assert.ok(Number(said[1]) >= 24 && Number(said[1]) < 32, `got ${said[1]} MiB under a 32 MiB bound`)
  })

  it('an app creating files without end is stopped at the bound on files', async () => {
    const j = job('manyfiles', { maxOutputFiles: 50 })
    const r = await executor.run(j)
    assert.equal(r.status, 'OUTPUT_TOO_LARGE', r.message)
    assert.match(await readFile(r.stderrPath, 'utf8'), /refused after 50 files/)
    // the 50 files, stdout.txt and stderr.txt
    assert.equal((await readdir(j.outputDir)).length, 52)
  })

  it('close() ends a run blocked in a sleep at once and kills its runner', async () => {
    const running = executor.run(job('sleep', { args: ['600'], timeoutMs: 600_000 }))
    await waitFor(() => executor.activeRuns === 1, 30_000, 'the run to start')
    const [pid] = executor.runnerPids
    const t0 = performance.now()
    await executor.close()
    await assert.rejects(running, (err: unknown) => isIexecError(err, 'WORKER_EXECUTOR_CLOSED'))
    assert.ok(performance.now() - t0 < 10_000)
    assert.equal(alive(pid), false, 'the runner is gone')
  })

  it('a runner dies with its node even when the node is killed with SIGKILL', async () => {
    // a node of its own: an executor running the sleep, which prints its runner's pid
    const script = join(root, 'host.mts')
    await writeFile(script, `
      import { WasiExecutor } from ${JSON.stringify(join(REPO_ROOT, 'node', 'worker', 'wasi-executor.ts'))}
      const ex = new WasiExecutor()
      void ex.run(${JSON.stringify({ ...job('sleep', { args: ['600'], timeoutMs: 600_000 }) })})
      const t = setInterval(() => { if (ex.activeRuns === 1) { clearInterval(t); process.stdout.write(ex.runnerPids.join(',') + '\\n') } }, 20)
    `)
    const host = spawn(process.execPath, ['--import', 'tsx', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      let out = ''
      host.stdout.on('data', (b: Buffer) => { out += b.toString() })
      await waitFor(() => out.includes('\n'), 60_000, 'the host to report its runner')
      const pid = Number(out.trim())
      assert.ok(pid > 0 && alive(pid), 'the runner runs')
      host.kill('SIGKILL')
      await waitFor(() => !alive(pid), 10_000, 'the orphaned runner to die')
    } finally {
      host.kill('SIGKILL')
    }
  })
})
