import assert from 'node:assert/strict'
import { escapesRoot, PREVIEW1_FUNCTIONS, WASI_ERRNO, wrapWasiImports } from '../../../node/worker/wasi-imports.js'
import { wasm } from '../../../node/worker/wasm-api.js'
import type { WasmMemory } from '../../../node/worker/wasm-api.js'

// A stand-in for node:wasi's import object (this module's unit test only):
// every call succeeds and is recorded.
function fakeWasi (): { raw: Record<string, unknown>, calls: string[] } {
  const calls: string[] = []
  const raw: Record<string, unknown> = {}
  for (const name of PREVIEW1_FUNCTIONS) raw[name] = (...args: unknown[]) => { calls.push(`${name}(${args.length})`); return 0 }
  raw.not_preview1 = () => 0
  return { raw, calls }
}

describe('worker/wasi-imports', () => {
  let memory: WasmMemory
  beforeEach(() => { memory = new wasm.Memory({ initial: 1, maximum: 1 }) })

  it('tells paths that leave their root', () => {
    for (const p of ['/etc/passwd', '..', '../x', 'a/../../x', './../x']) assert.equal(escapesRoot(p), true, p)
    for (const p of ['x', 'a/b', 'a/../b', './a', 'a/b/../../c', '']) assert.equal(escapesRoot(p), false, p)
  })

  it('passes only preview1 functions through', () => {
    const { imports } = wrapWasiImports(fakeWasi().raw, { seed: 't', maxWriteBytes: 10, maxFiles: 100, memory: () => memory })
    assert.equal('not_preview1' in imports, false)
    assert.deepEqual(new Set(Object.keys(imports)), PREVIEW1_FUNCTIONS)
  })

  it('gives a clock that moves forward identically on every run', () => {
    const read = (): bigint[] => {
      const { imports } = wrapWasiImports(fakeWasi().raw, { seed: 't', maxWriteBytes: 10, maxFiles: 100, memory: () => memory })
      const out: bigint[] = []
      for (let i = 0; i < 3; i++) {
        assert.equal(imports.clock_time_get(0, 1n, 64), WASI_ERRNO.SUCCESS)
        out.push(new DataView(memory.buffer).getBigUint64(64, true))
      }
      return out
    }
    const a = read()
    assert.ok(a[0] < a[1] && a[1] < a[2])
    assert.deepEqual(read(), a)
  })

  it('gives random bytes seeded by the task id', () => {
    const draw = (seed: string): string => {
      const { imports } = wrapWasiImports(fakeWasi().raw, { seed, maxWriteBytes: 10, maxFiles: 100, memory: () => memory })
      assert.equal(imports.random_get(100, 40), WASI_ERRNO.SUCCESS)
      assert.equal(imports.random_get(140, 40), WASI_ERRNO.SUCCESS)
      return Buffer.from(new Uint8Array(memory.buffer, 100, 80)).toString('hex')
    }
    const a = draw('task-1')
    assert.equal(draw('task-1'), a)
    assert.notEqual(draw('task-2'), a)
    const { imports } = wrapWasiImports(fakeWasi().raw, { seed: 's', maxWriteBytes: 10, maxFiles: 100, memory: () => memory })
    assert.equal(imports.random_get(65530, 100), WASI_ERRNO.FAULT, 'out of memory bounds')
  })

  it('refuses writes past the bound before they happen', () => {
    const { raw, calls } = fakeWasi()
    const { imports, state } = wrapWasiImports(raw, { seed: 's', maxWriteBytes: 10, maxFiles: 100, memory: () => memory })
    const dv = new DataView(memory.buffer)
    // Two iovecs at 0: (buf 100, len 4), (buf 200, len 3).
    dv.setUint32(0, 100, true); dv.setUint32(4, 4, true)
    dv.setUint32(8, 200, true); dv.setUint32(12, 3, true)
    assert.equal(imports.fd_write(1, 0, 2, 300), WASI_ERRNO.SUCCESS)
    assert.equal(state.bytesWritten, 7)
    assert.equal(imports.fd_write(5, 0, 2, 300), WASI_ERRNO.FBIG)
    assert.equal(state.outputTooLarge, true)
    assert.equal(calls.filter((c) => c.startsWith('fd_write')).length, 1, 'the refused write never reached node:wasi')
    assert.equal(imports.fd_allocate(5, 0n, 8n), WASI_ERRNO.SUCCESS)
    assert.equal(imports.fd_allocate(5, 8n, 1n << 40n), WASI_ERRNO.FBIG)
    assert.equal(imports.fd_filestat_set_size(5, 1n << 40n), WASI_ERRNO.FBIG)
    assert.equal(calls.filter((c) => c.startsWith('fd_allocate') || c.startsWith('fd_filestat_set_size')).length, 1)
  })

  it('refuses file and folder creations past the bound before they happen; opens without O_CREAT pass', () => {
    const { raw, calls } = fakeWasi()
    const { imports, state } = wrapWasiImports(raw, { seed: 's', maxWriteBytes: 10, maxFiles: 2, memory: () => memory })
    // path_open(fd, dirflags, path, path_len, oflags, ...): oflags 1 is O_CREAT
    assert.equal(imports.path_open(4, 0, 0, 1, 1, 0n, 0n, 0, 500), WASI_ERRNO.SUCCESS)
    assert.equal(imports.path_create_directory(4, 0, 1), WASI_ERRNO.SUCCESS)
    assert.equal(imports.path_open(4, 0, 0, 1, 1, 0n, 0n, 0, 500), WASI_ERRNO.DQUOT)
    assert.equal(imports.path_create_directory(4, 0, 1), WASI_ERRNO.DQUOT)
    assert.equal(state.tooManyFiles, true)
    assert.equal(imports.path_open(4, 0, 0, 1, 0, 0n, 0n, 0, 500), WASI_ERRNO.SUCCESS, 'opening an existing file is no creation')
    assert.equal(calls.filter((c) => c.startsWith('path_open') || c.startsWith('path_create_directory')).length, 3)
  })

  it('records path escapes and refuses links and signals', () => {
    const { raw, calls } = fakeWasi()
    const { imports, state } = wrapWasiImports(raw, { seed: 's', maxWriteBytes: 10, maxFiles: 100, memory: () => memory })
    const path = Buffer.from('../../etc/passwd')
    new Uint8Array(memory.buffer).set(path, 500)
    imports.path_open(3, 0, 500, path.length, 0, 0n, 0n, 0, 600)
    assert.deepEqual(state.violations, ['path_open("../../etc/passwd")'])
    assert.equal(imports.path_symlink(500, path.length, 4, 520, 1), WASI_ERRNO.NOTCAPABLE)
    assert.equal(imports.path_link(3, 0, 500, path.length, 4, 520, 1), WASI_ERRNO.NOTCAPABLE)
    assert.equal(imports.proc_raise(9), WASI_ERRNO.NOSYS)
    assert.deepEqual(state.violations, ['path_open("../../etc/passwd")', 'proc_raise(9)'])
    assert.equal(calls.some((c) => /^(path_symlink|path_link|proc_raise)/.test(c)), false)
  })

  it('never lets the app close or renumber the host\'s descriptors 0-2, and passes other closes through', () => {
    const { raw, calls } = fakeWasi()
    const { imports } = wrapWasiImports(raw, { seed: 's', maxWriteBytes: 10, maxFiles: 100, memory: () => memory })
    for (const fd of [0, 1, 2]) assert.equal(imports.fd_close(fd), WASI_ERRNO.SUCCESS, `fd_close(${fd}) looks done to the app`)
    assert.equal(imports.fd_renumber(5, 1), WASI_ERRNO.NOTCAPABLE)
    assert.equal(imports.fd_renumber(2, 5), WASI_ERRNO.NOTCAPABLE)
    assert.equal(calls.some((c) => /^fd_(close|renumber)/.test(c)), false, 'none reached node:wasi')
    imports.fd_close(5)
    imports.fd_renumber(5, 6)
    assert.deepEqual(calls.filter((c) => /^fd_(close|renumber)/.test(c)).length, 2, 'other descriptors are node:wasi\'s business')
  })
})
