// The project compiles without the DOM lib, where TypeScript declares the
// WebAssembly JS API, and @types/node 20 does not declare it either. These are
// the few parts the executor uses, typed locally rather than as globals so
// nothing leaks into other modules' types.

/** A compiled module (opaque; can be posted to a worker thread). */
export interface WasmModule { readonly __wasmModule?: never }

/** A linear memory. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow: (deltaPages: number) => number
}

/** An instantiated module. */
export interface WasmInstance {
  readonly exports: Record<string, unknown>
}

/** An import or export descriptor. */
export interface WasmDescriptor { module?: string, name: string, kind: 'function' | 'table' | 'memory' | 'global' | 'tag' }

/** Import object: module name -> field name -> value. */
export type WasmImports = Record<string, Record<string, unknown>>

interface WasmApi {
  compile: (bytes: Uint8Array) => Promise<WasmModule>
  validate: (bytes: Uint8Array) => boolean
  Module: {
    new (bytes: Uint8Array): WasmModule
    imports: (m: WasmModule) => Array<WasmDescriptor & { module: string }>
    exports: (m: WasmModule) => WasmDescriptor[]
  }
  Instance: new (m: WasmModule, imports: WasmImports) => WasmInstance
  Memory: new (desc: { initial: number, maximum?: number }) => WasmMemory
}

/** The WebAssembly global, typed. */
export const wasm: WasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

/** True when `v` is a WebAssembly.Memory. */
export function isWasmMemory (v: unknown): v is WasmMemory {
  return v instanceof (wasm.Memory as unknown as new () => object)
}
