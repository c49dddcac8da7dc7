// Executor start overhead per task: how long `run()` takes for an app that
// does nothing, with a fresh worker thread per task and with a reused thread.
// Measured through the TypeScript sources (as tests run them: the thread
// loads through tsx, which makes fresh threads slower) and, when `npm run
// build` has been run, through the compiled dist/ (as the node runs).
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { appWasmPath } from '../../examples/build-apps.js'
import * as source from '../../node/worker/index.js'
import { buildModule } from '../unit/worker/wasm-builder.js'
import { median, percentile, printTable, writeResults } from './harness.js'
import { runNative } from './native-executor.bench.js'

type WorkerModule = typeof source

const RUNS = 50
const WARMUP = 3

interface Row extends Record<string, string | number> {
  build: string
  app: string
  threads: string
  runs: number
  p50Ms: number
  p95Ms: number
  minMs: number
}

async function measure (mod: WorkerModule, build: string, app: string, module: Uint8Array, reuseThreads: boolean, root: string): Promise<Row> {
  const executor = new mod.WasiExecutor({ reuseRunners: reuseThreads })
  const inputDir = join(root, 'in')
  const times: number[] = []
  try {
    for (let i = 0; i < WARMUP + RUNS; i++) {
      const outputDir = join(root, `out-${build}-${app}-${String(reuseThreads)}-${i}`)
      const t0 = performance.now()
      const r = await executor.run({
        taskId: `0x${i.toString(16).padStart(64, '0')}`,
        module,
        appName: app,
        args: [],
        inputDir,
        outputDir,
        datasetFilename: 'data.txt',
        inputFiles: [],
        timeoutMs: 10_000,
        maxMemoryBytes: 64 * 1024 * 1024,
        maxOutputBytes: 1024 * 1024
      })
      const ms = performance.now() - t0
      if (r.status !== 'COMPLETED') throw new Error(`${app} ended ${r.status}: ${r.message ?? ''}`)
      if (i >= WARMUP) times.push(ms)
      await rm(outputDir, { recursive: true, force: true })
    }
  } finally {
    await executor.close()
  }
  return {
    build,
    app,
    threads: reuseThreads ? 'reused' : 'fresh',
    runs: times.length,
    p50Ms: median(times),
    p95Ms: percentile(times, 95),
    minMs: Math.min(...times)
  }
}

export async function run (): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'iexec-exec-bench-'))
  try {
    await mkdir(join(root, 'in'))
    await writeFile(join(root, 'in', 'data.txt'), 'one two three\nfour five\n')
    const apps: Array<[string, Uint8Array]> = [
      ['empty', buildModule({ memory: { min: 1, max: 1 } })],
      ['wordcount', await readFile(appWasmPath('wordcount'))]
    ]
    const builds: Array<[string, WorkerModule]> = [['source', source]]
    const dist = join(process.cwd(), 'dist', 'node', 'worker', 'index.js')
    if (existsSync(dist)) builds.push(['dist', await import(pathToFileURL(dist).href) as WorkerModule])
    else process.stdout.write('dist/node/worker not built: run `npm run build` to measure the compiled executor too\n')

    const rows: Row[] = []
    for (const [build, mod] of builds) {
      for (const [app, bytes] of apps) {
        for (const reuse of [false, true]) rows.push(await measure(mod, build, app, bytes, reuse, root))
      }
    }
    printTable(`executor start overhead per task (${RUNS} runs after ${WARMUP} warm-up, ms, run() call to result)`, rows)
    // The headline figure: the node's own configuration (compiled when
    // available, threads reused by default) running a module that does nothing.
    const pick = (build: string, threads: string): number | undefined =>
      rows.find((r) => r.build === build && r.app === 'empty' && r.threads === threads)?.p50Ms
    const headlineBuild = builds.some(([b]) => b === 'dist') ? 'dist' : 'source'
    const native = await runNative()
    await writeResults('executor', {
      executorStartMs: pick(headlineBuild, 'reused'),
      freshThreadStartMs: pick(headlineBuild, 'fresh'),
      build: headlineBuild,
      rows,
      ...(native !== undefined ? { native } : {})
    })
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}
