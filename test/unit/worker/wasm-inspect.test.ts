import assert from 'node:assert/strict'
import { boundMemory, inspectMemories } from '../../../node/worker/wasm-inspect.js'
import { buildModule } from './wasm-builder.js'

describe('worker/wasm-inspect', () => {
  it('reads a defined memory with a maximum', () => {
    const info = inspectMemories(buildModule({ memory: { min: 2, max: 300 } }))
    assert.deepEqual(info.imported, [])
    assert.deepEqual(info.defined, [{ minPages: 2, maxPages: 300, shared: false, memory64: false }])
  })

  it('reads a defined memory without a maximum', () => {
    const info = inspectMemories(buildModule({ memory: { min: 1 } }))
    assert.equal(info.defined[0].maxPages, undefined)
  })

  it('reads an imported memory after function imports', () => {
    const info = inspectMemories(buildModule({ importFunctions: [{ module: 'wasi_snapshot_preview1', name: 'proc_exit' }], importMemory: { min: 3, max: 9 } }))
    assert.deepEqual(info.defined, [])
    assert.equal(info.imported.length, 1)
    assert.equal(info.imported[0].module, 'env')
    assert.equal(info.imported[0].name, 'memory')
    assert.equal(info.imported[0].minPages, 3)
    assert.equal(info.imported[0].maxPages, 9)
  })

  it('agrees with the engine that the test modules are valid', async () => {
    for (const spec of [{ memory: { min: 1, max: 2 } }, { importMemory: { min: 1 } }]) {
      const compile = (globalThis as unknown as { WebAssembly: { compile: (b: Uint8Array) => Promise<unknown> } }).WebAssembly.compile
      await compile(buildModule(spec))
    }
  })

  it('rejects what is not a module', () => {
    assert.throws(() => inspectMemories(Buffer.from('not wasm at all')), RangeError)
    const truncated = buildModule({ memory: { min: 1, max: 2 } }).subarray(0, 20)
    assert.throws(() => inspectMemories(truncated), RangeError)
  })

  it('boundMemory adds a missing maximum, lowers a larger one, keeps a smaller one, and the engine accepts the result', async () => {
    const compile = (globalThis as unknown as { WebAssembly: { compile: (b: Uint8Array) => Promise<unknown> } }).WebAssembly.compile
    const cases: Array<[{ min: number, max?: number }, number]> = [[{ min: 2 }, 40], [{ min: 2, max: 300 }, 40], [{ min: 2, max: 10 }, 10]]
    for (const [memory, expected] of cases) {
      const bounded = boundMemory(buildModule({ memory, startCode: [] }), 40)
      assert.deepEqual(inspectMemories(bounded).defined, [{ minPages: 2, maxPages: expected, shared: false, memory64: false }])
      await compile(bounded)
    }
    // an imported memory is the host's to bound: the bytes stay as they are
    const imported = buildModule({ importMemory: { min: 1 } })
    assert.deepEqual(boundMemory(imported, 40), imported)
    assert.throws(() => boundMemory(buildModule({ memory: { min: 1 } }).subarray(0, 20), 40), RangeError)
  })
})
