// The native executor: runs a static Linux binary, or an OCI image's
// entrypoint in its unpacked root (oci-image.ts), inside bubblewrap.
//
// Sandbox, layer by layer (each in force only where the host allows it;
// `status()` says which are):
// - namespaces: every one bubblewrap can unshare (no network, own pid, ipc,
//   uts, mount, user and cgroup namespaces); user namespaces cannot be made
//   again inside (--disable-userns); no capabilities; a new session (no
//   terminal injection); --die-with-parent.
// - identity: run as root, the node starts each sandbox as an unprivileged
//   host uid (one of a range, so that runs do not share RLIMIT_NPROC), seen
//   as uid 1000 inside.
// - file system: the root is read-only (an empty tmpfs holding only the
//   binary, or the image's root); /iexec_in is bound read-only;
//   /iexec_out is the only writable place. Run as root, /iexec_out is a
//   tmpfs of the output bound (a hard cap) that is copied out after the run;
//   otherwise the cap is RLIMIT_FSIZE per file and the measure after the run.
// - seccomp: seccomp.ts's filter (sockets, namespaces, mounts, kernel
//   interfaces).
// - rlimits (the launcher's ulimit as root, prlimit otherwise): address
//   space, processes, open files, file size, no core dumps.
// - cgroups: memory, pids and cpu where the node may create cgroups.
// - time: past timeoutMs the sandbox's outer process is killed; its pid
//   namespace's init dies with it (--die-with-parent), which kills every
//   process of the run; the run's cgroups are emptied as well.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, chownSync, closeSync, lstatSync, cpSync, existsSync, mkdirSync, linkSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmdirSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { readTreeSync } from '../storage/archive.js'
import { appKind, checkElf } from './app-kind.js'
import type { ExecJob, ExecResult, ExecStatus, Executor } from './executor.js'
import { WorkerError } from './errors.js'
import { bwrapWorks, probeNativeHost } from './native-host.js'
import type { NativeHost } from './native-host.js'
import { dropRunCgroups, makeRunCgroups, runOomed } from './native-cgroups.js'
import type { RunCgroup } from './native-cgroups.js'
import { MAX_TIMEOUT_MS, STDERR_FILE, STDOUT_FILE } from './options.js'
import { buildSeccompFilter } from './seccomp.js'
import { iexecEnv } from './wasi-executor.js'

/** What runs in the sandbox: a binary alone, or an image's root and its command. */
export type NativeTarget =
  | { kind: 'binary', path: string }
  | { kind: 'image', rootfs: string, entrypoint: string[], cmd: string[], env: string[], cwd: string }

/** Turns an OCI app (its bytes or a path) into an unpacked image; see oci-image.ts. */
export type ImagePreparer = (module: Uint8Array | string) => Promise<{ target: NativeTarget } | { invalid: string }>

export interface NativeExecutorOptions {
  /** Where binaries, run folders and (by default) images are kept; its parents must be traversable by other uids. */
  stageDir: string
  /** First host uid (and gid) of the sandboxes, when the node runs as root. */
  firstSandboxUid: number
  /** How many uids the range holds (one per run at once). */
  sandboxUids: number
  /** Processes (threads included) a run may have: RLIMIT_NPROC and pids.max. */
  maxProcesses: number
  /** Open files per process. */
  maxOpenFiles: number
  /** CPUs a run may use (cgroup cpu quota). */
  cpus: number
  /** Use cgroups where writable. */
  cgroups: boolean
  /** Load the seccomp filter where supported. */
  seccomp: boolean
  /** OCI images; without it an image is INVALID_MODULE. */
  images?: ImagePreparer
  /** Device nodes bound into every run (the GPUs', gpu.ts). */
  devices?: string[]
  /** The host as probed (tests pass their own). */
  host?: NativeHost
}

export const defaultNativeExecutorOptions: NativeExecutorOptions = {
  stageDir: join(tmpdir(), `iexec-native-${process.pid}`),
  firstSandboxUid: 200_000,
  sandboxUids: 1000,
  maxProcesses: 64,
  maxOpenFiles: 256,
  cpus: 1,
  cgroups: true,
  seccomp: true
}

/** The limits in force on this host, for `status` and the resource record. */
export interface NativeStatus {
  available: boolean
  reason?: string
  unprivilegedUid: boolean
  outputCap: 'tmpfs' | 'rlimit-fsize'
  seccomp: boolean
  cgroups: Array<{ limit: 'memory' | 'pids' | 'cpu', version: 'v1' | 'v2' }>
  rlimits: string[]
  images: boolean
}

/** Slack over the app's memory bound for RLIMIT_AS when a memory cgroup holds the real bound (mappings are not memory). */
const AS_SLACK_BYTES = 256 * 1024 * 1024
/** Inodes of the output tmpfs. */
const OUTPUT_INODES = 100_000
/** The uid the app sees. */
const INNER_UID = 1000

function checkBound (value: number, max: number, what: string): void {
  if (!Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw new WorkerError('WORKER_INVALID_JOB', `${what} must be an integer in 1..${max}, got ${value}`)
  }
}

function checkInputName (name: string, what: string): void {
  if (typeof name !== 'string' || name === '' || name.includes('\0') || name.startsWith('/') || name.split('/').some((p) => p === '..')) {
    throw new WorkerError('WORKER_INVALID_JOB', `${what} must be a relative path inside the input dir: ${JSON.stringify(name)}`)
  }
}

function validateJob (job: ExecJob): void {
  if (typeof job.taskId !== 'string' || job.taskId === '' || job.taskId.includes('\0')) throw new WorkerError('WORKER_INVALID_JOB', 'taskId is required')
  checkBound(job.timeoutMs, MAX_TIMEOUT_MS, 'timeoutMs')
  checkBound(job.maxMemoryBytes, Number.MAX_SAFE_INTEGER, 'maxMemoryBytes')
  checkBound(job.maxOutputBytes, Number.MAX_SAFE_INTEGER, 'maxOutputBytes')
  if (job.collectBytes !== undefined && !(Number.isSafeInteger(job.collectBytes) && job.collectBytes >= 0)) {
    throw new WorkerError('WORKER_INVALID_JOB', `collectBytes must be a non-negative integer, got ${job.collectBytes}`)
  }
  if (!Array.isArray(job.args) || job.args.some((a) => typeof a !== 'string' || a.includes('\0'))) {
    throw new WorkerError('WORKER_INVALID_JOB', 'args must be strings without NUL')
  }
  if (job.appName !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(job.appName)) {
    throw new WorkerError('WORKER_INVALID_JOB', 'appName must be a plain file name for a native app')
  }
  if (!Array.isArray(job.inputFiles)) throw new WorkerError('WORKER_INVALID_JOB', 'inputFiles must be an array')
  job.inputFiles.forEach((f, i) => { checkInputName(f, `inputFiles[${i}]`) })
  if (job.datasetFilename !== undefined) checkInputName(job.datasetFilename, 'datasetFilename')
  try {
    if (!statSync(job.inputDir).isDirectory()) throw new Error('not a folder')
  } catch (err) {
    throw new WorkerError('WORKER_INVALID_JOB', `inputDir is not a folder: ${job.inputDir}`, undefined, { cause: err })
  }
}

/** Runs a command to completion (mount, umount); rejects on failure. */
async function run (cmd: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    p.stderr.on('data', (d: Buffer) => { err += d.toString() })
    p.on('error', reject)
    p.on('close', (code) => { code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: ${err.trim() || `exit ${code}`}`)) })
  })
}

/** A run's sandbox, made up to its job's own part (see prepareLaunch). */
interface Launch {
  /** the limits it was made for (launchKey) */
  key: string
  id: number
  root: boolean
  /** what the sandbox binds as /iexec_in and /iexec_out */
  inDir: string
  outDir: string
  /** folders to remove and mounts to undo after the run */
  dirs: string[]
  mounts: string[]
  cgroups: RunCgroup[]
  fds: number[]
  seccomp: boolean
  /** the input is hard links in inDir (no bind) */
  farm?: boolean
  status: string
  /** the launcher (as root, from its making; otherwise from go) */
  child?: ChildProcess
  ended?: Promise<{ code: number | null, sig: NodeJS.Signals | null, spawnError?: Error }>
  /** starts the run: bubblewrap's arguments, and the input folder the launcher binds */
  go: (bwrap: string[], inputDir: string) => void
}

/** Words for the launcher's `eval`: each single-quoted, a newline as "$nl" (its line must stay one line). */
function shellWords (words: string[]): string {
  return words.map((w) => `'${w.replace(/'/g, "'\\''").replace(/\n/g, "'\"$nl\"'")}'`).join(' ')
}

/** What a launch is made for: the limits fixed before the job is known (rlimits, tmpfs size, memory cgroup). */
function launchKey (job: ExecJob): string {
  return `${job.maxMemoryBytes}:${job.maxOutputBytes}`
}

/**
 * Runs static Linux binaries and OCI images in bubblewrap sandboxes.
 *
 * @example
 * ```ts
 * const executor = new NativeExecutor()
 * const result = await executor.run({ taskId, module: 'app-static', args: [], inputDir, outputDir,
 *   inputFiles: [], timeoutMs: 10_000, maxMemoryBytes: 256 << 20, maxOutputBytes: 10 << 20 })
 * await executor.close()
 * ```
 */
export class NativeExecutor implements Executor {
  readonly name = 'native'
  private readonly opts: NativeExecutorOptions
  private readonly host: NativeHost
  private readonly seccompPath?: string
  private unavailable?: string
  private readonly binaries = new Map<string, Promise<string>>()
  /** A module file's staged copy, by the file's identity (device, inode, size, mtime): no read nor hash per run. */
  private readonly stagedFiles = new Map<string, string>()
  private readonly cleanups = new Set<Promise<void>>()
  /** The next run's launch, made while the last one ran (as root). */
  private ahead?: Promise<Launch>
  private readonly running = new Map<number, { kill: () => void, done: Promise<unknown> }>()
  private nextRun = 1
  private closed = false
  /** Executors of this process not closed yet (the default stage is removed with the last). */
  private static readonly open = new Set<NativeExecutor>()

  constructor (options: Partial<NativeExecutorOptions> = {}) {
    this.opts = { ...defaultNativeExecutorOptions, ...options }
    this.host = this.opts.host ?? probeNativeHost()
    NativeExecutor.open.add(this)
    if (this.host.bwrap === undefined) this.unavailable = 'bubblewrap (bwrap) is not installed'
    else if (!bwrapWorks(this.host.bwrap)) this.unavailable = 'bubblewrap cannot create user namespaces here'
    if (this.unavailable !== undefined) return
    mkdirSync(this.opts.stageDir, { recursive: true, mode: 0o711 })
    chmodSync(this.opts.stageDir, 0o711)
    if (this.host.root) {
      const closed = closedAncestor(this.opts.stageDir)
      if (closed !== undefined) {
        this.unavailable = `the sandbox uids cannot reach the stage folder (${closed} is not traversable by others)`
        return
      }
    }
    mkdirSync(join(this.opts.stageDir, 'bin'), { recursive: true, mode: 0o711 })
    mkdirSync(join(this.opts.stageDir, 'run'), { recursive: true, mode: 0o711 })
    const filter = this.opts.seccomp ? buildSeccompFilter() : undefined
    if (filter !== undefined) {
      this.seccompPath = join(this.opts.stageDir, 'seccomp.bpf')
      writeFileSync(this.seccompPath, filter, { mode: 0o600 })
    }
  }

  /** Whether native apps can run here (bubblewrap installed and working). */
  get available (): boolean {
    return this.unavailable === undefined
  }

  /** Which limits are in force. */
  status (): NativeStatus {
    const cgroups = this.opts.cgroups ? this.host.cgroups.flatMap((c) => c.limits.map((limit) => ({ limit, version: c.version }))) : []
    return {
      available: this.available,
      ...(this.unavailable !== undefined ? { reason: this.unavailable } : {}),
      unprivilegedUid: this.host.root || process.getuid?.() !== 0,
      outputCap: this.host.root ? 'tmpfs' : 'rlimit-fsize',
      seccomp: this.seccompPath !== undefined,
      cgroups,
      rlimits: ['as', 'nproc', 'nofile', 'fsize', 'core'],
      images: this.opts.images !== undefined && this.host.umoci !== undefined
    }
  }

  /** Runs at once now; for tests. */
  get activeRuns (): number {
    return this.running.size
  }

  async run (job: ExecJob, signal?: AbortSignal): Promise<ExecResult> {
    if (this.closed) throw new WorkerError('WORKER_EXECUTOR_CLOSED', 'executor is closed')
    if (signal?.aborted === true) throw new WorkerError('WORKER_ABORTED', 'aborted before start')
    validateJob(job)
    try {
      mkdirSync(job.outputDir, { recursive: true })
    } catch (err) {
      throw new WorkerError('WORKER_INVALID_JOB', `cannot create outputDir ${job.outputDir}`, undefined, { cause: err })
    }
    if (readdirSync(job.outputDir).length > 0) throw new WorkerError('WORKER_INVALID_JOB', `outputDir must be empty: ${job.outputDir}`)
    const stdoutPath = join(job.outputDir, STDOUT_FILE)
    const stderrPath = join(job.outputDir, STDERR_FILE)
    const base = { exitCode: null, durationMs: 0, stdoutPath, stderrPath }
    const refuse = (message: string): ExecResult => {
      writeFileSync(stdoutPath, '')
      writeFileSync(stderrPath, '')
      return { ...base, status: 'INVALID_MODULE', message }
    }
    if (this.unavailable !== undefined) return refuse(`native apps cannot run here: ${this.unavailable}`)
    let head: Uint8Array
    if (typeof job.module === 'string') {
      try {
        head = statSync(job.module).isDirectory() ? new Uint8Array(0) : await readHead(job.module)
      } catch (err) {
        throw new WorkerError('WORKER_INVALID_JOB', `cannot read module ${job.module}`, undefined, { cause: err })
      }
    } else {
      head = job.module.subarray(0, 512)
    }
    const kind = head.byteLength === 0 && typeof job.module === 'string' ? 'oci' : appKind(head)
    let target: NativeTarget
    if (kind === 'native') {
      const identity = typeof job.module === 'string' ? fileIdentity(job.module) : undefined
      let path = identity !== undefined ? this.stagedFiles.get(identity) : undefined
      if (path === undefined) {
        const bytes = typeof job.module === 'string' ? await readFile(job.module) : job.module
        const elf = checkElf(bytes)
        if (!elf.ok) return refuse(`cannot run this binary: ${elf.reason ?? ''}`)
        path = await this.stageBinary(bytes)
        // checked and staged from these bytes: the same file, unchanged, needs neither again
        if (identity !== undefined && identity === fileIdentity(job.module as string)) this.stagedFiles.set(identity, path)
      }
      target = { kind: 'binary', path }
    } else if (kind === 'oci') {
      if (this.opts.images === undefined || this.host.umoci === undefined) return refuse('OCI images cannot run here (no umoci)')
      const prepared = await this.opts.images(job.module)
      if ('invalid' in prepared) return refuse(prepared.invalid)
      target = prepared.target
    } else {
      return refuse(kind === 'wasi' ? 'a WASI module is not a native app' : 'neither an ELF binary nor an OCI image')
    }
    if ((signal as AbortSignal | undefined)?.aborted === true) throw new WorkerError('WORKER_ABORTED', 'aborted by the caller')
    if (this.closed) throw new WorkerError('WORKER_EXECUTOR_CLOSED', 'executor is closed')
    return await this.runSandbox(job, target, base, signal)
  }

  /** Writes a binary once per content into the stage (readable and executable by the sandbox uids). */
  private async stageBinary (bytes: Uint8Array): Promise<string> {
    const sha = createHash('sha256').update(bytes).digest('hex')
    let staged = this.binaries.get(sha)
    if (staged === undefined) {
      staged = (async () => {
        const path = join(this.opts.stageDir, 'bin', sha)
        const tmp = `${path}.${process.pid}.tmp`
        writeFileSync(tmp, bytes, { mode: 0o555 })
        renameSync(tmp, path)
        return path
      })()
      this.binaries.set(sha, staged)
      staged.catch(() => { this.binaries.delete(sha) })
    }
    return await staged
  }

  /**
   * Makes a run's sandbox up to the point where only the job's own part is
   * missing: as root, its folders (the output a size-capped tmpfs), its
   * cgroups with their limits, and the launcher process, already inside the
   * cgroups, waiting on stdin for the input folder to bind (if any) and
   * bubblewrap's arguments. Moving a process into a cgroup waits for the
   * kernel (an RCU grace period per hierarchy on v1): done here, ahead of
   * the next run (see takeLaunch), it stays off that run's start. Without
   * root, the output is the job's folder, so a launch is made for its run.
   */
  private async prepareLaunch (job: ExecJob): Promise<Launch> {
    const id = this.nextRun++
    const root = this.host.root
    const uid = this.opts.firstSandboxUid + (id % this.opts.sandboxUids)
    const launch: Launch = {
      key: launchKey(job), id, root, inDir: job.inputDir, outDir: job.outputDir, dirs: [], mounts: [], cgroups: [], fds: [], seccomp: false,
      status: '', go: () => { throw new Error('launch not made') }
    }
    try {
      if (root) {
        // the sandbox's uid cannot reach the node's folders (whose parents are private): the input
        // (hard links or a bind, at the run) and a size-capped tmpfs for the output, in a traversable stage
        const runDir = join(this.opts.stageDir, 'run', String(id))
        launch.inDir = join(runDir, 'in')
        launch.outDir = join(runDir, 'out')
        launch.dirs.push(launch.inDir, launch.outDir, runDir)
        mkdirSync(launch.inDir, { recursive: true, mode: 0o711 })
        mkdirSync(launch.outDir, { recursive: true, mode: 0o711 })
        // the run's folder is the sandbox uid's alone; only this folder leads to its input
        chownSync(runDir, uid, uid)
        chmodSync(runDir, 0o700)
        const size = Math.ceil(job.maxOutputBytes / 4096) * 4096 + 4096
        // the input's bind, if any, is made by the launcher (the input is known at the run); both are unmounted after it
        launch.mounts.push(launch.inDir, launch.outDir)
        await run('mount', ['-t', 'tmpfs', '-o', `size=${size},nr_inodes=${OUTPUT_INODES},mode=0755,uid=${uid},gid=${uid},nosuid,nodev`, 'tmpfs', launch.outDir])
        launch.cgroups = this.opts.cgroups ? makeRunCgroups(this.host.cgroups, id, { memoryBytes: job.maxMemoryBytes, processes: this.opts.maxProcesses, cpus: this.opts.cpus }) : []
      }
      const stdoutFd = openSync(join(launch.outDir, STDOUT_FILE), 'w')
      launch.fds.push(stdoutFd)
      const stderrFd = openSync(join(launch.outDir, STDERR_FILE), 'w')
      launch.fds.push(stderrFd)
      let seccompFd: number | undefined
      if (this.seccompPath !== undefined) {
        seccompFd = openSync(this.seccompPath, 'r')
        launch.fds.push(seccompFd)
        launch.seccomp = true
      }
      const memCgroup = launch.cgroups.some((c) => c.ctl.limits.includes('memory'))
      const asBytes = memCgroup ? job.maxMemoryBytes + Math.max(job.maxMemoryBytes, AS_SLACK_BYTES) : job.maxMemoryBytes
      const prlimit = [
        `--as=${asBytes}`, `--nproc=${this.opts.maxProcesses}`, `--nofile=${this.opts.maxOpenFiles}`,
        `--fsize=${job.maxOutputBytes}`, '--core=0'
      ]
      if (root) {
        // joins the run's cgroups before anything of the app exists; then waits for the run: a
        // line with its input folder (bound here), a line with bubblewrap's arguments, quoted for
        // the shell (shellWords); an EOF instead (the run never came) ends it. exec all along, so
        // that bubblewrap's parent is the node (--die-with-parent). A node that dies first leaves EOF:
        // the launcher then takes its tmpfs and folders away (its emptied cgroups stay).
        const joins = launch.cgroups.map((c) => `echo $$ > '${c.dir}/cgroup.procs' || exit 125; `).join('')
        // the rlimits by the shell's ulimit (one exec less than prlimit; the sizes in its units:
        // KiB of address space, 512-byte blocks of file size, the tmpfs being the exact output cap)
        const ulimit = [`-v ${Math.ceil(asBytes / 1024)}`, `-p ${this.opts.maxProcesses}`, `-n ${this.opts.maxOpenFiles}`, `-f ${Math.ceil(job.maxOutputBytes / 512)}`, '-c 0']
          .map((l) => `ulimit ${l} || exit 123; `).join('')
        const script = `nl=$(printf '\\nx'); nl=\${nl%x}; ${joins}IFS= read -r src || { umount -l "$2"; rmdir "$1" "$2" "$3"; exit 0; }; IFS= read -r words || exit 0; ` +
          `if [ -n "$src" ]; then mount --bind "$src" "$1" || exit 124; fi; ${ulimit}shift 3; eval "set -- \\"\\$@\\" $words"; exec "$@"`
        const child = spawn('/bin/sh', ['-c', script, 'sh', launch.inDir, launch.outDir, launch.dirs[2],
          'setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', this.host.bwrap as string], {
          stdio: ['pipe', stdoutFd, stderrFd, seccompFd ?? 'ignore', 'pipe'],
          detached: true,
          env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' }
        })
        // a launcher killed before its run (close, a discarded launch) must not leave an unhandled pipe error
        child.stdin?.on('error', () => {})
        launch.go = (bwrap, inputDir) => { child.stdin?.end(`${inputDir}\n${shellWords(bwrap)}\n`) }
        this.watch(launch, child)
      } else {
        launch.go = (bwrap) => {
          const child = spawn('prlimit', [...prlimit, '--', this.host.bwrap as string, ...bwrap], {
            stdio: ['ignore', stdoutFd, stderrFd, seccompFd ?? 'ignore', 'pipe'],
            detached: true,
            env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' }
          })
          this.watch(launch, child)
        }
      }
      return launch
    } catch (err) {
      this.discard(launch)
      throw err
    }
  }

  /** Hears a launch's process: its status documents and its end. */
  private watch (launch: Launch, child: ChildProcess): void {
    launch.child = child
    ;(child.stdio[4] as NodeJS.ReadableStream).on('data', (d: Buffer) => { launch.status += d.toString() })
    launch.ended = new Promise((resolve) => {
      child.on('error', (err) => { resolve({ code: null, sig: null, spawnError: err }) })
      child.on('close', (code, sig) => { resolve({ code, sig }) })
    })
  }

  /** Kills a launch that will not run and frees what it holds. */
  private discard (launch: Launch): void {
    try { if (launch.child?.pid !== undefined) process.kill(-launch.child.pid, 'SIGKILL') } catch {}
    for (const fd of launch.fds.splice(0)) closeSync(fd)
    this.track((async () => {
      if (launch.ended !== undefined) await launch.ended
      await dropRunCgroups(launch.cgroups)
      await this.unmount(launch.mounts, launch.dirs)
    })())
  }

  /**
   * The launch for a run: the one made ahead when it fits the job's limits
   * and its launcher still waits, else a new one; and, as root, the next
   * run's launch is made now, while this one runs.
   */
  private async takeLaunch (job: ExecJob): Promise<Launch> {
    if (!this.host.root) return await this.prepareLaunch(job)
    const key = launchKey(job)
    let launch: Launch | undefined
    const ahead = this.ahead
    this.ahead = undefined
    if (ahead !== undefined) {
      const made = await ahead.catch(() => undefined)
      if (made !== undefined && made.key === key && made.child?.exitCode === null && made.child.signalCode === null) launch = made
      else if (made !== undefined) this.discard(made)
    }
    launch ??= await this.prepareLaunch(job)
    if (!this.closed) {
      // begun once this run's sandbox is on its way (prepareLaunch spawns, which blocks the event loop a moment)
      const next = new Promise<void>((resolve) => { setImmediate(resolve) }).then(async () => {
        if (this.closed) throw new WorkerError('WORKER_EXECUTOR_CLOSED', 'executor is closed')
        return await this.prepareLaunch(job)
      })
      next.catch(() => {})
      this.ahead = next
    }
    return launch
  }

  private async runSandbox (job: ExecJob, target: NativeTarget, base: Omit<ExecResult, 'status'>, signal?: AbortSignal): Promise<ExecResult> {
    if (/[\n\0]/.test(job.inputDir)) throw new WorkerError('WORKER_INVALID_JOB', 'inputDir must not hold a newline or NUL')
    const env = iexecEnv(job)
    let argv: string[]
    const head: string[] = [
      '--unshare-all', '--unshare-user', '--uid', String(INNER_UID), '--gid', String(INNER_UID),
      '--disable-userns', '--die-with-parent', '--new-session', '--cap-drop', 'ALL',
      '--hostname', 'iexec', '--clearenv'
    ]
    if (target.kind === 'binary') {
      // at /<appName>: argv[0] is the path (multi-call binaries such as busybox read it)
      const at = `/${job.appName ?? 'app'}`
      head.push('--tmpfs', '/', '--ro-bind', target.path, at, '--dir', '/iexec_in', '--dir', '/iexec_out')
      argv = [at, ...job.args]
      head.push('--setenv', 'PATH', '/')
    } else {
      head.push('--ro-bind', target.rootfs, '/')
      // as docker run does: the request's args replace the image's cmd
      argv = [...target.entrypoint, ...(job.args.length > 0 ? job.args : target.cmd)]
      if (argv.length === 0) return { ...base, status: 'INVALID_MODULE', message: 'nothing to run: the image has no entrypoint and the request no args' }
      for (const kv of target.env) {
        const eq = kv.indexOf('=')
        if (eq > 0) head.push('--setenv', kv.slice(0, eq), kv.slice(eq + 1))
      }
    }
    for (const [k, v] of Object.entries(env)) head.push('--setenv', k, v)
    // bubblewrap reads its arguments NUL-separated: a NUL inside one would split it
    if ([...head, ...argv].some((a) => a.includes('\0'))) return { ...base, status: 'INVALID_MODULE', message: 'an argument or environment value of the app holds a NUL' }

    const launch = await this.takeLaunch(job)
    const { id, root, inDir, outDir, cgroups } = launch
    try {
      let bindFrom = job.inputDir
      if (root) {
        // the input is made readable to the sandbox uid (the node writes private files), which
        // exposes nothing: only the run's own folder leads to it
        readableByOthers(job.inputDir)
        // hard links in the run's folder where they can be made (same file system, a small plain
        // tree): no mount process; else the launcher binds the input there
        if (linkFarm(job.inputDir, inDir)) {
          bindFrom = ''
          launch.farm = true
        }
      }
      const bwrap = [...head, '--proc', '/proc', '--dev', '/dev', '--ro-bind', inDir, '/iexec_in', '--bind', outDir, '/iexec_out']
      for (const d of this.opts.devices ?? []) bwrap.push('--dev-bind', d, d)
      if (target.kind === 'binary') bwrap.push('--remount-ro', '/')
      bwrap.push('--chdir', target.kind === 'image' ? target.cwd : '/iexec_out')
      if (launch.seccomp) bwrap.push('--seccomp', '3')
      bwrap.push('--json-status-fd', '4', '--', ...argv)

      const t0 = performance.now()
      launch.go(bwrap, bindFrom)
      const child = launch.child as ChildProcess
      let timedOut = false
      let aborted = false
      const killAll = (): void => {
        try { if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL') } catch {}
        try { child.kill('SIGKILL') } catch {}
      }
      const ended = launch.ended as NonNullable<Launch['ended']>
      const timer = setTimeout(() => { timedOut = true; killAll() }, job.timeoutMs)
      const onAbort = (): void => { aborted = true; killAll() }
      signal?.addEventListener('abort', onAbort, { once: true })
      if (signal?.aborted === true) onAbort()
      this.running.set(id, { kill: onAbort, done: ended })
      const end = await ended
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      this.running.delete(id)
      const durationMs = performance.now() - t0
      const oom = runOomed(cgroups)
      await dropRunCgroups(cgroups)
      if (aborted) throw new WorkerError(this.closed ? 'WORKER_EXECUTOR_CLOSED' : 'WORKER_ABORTED', 'aborted by the caller')
      if (end.spawnError !== undefined) throw new WorkerError('WORKER_RUNNER_FAILED', `cannot start the sandbox: ${end.spawnError.message}`)
      const docs = launch.status.trim().split('\n').filter((l) => l !== '').map((l) => { try { return JSON.parse(l) as Record<string, unknown> } catch { return {} } })
      const started = docs.some((d) => 'child-pid' in d)
      const exitDoc = docs.find((d) => 'exit-code' in d)
      const exitCode = typeof exitDoc?.['exit-code'] === 'number' ? exitDoc['exit-code'] : end.code
      const result = (s: ExecStatus, message?: string, code: number | null = null): ExecResult =>
        ({ ...base, durationMs, status: s, exitCode: code, ...(message !== undefined ? { message } : {}) })
      if (timedOut) return this.finish(job, outDir, root, result('TIMEOUT', `ran past its time bound of ${job.timeoutMs} ms; the sandbox was killed`), false)
      if (!started) {
        const why = readFileSync(join(outDir, STDERR_FILE), 'utf8').slice(-500).trim()
        throw new WorkerError('WORKER_RUNNER_FAILED', `the sandbox did not start: ${why || `exit ${String(end.code ?? end.sig)}`}`)
      }
      const scan = readTreeSync(outDir, -1)
      if (scan.odd !== undefined) return this.finish(job, outDir, root, result('SANDBOX_VIOLATION', `the output holds an entry that is not a plain file or directory: ${scan.odd}`, exitCode), false)
      const full = root && outputFull(outDir)
      if (scan.bytes > job.maxOutputBytes || full || (end.sig === 'SIGXFSZ' || exitCode === 128 + 25)) {
        return this.finish(job, outDir, root, result('OUTPUT_TOO_LARGE', `the app wrote more than its bound of ${job.maxOutputBytes} bytes`, exitCode), false)
      }
      if (oom) return this.finish(job, outDir, root, result('MEMORY_EXCEEDED', `ran out of memory at its bound of ${job.maxMemoryBytes} bytes`, exitCode), false)
      if (exitCode !== 0) return this.finish(job, outDir, root, result('APP_ERROR', `exited with code ${exitCode}`, exitCode), false)
      return this.finish(job, outDir, root, result('COMPLETED', undefined, 0), true)
    } finally {
      for (const fd of launch.fds.splice(0)) closeSync(fd)
      // the output was copied out (finish ran before this): the run's mounts go after the
      // result is handed back, off the task's path; close() waits for them
      if (root) this.track(this.unmount(launch.mounts, launch.dirs, launch.farm ? inDir : undefined))
    }
  }

  /** Unmounts a run's folders, then removes them (and the links of its input, `farm`). */
  private async unmount (mounts: string[], dirs: string[], farm?: string): Promise<void> {
    // lazily, all at once (a mount that was not made is reported and skipped)
    if (mounts.length > 0) await run('umount', ['-l', ...mounts.reverse()]).catch(() => {})
    // links only, and only where nothing is mounted: removing them leaves the input as it was
    if (farm !== undefined && !mountedUnder(farm)) rmSync(farm, { recursive: true, force: true })
    // never a recursive removal: a bind that failed to go would carry it into the task's input
    for (const d of dirs) {
      try { rmdirSync(d) } catch {}
    }
  }

  private track (p: Promise<void>): void {
    this.cleanups.add(p)
    void p.finally(() => { this.cleanups.delete(p) })
  }

  /** Copies a tmpfs output to the job's folder (the tmpfs goes), reads it back when asked. */
  private finish (job: ExecJob, outDir: string, copied: boolean, r: ExecResult, mayComplete: boolean): ExecResult {
    if (copied) cpSync(outDir, job.outputDir, { recursive: true })
    if (!mayComplete || job.collectBytes === undefined) return r
    const tree = readTreeSync(job.outputDir, Math.min(job.collectBytes, job.maxOutputBytes))
    if (tree.entries === undefined) return r
    if (job.removeCollected === true) rmSync(job.outputDir, { recursive: true, force: true })
    return { ...r, output: tree.entries }
  }

  /** Kills every run; later runs are refused. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    NativeExecutor.open.delete(this)
    const ahead = this.ahead
    this.ahead = undefined
    if (ahead !== undefined) {
      const made = await ahead.catch(() => undefined)
      if (made !== undefined) this.discard(made)
    }
    const runs = [...this.running.values()]
    for (const r of runs) r.kill()
    await Promise.allSettled(runs.map(async (r) => await r.done))
    // a run's cleanup starts once its result is back: all of them, even those started meanwhile
    while (this.cleanups.size > 0) await Promise.allSettled([...this.cleanups])
    // nothing is removed under a mount left behind (a bind would carry the removal into a task's input)
    if (mountedUnder(this.opts.stageDir)) return
    if (this.unavailable === undefined && existsSync(join(this.opts.stageDir, 'run'))) {
      // binaries and images stay for the next executor of this process; runs are gone
      rmSync(join(this.opts.stageDir, 'run'), { recursive: true, force: true })
    }
    // the default stage is this process's: nothing in it outlives the process's executors
    if (this.opts.stageDir === defaultNativeExecutorOptions.stageDir && NativeExecutor.open.size === 0) {
      rmSync(this.opts.stageDir, { recursive: true, force: true })
    }
  }
}

/** Whether anything is mounted at or below dir. */
function mountedUnder (dir: string): boolean {
  try {
    return readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => {
      const at = (l.split(' ')[1] ?? '').replace(/\\040/g, ' ')
      return at === dir || at.startsWith(dir + '/')
    })
  } catch {
    return true
  }
}

/** Entries of an input the run's hard links copy at most (a larger tree is bound instead). */
const MAX_LINKED_ENTRIES = 256

/**
 * Mirrors a small tree of plain files and folders into the empty folder
 * `into` with hard links; false (and `into` emptied again) when it cannot:
 * another file system, a symbolic link or special file, too many entries.
 */
function linkFarm (from: string, into: string): boolean {
  const made: string[] = []
  try {
    const stack: string[] = ['']
    let n = 0
    while (stack.length > 0) {
      const rel = stack.pop() as string
      for (const e of readdirSync(join(from, rel), { withFileTypes: true })) {
        if (++n > MAX_LINKED_ENTRIES) throw new Error('too many entries')
        const r = join(rel, e.name)
        if (e.isDirectory()) {
          mkdirSync(join(into, r), { mode: 0o755 })
          made.push(r)
          stack.push(r)
        } else if (e.isFile()) {
          linkSync(join(from, r), join(into, r))
          made.push(r)
        } else {
          throw new Error('not a plain file')
        }
      }
    }
    return true
  } catch {
    // nothing is mounted here yet: what was made is links and folders of the run's own
    for (const r of made.reverse()) rmSync(join(into, r), { recursive: true, force: true })
    return false
  }
}

/** Adds read (and, on folders, search) rights for others under dir; links are left alone. */
function readableByOthers (dir: string): void {
  const stack = [dir]
  while (stack.length > 0) {
    const d = stack.pop() as string
    const st = lstatSync(d)
    if (st.isSymbolicLink()) continue
    if (st.isDirectory()) {
      if ((st.mode & 0o005) !== 0o005) chmodSync(d, (st.mode & 0o7777) | 0o005)
      for (const name of readdirSync(d)) stack.push(join(d, name))
    } else if ((st.mode & 0o004) === 0) {
      chmodSync(d, (st.mode & 0o7777) | 0o004)
    }
  }
}

/** The first folder above (and including) dir that others cannot traverse, if any. */
function closedAncestor (dir: string): string | undefined {
  let d = dir
  for (;;) {
    if ((statSync(d).mode & 0o001) === 0) return d
    const up = dirname(d)
    if (up === d) return undefined
    d = up
  }
}

/** Whether a tmpfs output has (about) no room left: a write failed at the cap. */
function outputFull (dir: string): boolean {
  try {
    const s = statfsSync(dir)
    return s.bavail <= 1 || s.ffree <= 1
  } catch {
    return false
  }
}

/** A file's identity for the staging cache: a rewrite changes its mtime or inode; undefined when it cannot be read. */
function fileIdentity (path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true })
    return `${path}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
  } catch {
    return undefined
  }
}

async function readHead (path: string): Promise<Uint8Array> {
  // synchronous: 512 bytes cost less than three trips through the thread pool
  const fd = openSync(path, 'r')
  try {
    const buf = Buffer.alloc(512)
    return buf.subarray(0, readSync(fd, buf, 0, 512, 0))
  } finally {
    closeSync(fd)
  }
}
