import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { appKind, checkElf } from '../../../node/worker/app-kind.js'
import { KindExecutor, usableExecutors } from '../../../node/worker/executors.js'
import { NativeExecutor } from '../../../node/worker/native-executor.js'
import { WasiExecutor } from '../../../node/worker/wasi-executor.js'

describe('worker/app-kind and executors', function () {
  it('tells a WASI module, an ELF binary and a tar apart', async () => {
    assert.equal(appKind(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])), 'wasi')
    assert.equal(appKind(new Uint8Array(await readFile('/bin/busybox')).subarray(0, 512)), 'native')
    const tar = Buffer.alloc(512)
    tar.write('ustar', 257)
    assert.equal(appKind(tar), 'oci')
    assert.equal(appKind(new Uint8Array(600)), undefined)
    assert.equal(appKind(new Uint8Array(0)), undefined)
  })

  it('checks an ELF for this host: static, its architecture, an entry point', async () => {
    const bb = new Uint8Array(await readFile('/bin/busybox'))
    assert.equal(checkElf(bb, 'x64').ok, true)
    assert.match(checkElf(bb, 'arm64').reason ?? '', /x86-64/)
    assert.match(checkElf(new Uint8Array(await readFile('/bin/ls')), 'x64').reason ?? '', /dynamically linked/)
    const noEntry = Buffer.from(bb)
    noEntry.writeBigUInt64LE(0n, 24)
    assert.match(checkElf(noEntry, 'x64').reason ?? '', /entry/)
    const elf32 = Buffer.from(bb)
    elf32[4] = 1
    assert.equal(checkElf(elf32, 'x64').ok, false)
    assert.equal(checkElf(new Uint8Array(10), 'x64').ok, false)
  })

  it('keeps the executors that run here and says why the others are left out', () => {
    const u = usableExecutors(['wasi', 'native', 'docker', 'wasi'])
    assert.deepEqual(u.executors, ['wasi', 'native'])
    assert.deepEqual(u.dropped.map((d) => d.name), ['docker'])
    const missing = usableExecutors(['wasi', 'native'], () => new NativeExecutor({ host: { root: false, seccomp: false, cgroups: [] } }))
    assert.deepEqual(missing.executors, ['wasi'])
    assert.match(missing.dropped[0].reason, /bubblewrap/)
  })

  it('refuses a kind whose executor this node does not run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'iexec-kind-test-'))
    const wasiOnly = new KindExecutor(new WasiExecutor(), undefined)
    try {
      const r = await wasiOnly.run({
        taskId: '0x01', module: '/bin/busybox', args: [], inputDir: dir, outputDir: join(dir, 'out'), inputFiles: [],
        timeoutMs: 1000, maxMemoryBytes: 1 << 24, maxOutputBytes: 1 << 20
      })
      assert.equal(r.status, 'INVALID_MODULE')
      assert.match(r.message ?? '', /native executor/)
      assert.deepEqual(wasiOnly.executors, ['wasi'])
    } finally {
      await wasiOnly.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
