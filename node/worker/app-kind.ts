// What an app is, from its first bytes: a WASI module, a native Linux
// binary (ELF), or an OCI image (an image layout or docker-archive as a
// tar). Used by the worker to pick an executor, by the provider to bid only
// for apps it can run, and by `app publish` to check an app before anything
// goes on chain.
import { arch } from 'node:os'

export type AppKind = 'wasi' | 'native' | 'oci'

/** Bytes of an app's head that `appKind` needs. */
export const APP_HEAD_BYTES = 512

/** The executor that runs each kind. */
export const EXECUTOR_OF: Readonly<Record<AppKind, string>> = { wasi: 'wasi', native: 'native', oci: 'native' }

function isTar (head: Uint8Array): boolean {
  if (head.byteLength < 263) return false
  const magic = Buffer.from(head.subarray(257, 262)).toString('latin1')
  return magic === 'ustar'
}

/** The kind of an app from its head (at least APP_HEAD_BYTES when it is that long); undefined when none. */
export function appKind (head: Uint8Array): AppKind | undefined {
  if (head.byteLength >= 4 && head[0] === 0x00 && head[1] === 0x61 && head[2] === 0x73 && head[3] === 0x6d) return 'wasi'
  if (head.byteLength >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) return 'native'
  if (isTar(head)) return 'oci'
  return undefined
}

/** ELF e_machine of this host's architecture. */
const HOST_MACHINE: Record<string, number> = { x64: 62, arm64: 183, riscv64: 243 }
const MACHINE_NAME: Record<number, string> = { 3: 'x86', 40: 'arm', 62: 'x86-64', 183: 'aarch64', 243: 'riscv' }

/** What an ELF binary's headers say about running it in an empty sandbox here. */
export interface ElfCheck {
  ok: boolean
  /** why it cannot run here */
  reason?: string
  machine: string
}

/**
 * Checks an ELF binary for the native executor: 64-bit little-endian, an
 * executable (or static-pie) for this host's architecture, with an entry
 * point and no program interpreter (statically linked: the sandbox's root
 * holds nothing but the binary).
 */
export function checkElf (bytes: Uint8Array, hostArch: string = arch()): ElfCheck {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (b.byteLength < 64 || b.readUInt32BE(0) !== 0x7f454c46) return { ok: false, reason: 'not an ELF file', machine: 'unknown' }
  if (b[4] !== 2) return { ok: false, reason: 'not a 64-bit ELF', machine: 'unknown' }
  if (b[5] !== 1) return { ok: false, reason: 'not little-endian', machine: 'unknown' }
  const type = b.readUInt16LE(16)
  const machineId = b.readUInt16LE(18)
  const machine = MACHINE_NAME[machineId] ?? `e_machine ${machineId}`
  if (machineId !== HOST_MACHINE[hostArch]) return { ok: false, reason: `built for ${machine}, this host is ${hostArch}`, machine }
  if (type !== 2 && type !== 3) return { ok: false, reason: 'not an executable', machine }
  const entry = b.readBigUInt64LE(24)
  if (entry === 0n) return { ok: false, reason: 'no entry point', machine }
  const phoff = Number(b.readBigUInt64LE(32))
  const phentsize = b.readUInt16LE(54)
  const phnum = b.readUInt16LE(56)
  if (phentsize < 56 || phoff + phnum * phentsize > b.byteLength) return { ok: false, reason: 'program headers out of the file', machine }
  for (let i = 0; i < phnum; i++) {
    // PT_INTERP: it needs a dynamic loader and libraries the sandbox does not hold
    if (b.readUInt32LE(phoff + i * phentsize) === 3) return { ok: false, reason: 'dynamically linked (needs a loader): build it static', machine }
  }
  return { ok: true, machine }
}
