// Builds the example apps (AssemblyScript + @assemblyscript/wasi-shim, both
// from node_modules, so it runs offline) into examples/apps/<name>/<name>.wasm.
//
//   node --import tsx examples/build-apps.ts           rebuild every app
//   node --import tsx examples/build-apps.ts --check   rebuild in memory and fail
//                                                       if a committed .wasm differs
//
// The compiler is deterministic for a given version and set of flags, and the
// paths handed to it are relative to the repository root, so the bytes do not
// depend on where the checkout lives.
import asc from 'assemblyscript/asc'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** One example app and the compiler flags it needs. */
export interface AppSpec {
  name: string
  /** What the app is for, shown by the build. */
  about: string
  /** Extra asc flags for this app (memory bound mostly). */
  flags: string[]
}

// Memory bounds are in 64 KiB pages. The WASI executor bounds every app's
// memory itself (a module without a maximum gets the job's bound, one above it
// is lowered to it); these apps declare their own smaller maximum, and `grow`
// imports its memory so the host's memory is what stops it.
export const APPS: AppSpec[] = [
  { name: 'wordcount', about: 'counts lines/words/bytes of the dataset and input files', flags: ['--maximumMemory', '1024'] },
  { name: 'foldercount', about: 'counts lines/words/bytes of named files in a folder dataset', flags: ['--maximumMemory', '1024'] },
  // 50 M-entry sieve (the app's cap) needs ~48 MiB of bytes plus strings.
  { name: 'primes', about: 'prime sieve up to N (compute-heavy)', flags: ['--maximumMemory', '1024'] },
  // 4096 x 4096 pixels (the app's cap) is 16 MiB.
  // 10 M-entry sieve (the app's cap): ~10 MiB.
  { name: 'primecount', about: 'counts primes <= N; callback-data for a smart contract (examples/dapp)', flags: ['--maximumMemory', '512'] },
  { name: 'mandelbrot', about: 'Mandelbrot tile to a PGM (compute-heavy)', flags: ['--maximumMemory', '1024'] },
  { name: 'fail', about: 'prints to stderr and exits with code 3', flags: ['--maximumMemory', '16'] },
  { name: 'escape', about: 'sandbox probe: reads outside IEXEC_IN, writes into it', flags: ['--maximumMemory', '16'] },
  { name: 'spin', about: 'sandbox probe: loops forever', flags: ['--maximumMemory', '16'] },
  { name: 'grow', about: 'sandbox probe: allocates until the memory bound stops it', flags: ['--importMemory'] },
  { name: 'env', about: 'prints args, env, clock and random bytes', flags: ['--maximumMemory', '16'] },
  { name: 'bigout', about: 'writes N bytes to a file or stdout (output bound probe)', flags: ['--maximumMemory', '1024'] },
  { name: 'copy', about: 'copies the dataset to its output (what a dataset allow-list stops)', flags: ['--maximumMemory', '1024'] }
]

// Flags shared by every app: WASI imports instead of web APIs, the smallest
// runtime (apps are short-lived commands, no GC needed), optimized, and no
// debug names or source maps that would make the output path-dependent.
const COMMON_FLAGS = [
  '--config', 'node_modules/@assemblyscript/wasi-shim/asconfig.json',
  '--runtime', 'stub',
  '-O3',
  '--noAssert'
]

/** The repository root (this file lives in examples/). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Path of an app's committed module. */
export function appWasmPath (name: string): string {
  return join(REPO_ROOT, 'examples', 'apps', name, `${name}.wasm`)
}

/** Compiles one app in memory and returns the module bytes. */
export async function compileApp (app: AppSpec): Promise<Uint8Array> {
  let wasm: Uint8Array | undefined
  const outName = `${app.name}.wasm`
  const result = await asc.main([
    `examples/apps/${app.name}/assembly/index.ts`,
    ...COMMON_FLAGS,
    ...app.flags,
    '--outFile', outName
  ], {
    readFile: async (file: string, baseDir: string): Promise<string | null> => {
      try { return await readFile(resolve(REPO_ROOT, baseDir, file), 'utf8') } catch { return null }
    },
    writeFile: (file: string, contents: Uint8Array | string): void => {
      if (file.endsWith(outName) && typeof contents !== 'string') wasm = contents
    },
    // The wasi-shim's lib folder is listed so its files become library files.
    listFiles: async (dir: string, baseDir: string): Promise<string[] | null> => {
      try { return (await readdir(resolve(REPO_ROOT, baseDir, dir))).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')) } catch { return null }
    },
    reportDiagnostic: () => {}
  })
  if (result.error !== null) throw new Error(`asc failed for ${app.name}: ${result.error.message}\n${result.stderr.toString()}`)
  if (wasm === undefined) throw new Error(`asc produced no module for ${app.name}`)
  return wasm
}

/** Result of comparing a fresh build with the committed module. */
export interface AppCheck { name: string, ok: boolean, reason?: string }

/** Rebuilds every app in memory and compares with the committed .wasm files. */
export async function checkApps (apps: AppSpec[] = APPS): Promise<AppCheck[]> {
  const out: AppCheck[] = []
  for (const app of apps) {
    const fresh = await compileApp(app)
    let committed: Uint8Array
    try {
      committed = await readFile(appWasmPath(app.name))
    } catch {
      out.push({ name: app.name, ok: false, reason: 'no committed .wasm' })
      continue
    }
    const same = Buffer.compare(Buffer.from(fresh), Buffer.from(committed)) === 0
    out.push(same ? { name: app.name, ok: true } : { name: app.name, ok: false, reason: `differs (${fresh.byteLength} built vs ${committed.byteLength} committed bytes)` })
  }
  return out
}

/** Rebuilds every app and writes examples/apps/<name>/<name>.wasm. */
export async function buildApps (apps: AppSpec[] = APPS): Promise<void> {
  for (const app of apps) {
    const t0 = performance.now()
    const wasm = await compileApp(app)
    await writeFile(appWasmPath(app.name), wasm)
    process.stdout.write(`built ${app.name}.wasm (${wasm.byteLength} bytes, ${Math.round(performance.now() - t0)} ms): ${app.about}\n`)
  }
}

async function main (): Promise<void> {
  if (process.argv.includes('--check')) {
    const checks = await checkApps()
    for (const c of checks) process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}${c.reason !== undefined ? `: ${c.reason}` : ''}\n`)
    if (checks.some((c) => !c.ok)) {
      process.stderr.write('committed .wasm files do not match their sources: run node --import tsx examples/build-apps.ts\n')
      process.exit(1)
    }
    return
  }
  await buildApps()
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await main()
}
