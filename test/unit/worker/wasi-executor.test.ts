import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { appWasmPath } from '../../../examples/build-apps.js'
import { computeResultDigest, resultDigestOfTree } from '../../../node/storage/digest.js'
import { packFolder, packTree } from '../../../node/storage/archive.js'
import { isIexecError } from '../../../node/common/errors.js'
import { WasiExecutor } from '../../../node/worker/wasi-executor.js'
import type { ExecJob } from '../../../node/worker/executor.js'
import { buildModule } from './wasm-builder.js'

const MiB = 1024 * 1024
const DATASET = 'the quick brown fox\njumps over\n\nthe lazy dog\n'
const INPUT_A = 'one two three'
const INPUT_B = 'a\nb\nc\n'

describe('worker/wasi-executor', function () {
  let root: string
  let inputDir: string
  let executor: WasiExecutor
  let outCount = 0

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-exec-test-'))
    inputDir = join(root, 'in')
    await mkdir(inputDir)
    await writeFile(join(inputDir, 'dataset.txt'), DATASET)
    await writeFile(join(inputDir, 'a.txt'), INPUT_A)
    await writeFile(join(inputDir, 'b.txt'), INPUT_B)
    executor = new WasiExecutor()
  })

  afterEach(async () => {
    await executor.close()
    await rm(root, { recursive: true, force: true })
  })

  function job (app: string, over: Partial<ExecJob> = {}): ExecJob {
    return {
      taskId: '0x' + 'ab'.repeat(32),
      module: appWasmPath(app),
      appName: app,
      args: [],
      inputDir,
      outputDir: join(root, `out-${++outCount}`),
      datasetFilename: 'dataset.txt',
      inputFiles: ['a.txt', 'b.txt'],
      timeoutMs: 10_000,
      maxMemoryBytes: 128 * MiB,
      maxOutputBytes: 4 * MiB,
      ...over
    }
  }

  async function expectCode (p: Promise<unknown>, code: string): Promise<void> {
    await assert.rejects(p, (err: unknown) => isIexecError(err, code))
  }

  it('wordcount counts the dataset and each input file', async () => {
    const j = job('wordcount')
    const r = await executor.run(j)
    assert.equal(r.status, 'COMPLETED', r.message)
    assert.equal(r.exitCode, 0)
    const expected = 'dataset.txt lines=4 words=9 bytes=45\n' +
      'a.txt lines=0 words=3 bytes=13\n' +
      'b.txt lines=3 words=3 bytes=6\n'
    assert.equal(await readFile(join(j.outputDir, 'result.txt'), 'utf8'), expected)
    assert.equal(await readFile(r.stdoutPath, 'utf8'), expected)
    assert.equal(r.stdoutPath, join(j.outputDir, 'stdout.txt'))
    assert.equal(await readFile(r.stderrPath, 'utf8'), '')
    const computed = JSON.parse(await readFile(join(j.outputDir, 'computed.json'), 'utf8')) as Record<string, string>
    assert.equal(computed['deterministic-output-path'], '/iexec_out/result.txt')
  })

  it('primes gives the right primes for small sizes', async () => {
    const j = job('primes', { args: ['100'] })
    const r = await executor.run(j)
    assert.equal(r.status, 'COMPLETED', r.message)
    assert.equal(await readFile(r.stdoutPath, 'utf8'), 'count=25 last=97\n')
    const listed = (await readFile(join(j.outputDir, 'primes.txt'), 'utf8')).trim().split('\n').map(Number)
    assert.deepEqual(listed, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97])
    const r2 = await executor.run(job('primes', { args: ['1000000'] }))
    assert.equal(r2.status, 'COMPLETED', r2.message)
    assert.equal(await readFile(r2.stdoutPath, 'utf8'), 'count=78498 last=999983\n')
  })

  it('mandelbrot renders the right PGM for a small tile, and its digest is the image', async () => {
    const [w, h, iter] = [24, 16, 40]
    // The same arithmetic in JS (IEEE-754 doubles both sides).
    const pixels = Buffer.alloc(w * h)
    let inside = 0
    for (let y = 0; y < h; y++) {
      const ci = -1.5 + 3.0 * y / h
      for (let x = 0; x < w; x++) {
        const cr = -2.0 + 3.0 * x / w
        let zr = 0
        let zi = 0
        let n = 0
        while (n < iter && zr * zr + zi * zi <= 4.0) {
          const t = zr * zr - zi * zi + cr
          zi = 2.0 * zr * zi + ci
          zr = t
          n++
        }
        if (n === iter) inside++
        pixels[y * w + x] = n === iter ? 0 : 255 - Math.floor(n * 255 / iter)
      }
    }
    const expected = Buffer.concat([Buffer.from(`P5\n${w} ${h}\n255\n`), pixels])
    assert.ok(inside > 0 && inside < w * h, 'the tile crosses the set border')
    const j = job('mandelbrot', { args: [String(w), String(h), String(iter)] })
    const r = await executor.run(j)
    assert.equal(r.status, 'COMPLETED', r.message)
    assert.equal(await readFile(r.stdoutPath, 'utf8'), `mandelbrot ${w}x${h} iter=${iter} inside=${inside}\n`)
    assert.deepEqual(await readFile(join(j.outputDir, 'mandelbrot.pgm')), expected)
    const d = await computeResultDigest(j.outputDir)
    assert.equal(d.path, 'mandelbrot.pgm')
    assert.equal(d.digest, '0x' + createHash('sha256').update(expected).digest('hex'))
  })

  it('primes refuses a size out of range with its own exit code', async () => {
    const r = await executor.run(job('primes', { args: ['1'] }))
    assert.equal(r.status, 'APP_ERROR')
    assert.equal(r.exitCode, 2)
    assert.match(await readFile(r.stderrPath, 'utf8'), /N must be between/)
  })

  it('fail ends with APP_ERROR, exit code 3 and its stderr captured', async () => {
    const r = await executor.run(job('fail'))
    assert.equal(r.status, 'APP_ERROR')
    assert.equal(r.exitCode, 3)
    assert.equal(await readFile(r.stderrPath, 'utf8'), 'fail: this app always fails\n')
    assert.equal(await readFile(r.stdoutPath, 'utf8'), '')
  })

  it('escape cannot read outside IEXEC_IN nor write into it, and the executor goes on serving', async () => {
    const before = await readdir(inputDir)
    const r = await executor.run(job('escape'))
    assert.equal(r.status, 'SANDBOX_VIOLATION')
    assert.match(r.message ?? '', /etc\/passwd/)
    const lines = (await readFile(r.stdoutPath, 'utf8')).trim().split('\n')
    assert.equal(lines.length, 8)
    assert.ok(lines.some((l) => l.startsWith('symlink /iexec_out/passwd')), 'the probe tried a symlink')
    for (const line of lines) assert.match(line, /: denied errno=\d+$/, line)
    // The probe exits 0 only when every attempt was refused.
    assert.equal(r.exitCode, 0)
    assert.deepEqual(await readdir(inputDir), before)
    assert.equal(await readFile(join(inputDir, 'dataset.txt'), 'utf8'), DATASET)
    const threads = executor.runnerCount
    const next = await executor.run(job('wordcount'))
    assert.equal(next.status, 'COMPLETED', next.message)
    assert.equal(executor.runnerCount, threads, 'the same runner served the next job')
  })

  it('refuses proc_raise, which node:wasi would deliver to the host process', async () => {
    // _start: proc_exit(proc_raise(SIGCHLD)), so the exit code is the errno the app got.
    const module = buildModule({
      memory: { min: 1, max: 1 },
      importFunctions: [
        { module: 'wasi_snapshot_preview1', name: 'proc_raise', params: 1, results: 1 },
        { module: 'wasi_snapshot_preview1', name: 'proc_exit', params: 1 }
      ],
      startCode: [0x41, 16, 0x10, 0, 0x10, 1]
    })
    const r = await executor.run(job('raise', { module }))
    assert.equal(r.status, 'SANDBOX_VIOLATION')
    assert.match(r.message ?? '', /proc_raise\(16\)/)
    assert.equal(r.exitCode, 52, 'the app got ENOSYS')
  })

  it('an app that closes its stdin, stdout and stderr leaves the host descriptors to the executor: later runs capture as before', async () => {
    // _start: fd_close(0), fd_close(1), fd_close(2); each errno dropped
    const module = buildModule({
      memory: { min: 1, max: 1 },
      importFunctions: [{ module: 'wasi_snapshot_preview1', name: 'fd_close', params: 1, results: 1 }],
      startCode: [0x41, 0, 0x10, 0, 0x1a, 0x41, 1, 0x10, 0, 0x1a, 0x41, 2, 0x10, 0, 0x1a]
    })
    for (let i = 0; i < 3; i++) assert.equal((await executor.run(job('closer', { module }))).status, 'COMPLETED')
    for (let i = 0; i < 3; i++) {
      const r = await executor.run(job('wordcount'))
      assert.equal(r.status, 'COMPLETED', r.message)
      assert.match(await readFile(r.stdoutPath, 'utf8'), /^dataset\.txt lines=4 words=9 bytes=45\n/)
    }
  })

  it('reads the output back within collectBytes: the same files as on disk, their digest and archive the disk\'s', async () => {
    const j = job('wordcount', { collectBytes: MiB })
    const r = await executor.run(j)
    assert.equal(r.status, 'COMPLETED', r.message)
    const output = r.output ?? []
    assert.deepEqual(output.map((e) => e.path), ['computed.json', 'result.txt', 'stderr.txt', 'stdout.txt'])
    for (const e of output) assert.deepEqual(Buffer.from(e.content ?? []), await readFile(join(j.outputDir, e.path)), e.path)
    assert.deepEqual(resultDigestOfTree(output), await computeResultDigest(j.outputDir))
    const packed: Uint8Array[] = []
    for await (const c of packFolder(j.outputDir)) packed.push(c)
    assert.deepEqual(Buffer.from(packTree(output)), Buffer.concat(packed))
    const tight = await executor.run(job('wordcount', { collectBytes: 10 }))
    assert.equal(tight.status, 'COMPLETED', tight.message)
    assert.equal(tight.output, undefined, 'more than collectBytes: not read back')
    assert.equal((await executor.run(job('wordcount'))).output, undefined, 'not asked: not read back')
    const failed = await executor.run(job('fail', { collectBytes: MiB, removeCollected: true }))
    assert.equal(failed.output, undefined, 'a failed run gives no output to commit')
    assert.match(await readFile(failed.stderrPath, 'utf8'), /./, 'and keeps its output, stderr included, on disk')
    const taken = job('wordcount', { collectBytes: MiB, removeCollected: true })
    assert.equal((await executor.run(taken)).output?.length, 4)
    assert.equal(await stat(taken.outputDir).then(() => 'kept', () => 'removed'), 'removed', 'a completed run read back is removed')
  })

  it('refuses an input that holds a link (node:wasi would follow it out of the sandbox)', async () => {
    const secret = join(root, 'secret.txt')
    await writeFile(secret, 'outside the sandbox\n')
    await mkdir(join(inputDir, 'sub'))
    await symlink('../../secret.txt', join(inputDir, 'sub', 'link.txt'))
    await expectCode(executor.run(job('wordcount', { datasetFilename: 'sub/link.txt', inputFiles: [] })), 'WORKER_INVALID_JOB')
  })

  it('spin is stopped by the time bound and the executor goes on serving', async () => {
    const timeoutMs = 500
    const r = await executor.run(job('spin', { timeoutMs }))
    assert.equal(r.status, 'TIMEOUT')
    assert.equal(r.exitCode, null)
    assert.ok(r.durationMs >= timeoutMs - 5, `stopped after ${r.durationMs} ms`)
    assert.ok(r.durationMs < timeoutMs + 2000, `stopped after ${r.durationMs} ms`)
    assert.equal(executor.runnerCount, 0, 'the spinning runner is gone')
    const next = await executor.run(job('wordcount'))
    assert.equal(next.status, 'COMPLETED', next.message)
  })

  it('grow ends with MEMORY_EXCEEDED at the host-provided bound', async () => {
    const r = await executor.run(job('grow', { maxMemoryBytes: 8 * MiB }))
    assert.equal(r.status, 'MEMORY_EXCEEDED', r.message)
    assert.match(r.message ?? '', /8388608-byte bound/)
    const next = await executor.run(job('fail'))
    assert.equal(next.status, 'APP_ERROR', 'a small app failing is not taken for a memory error')
  })

  it('runs a module whose declared maximum is above the bound, under the bound', async () => {
    // wordcount declares 1024 pages (64 MiB): it runs with 16 MiB, enough for it.
    const r = await executor.run(job('wordcount', { maxMemoryBytes: 16 * MiB }))
    assert.equal(r.status, 'COMPLETED', r.message)
  })

  it('runs a module without a memory maximum (what clang, Rust and TinyGo build by default)', async () => {
    const r = await executor.run(job('x', { module: buildModule({ memory: { min: 1 } }) }))
    assert.equal(r.status, 'COMPLETED', r.message)
    const big = await executor.run(job('x', { module: buildModule({ memory: { min: 300 } }), maxMemoryBytes: 16 * MiB }))
    assert.equal(big.status, 'MEMORY_EXCEEDED', 'a minimum above the bound cannot start')
  })

  it('refuses modules with foreign imports, without _start, without one memory, or not wasm', async () => {
    const cases: Uint8Array[] = [
      buildModule({ memory: { min: 1, max: 2 }, importFunctions: [{ module: 'env', name: 'connect' }] }),
      buildModule({ memory: { min: 1, max: 2 }, importFunctions: [{ module: 'wasi_snapshot_preview1', name: 'not_a_wasi_call' }] }),
      buildModule({ memory: { min: 1, max: 2 }, start: false }),
      buildModule({ start: true }),
      Buffer.from('#!/bin/sh\necho hi\n'),
      Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00])
    ]
    for (const bytes of cases) {
      const r = await executor.run(job('x', { module: bytes }))
      assert.equal(r.status, 'INVALID_MODULE', r.message)
    }
    const ok = await executor.run(job('x', { module: buildModule({ memory: { min: 1, max: 2 } }) }))
    assert.equal(ok.status, 'COMPLETED', ok.message)
  })

  it('ends with OUTPUT_TOO_LARGE when files exceed the bound, without writing past it', async () => {
    const j = job('bigout', { args: ['file', String(2 * MiB)], maxOutputBytes: MiB })
    const r = await executor.run(j)
    assert.equal(r.status, 'OUTPUT_TOO_LARGE')
    let total = 0
    for (const f of await readdir(j.outputDir)) total += (await stat(join(j.outputDir, f))).size
    assert.ok(total <= MiB, `${total} bytes reached the disk`)
  })

  it('ends with OUTPUT_TOO_LARGE when stdout exceeds the bound', async () => {
    const r = await executor.run(job('bigout', { args: ['stdout', String(3 * MiB)], maxOutputBytes: MiB }))
    assert.equal(r.status, 'OUTPUT_TOO_LARGE')
    assert.ok((await stat(r.stdoutPath)).size <= MiB)
    const within = await executor.run(job('bigout', { args: ['stdout', String(MiB / 2)], maxOutputBytes: MiB }))
    assert.equal(within.status, 'COMPLETED', within.message)
    assert.equal((await stat(within.stdoutPath)).size, MiB / 2)
  })

  it('gives the app iExec environment variables and its arguments', async () => {
    const r = await executor.run(job('env', { args: ['alpha', 'beta gamma'] }))
    assert.equal(r.status, 'COMPLETED', r.message)
    const lines = (await readFile(r.stdoutPath, 'utf8')).trim().split('\n')
    const env = Object.fromEntries(lines.filter((l) => l.startsWith('env ')).map((l) => l.slice(4).split('=') as [string, string]))
    assert.deepEqual(env, {
      IEXEC_TASK_ID: '0x' + 'ab'.repeat(32),
      IEXEC_IN: '/iexec_in',
      IEXEC_OUT: '/iexec_out',
      IEXEC_DATASET_FILENAME: 'dataset.txt',
      IEXEC_INPUT_FILES_FOLDER: '/iexec_in',
      IEXEC_INPUT_FILES_NUMBER: '2',
      IEXEC_INPUT_FILE_NAME_1: 'a.txt',
      IEXEC_INPUT_FILE_NAME_2: 'b.txt'
    }, 'exactly these variables, nothing from the host')
    assert.deepEqual(lines.filter((l) => l.startsWith('arg')), ['arg0=env', 'arg1=alpha', 'arg2=beta gamma'])
  })

  it('two runs of the same task give byte-identical outputs and the same digest; another task id changes randomness', async () => {
    const a = job('env', { args: ['x'] })
    const b = job('env', { args: ['x'] })
    const c = job('env', { args: ['x'], taskId: '0x' + 'cd'.repeat(32) })
    for (const j of [a, b, c]) assert.equal((await executor.run(j)).status, 'COMPLETED')
    const [da, db, dc] = await Promise.all([a, b, c].map(async (j) => await computeResultDigest(j.outputDir)))
    assert.equal(da.mode, 'tree')
    assert.equal(da.digest, db.digest)
    assert.notEqual(da.digest, dc.digest)
    const out = async (j: ExecJob): Promise<string> => await readFile(join(j.outputDir, 'stdout.txt'), 'utf8')
    const random = (s: string): string | undefined => s.split('\n').find((l) => l.startsWith('random='))
    assert.notEqual(random(await out(a)), random(await out(c)))
    assert.match(await out(a), /^now=1704067200\d{3}$/m, 'the virtual clock starts at 2024-01-01')
  })

  it('two wordcount runs on separate executors give the same digest', async () => {
    const other = new WasiExecutor({ reuseRunners: false })
    try {
      const a = job('wordcount')
      const b = job('wordcount')
      assert.equal((await executor.run(a)).status, 'COMPLETED')
      assert.equal((await other.run(b)).status, 'COMPLETED')
      const [da, db] = [await computeResultDigest(a.outputDir), await computeResultDigest(b.outputDir)]
      assert.equal(da.mode, 'file')
      assert.equal(da.path, 'result.txt')
      assert.equal(da.digest, db.digest)
      assert.equal(other.runnerCount, 0, 'no runner kept without reuse')
    } finally {
      await other.close()
    }
  })

  it('rejects bad jobs with WORKER_INVALID_JOB', async () => {
    const busy = join(root, 'busy')
    await mkdir(busy)
    await writeFile(join(busy, 'x'), 'x')
    await expectCode(executor.run(job('wordcount', { outputDir: busy })), 'WORKER_INVALID_JOB')
    await expectCode(executor.run(job('wordcount', { datasetFilename: '../secret' })), 'WORKER_INVALID_JOB')
    await expectCode(executor.run(job('wordcount', { inputFiles: ['/etc/passwd'] })), 'WORKER_INVALID_JOB')
    await expectCode(executor.run(job('wordcount', { timeoutMs: 0 })), 'WORKER_INVALID_JOB')
    await expectCode(executor.run(job('wordcount', { maxMemoryBytes: -1 })), 'WORKER_INVALID_JOB')
    await expectCode(executor.run(job('wordcount', { inputDir: join(root, 'nope') })), 'WORKER_INVALID_JOB')
    await expectCode(executor.run(job('wordcount', { module: join(root, 'missing.wasm') })), 'WORKER_INVALID_JOB')
    await expectCode(executor.run(job('wordcount', { collectBytes: -1 })), 'WORKER_INVALID_JOB')
    assert.equal((await executor.run(job('wordcount'))).status, 'COMPLETED', 'the executor goes on serving')
  })

  it('an abort before the app starts rejects with WORKER_ABORTED', async () => {
    const ac = new AbortController()
    const pending = executor.run(job('wordcount'), ac.signal)
    ac.abort()
    await expectCode(pending, 'WORKER_ABORTED')
    await expectCode(executor.run(job('wordcount'), ac.signal), 'WORKER_ABORTED')
  })

  it('an abort stops a running app with WORKER_ABORTED', async () => {
    const ac = new AbortController()
    const running = executor.run(job('spin', { timeoutMs: 30_000 }), ac.signal)
    // Wait (bounded) until the app is in its runner, then abort.
    const deadline = Date.now() + 10_000
    while (executor.activeRuns === 0) {
      assert.ok(Date.now() < deadline, 'the job never started')
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    const t0 = performance.now()
    ac.abort()
    await expectCode(running, 'WORKER_ABORTED')
    assert.ok(performance.now() - t0 < 5000)
    assert.equal(executor.runnerCount, 0)
  })

  it('warm starts idle runners ahead of the first runs, which use them', async () => {
    const warmed = new WasiExecutor({ maxIdleRunners: 3 })
    try {
      warmed.warm(5)
      assert.equal(warmed.runnerCount, 3, 'at most maxIdleRunners')
      const runs = await Promise.all([0, 1, 2].map(async () => await warmed.run(job('wordcount'))))
      for (const r of runs) assert.equal(r.status, 'COMPLETED', r.message)
      assert.equal(warmed.runnerCount, 3, 'three runs at once took the warmed runners, no new one')
    } finally {
      await warmed.close()
    }
    assert.equal(warmed.runnerCount, 0)
    const none = new WasiExecutor({ reuseRunners: false })
    none.warm(2)
    assert.equal(none.runnerCount, 0, 'nothing to warm when runners are not reused')
    await none.close()
  })

  it('a closed executor refuses jobs', async () => {
    await executor.close()
    await expectCode(executor.run(job('wordcount')), 'WORKER_EXECUTOR_CLOSED')
  })
})
