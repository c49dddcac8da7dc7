// A seccomp filter for native sandboxes, assembled here as classic BPF (no
// compiler or libseccomp at run time): bubblewrap loads it from a descriptor
// (`--seccomp FD`) as an array of struct sock_filter. It denies, with EPERM,
// the syscalls that create sockets or namespaces, mount file systems or
// reach into the kernel (modules, bpf, keyrings, ptrace, io_uring, which can
// open sockets on its own); clone with a CLONE_NEW* flag is denied, and
// clone3, whose flags sit in memory a filter cannot read, answers ENOSYS so
// that libcs fall back to clone. Everything else is allowed: the namespaces,
// the read-only root and the rlimits are the other layers.
//
// x86-64 only: other architectures run without a filter and the executor's
// status says so. The x32 ABI (syscall numbers with bit 30) is denied whole,
// and a foreign architecture (an i386 binary) kills the process.
import { arch } from 'node:os'

const AUDIT_ARCH_X86_64 = 0xc000003e
const X32_SYSCALL_BIT = 0x40000000

const BPF_LD_W_ABS = 0x20
const BPF_JEQ_K = 0x15
const BPF_JGE_K = 0x35
const BPF_JSET_K = 0x45
const BPF_RET_K = 0x06

const RET_ALLOW = 0x7fff0000
const RET_KILL_PROCESS = 0x80000000
const RET_ERRNO = 0x00050000
const EPERM = 1
const ENOSYS = 38

/** Offsets in struct seccomp_data. */
const NR = 0
const ARCH = 4
const ARG0_LOW = 16

/** CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (and CLONE_NEWTIME, 0x80). */
const CLONE_NEW_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80

/** x86-64 syscalls denied with EPERM, by name (the names are for tests and people). */
export const DENIED_SYSCALLS_X86_64: Readonly<Record<string, number>> = {
  socket: 41,
  ptrace: 101,
  syslog: 103,
  pivot_root: 155,
  chroot: 161,
  acct: 163,
  mount: 165,
  umount2: 166,
  swapon: 167,
  swapoff: 168,
  reboot: 169,
  sethostname: 170,
  setdomainname: 171,
  iopl: 172,
  ioperm: 173,
  init_module: 175,
  delete_module: 176,
  quotactl: 179,
  kexec_load: 246,
  add_key: 248,
  request_key: 249,
  keyctl: 250,
  unshare: 272,
  perf_event_open: 298,
  open_by_handle_at: 304,
  setns: 308,
  finit_module: 313,
  kexec_file_load: 320,
  bpf: 321,
  userfaultfd: 323,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  mount_setattr: 442
}
const CLONE = 56
const CLONE3 = 435

interface Insn { code: number, jt: number | string, jf: number | string, k: number, label?: string }

/** Resolves symbolic jump targets (labels) to the relative offsets BPF wants, and encodes 8 bytes per instruction. */
function assemble (prog: Insn[]): Buffer {
  const at = new Map<string, number>()
  prog.forEach((insn, i) => { if (insn.label !== undefined) at.set(insn.label, i) })
  const out = Buffer.alloc(prog.length * 8)
  prog.forEach((insn, i) => {
    const rel = (j: number | string): number => {
      if (typeof j === 'number') return j
      const target = at.get(j)
      if (target === undefined || target <= i || target - i - 1 > 255) throw new Error(`bad BPF jump to ${j}`)
      return target - i - 1
    }
    out.writeUInt16LE(insn.code, i * 8)
    out.writeUInt8(rel(insn.jt), i * 8 + 2)
    out.writeUInt8(rel(insn.jf), i * 8 + 3)
    out.writeUInt32LE(insn.k >>> 0, i * 8 + 4)
  })
  return out
}

/** Whether this host's architecture has a filter. */
export function seccompSupported (): boolean {
  return arch() === 'x64'
}

/** The filter as bubblewrap reads it (struct sock_filter[], host byte order); undefined where unsupported. */
export function buildSeccompFilter (): Buffer | undefined {
  if (!seccompSupported()) return undefined
  const prog: Insn[] = [
    { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: ARCH },
    { code: BPF_JEQ_K, jt: 0, jf: 'kill', k: AUDIT_ARCH_X86_64 },
    { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: NR },
    { code: BPF_JGE_K, jt: 'eperm', jf: 0, k: X32_SYSCALL_BIT },
    { code: BPF_JEQ_K, jt: 'clone', jf: 0, k: CLONE },
    { code: BPF_JEQ_K, jt: 'enosys', jf: 0, k: CLONE3 }
  ]
  for (const nr of Object.values(DENIED_SYSCALLS_X86_64)) prog.push({ code: BPF_JEQ_K, jt: 'eperm', jf: 0, k: nr })
  prog.push(
    { code: BPF_RET_K, jt: 0, jf: 0, k: RET_ALLOW, label: 'allow' },
    { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: ARG0_LOW, label: 'clone' },
    { code: BPF_JSET_K, jt: 'eperm', jf: 0, k: CLONE_NEW_FLAGS },
    { code: BPF_RET_K, jt: 0, jf: 0, k: RET_ALLOW },
    { code: BPF_RET_K, jt: 0, jf: 0, k: RET_ERRNO | EPERM, label: 'eperm' },
    { code: BPF_RET_K, jt: 0, jf: 0, k: RET_ERRNO | ENOSYS, label: 'enosys' },
    { code: BPF_RET_K, jt: 0, jf: 0, k: RET_KILL_PROCESS, label: 'kill' }
  )
  return assemble(prog)
}
