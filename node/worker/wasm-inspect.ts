// Reads what WebAssembly's JS API does not tell: the limits of a module's
// memory. `WebAssembly.Module.imports/exports` give names and kinds only, and
// the executor must know the declared maximum before running anything.

/** Size of one WebAssembly page. */
export const WASM_PAGE_BYTES = 65536

/** Limits of one linear memory, in pages. */
export interface MemoryLimits {
  minPages: number
  /** Undefined when the module declares no maximum. */
  maxPages?: number
  shared: boolean
  memory64: boolean
}

/** Memories a module defines and imports. */
export interface MemoryInfo {
  defined: MemoryLimits[]
  imported: Array<MemoryLimits & { module: string, name: string }>
}

class Reader {
  pos = 0
  constructor (readonly bytes: Uint8Array, readonly end = bytes.length) {}

  byte (): number {
    if (this.pos >= this.end) throw new RangeError('unexpected end of module')
    return this.bytes[this.pos++]
  }

  // Unsigned LEB128. Memory64 limits are u64, kept as a number: anything past
  // 2^53 pages is far beyond every bound anyway.
  uleb (): number {
    let result = 0
    let mul = 1
    for (let i = 0; i < 10; i++) {
      const b = this.byte()
      result += (b & 0x7f) * mul
      if ((b & 0x80) === 0) return result
      mul *= 128
    }
    throw new RangeError('LEB128 too long')
  }

  skip (n: number): void {
    if (this.pos + n > this.end) throw new RangeError('unexpected end of module')
    this.pos += n
  }

  name (): string {
    const len = this.uleb()
    const start = this.pos
    this.skip(len)
    return new TextDecoder().decode(this.bytes.subarray(start, start + len))
  }

  limits (): MemoryLimits {
    const flags = this.byte()
    if (flags > 0x07) throw new RangeError(`unknown limits flags 0x${flags.toString(16)}`)
    const minPages = this.uleb()
    const hasMax = (flags & 0x01) !== 0
    const out: MemoryLimits = { minPages, shared: (flags & 0x02) !== 0, memory64: (flags & 0x04) !== 0 }
    if (hasMax) out.maxPages = this.uleb()
    return out
  }
}

/**
 * Lists the memories of a module (binary format 1.0 with the threads and
 * memory64 limit flags). Throws a RangeError on a malformed module; the
 * executor turns it into INVALID_MODULE.
 */
export function inspectMemories (bytes: Uint8Array): MemoryInfo {
  const r = new Reader(bytes)
  const magic = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]
  for (const m of magic) if (r.byte() !== m) throw new RangeError('not a WebAssembly 1.0 module')
  const info: MemoryInfo = { defined: [], imported: [] }
  while (r.pos < r.end) {
    const id = r.byte()
    const size = r.uleb()
    const sectionEnd = r.pos + size
    if (sectionEnd > r.end) throw new RangeError('section past the end of the module')
    if (id === 2) {
      const s = new Reader(bytes, sectionEnd)
      s.pos = r.pos
      const count = s.uleb()
      for (let i = 0; i < count; i++) {
        const module = s.name()
        const name = s.name()
        const kind = s.byte()
        if (kind === 0) s.uleb() // function: type index
        else if (kind === 1) { s.byte(); s.limits() } // table: reftype, limits
        else if (kind === 2) info.imported.push({ module, name, ...s.limits() })
        else if (kind === 3) { s.byte(); s.byte() } // global: valtype, mutability
        else if (kind === 4) { s.byte(); s.uleb() } // tag (exceptions): attribute, type
        else throw new RangeError(`unknown import kind ${kind}`)
      }
    } else if (id === 5) {
      const s = new Reader(bytes, sectionEnd)
      s.pos = r.pos
      const count = s.uleb()
      for (let i = 0; i < count; i++) info.defined.push(s.limits())
    }
    r.pos = sectionEnd
  }
  return info
}

function uleb (n: number): number[] {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}

/**
 * The module with each memory it defines bounded at `maxPages`: a declared
 * maximum above it is lowered, a missing one is added. Everything else is
 * copied byte for byte (no offset in a module is absolute across sections).
 * `memory.grow` past the bound then fails inside the app, as the spec lets
 * any engine do, so the app's allocator sees an ordinary out-of-memory: the
 * bound is the executor's, whatever the toolchain declared (clang, Rust and
 * TinyGo declare none by default). The caller checks first that no minimum
 * is above the bound. Throws a RangeError on a malformed module.
 */
export function boundMemory (bytes: Uint8Array, maxPages: number): Uint8Array {
  const r = new Reader(bytes)
  r.skip(8)
  const parts: Uint8Array[] = [bytes.subarray(0, 8)]
  let from = 8
  while (r.pos < r.end) {
    const start = r.pos
    const id = r.byte()
    const size = r.uleb()
    const sectionEnd = r.pos + size
    if (sectionEnd > r.end) throw new RangeError('section past the end of the module')
    if (id === 5) {
      const s = new Reader(bytes, sectionEnd)
      s.pos = r.pos
      const count = s.uleb()
      const body: number[] = [...uleb(count)]
      for (let i = 0; i < count; i++) {
        const l = s.limits()
        if (l.memory64) throw new RangeError('64-bit memories are not supported')
        const max = Math.min(l.maxPages ?? maxPages, maxPages)
        body.push((l.shared ? 0x02 : 0x00) | 0x01, ...uleb(l.minPages), ...uleb(max))
      }
      if (s.pos !== sectionEnd) throw new RangeError('memory section has trailing bytes')
      parts.push(bytes.subarray(from, start), Uint8Array.from([5, ...uleb(body.length), ...body]))
      from = sectionEnd
    }
    r.pos = sectionEnd
  }
  parts.push(bytes.subarray(from))
  return new Uint8Array(Buffer.concat(parts))
}
