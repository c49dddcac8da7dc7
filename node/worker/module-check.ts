// What makes a module runnable by the WASI executor, checked without running
// it: by the executor before every run (INVALID_MODULE), by `app publish`
// before anything goes on chain, and by a provider before it bids.
import { PREVIEW1_FUNCTIONS } from './wasi-imports.js'
import { wasm } from './wasm-api.js'
import { inspectMemories } from './wasm-inspect.js'

/** Why a module cannot run in the WASI executor. */
export type ModuleProblemCode =
  /** Not a valid WebAssembly module (bad header, malformed or invalid code). */
  | 'MODULE_NOT_WASM'
  /** Imports something outside WASI preview1 (and env.memory). */
  | 'MODULE_FOREIGN_IMPORTS'
  /** Not a WASI command: no `_start` function export (a reactor or a library). */
  | 'MODULE_NOT_COMMAND'
  /** Not exactly one 32-bit, unshared linear memory. */
  | 'MODULE_UNSUPPORTED_MEMORY'

/** The outcome of checkWasiModule. */
export type ModuleCheck =
  | { ok: true, memory: { imported: boolean, limits: { minPages: number, maxPages?: number } } }
  | { ok: false, code: ModuleProblemCode, message: string }

/** Checks that `bytes` is a WASI preview1 command the executor can run, whatever the toolchain that built it. */
export async function checkWasiModule (bytes: Uint8Array): Promise<ModuleCheck> {
  let module
  try {
    module = await wasm.compile(bytes)
  } catch (err) {
    return { ok: false, code: 'MODULE_NOT_WASM', message: `not a valid WebAssembly module: ${(err as Error).message}` }
  }
  const foreign = wasm.Module.imports(module).filter((imp) => {
    if (imp.module === 'wasi_snapshot_preview1' && imp.kind === 'function' && PREVIEW1_FUNCTIONS.has(imp.name)) return false
    if (imp.module === 'env' && imp.name === 'memory' && imp.kind === 'memory') return false
    return true
  })
  if (foreign.length > 0) {
    const list = foreign.slice(0, 5).map((i) => `${i.module}.${i.name} (${i.kind})`).join(', ')
    return { ok: false, code: 'MODULE_FOREIGN_IMPORTS', message: `imports outside WASI preview1: ${list}${foreign.length > 5 ? ` and ${foreign.length - 5} more` : ''}` }
  }
  if (!wasm.Module.exports(module).some((e) => e.name === '_start' && e.kind === 'function')) {
    return { ok: false, code: 'MODULE_NOT_COMMAND', message: 'not a WASI command: no _start export (build an executable, not a library or reactor)' }
  }
  let info
  try {
    info = inspectMemories(bytes)
  } catch (err) {
    return { ok: false, code: 'MODULE_NOT_WASM', message: `malformed module: ${(err as Error).message}` }
  }
  if (info.imported.length + info.defined.length !== 1) {
    return { ok: false, code: 'MODULE_UNSUPPORTED_MEMORY', message: `a WASI app needs exactly one memory, this one has ${info.imported.length + info.defined.length}` }
  }
  const limits = info.imported[0] ?? info.defined[0]
  if (limits.shared || limits.memory64) return { ok: false, code: 'MODULE_UNSUPPORTED_MEMORY', message: 'shared and 64-bit memories are not supported' }
  return {
    ok: true,
    memory: {
      imported: info.imported.length === 1,
      limits: { minPages: limits.minPages, ...(limits.maxPages !== undefined ? { maxPages: limits.maxPages } : {}) }
    }
  }
}
