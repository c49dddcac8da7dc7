// The native executor's start: a sandboxed run of a static binary that does
// nothing (busybox true), against a plain process start of /bin/true; and an
// OCI image's first run (verify + unpack) against its later runs (from the
// cache: no second unpack). Part of `npm run bench -- executor`.
import { spawn } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NativeExecutor } from '../../node/worker/native-executor.js'
import type { ExecJob } from '../../node/worker/executor.js'
import { OciImages } from '../../node/worker/oci-image.js'
import { buildBinaryImage } from '../unit/worker/oci-builder.js'
import { median, percentile, printTable, writeResults } from './harness.js'

const RUNS = 20
const WARMUP = 2

async function plainStart (): Promise<number> {
  const t0 = performance.now()
  await new Promise<void>((resolve, reject) => {
    const p = spawn('/bin/true', [], { stdio: 'ignore' })
    p.on('error', reject)
    p.on('close', () => { resolve() })
  })
  return performance.now() - t0
}

export interface NativeBenchFigures {
  plainSpawnMs: number
  sandboxStartMs: number
  sandboxOverPlainMs: number
  imageFirstRunMs: number
  imageNextRunMs: number
  imageUnpacks: number
  limits: ReturnType<NativeExecutor['status']>
}

export async function runNative (): Promise<NativeBenchFigures | undefined> {
  const root = await mkdtemp(join(tmpdir(), 'iexec-native-bench-'))
  const stage = await mkdtemp(join(tmpdir(), 'iexec-native-bench-stage-'))
  await chmod(stage, 0o711)
  const images = new OciImages({ cacheDir: join(stage, 'images') })
  const executor = new NativeExecutor({ stageDir: stage, images: images.preparer })
  try {
    if (!executor.available) {
      process.stdout.write(`native executor not measured: ${executor.status().reason ?? ''}\n`)
      return undefined
    }
    await mkdir(join(root, 'in'))
    await writeFile(join(root, 'in', 'data.txt'), 'one two three\n')
    buildBinaryImage(join(root, 'image'), '/bin/busybox', { name: 'busybox', entrypoint: ['/bin/busybox', 'true'] })
    let n = 0
    const timed = async (module: string, args: string[], appName?: string): Promise<number> => {
      const job: ExecJob = {
        taskId: '0x' + (++n).toString(16).padStart(64, '0'), module, args, inputDir: join(root, 'in'), outputDir: join(root, `out-${n}`),
        inputFiles: [], timeoutMs: 30_000, maxMemoryBytes: 256 * 1024 * 1024, maxOutputBytes: 1024 * 1024, ...(appName !== undefined ? { appName } : {})
      }
      const t0 = performance.now()
      const r = await executor.run(job)
      const ms = performance.now() - t0
      if (r.status !== 'COMPLETED') throw new Error(`native run ended ${r.status}: ${r.message ?? ''}`)
      await rm(job.outputDir, { recursive: true, force: true })
      return ms
    }
    const plain: number[] = []
    const sandbox: number[] = []
    for (let i = 0; i < WARMUP + RUNS; i++) {
      // interleaved, so that the machine's load weighs on both alike
      const p = await plainStart()
      const s = await timed('/bin/busybox', ['true'], 'busybox')
      if (i >= WARMUP) { plain.push(p); sandbox.push(s) }
    }
    const imageFirst = await timed(join(root, 'image'), [])
    const imageNext: number[] = []
    for (let i = 0; i < RUNS; i++) imageNext.push(await timed(join(root, 'image'), []))
    const rows = [
      { what: 'plain spawn of /bin/true', p50Ms: median(plain), p95Ms: percentile(plain, 95) },
      { what: 'native sandbox run (busybox true)', p50Ms: median(sandbox), p95Ms: percentile(sandbox, 95) },
      { what: 'OCI image, first run (verify + unpack)', p50Ms: imageFirst, p95Ms: imageFirst },
      { what: 'OCI image, later runs (cached)', p50Ms: median(imageNext), p95Ms: percentile(imageNext, 95) }
    ]
    printTable(`native executor (${RUNS} runs, ms, run() call to result; image unpacks: ${images.unpacks})`, rows)
    return {
      plainSpawnMs: median(plain),
      sandboxStartMs: median(sandbox),
      sandboxOverPlainMs: median(sandbox) - median(plain),
      imageFirstRunMs: imageFirst,
      imageNextRunMs: median(imageNext),
      imageUnpacks: images.unpacks,
      limits: executor.status()
    }
  } finally {
    await executor.close()
    await rm(root, { recursive: true, force: true })
    await rm(stage, { recursive: true, force: true })
  }
}

/** `npm run bench -- native-executor`: this suite alone (executor.bench.ts runs it too). */
export async function run (): Promise<void> {
  const figures = await runNative()
  if (figures !== undefined) await writeResults('native-executor', figures)
}
