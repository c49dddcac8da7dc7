// OCI images in the native executor: a busybox image built with umoci runs
// from a folder and from a tar, is unpacked once, and what a layout may not
// do (tampered blobs, another platform, no command, oversized layers, a
// symlink that would carry a later layer's file outside the root) is refused
// or kept inside.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { appendFile, chmod, cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NativeExecutor } from '../../../node/worker/native-executor.js'
import type { ExecJob } from '../../../node/worker/executor.js'
import { checkLayout, OciImages, OciRefused } from '../../../node/worker/oci-image.js'
import { buildBinaryImage, layerOf, tarLayout, writeLayout } from './oci-builder.js'

const caps = { maxLayerBytes: 64 * 1024 * 1024, maxImageBytes: 128 * 1024 * 1024, maxLayers: 8 }

describe('worker/oci-image', function () {
  this.timeout(120_000)
  let root: string
  let stage: string
  let layout: string
  let images: OciImages
  let executor: NativeExecutor
  let n = 0

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-oci-test-'))
    layout = join(root, 'busybox-image')
    buildBinaryImage(layout, '/bin/busybox', { name: 'busybox', cmd: ['sh', '-c', 'echo default'] })
    await mkdir(join(root, 'in'))
    await writeFile(join(root, 'in', 'data.txt'), 'image input\n')
  })

  beforeEach(async () => {
    stage = await mkdtemp(join(tmpdir(), 'iexec-oci-stage-'))
    await chmod(stage, 0o711)
    images = new OciImages({ cacheDir: join(stage, 'images'), ...caps })
    executor = new NativeExecutor({ stageDir: stage, images: images.preparer, firstSandboxUid: 310_000, sandboxUids: 10 })
  })

  afterEach(async () => {
    await executor.close()
    await rm(stage, { recursive: true, force: true })
  })

  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  function job (module: ExecJob['module'], args: string[]): ExecJob {
    return {
      taskId: '0x' + '01'.repeat(32), module, args, inputDir: join(root, 'in'), outputDir: join(root, `out-${++n}`),
      datasetFilename: 'data.txt', inputFiles: [], timeoutMs: 30_000, maxMemoryBytes: 128 * 1024 * 1024, maxOutputBytes: 1024 * 1024
    }
  }

  async function code (p: Promise<unknown>): Promise<string> {
    try {
      await p
    } catch (err) {
      if (err instanceof OciRefused) return err.code
      throw err
    }
    return 'ACCEPTED'
  }

  it('runs an image from its layout folder, its cmd when the request has no args, and unpacks it once', async () => {
    const first = job(layout, [])
    const r1 = await executor.run(first)
    assert.equal(r1.status, 'COMPLETED', r1.message)
    assert.equal(await readFile(join(first.outputDir, 'stdout.txt'), 'utf8'), 'default\n')
    const second = job(layout, ['sh', '-c', 'cat /iexec_in/$IEXEC_DATASET_FILENAME; pwd; echo $PATH > /iexec_out/path'])
    const r2 = await executor.run(second)
    assert.equal(r2.status, 'COMPLETED', r2.message)
    assert.equal(await readFile(join(second.outputDir, 'stdout.txt'), 'utf8'), 'image input\n/iexec_out\n')
    // the image's environment (umoci's default PATH) is kept beside the IEXEC_ variables
    assert.match(await readFile(join(second.outputDir, 'path'), 'utf8'), /\/bin/)
    assert.equal(images.unpacks, 1)
  })

  it('runs the same image from a tar (bytes) without unpacking it again', async () => {
    const tar = tarLayout(layout)
    const a = await executor.run(job(new Uint8Array(tar), ['sh', '-c', 'echo from tar']))
    assert.equal(a.status, 'COMPLETED', a.message)
    const b = await executor.run(job(new Uint8Array(tar), ['sh', '-c', 'echo again']))
    assert.equal(b.status, 'COMPLETED', b.message)
    assert.equal(images.unpacks, 1)
  })

  it('checks a tar file once, and again once it is rewritten', async () => {
    const file = join(root, 'image-file.tar')
    await writeFile(file, tarLayout(layout))
    for (const word of ['one', 'two']) {
      const r = await executor.run(job(file, ['sh', '-c', `echo ${word}`]))
      assert.equal(r.status, 'COMPLETED', r.message)
    }
    assert.equal(images.checks, 1, 'the same file: read and checked once')
    await writeFile(file, Buffer.concat([tarLayout(layout).subarray(0, 1024), Buffer.alloc(1024)]))
    assert.equal((await executor.run(job(file, []))).status, 'INVALID_MODULE')
    assert.equal(images.checks, 2)
  })

  it('keeps an image sandboxed: read-only root, no network', async () => {
    const j = job(layout, ['sh', '-c', 'if echo x > /bin/new 2>/dev/null; then echo wrote; fi; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "'])
    const r = await executor.run(j)
    assert.equal(r.status, 'COMPLETED', r.message)
    assert.equal(await readFile(join(j.outputDir, 'stdout.txt'), 'utf8'), 'lo\n')
  })

  it('refuses a tampered blob', async () => {
    const bad = join(root, 'tampered')
    await cp(layout, bad, { recursive: true })
    const { layers } = await checkLayout(layout, caps)
    const blobFile = join(bad, 'blobs', 'sha256', layers[0].digest.slice(7))
    const bytes = await readFile(blobFile)
    bytes[bytes.byteLength - 5] ^= 0xff
    await writeFile(blobFile, bytes)
    assert.equal(await code(images.prepare(bad)), 'OCI_BLOB_DIGEST')
    await appendFile(blobFile, 'x')
    assert.equal(await code(images.prepare(bad)), 'OCI_BLOB_DIGEST')
    const r = await executor.run(job(bad, ['true']))
    assert.equal(r.status, 'INVALID_MODULE')
    assert.match(r.message ?? '', /^OCI_BLOB_DIGEST/)
  })

  it('refuses another platform, no command, an oversized layer, junk', async () => {
    const layer = await layerOf(async (d) => { await mkdir(join(d, 'bin')); await cp('/bin/busybox', join(d, 'bin', 'busybox')) })
    const arm = join(root, 'arm')
    await writeLayout(arm, [layer], { os: 'linux', architecture: 'arm64', config: { Entrypoint: ['/bin/busybox'] } })
    assert.equal(await code(images.prepare(arm)), 'OCI_NO_PLATFORM')
    const noCmd = join(root, 'nocmd')
    await writeLayout(noCmd, [layer], { os: 'linux', architecture: 'amd64', config: {} })
    assert.equal(await code(images.prepare(noCmd)), 'OCI_NO_COMMAND')
    const small = new OciImages({ cacheDir: join(stage, 'small'), ...caps, maxLayerBytes: 100_000 })
    assert.equal(await code(small.prepare(layout)), 'OCI_TOO_LARGE')
    assert.equal(await code(images.prepare(join(root, 'in'))), 'OCI_BAD_LAYOUT')
    const junkTar = Buffer.alloc(1024)
    junkTar.write('ustar', 257)
    assert.equal(await code(images.prepare(new Uint8Array(junkTar))), 'OCI_BAD_LAYOUT')
  })

  it('keeps a symlink-escape layer inside the root', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'iexec-escape-target-'))
    try {
      const l1 = await layerOf(async (d) => {
        await mkdir(join(d, 'bin'))
        await cp('/bin/busybox', join(d, 'bin', 'busybox'))
        await symlink(outside, join(d, 'etc'))
      })
      const l2 = await layerOf(async (d) => {
        await mkdir(join(d, 'etc'))
        await writeFile(join(d, 'etc', 'pwned'), 'escaped\n')
      })
      const evil = join(root, 'evil')
      await writeLayout(evil, [l1, l2], { os: 'linux', architecture: 'amd64', config: { Entrypoint: ['/bin/busybox', 'sh', '-c', 'cat /etc/pwned'] } })
      const outcome = await code(images.prepare(evil))
      // umoci 0.4.7 applies the later layer's folder in place of the link, inside the root
      assert.equal(outcome, 'ACCEPTED')
      assert.equal(existsSync(join(outside, 'pwned')), false)
      // the later layer's folder replaced the link inside the root
      const j = job(evil, [])
      const r = await executor.run(j)
      assert.equal(r.status, 'COMPLETED', r.message)
      assert.equal(await readFile(join(j.outputDir, 'stdout.txt'), 'utf8'), 'escaped\n')
      assert.equal(existsSync(join(outside, 'pwned')), false)
    } finally {
      await rm(outside, { recursive: true, force: true })
    }
  })
})
