// Containment of the native executor, with Debian's static busybox as the
// app (installed by .ci/run). Each test looks at what the sandbox let the app
// do, and at what is left on the host once the run ended.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { chmod, mkdtemp, mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isIexecError } from '../../../node/common/errors.js'
import { NativeExecutor } from '../../../node/worker/native-executor.js'
import type { ExecJob } from '../../../node/worker/executor.js'
import { buildSeccompFilter, DENIED_SYSCALLS_X86_64 } from '../../../node/worker/seccomp.js'

const BUSYBOX = '/bin/busybox'
const FIRST_UID = 300_000
const UIDS = 100

/**
 * Live host processes running as one of the test's sandbox uids. Zombies are
 * dead (bubblewrap's inner init can be left for the host's init to reap).
 */
function sandboxProcesses (): number[] {
  const found: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8')
      if (/^State:\s+Z/m.test(status)) continue
      const m = /^Uid:\s+(\d+)/m.exec(status)
      const uid = Number(m?.[1])
      if (uid >= FIRST_UID && uid < FIRST_UID + UIDS) found.push(Number(name))
    } catch {}
  }
  return found
}

describe('worker/native-executor', function () {
  this.timeout(60_000)
  let root: string
  let stage: string
  let inputDir: string
  let executor: NativeExecutor
  let n = 0

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-native-test-'))
    inputDir = join(root, 'in')
    await mkdir(inputDir)
    // private, as the node writes its inputs
    await writeFile(join(inputDir, 'data.txt'), 'secret input\n', { mode: 0o600 })
    // the stage must be reachable by the sandbox uids (mkdtemp makes private folders)
    stage = await mkdtemp(join(tmpdir(), 'iexec-native-stage-'))
    await chmod(stage, 0o711)
    executor = new NativeExecutor({ stageDir: stage, firstSandboxUid: FIRST_UID, sandboxUids: UIDS, maxProcesses: 32 })
  })

  afterEach(async () => {
    await executor.close()
    await rm(root, { recursive: true, force: true })
    await rm(stage, { recursive: true, force: true })
  })

  function job (script: string, over: Partial<ExecJob> = {}): ExecJob {
    return {
      taskId: '0x' + 'ab'.repeat(32),
      module: BUSYBOX,
      appName: 'busybox',
      args: ['sh', '-c', script],
      inputDir,
      outputDir: join(root, `out-${++n}`),
      datasetFilename: 'data.txt',
      inputFiles: [],
      timeoutMs: 20_000,
      maxMemoryBytes: 64 * 1024 * 1024,
      maxOutputBytes: 1024 * 1024,
      ...over
    }
  }

  async function out (j: ExecJob, file: string): Promise<string> {
    return await readFile(join(j.outputDir, file), 'utf8')
  }

  it('is available here, as an unprivileged uid with seccomp and the output cap', () => {
    const s = executor.status()
    assert.equal(s.available, true, s.reason)
    assert.equal(s.unprivilegedUid, true)
    assert.equal(s.seccomp, true)
  })

  it('runs a static binary with the IEXEC_ environment, reads /iexec_in and writes /iexec_out', async () => {
    const j = job('id -u > /iexec_out/uid; cat /iexec_in/$IEXEC_DATASET_FILENAME > /iexec_out/copy; env | sort > /iexec_out/env; echo hello', { collectBytes: 1 << 20 })
    const r = await executor.run(j)
    assert.equal(r.status, 'COMPLETED', r.message)
    assert.equal(r.exitCode, 0)
    assert.equal(await out(j, 'uid'), '1000\n')
    assert.equal(await out(j, 'copy'), 'secret input\n')
    assert.equal(await out(j, 'stdout.txt'), 'hello\n')
    const env = (await out(j, 'env')).trim().split('\n').map((l) => l.split('=')[0])
    // nothing of the node's environment: the IEXEC_ variables, PATH and what the shell sets itself
    assert.deepEqual(env.filter((k) => !k.startsWith('IEXEC_') && !['PATH', 'PWD', 'SHLVL'].includes(k)), [])
    assert.ok(env.includes('IEXEC_TASK_ID') && env.includes('IEXEC_DATASET_FILENAME') && env.includes('IEXEC_OUT'))
    const paths = (r.output ?? []).map((e) => e.path)
    assert.deepEqual(paths, ['copy', 'env', 'stderr.txt', 'stdout.txt', 'uid'])
  })

  it('reaches no network: only a loopback interface, and sockets are refused', async () => {
    const j = job('cat /proc/net/dev > /iexec_out/dev; if nc -w 2 1.1.1.1 53 </dev/null 2>/iexec_out/nc.err; then echo reachable; else echo unreachable; fi')
    const r = await executor.run(j)
    assert.equal(r.status, 'COMPLETED', r.message)
    assert.equal(await out(j, 'stdout.txt'), 'unreachable\n')
    const ifaces = (await out(j, 'dev')).split('\n').slice(2).filter((l) => l.trim() !== '').map((l) => l.split(':')[0].trim())
    assert.deepEqual(ifaces, ['lo'])
    assert.match(await out(j, 'nc.err'), /Operation not permitted/)
  })

  it('refuses writes outside /iexec_out and new namespaces', async () => {
    const script = [
      'for p in /x /iexec_in/new /iexec_in/data.txt /tmp/x /busybox /proc/sys/kernel/hostname; do',
      '  if echo hi > $p 2>/dev/null; then echo "wrote $p"; fi',
      'done',
      'if unshare -n true 2>/dev/null; then echo "unshared"; fi',
      'if unshare -U true 2>/dev/null; then echo "unshared user"; fi',
      'echo done'
    ].join('\n')
    const j = job(script)
    const r = await executor.run(j)
    assert.equal(r.status, 'COMPLETED', r.message)
    assert.equal(await out(j, 'stdout.txt'), 'done\n')
    assert.deepEqual(await readdir(inputDir), ['data.txt'])
    assert.equal(await readFile(join(inputDir, 'data.txt'), 'utf8'), 'secret input\n')
  })

  it("does not see the host's processes", async () => {
    const j = job('echo /proc/[0-9]*')
    const r = await executor.run(j)
    assert.equal(r.status, 'COMPLETED', r.message)
    const pids = (await out(j, 'stdout.txt')).trim().split(' ').map((p) => Number(p.slice('/proc/'.length)))
    // bubblewrap's init and the shell
    assert.ok(pids.length <= 3, `sees ${pids.length} processes`)
    assert.ok(pids.every((p) => p < 10))
  })

  it('stops a memory hog at its bound', async () => {
    const j = job('dd if=/dev/zero of=/dev/null bs=96M count=1', { maxMemoryBytes: 32 * 1024 * 1024 })
    const r = await executor.run(j)
    // the memory cgroup names it; without one, RLIMIT_AS makes the allocation fail
    const memCgroup = executor.status().cgroups.some((c) => c.limit === 'memory')
    assert.equal(r.status, memCgroup ? 'MEMORY_EXCEEDED' : 'APP_ERROR', r.message)
    assert.ok(r.durationMs < 15_000)
  })

  it('holds a fork bomb at its process bound and kills it at its time', async () => {
    const j = job('f() { f | f & }; f; i=0; while [ $i -lt 20 ]; do echo /proc/[0-9]* > /iexec_out/n; i=$((i+1)); done; while :; do f; done', { timeoutMs: 3000 })
    // counted from the host as well: on a loaded machine the bomb can starve
    // the app's own shell before it writes one sample
    let most = 0
    const sampler = setInterval(() => { most = Math.max(most, sandboxProcesses().length) }, 10)
    let r
    try {
      r = await executor.run(j)
    } finally {
      clearInterval(sampler)
    }
    // killed at its time, or ended earlier when its own shell could not fork any more
    assert.ok(r.status === 'TIMEOUT' || (r.status === 'APP_ERROR' && r.exitCode === 2), `${r.status} ${r.message ?? ''}`)
    assert.ok(r.durationMs < 3000 + 10_000)
    // a run that lasted to its time was seen from the host (bubblewrap's two processes and the
    // shell are 3, the bomb more); one whose shell could not fork at all can end before a sample
    if (r.status === 'TIMEOUT') assert.ok(most > 3, `only ${most} processes seen`)
    assert.ok(most <= 32 + 2, `${most} processes of the sandbox uids on the host`)
    const sample = await readFile(join(j.outputDir, 'n'), 'utf8').catch(() => undefined)
    if (sample !== undefined) {
      const seen = sample.trim().split(' ').length
      assert.ok(seen <= 32 + 2, `${seen} processes in the sandbox`)
    }
    assert.deepEqual(sandboxProcesses(), [])
  })

  it('kills an app that ignores SIGTERM at its time', async () => {
    const j = job("trap '' TERM INT HUP; while :; do :; done", { timeoutMs: 1500 })
    const t0 = Date.now()
    const r = await executor.run(j)
    assert.equal(r.status, 'TIMEOUT', r.message)
    assert.equal(r.exitCode, null)
    assert.ok(Date.now() - t0 < 15_000)
    assert.deepEqual(sandboxProcesses(), [])
  })

  it('leaves no background child behind the app', async () => {
    const j = job("(trap '' TERM HUP; setsid sleep 1000 & sleep 1000) & echo started")
    const r = await executor.run(j)
    assert.equal(r.status, 'COMPLETED', r.message)
    assert.equal(await out(j, 'stdout.txt'), 'started\n')
    assert.deepEqual(sandboxProcesses(), [])
  })

  it('holds the output cap, in one file and in many', async () => {
    const one = job('dd if=/dev/zero of=/iexec_out/big bs=64k count=64', { maxOutputBytes: 1024 * 1024 })
    assert.equal((await executor.run(one)).status, 'OUTPUT_TOO_LARGE')
    const many = job('i=0; while [ $i -lt 40 ]; do dd if=/dev/zero of=/iexec_out/f$i bs=64k count=1 2>/dev/null; i=$((i+1)); done', { maxOutputBytes: 1024 * 1024 })
    const r = await executor.run(many)
    assert.equal(r.status, 'OUTPUT_TOO_LARGE', r.message)
    let total = 0
    for (const f of await readdir(many.outputDir)) total += (await readFile(join(many.outputDir, f))).byteLength
    assert.ok(total <= 1024 * 1024 + 4096, `${total} bytes on disk`)
  })

  it('reports a link in the output as a violation', async () => {
    const r = await executor.run(job('ln -s /etc/passwd /iexec_out/link'))
    assert.equal(r.status, 'SANDBOX_VIOLATION')
  })

  it('reports a failing app with its exit code', async () => {
    const r = await executor.run(job('exit 3'))
    assert.equal(r.status, 'APP_ERROR')
    assert.equal(r.exitCode, 3)
  })

  it('refuses what it cannot run: a WASI module, a dynamic binary, another architecture, junk', async () => {
    const wasm = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0])
    assert.equal((await executor.run(job('', { module: wasm }))).status, 'INVALID_MODULE')
    assert.equal((await executor.run(job('', { module: '/bin/ls' }))).status, 'INVALID_MODULE')
    const foreign = new Uint8Array(await readFile(BUSYBOX))
    Buffer.from(foreign.buffer).writeUInt16LE(183, 18)
    assert.equal((await executor.run(job('', { module: foreign }))).status, 'INVALID_MODULE')
    assert.equal((await executor.run(job('', { module: new Uint8Array(600) }))).status, 'INVALID_MODULE')
  })

  it('passes arguments byte for byte (quotes, newlines, $, spaces), whatever limits the run before had', async () => {
    const odd = ["it's", 'two words', 'line1\nline2', '$HOME `id` $(id)', '\\n', '"', '', "'"]
    for (const maxMemoryBytes of [64, 96, 64].map((m) => m * 1024 * 1024)) {
      const r = await executor.run(job('for a in "$@"; do printf "[%s]" "$a"; done > /iexec_out/args.txt', { args: ['sh', '-c', 'for a in "$@"; do printf "[%s]" "$a"; done > /iexec_out/args.txt', 'sh', ...odd], maxMemoryBytes }))
      assert.equal(r.status, 'COMPLETED', r.message)
      assert.equal(await readFile(join(r.stdoutPath, '..', 'args.txt'), 'utf8'), odd.map((a) => `[${a}]`).join(''))
    }
  })

  it('shows the input read-only, as hard links or as a bind, and leaves it as it was', async () => {
    await mkdir(join(inputDir, 'sub'))
    await writeFile(join(inputDir, 'sub', 'b.txt'), 'nested\n', { mode: 0o600 })
    const read = 'cat /iexec_in/data.txt /iexec_in/sub/b.txt > /iexec_out/seen.txt; echo x >> /iexec_in/data.txt && echo WROTE >> /iexec_out/seen.txt; true'
    const linked = job(read)
    assert.equal((await executor.run(linked)).status, 'COMPLETED')
    assert.equal(await out(linked, 'seen.txt'), 'secret input\nnested\n')
    // a link in the input: no hard links of it, the launcher binds the folder
    await symlink('data.txt', join(inputDir, 'alias'))
    const bound = job(read + '; cat /iexec_in/alias >> /iexec_out/seen.txt')
    assert.equal((await executor.run(bound)).status, 'COMPLETED')
    assert.equal(await out(bound, 'seen.txt'), 'secret input\nnested\nsecret input\n')
    await executor.close()
    assert.equal(await readFile(join(inputDir, 'data.txt'), 'utf8'), 'secret input\n')
    assert.equal((await stat(join(inputDir, 'data.txt'))).nlink, 1, 'the run\'s links are gone')
    assert.deepEqual(await readdir(join(stage, 'run')).catch(() => []), [])
  })

  it('a node killed with SIGKILL leaves no waiting launcher and no mount of the launch it made ahead', async function () {
    this.timeout(180_000)
    const stage2 = await mkdtemp(join(tmpdir(), 'iexec-native-kill-'))
    await chmod(stage2, 0o711)
    const script = join(root, 'killed.mts')
    await writeFile(script, `
      import { NativeExecutor } from ${JSON.stringify(join(process.cwd(), 'node/worker/native-executor.ts'))}
      const ex = new NativeExecutor({ stageDir: ${JSON.stringify(stage2)}, firstSandboxUid: ${FIRST_UID + 50}, sandboxUids: 10 })
      const r = await ex.run({ taskId: '0x01', module: '/bin/busybox', appName: 'busybox', args: ['true'], inputDir: ${JSON.stringify(inputDir)},
        outputDir: ${JSON.stringify(join(root, 'killed-out'))}, inputFiles: [], timeoutMs: 20000, maxMemoryBytes: 64 << 20, maxOutputBytes: 1 << 20 })
      // the next run's launch is being made: wait until its launcher runs (it reads EOF whenever it gets to its
      // read), then die without closing
      const fs = await import('node:fs')
      const launcher = ${JSON.stringify(join(stage2, 'run', '2', 'in'))}
      const running = (): boolean => fs.readdirSync('/proc').some((p) => { try { return /^\\d+$/.test(p) && fs.readFileSync('/proc/' + p + '/cmdline', 'utf8').includes(launcher) } catch { return false } })
      const until = Date.now() + 60000
      while (Date.now() < until && !running()) await new Promise((r) => setTimeout(r, 20))
      console.log(r.status)
      process.kill(process.pid, 'SIGKILL')
    `)
    const { spawn } = await import('node:child_process')
    // spawned, not spawnSync: the event loop (mocha's timers) goes on while it runs
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => { child.on('close', (_code, sig) => { resolve(sig) }) })
    const r = { stdout, stderr, signal }
    assert.equal(r.stdout.trim(), 'COMPLETED', r.stderr)
    assert.equal(r.signal, 'SIGKILL')
    const deadline = Date.now() + 60_000
    const left = (): string[] => readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((l) => l.includes(stage2))
    // (the finished run's cleanup runs after its result: killed meanwhile, its folders may stay)
    const ahead = async (): Promise<boolean> => (await readdir(join(stage2, 'run'))).includes('2')
    while ((left().length > 0 || await ahead()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    assert.deepEqual(left(), [], 'the launcher took its tmpfs away')
    assert.equal(await ahead(), false, 'and its folders')
    await rm(stage2, { recursive: true, force: true })
  })

  it('re-checks a module file rewritten in place, and leaves no mount once closed', async () => {
    const app = join(root, 'app')
    await writeFile(app, await readFile(BUSYBOX), { mode: 0o755 })
    assert.equal((await executor.run(job('true', { module: app }))).status, 'COMPLETED')
    // the staging cache keys on the file's identity: new bytes at the same path are read and checked again
    await writeFile(app, new Uint8Array(600))
    assert.equal((await executor.run(job('true', { module: app }))).status, 'INVALID_MODULE')
    await writeFile(app, await readFile(BUSYBOX), { mode: 0o755 })
    assert.equal((await executor.run(job('echo again > /iexec_out/a', { module: app }))).status, 'COMPLETED')
    // a run's unmounts finish after its result: close() waits for them
    await executor.close()
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(stage))
    assert.deepEqual(mounts, [])
    assert.deepEqual(await readdir(join(stage, 'run')).catch(() => []), [])
  })

  it('refuses a bad job with a code', async () => {
    for (const over of [{ timeoutMs: 0 }, { inputFiles: ['../x'] }, { appName: '../busybox' }, { inputDir: join(root, 'missing') }, { args: ['a\0b'] }]) {
      await assert.rejects(executor.run(job('true', over)), (err: unknown) => isIexecError(err) && err.code === 'WORKER_INVALID_JOB')
    }
  })

  it('ends a run when aborted, and refuses runs once closed', async () => {
    const ac = new AbortController()
    const running = executor.run(job('sleep 30'), ac.signal)
    const deadline = Date.now() + 20_000
    while (executor.activeRuns === 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve))
    ac.abort()
    await assert.rejects(running, (err: unknown) => isIexecError(err) && err.code === 'WORKER_ABORTED')
    assert.deepEqual(sandboxProcesses(), [])
    await executor.close()
    await assert.rejects(executor.run(job('true')), (err: unknown) => isIexecError(err) && err.code === 'WORKER_EXECUTOR_CLOSED')
  })

  it('assembles a filter that denies each listed syscall', () => {
    const f = buildSeccompFilter()
    assert.ok(f !== undefined)
    assert.equal(f.byteLength % 8, 0)
    // each denied number appears as the constant of a JEQ
    for (const [name, nr] of Object.entries(DENIED_SYSCALLS_X86_64)) {
      let found = false
      for (let i = 0; i < f.byteLength; i += 8) if (f.readUInt16LE(i) === 0x15 && f.readUInt32LE(i + 4) === nr) found = true
      assert.ok(found, name)
    }
  })
})
