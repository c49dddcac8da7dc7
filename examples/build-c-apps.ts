// Builds the C example apps (examples/c/*.c) into WASI modules with Debian's
// clang, lld and wasi-libc (`apt-get install clang lld wasi-libc
// libclang-rt-14-dev-wasm32`; .ci/run installs them). The modules are not
// committed: the tests build them, so a second toolchain's output (no memory
// maximum declared, wasi-libc's start-up) is what the executor is tested on.
//
//   node --import tsx examples/build-c-apps.ts OUTDIR     build every C app into OUTDIR
import { execFile } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The C apps: the contract example and the sandbox probes. */
export const C_APPS = ['linecount', 'sleep', 'hog', 'manyfiles'] as const
export type CApp = typeof C_APPS[number]

const HERE = dirname(fileURLToPath(import.meta.url))

/** The flags every C app is built with: wasm32-wasi against Debian's wasi-libc in /usr, stripped. */
export const CLANG_FLAGS = ['--target=wasm32-wasi', '--sysroot=/usr', '-O2', '-Wl,--strip-all']

/** Builds one C app into `out` (a .wasm path); throws with clang's message when it fails or is missing. */
export async function buildCApp (name: CApp, out: string): Promise<string> {
  await mkdir(dirname(out), { recursive: true })
  try {
    await run('clang', [...CLANG_FLAGS, '-o', out, join(HERE, 'c', `${name}.c`)])
  } catch (err) {
    const e = err as { code?: string, stderr?: string }
    if (e.code === 'ENOENT') throw new Error('clang is not installed: apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32')
    throw new Error(`clang failed for ${name}: ${e.stderr ?? String(err)}`)
  }
  return out
}

/** Builds every C app into `dir`; their paths by name. */
export async function buildCApps (dir: string): Promise<Record<CApp, string>> {
  const out: Partial<Record<CApp, string>> = {}
  for (const name of C_APPS) out[name] = await buildCApp(name, join(dir, `${name}.wasm`))
  return out as Record<CApp, string>
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = resolve(process.argv[2] ?? 'build/c-apps')
  const built = await buildCApps(dir)
  for (const [name, path] of Object.entries(built)) process.stdout.write(`built ${name}: ${path}\n`)
}
