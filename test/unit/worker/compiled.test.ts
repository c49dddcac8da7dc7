import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { appWasmPath, REPO_ROOT } from '../../../examples/build-apps.js'

const run = promisify(execFile)

// The executor picks its runner entry by its own extension (.ts under
// tsx, .js compiled). The other tests cover the .ts path; this one compiles
// the worker module with tsc into a temp dir and runs it with plain node.
describe('worker/wasi-executor compiled to JavaScript', function () {
  this.timeout(180_000)
  let root: string
  beforeEach(async () => { root = await mkdtemp(join(tmpdir(), 'iexec-compiled-test-')) })
  afterEach(async () => { if (process.env.KEEP !== '1') await rm(root, { recursive: true, force: true }) })

  it('runs an app from the compiled .js with no tsx loaded', async () => {
    const out = join(root, 'build')
    await run(process.execPath, [
      join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
      '--outDir', out, '--rootDir', REPO_ROOT, '--target', 'ES2022', '--module', 'NodeNext',
      '--moduleResolution', 'NodeNext', '--strict', '--skipLibCheck', '--types', 'node',
      join(REPO_ROOT, 'node', 'worker', 'index.ts'), join(REPO_ROOT, 'node', 'worker', 'wasi-runner.ts')
    ], { cwd: REPO_ROOT })
    await writeFile(join(out, 'package.json'), '{"type":"module"}\n')
    // the compiled modules import their npm dependencies (ethers for the digest), as an install would have them
    await symlink(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'), 'dir')
    await mkdir(join(root, 'in'))
    await writeFile(join(root, 'in', 'd.txt'), 'a b\nc\n')
    const script = `
      import { WasiExecutor, computeResultDigest } from './node/worker/index.js'
      const ex = new WasiExecutor()
      const r = await ex.run({ taskId: '0x01', module: ${JSON.stringify(appWasmPath('wordcount'))}, args: [],
        inputDir: ${JSON.stringify(join(root, 'in'))}, outputDir: ${JSON.stringify(join(root, 'out'))},
        datasetFilename: 'd.txt', inputFiles: [], timeoutMs: 10000, maxMemoryBytes: 1 << 27, maxOutputBytes: 1 << 20 })
      const d = await computeResultDigest(${JSON.stringify(join(root, 'out'))})
      await ex.close()
      process.stdout.write(JSON.stringify({ status: r.status, digest: d.digest, tsx: process.execArgv.join(' ') }))
    `
    await writeFile(join(out, 'check.mjs'), script)
    const { stdout } = await run(process.execPath, [join(out, 'check.mjs')], { cwd: out, env: { ...process.env, NODE_OPTIONS: '' } })
      .catch((err: Error & { stderr?: string }) => { throw new Error(`${err.message}: ${err.stderr ?? ''}`) })
    const got = JSON.parse(stdout) as { status: string, digest: string, tsx: string }
    assert.equal(got.status, 'COMPLETED')
    assert.doesNotMatch(got.tsx, /tsx/)
    assert.equal(got.digest, '0x' + createHash('sha256').update('d.txt lines=2 words=3 bytes=6\n').digest('hex'))
  })
})
