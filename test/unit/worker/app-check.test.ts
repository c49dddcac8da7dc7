// What `app publish` accepts, checked before anything goes on chain.
import assert from 'node:assert/strict'
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { appKind } from '../../../node/worker/app-kind.js'
import { AppCheckError, checkAppPath } from '../../../node/worker/app-check.js'
import { buildBinaryImage, layerOf, tarLayout, writeLayout } from './oci-builder.js'

describe('worker/app-check (app publish PATH)', function () {
  this.timeout(60_000)
  let root: string

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-app-check-test-'))
  })

  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  async function code (p: Promise<unknown>): Promise<string> {
    try {
      await p
    } catch (err) {
      if (err instanceof AppCheckError) return err.code
      throw err
    }
    return 'ACCEPTED'
  }

  it('takes a WASI module and a static binary for this architecture', async () => {
    await writeFile(join(root, 'm.wasm'), new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]))
    assert.equal((await checkAppPath(join(root, 'm.wasm'))).kind, 'wasi')
    const bin = await checkAppPath('/bin/busybox', { arch: 'x64' })
    assert.equal(bin.kind, 'native')
    assert.match(bin.detail, /x86-64/)
  })

  it('refuses a dynamic binary, one for another architecture, and what is none of the kinds', async () => {
    assert.equal(await code(checkAppPath('/bin/ls', { arch: 'x64' })), 'APP_NATIVE_UNRUNNABLE')
    assert.equal(await code(checkAppPath('/bin/busybox', { arch: 'arm64' })), 'APP_NATIVE_UNRUNNABLE')
    assert.equal(await code(checkAppPath('package.json')), 'APP_UNKNOWN_KIND')
  })

  it('takes an OCI layout folder (packed as a tar) and a layout tar, with their entrypoint', async () => {
    const layout = join(root, 'image')
    buildBinaryImage(layout, '/bin/busybox', { name: 'busybox', cmd: ['true'] })
    const progress: number[] = []
    const dir = await checkAppPath(layout, { arch: 'x64', onProgress: (n) => progress.push(n) })
    assert.equal(dir.kind, 'oci')
    assert.equal(appKind(dir.bytes.subarray(0, 512)), 'oci')
    assert.ok(progress.length > 0 && progress[progress.length - 1] === dir.bytes.byteLength)
    assert.match(dir.detail, /\["\/bin\/busybox","true"\]/)
    await writeFile(join(root, 'image.tar'), tarLayout(layout))
    assert.equal((await checkAppPath(join(root, 'image.tar'), { arch: 'x64' })).kind, 'oci')
    // the image is for amd64: a worker of another architecture could not run it
    assert.equal(await code(checkAppPath(layout, { arch: 'arm64' })), 'APP_IMAGE_INVALID')
  })

  it('refuses an image without a command, with a tampered blob, or a tar that is no layout', async () => {
    const layer = await layerOf(async (d) => { await mkdir(join(d, 'bin')); await cp('/bin/busybox', join(d, 'bin', 'busybox')) })
    const noCmd = join(root, 'nocmd')
    await writeLayout(noCmd, [layer], { os: 'linux', architecture: 'amd64', config: {} })
    assert.equal(await code(checkAppPath(noCmd, { arch: 'x64' })), 'APP_IMAGE_INVALID')
    const bad = join(root, 'bad')
    const { layerDigests } = await writeLayout(bad, [layer], { os: 'linux', architecture: 'amd64', config: { Entrypoint: ['/bin/busybox'] } })
    await writeFile(join(bad, 'blobs', 'sha256', layerDigests[0].slice(7)), Buffer.alloc(layer.byteLength))
    assert.equal(await code(checkAppPath(bad, { arch: 'x64' })), 'APP_IMAGE_INVALID')
    const junk = Buffer.alloc(2048)
    junk.write('ustar', 257)
    await writeFile(join(root, 'junk.tar'), junk)
    assert.equal(await code(checkAppPath(join(root, 'junk.tar'), { arch: 'x64' })), 'APP_IMAGE_INVALID')
  })
})
