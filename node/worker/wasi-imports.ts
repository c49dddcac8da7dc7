// Wraps node:wasi's preview1 imports to add what node:wasi lacks: a
// deterministic clock and random source, a bound on bytes written, and a
// record of attempts to leave the sandbox. Runs inside the worker thread.
import { createHash } from 'node:crypto'
import type { WasmMemory } from './wasm-api.js'

/**
 * The wasi_snapshot_preview1 functions (node:wasi provides exactly these): the
 * only function imports an app may have. The sock_* calls only work on
 * sockets handed to the app at start, and none is.
 */
export const PREVIEW1_FUNCTIONS: ReadonlySet<string> = new Set([
  'args_get', 'args_sizes_get', 'clock_res_get', 'clock_time_get', 'environ_get', 'environ_sizes_get',
  'fd_advise', 'fd_allocate', 'fd_close', 'fd_datasync', 'fd_fdstat_get', 'fd_fdstat_set_flags',
  'fd_fdstat_set_rights', 'fd_filestat_get', 'fd_filestat_set_size', 'fd_filestat_set_times', 'fd_pread',
  'fd_prestat_get', 'fd_prestat_dir_name', 'fd_pwrite', 'fd_read', 'fd_readdir', 'fd_renumber', 'fd_seek',
  'fd_sync', 'fd_tell', 'fd_write', 'path_create_directory', 'path_filestat_get', 'path_filestat_set_times',
  'path_link', 'path_open', 'path_readlink', 'path_remove_directory', 'path_rename', 'path_symlink',
  'path_unlink_file', 'poll_oneoff', 'proc_exit', 'proc_raise', 'random_get', 'sched_yield',
  'sock_accept', 'sock_recv', 'sock_send', 'sock_shutdown'
])

/** WASI preview1 errno values used here. */
export const WASI_ERRNO = { SUCCESS: 0, BADF: 8, DQUOT: 19, FAULT: 21, FBIG: 22, INVAL: 28, NOSYS: 52, NOTCAPABLE: 76 } as const

/** WASI preview1 rights bits (wasi_snapshot_preview1 `rights`). */
export const RIGHTS = {
  FD_READ: 1n << 1n,
  FD_SEEK: 1n << 2n,
  FD_TELL: 1n << 5n,
  FD_ADVISE: 1n << 7n,
  PATH_OPEN: 1n << 13n,
  FD_READDIR: 1n << 14n,
  PATH_READLINK: 1n << 15n,
  PATH_FILESTAT_GET: 1n << 18n,
  FD_FILESTAT_GET: 1n << 21n,
  POLL_FD_READWRITE: 1n << 27n
} as const

/**
 * Rights left on the /iexec_in preopen: open, list, stat and read, nothing
 * that creates, writes, truncates, renames, links or deletes. uvwasi checks
 * the rights of the directory fd (and the inheriting rights for files opened
 * through it) on every call, so the app gets ENOTCAPABLE for any write.
 */
export const READ_ONLY_DIR_BASE = RIGHTS.PATH_OPEN | RIGHTS.FD_READDIR | RIGHTS.PATH_READLINK |
  RIGHTS.PATH_FILESTAT_GET | RIGHTS.FD_FILESTAT_GET | RIGHTS.POLL_FD_READWRITE | RIGHTS.FD_ADVISE
/** Rights files and subdirectories opened under /iexec_in may have. */
export const READ_ONLY_DIR_INHERITING = READ_ONLY_DIR_BASE | RIGHTS.FD_READ | RIGHTS.FD_SEEK | RIGHTS.FD_TELL

// Fixed start of the virtual clock (2024-01-01T00:00:00Z, in ns) and its step
// per read: the app sees time move forward, identically on every run.
const CLOCK_START_NS = 1704067200n * 1000000000n
const CLOCK_STEP_NS = 1000000n

// For each path-taking call, the argument positions of (pointer, length) of
// its path arguments (wasi_snapshot_preview1 signatures).
const PATH_ARGS: Record<string, Array<[number, number]>> = {
  path_open: [[2, 3]],
  path_filestat_get: [[2, 3]],
  path_filestat_set_times: [[2, 3]],
  path_create_directory: [[1, 2]],
  path_readlink: [[1, 2]],
  path_remove_directory: [[1, 2]],
  path_unlink_file: [[1, 2]],
  path_rename: [[1, 2], [4, 5]]
}

/** True when a path names something outside the directory it is resolved in. */
export function escapesRoot (path: string): boolean {
  if (path.startsWith('/')) return true
  let depth = 0
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') {
      depth--
      if (depth < 0) return true
    } else {
      depth++
    }
  }
  return false
}

/** What the wrapped imports saw during one run. */
export interface SandboxState {
  /** Bytes written through fd_write/fd_pwrite on any descriptor. */
  bytesWritten: number
  /** Set when a write was refused because of the output bound. */
  outputTooLarge: boolean
  /** Files and folders the app asked to create (path_open with O_CREAT, path_create_directory). */
  filesCreated: number
  /** Set when a creation was refused because of the bound on files. */
  tooManyFiles: boolean
  /** Human-readable list of refused escape attempts (capped). */
  violations: string[]
}

export interface WrapOptions {
  /** Seed of the random source (the task id). */
  seed: string
  /** Bound on bytes written by the app, all descriptors together. */
  maxWriteBytes: number
  /** Bound on files and folders the app creates (each creating call counts, existing or not). */
  maxFiles: number
  /** Returns the app's memory (its buffer changes after memory.grow). */
  memory: () => WasmMemory | undefined
}

type WasiFn = (...args: Array<number | bigint>) => number

const MAX_VIOLATIONS = 16

/**
 * Returns a copy of `raw` (node:wasi's `wasiImport`) with the clock, the
 * random source, writes and path calls wrapped, plus the state they update.
 * Only preview1 functions are returned: no other import reaches the app.
 */
export function wrapWasiImports (raw: Record<string, unknown>, opts: WrapOptions): { imports: Record<string, WasiFn>, state: SandboxState } {
  const state: SandboxState = { bytesWritten: 0, outputTooLarge: false, filesCreated: 0, tooManyFiles: false, violations: [] }
  const imports: Record<string, WasiFn> = {}
  for (const [name, fn] of Object.entries(raw)) {
    if (typeof fn === 'function' && PREVIEW1_FUNCTIONS.has(name)) imports[name] = fn as WasiFn
  }
  const view = (): DataView | undefined => {
    const mem = opts.memory()
    return mem === undefined ? undefined : new DataView(mem.buffer)
  }
  const bytesAt = (ptr: number, len: number): Uint8Array | undefined => {
    const mem = opts.memory()
    if (mem === undefined || ptr < 0 || len < 0 || ptr + len > mem.buffer.byteLength) return undefined
    return new Uint8Array(mem.buffer, ptr, len)
  }

  let clock = CLOCK_START_NS
  imports.clock_time_get = (_id, _precision, resultPtr) => {
    const dv = view()
    const ptr = Number(resultPtr)
    if (dv === undefined || ptr < 0 || ptr + 8 > dv.byteLength) return WASI_ERRNO.FAULT
    clock += CLOCK_STEP_NS
    dv.setBigUint64(ptr, clock, true)
    return WASI_ERRNO.SUCCESS
  }

  // Deterministic random bytes: SHA-256 in counter mode over the task id.
  let counter = 0
  let pool = new Uint8Array(0)
  let poolPos = 0
  imports.random_get = (bufPtr, bufLen) => {
    const out = bytesAt(Number(bufPtr), Number(bufLen))
    if (out === undefined) return WASI_ERRNO.FAULT
    for (let i = 0; i < out.length; i++) {
      if (poolPos >= pool.length) {
        pool = createHash('sha256').update(`iexec-p2p random ${opts.seed} ${counter++}`).digest()
        poolPos = 0
      }
      out[i] = pool[poolPos++]
    }
    return WASI_ERRNO.SUCCESS
  }

  // The write bound is checked before the bytes reach the disk, so an app
  // cannot fill it; each write is counted (rewrites included), which is a
  // conservative bound of what ends up in the output.
  const boundWrite = (name: 'fd_write' | 'fd_pwrite'): void => {
    const original = imports[name]
    if (original === undefined) return
    imports[name] = (...args) => {
      const dv = view()
      const iovs = Number(args[1])
      const count = Number(args[2])
      if (dv === undefined || iovs < 0 || count < 0 || iovs + count * 8 > dv.byteLength) return WASI_ERRNO.FAULT
      let total = 0
      for (let i = 0; i < count; i++) total += dv.getUint32(iovs + i * 8 + 4, true)
      if (state.bytesWritten + total > opts.maxWriteBytes) {
        state.outputTooLarge = true
        return WASI_ERRNO.FBIG
      }
      const errno = original(...args)
      if (errno === WASI_ERRNO.SUCCESS) state.bytesWritten += total
      return errno
    }
  }
  boundWrite('fd_write')
  boundWrite('fd_pwrite')

  // fd_allocate reserves real disk blocks, and a file grown by set_size
  // counts at its full size in the output: neither may go past the bound.
  const boundSize = (name: 'fd_allocate' | 'fd_filestat_set_size', size: (args: Array<number | bigint>) => bigint): void => {
    const original = imports[name]
    if (original === undefined) return
    imports[name] = (...args) => {
      if (size(args) > BigInt(opts.maxWriteBytes)) {
        state.outputTooLarge = true
        return WASI_ERRNO.FBIG
      }
      return original(...args)
    }
  }
  boundSize('fd_allocate', (a) => BigInt(a[1]) + BigInt(a[2]))
  boundSize('fd_filestat_set_size', (a) => BigInt(a[1]))

  // Every file or folder an app creates is an inode and a directory entry
  // the output scan reads back: a bound on the count, not only on bytes
  // (empty files cost no byte). Counted before the call, as writes are.
  const boundCreate = (name: 'path_open' | 'path_create_directory', creates: (args: Array<number | bigint>) => boolean): void => {
    const original = imports[name]
    if (original === undefined) return
    imports[name] = (...args) => {
      if (creates(args)) {
        if (state.filesCreated >= opts.maxFiles) {
          state.tooManyFiles = true
          return WASI_ERRNO.DQUOT
        }
        state.filesCreated++
      }
      return original(...args)
    }
  }
  // path_open(fd, dirflags, path, path_len, oflags, ...): oflags bit 0 is O_CREAT
  boundCreate('path_open', (a) => (Number(a[4]) & 1) !== 0)
  boundCreate('path_create_directory', () => true)

  // No links at all: node:wasi (uvwasi) follows a symlink wherever it
  // points, so a link the app made in /iexec_out could open any host file.
  // Results are plain files; refusing here does not depend on uvwasi's rights.
  imports.path_symlink = () => WASI_ERRNO.NOTCAPABLE
  imports.path_link = () => WASI_ERRNO.NOTCAPABLE
  // Descriptors 0-2 are the host's (the executor shares one /dev/null among
  // runs, and opens stdout and stderr itself): uvwasi would close the host
  // descriptor, whose number the process may reuse at once for a socket or a
  // database file that the executor's own close would then shut. Closing
  // them is a no-op for the app (as if closed), and renumbering onto or from
  // them is refused.
  const closeFd = imports.fd_close
  imports.fd_close = (fd) => (Number(fd) <= 2 ? WASI_ERRNO.SUCCESS : closeFd(fd))
  const renumber = imports.fd_renumber
  imports.fd_renumber = (from, to) => (Number(from) <= 2 || Number(to) <= 2 ? WASI_ERRNO.NOTCAPABLE : renumber(from, to))
  // node:wasi's proc_raise sends the signal to the whole host process (an
  // app could SIGKILL the node): refused, and recorded as an attempt.
  imports.proc_raise = (sig) => {
    if (state.violations.length < MAX_VIOLATIONS) state.violations.push(`proc_raise(${String(sig)})`)
    return WASI_ERRNO.NOSYS
  }

  for (const [name, positions] of Object.entries(PATH_ARGS)) {
    const original = imports[name]
    if (original === undefined) continue
    imports[name] = (...args) => {
      for (const [p, l] of positions) {
        const raw = bytesAt(Number(args[p]), Number(args[l]))
        if (raw === undefined) continue
        const path = new TextDecoder().decode(raw)
        if (escapesRoot(path) && state.violations.length < MAX_VIOLATIONS) {
          state.violations.push(`${name}(${JSON.stringify(path)})`)
        }
      }
      return original(...args)
    }
  }
  return { imports, state }
}
