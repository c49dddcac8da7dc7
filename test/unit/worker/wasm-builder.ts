// Builds tiny WebAssembly modules byte by byte for tests that need a module
// the example apps cannot be (no memory maximum, foreign imports, ...).

function uleb (n: number): number[] {
  const out: number[] = []
  do {
    let b = n & 0x7f
    n = Math.floor(n / 128)
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}

function name (s: string): number[] {
  const b = [...Buffer.from(s, 'utf8')]
  return [...uleb(b.length), ...b]
}

function section (id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body]
}

function limits (min: number, max?: number): number[] {
  return max === undefined ? [0x00, ...uleb(min)] : [0x01, ...uleb(min), ...uleb(max)]
}

export interface ModuleSpec {
  /** Defined memory limits in pages; omit for none. */
  memory?: { min: number, max?: number }
  /** Imported memory env.memory; omit for none. */
  importMemory?: { min: number, max?: number }
  /** Function imports; i32 params and results, () -> () by default. */
  importFunctions?: Array<{ module: string, name: string, params?: number, results?: number }>
  /** Instructions of _start (without the final `end`); empty by default. */
  startCode?: number[]
  /** Export a _start that returns at once (default true). */
  start?: boolean
}

/** A minimal module: an empty _start, and the memories and imports asked for. */
export function buildModule (spec: ModuleSpec): Uint8Array {
  const bytes: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]
  // Type 0 is () -> () for _start; each import gets its own type after it.
  const fns = spec.importFunctions ?? []
  const types: number[][] = [[0x60, 0, 0]]
  for (const f of fns) {
    const params = f.params ?? 0
    const results = f.results ?? 0
    types.push([0x60, params, ...Array<number>(params).fill(0x7f), results, ...Array<number>(results).fill(0x7f)])
  }
  bytes.push(...section(1, [...uleb(types.length), ...types.flat()]))
  const imports: number[][] = []
  fns.forEach((f, i) => { imports.push([...name(f.module), ...name(f.name), 0x00, ...uleb(i + 1)]) })
  if (spec.importMemory !== undefined) imports.push([...name('env'), ...name('memory'), 0x02, ...limits(spec.importMemory.min, spec.importMemory.max)])
  if (imports.length > 0) bytes.push(...section(2, [...uleb(imports.length), ...imports.flat()]))
  const nFuncImports = spec.importFunctions?.length ?? 0
  bytes.push(...section(3, [1, 0])) // one function of type 0
  if (spec.memory !== undefined) bytes.push(...section(5, [1, ...limits(spec.memory.min, spec.memory.max)]))
  const exports: number[][] = []
  if (spec.start !== false) exports.push([...name('_start'), 0x00, ...uleb(nFuncImports)])
  if (spec.memory !== undefined || spec.importMemory !== undefined) exports.push([...name('memory'), 0x02, 0])
  bytes.push(...section(7, [...uleb(exports.length), ...exports.flat()]))
  const body = [0x00, ...(spec.startCode ?? []), 0x0b] // no locals, code, end
  bytes.push(...section(10, [1, ...uleb(body.length), ...body]))
  return Uint8Array.from(bytes)
}
