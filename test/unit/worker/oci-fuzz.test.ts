/**
 * The OCI layout checks against hostile layouts (test/helpers/fuzz.ts, fixed
 * seed). A case is the layout's four documents (oci-layout, index.json, the
 * manifest, the image config) as one JSON value, mutated at any depth; the
 * blobs are written under their new digests and the links to them fixed, so
 * a mutation reaches the checks behind the digests. Bytes that are no longer
 * that JSON go to index.json as they are. checkLayout answers a checked
 * image or an OciRefused with its code; never a TypeError.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { arch, tmpdir } from 'node:os'
import { join } from 'node:path'
import { packTree } from '../../../node/storage/archive.js'
import type { TreeEntry } from '../../../node/storage/archive.js'
import { unpackImageTar } from '../../../node/worker/image-tar.js'
import { checkLayout, OciRefused } from '../../../node/worker/oci-image.js'
import type { CheckedImage } from '../../../node/worker/oci-image.js'
import { fuzzDecoder } from '../../helpers/fuzz.js'
import { layerOf } from './oci-builder.js'

const ARCH = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[arch()] ?? arch()
const caps = { maxLayerBytes: 1024 * 1024, maxImageBytes: 2 * 1024 * 1024, maxLayers: 4 }
const CODES = new Set(['OCI_BAD_LAYOUT', 'OCI_BLOB_DIGEST', 'OCI_NO_PLATFORM', 'OCI_TOO_LARGE', 'OCI_NO_COMMAND', 'OCI_UNPACK_FAILED'])
const enc = new TextEncoder()
const dec = new TextDecoder()

function digestOf (b: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex')
}

/** Points a descriptor (when it still is one) at a blob. */
function link (d: unknown, blob: Uint8Array): void {
  if (d !== null && typeof d === 'object' && !Array.isArray(d) && typeof (d as Record<string, unknown>).digest === 'string') {
    Object.assign(d, { digest: digestOf(blob), size: blob.byteLength })
  }
}

describe('worker/oci-image: layout fuzzing (fast-check, fixed seed)', function () {
  this.timeout(300_000)
  let scratch: string
  let layer: Buffer
  let n = 0

  before(async () => {
    scratch = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'iexec-oci-fuzz-'))
    layer = await layerOf(async (dir) => {
      await mkdir(join(dir, 'bin'))
      await writeFile(join(dir, 'bin', 'app'), '#!/bin/sh\necho hi\n')
    })
  })
  after(async () => { await rm(scratch, { recursive: true, force: true }) })

  async function check (bytes: Uint8Array): Promise<CheckedImage> {
    const layout = join(scratch, `l${n++}`)
    const blobs = join(layout, 'blobs', 'sha256')
    await mkdir(blobs, { recursive: true })
    const put = async (b: Uint8Array): Promise<void> => { await writeFile(join(blobs, digestOf(b).slice(7)), b) }
    try {
      await put(layer)
      let docs: Record<string, unknown> | undefined
      try {
        docs = JSON.parse(dec.decode(bytes)) as Record<string, unknown>
      } catch {}
      if (docs === null || typeof docs !== 'object' || Array.isArray(docs) || docs === undefined) {
        await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
        await writeFile(join(layout, 'index.json'), bytes)
      } else {
        const { ociLayout, index, manifest, config } = docs as Record<string, unknown>
        const configBlob = enc.encode(JSON.stringify(config) ?? 'null')
        await put(configBlob)
        if (manifest !== null && typeof manifest === 'object') link((manifest as Record<string, unknown>).config, configBlob)
        const manifestBlob = enc.encode(JSON.stringify(manifest) ?? 'null')
        await put(manifestBlob)
        const manifests = (index as { manifests?: unknown } | null)?.manifests
        if (Array.isArray(manifests)) for (const m of manifests) link(m, manifestBlob)
        await writeFile(join(layout, 'oci-layout'), JSON.stringify(ociLayout) ?? '')
        await writeFile(join(layout, 'index.json'), JSON.stringify(index) ?? '')
      }
      return await checkLayout(layout, caps)
    } finally {
      await rm(layout, { recursive: true, force: true })
    }
  }

  const seedOf = (): Record<string, any> => ({
    ociLayout: { imageLayoutVersion: '1.0.0' },
    index: { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:' + '0'.repeat(64), size: 1, platform: { os: 'linux', architecture: ARCH } }] },
    manifest: {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:' + '0'.repeat(64), size: 1 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(layer), size: layer.byteLength }]
    },
    config: { os: 'linux', architecture: ARCH, config: { Entrypoint: ['/bin/app'], Cmd: ['x'] }, rootfs: { type: 'layers', diff_ids: [] } }
  })

  async function refusal (docs: unknown): Promise<string | undefined> {
    try {
      await check(enc.encode(JSON.stringify(docs)))
      return undefined
    } catch (err) {
      assert.ok(err instanceof OciRefused, `an OciRefused, got ${String(err)}`)
      return err.code
    }
  }

  it('regressions the fuzzer found: null documents, a null platform, a manifest without layers', async () => {
    assert.equal(await refusal(seedOf()), undefined, 'the seed is a valid image')
    assert.equal(await refusal({ ...seedOf(), ociLayout: null }), 'OCI_BAD_LAYOUT')
    assert.equal(await refusal({ ...seedOf(), index: [] }), 'OCI_BAD_LAYOUT')
    const nullPlatform = seedOf()
    nullPlatform.index.manifests[0].platform = null
    assert.equal(await refusal(nullPlatform), 'OCI_BAD_LAYOUT')
    const numberType = seedOf()
    numberType.manifest.layers[0].mediaType = 7
    assert.equal(await refusal(numberType), 'OCI_BAD_LAYOUT')
    const noLayers = seedOf()
    noLayers.manifest.layers = []
    assert.equal(await refusal(noLayers), 'OCI_BAD_LAYOUT')
  })

  it('mutated and random layouts (800 cases, each on disk): a checked image of this platform, or a coded refusal', async () => {
    const seed = seedOf()
    const s = await fuzzDecoder({
      decode: check,
      codes: CODES,
      codeOf: (err) => err instanceof OciRefused ? err.code : undefined,
      valid: [enc.encode(JSON.stringify(seed))],
      keys: ['ociLayout', 'index', 'manifest', 'config', 'manifests', 'platform', 'digest', 'size', 'layers', 'mediaType', 'os', 'architecture'],
      accepted: (image) => {
        assert.equal(image.config.os, 'linux')
        assert.equal(image.config.architecture, ARCH)
        assert.ok(image.layers.length >= 1 && image.layers.length <= caps.maxLayers)
        assert.match(image.manifest.digest, /^sha256:[0-9a-f]{64}$/)
      }
    }, { random: 150, json: 200, mutated: 450 })
    assert.ok(s.accepted > 0 && s.refused > 400, `accepted ${s.accepted}, refused ${s.refused}`)
  })

  it('mutated and random docker-archives (1,000 cases): converted to a checked layout, or a coded refusal', async () => {
    // the layer uncompressed, as docker-archives hold them
    const { gunzipSync } = await import('node:zlib')
    const plain = gunzipSync(layer)
    const diffId = digestOf(plain)
    const seed = {
      manifest: [{ Config: 'CONFIG', RepoTags: ['app:latest'], Layers: ['l1/layer.tar', 'l1/layer.tar'] }],
      config: { os: 'linux', architecture: ARCH, config: { Entrypoint: ['/bin/app'] }, rootfs: { type: 'layers', diff_ids: [diffId, diffId] } }
    }
    const decode = async (bytes: Uint8Array): Promise<CheckedImage> => {
      const work = join(scratch, `d${n++}`)
      try {
        let docs: { manifest?: unknown, config?: unknown } | undefined
        try { docs = JSON.parse(dec.decode(bytes)) as typeof docs } catch {}
        const entries: TreeEntry[] = [{ path: 'l1', kind: 'dir', size: 0 }, { path: 'l1/layer.tar', kind: 'file', size: plain.byteLength, content: plain }]
        const file = (path: string, content: Uint8Array): void => { entries.push({ path, kind: 'file', size: content.byteLength, content }) }
        if (docs !== null && typeof docs === 'object' && !Array.isArray(docs) && docs !== undefined) {
          const config = enc.encode(JSON.stringify(docs.config) ?? 'null')
          const name = `${digestOf(config).slice(7)}.json`
          file(name, config)
          const manifest = docs.manifest
          if (Array.isArray(manifest) && manifest[0] !== null && typeof manifest[0] === 'object' && (manifest[0] as { Config?: unknown }).Config === 'CONFIG') {
            (manifest[0] as { Config: string }).Config = name
          }
          file('manifest.json', enc.encode(JSON.stringify(manifest) ?? ''))
        } else {
          file('manifest.json', bytes)
        }
        const image = await unpackImageTar((async function * () { yield packTree(entries) })(), work, caps)
        return await checkLayout(image.layout, caps)
      } finally {
        await rm(work, { recursive: true, force: true })
      }
    }
    const s = await fuzzDecoder({
      decode,
      codes: CODES,
      codeOf: (err) => err instanceof OciRefused ? err.code : undefined,
      valid: [enc.encode(JSON.stringify(seed))],
      keys: ['manifest', 'config', 'Config', 'Layers', 'RepoTags', 'rootfs', 'diff_ids', 'os', 'architecture'],
      accepted: (image) => {
        assert.equal(image.config.architecture, ARCH)
        assert.ok(image.layers.length >= 1)
        for (const l of image.layers) assert.equal(l.digest, digestOf(plain), 'the only layer there is')
      }
    }, { random: 200, json: 300, mutated: 500 })
    assert.ok(s.accepted > 0 && s.refused > 500, `accepted ${s.accepted}, refused ${s.refused}`)
  })
})
