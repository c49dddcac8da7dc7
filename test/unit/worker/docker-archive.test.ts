// `docker save` output (a docker-archive: manifest.json, <sha256>.json,
// <id>/layer.tar, repeats as links) as an app: converted in code to an OCI
// layout with its digests checked, at `app publish` and on the worker, and
// run in the native sandbox. Archives are built by the test (no daemon).
import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { unpackArchive } from '../../../node/storage/archive.js'
import { AppCheckError, checkAppPath } from '../../../node/worker/app-check.js'
import { appKind } from '../../../node/worker/app-kind.js'
import { NativeExecutor } from '../../../node/worker/native-executor.js'
import { checkLayout, OciImages } from '../../../node/worker/oci-image.js'
import { buildDockerArchive } from './oci-builder.js'

const caps = { maxLayerBytes: 64 * 1024 * 1024, maxImageBytes: 128 * 1024 * 1024, maxLayers: 8 }

describe('worker: docker-archive images', function () {
  this.timeout(120_000)
  let root: string
  let stage: string
  let images: OciImages
  let executor: NativeExecutor
  let n = 0

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-docker-test-'))
    stage = await mkdtemp(join(tmpdir(), 'iexec-docker-stage-'))
    await chmod(stage, 0o711)
    await mkdir(join(root, 'in'))
    images = new OciImages({ cacheDir: join(stage, 'images'), ...caps })
    executor = new NativeExecutor({ stageDir: stage, images: images.preparer, firstSandboxUid: 320_000, sandboxUids: 10 })
  })

  after(async () => {
    await executor.close()
    await rm(root, { recursive: true, force: true })
    await rm(stage, { recursive: true, force: true })
  })

  async function archive (opts: Parameters<typeof buildDockerArchive>[2]): Promise<string> {
    const out = join(root, `image-${++n}.tar`)
    await buildDockerArchive(out, '/bin/busybox', { name: 'busybox', ...opts })
    return out
  }

  async function checkCode (path: string): Promise<string> {
    try {
      await checkAppPath(path, { arch: 'x64' })
    } catch (err) {
      assert.ok(err instanceof AppCheckError, String(err))
      assert.equal(err.code, 'APP_IMAGE_INVALID')
      return /^the tar is not an image: (OCI_[A-Z_]+)/.exec(err.message)?.[1] ?? err.message
    }
    return 'accepted'
  }

  it('app publish converts it to an OCI layout with the same config and layer, links resolved', async () => {
    const tar = await archive({ entrypoint: ['/bin/busybox'], cmd: ['echo', 'hi'], layers: 2 })
    const checked = await checkAppPath(tar, { arch: 'x64' })
    assert.equal(checked.kind, 'oci')
    assert.equal(checked.converted, true)
    assert.match(checked.detail, /2 layer\(s\), runs \["\/bin\/busybox","echo","hi"\] \(converted from a docker-archive\)/)
    // what goes to the swarm is an OCI layout tar: a worker that knows only layouts reads it
    assert.equal(appKind(checked.bytes.subarray(0, 512)), 'oci')
    const layout = join(root, 'converted')
    await unpackArchive((async function * () { yield checked.bytes })(), layout)
    const image = await checkLayout(layout, caps, 'x64')
    assert.equal(image.layers.length, 2)
    assert.equal(image.layers[0].digest, image.layers[1].digest, 'the repeated layer is one blob')
    assert.deepEqual((image.config.config as { Entrypoint: string[] }).Entrypoint, ['/bin/busybox'])
  })

  it('runs in the sandbox from the docker-archive itself and from its conversion', async () => {
    const tar = await archive({ entrypoint: ['/bin/busybox', 'sh', '-c'], cmd: ['echo from-docker > /iexec_out/out.txt'] })
    const run = async (module: string | Uint8Array): Promise<string> => {
      const outputDir = join(root, `out-${++n}`)
      const r = await executor.run({
        taskId: '0x' + '02'.repeat(32), module, args: [], inputDir: join(root, 'in'), outputDir,
        inputFiles: [], timeoutMs: 30_000, maxMemoryBytes: 128 * 1024 * 1024, maxOutputBytes: 1024 * 1024
      })
      assert.equal(r.status, 'COMPLETED', r.message)
      return await readFile(join(outputDir, 'out.txt'), 'utf8')
    }
    assert.equal(await run(tar), 'from-docker\n')
    const converted = (await checkAppPath(tar, { arch: 'x64' })).bytes
    assert.equal(await run(new Uint8Array(converted)), 'from-docker\n')
    assert.equal(images.unpacks, 1, 'the same manifest digest: one unpack')
  })

  it('refuses a tampered layer, a config not named by its hash, and links or paths leaving the archive', async () => {
    assert.equal(await checkCode(await archive({ tamper: 'layer-bytes' })), 'OCI_BLOB_DIGEST')
    assert.equal(await checkCode(await archive({ tamper: 'config-name' })), 'OCI_BLOB_DIGEST')
    assert.equal(await checkCode(await archive({ tamper: 'link-escape', layers: 2 })), 'OCI_BAD_LAYOUT')
    assert.equal(await checkCode(await archive({ tamper: 'path-escape' })), 'OCI_BAD_LAYOUT')
    // the worker refuses it the same way
    const prepared = await images.preparer(await archive({ tamper: 'layer-bytes' }))
    assert.ok('invalid' in prepared && prepared.invalid.startsWith('OCI_BLOB_DIGEST'), JSON.stringify(prepared))
    // a tar that is neither kind
    const junk = join(root, 'junk')
    await mkdir(junk)
    await writeFile(join(junk, 'x.txt'), 'x')
    const { execFileSync } = await import('node:child_process')
    execFileSync('tar', ['-C', junk, '-cf', join(root, 'junk.tar'), '.'])
    assert.equal(await checkCode(join(root, 'junk.tar')), 'OCI_BAD_LAYOUT')
  })
})
