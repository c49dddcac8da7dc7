// Minimal file I/O over WASI preview1 for the example apps. AssemblyScript's
// wasi-shim gives console/process but no file system, so the apps open files
// themselves: find the preopened directory that prefixes a path, then
// path_open relative to it.
import {
  fd_prestat_get,
  fd_prestat_dir_name,
  path_open,
  fd_read,
  fd_write,
  fd_close,
  path_symlink,
  errno,
  rights,
  oflags,
  prestat
} from "bindings/wasi_snapshot_preview1";

// Scratch space for out-parameters (prestat, nread/nwritten, opened fd).
const scratch = memory.data(64);

/** errno of the last failed call, 0 after a success. */
export let lastErrno: u16 = 0;

class Resolved {
  constructor (public dirfd: u32, public rel: string) {}
}

function preopenName (fd: u32): string | null {
  if (fd_prestat_get(fd, changetype<prestat>(scratch)) != 0) return null;
  const len = load<u32>(scratch, 4);
  const buf = new ArrayBuffer(<i32>len);
  if (fd_prestat_dir_name(fd, changetype<usize>(buf), len) != 0) return null;
  return String.UTF8.decode(buf);
}

// Maps "/iexec_in/a/b" to (fd of "/iexec_in", "a/b"). Paths that match no
// preopen are passed to the first preopen as they are, so a probe can see
// what the runtime does with "../" or an absolute path.
function resolve (path: string): Resolved | null {
  let first: i32 = -1;
  for (let fd: u32 = 3; fd < 64; fd++) {
    const name = preopenName(fd);
    if (name == null) break;
    if (first < 0) first = <i32>fd;
    const prefix = name.endsWith("/") ? name : name + "/";
    if (path.startsWith(prefix)) return new Resolved(fd, path.substring(prefix.length));
  }
  if (first < 0) return null;
  return new Resolved(<u32>first, path);
}

function openAt (path: string, flags: u16, base: u64): i32 {
  const r = resolve(path);
  if (r == null) { lastErrno = errno.BADF; return -1; }
  const p = String.UTF8.encode(r.rel);
  const err = path_open(r.dirfd, 0, changetype<usize>(p), <usize>p.byteLength, flags, base, 0, 0, changetype<usize>(scratch));
  if (err != 0) { lastErrno = err; return -1; }
  lastErrno = 0;
  return <i32>load<u32>(scratch);
}

/** Reads a whole file; null (and lastErrno set) when it cannot be read. */
export function readFile (path: string): ArrayBuffer | null {
  const fd = openAt(path, 0, rights.FD_READ | rights.FD_SEEK | rights.FD_FILESTAT_GET);
  if (fd < 0) return null;
  let out = new ArrayBuffer(0);
  const chunk = new ArrayBuffer(65536);
  while (true) {
    store<usize>(scratch, changetype<usize>(chunk), 8);
    store<usize>(scratch, <usize>chunk.byteLength, 12);
    const err = fd_read(<u32>fd, changetype<usize>(scratch) + 8, 1, changetype<usize>(scratch) + 16);
    if (err != 0) { lastErrno = err; fd_close(<u32>fd); return null; }
    const n = <i32>load<u32>(scratch, 16);
    if (n == 0) break;
    const next = new ArrayBuffer(out.byteLength + n);
    memory.copy(changetype<usize>(next), changetype<usize>(out), <usize>out.byteLength);
    memory.copy(changetype<usize>(next) + <usize>out.byteLength, changetype<usize>(chunk), <usize>n);
    out = next;
  }
  fd_close(<u32>fd);
  lastErrno = 0;
  return out;
}

/** Creates or truncates a file and writes data; false (lastErrno set) on failure. */
export function writeFile (path: string, data: ArrayBuffer): bool {
  const fd = openAt(path, oflags.CREAT | oflags.TRUNC, rights.FD_WRITE | rights.FD_SEEK | rights.FD_FILESTAT_GET);
  if (fd < 0) return false;
  let off: i32 = 0;
  while (off < data.byteLength) {
    store<usize>(scratch, changetype<usize>(data) + <usize>off, 8);
    store<usize>(scratch, <usize>(data.byteLength - off), 12);
    const err = fd_write(<u32>fd, changetype<usize>(scratch) + 8, 1, changetype<usize>(scratch) + 16);
    if (err != 0) { lastErrno = err; fd_close(<u32>fd); return false; }
    off += <i32>load<u32>(scratch, 16);
  }
  fd_close(<u32>fd);
  lastErrno = 0;
  return true;
}

/** Writes a UTF-8 string to a file. */
export function writeText (path: string, text: string): bool {
  return writeFile(path, String.UTF8.encode(text));
}

/** An environment variable, or "" when unset. */
export function env (name: string): string {
  return process.env.has(name) ? process.env.get(name) : "";
}

/** Creates a symbolic link at linkPath pointing to target; false (lastErrno set) on failure. */
export function symlink (target: string, linkPath: string): bool {
  const r = resolve(linkPath);
  if (r == null) { lastErrno = errno.BADF; return false; }
  const t = String.UTF8.encode(target);
  const p = String.UTF8.encode(r.rel);
  const err = path_symlink(changetype<usize>(t), <usize>t.byteLength, r.dirfd, changetype<usize>(p), <usize>p.byteLength);
  lastErrno = err;
  return err == 0;
}
