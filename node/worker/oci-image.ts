// OCI images for the native executor: an app that is an OCI image layout
// (a folder, or a tar of one, as `skopeo copy … oci:` or `umoci` make it) is
// checked and unpacked once per manifest digest into a cache, and run from
// there (native-executor.ts).
//
// Checks, before anything is unpacked: the layout is read with the
// archive reader that creates only files and folders (no link in the layout
// can redirect a write); every blob used (manifest, config, layers) hashes to
// its digest and has its descriptor's size; the manifest is picked for this
// host's platform (linux and this architecture) and the config says the
// same; each layer, and all of them together, stay under their caps,
// decompressed. Layers are applied by `umoci unpack --rootless`, which keeps
// every path inside the root (a symlink planted by one layer does not make a
// later one write outside); the unpacked tree is measured against its cap.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream, existsSync, statSync } from 'node:fs'
import { chmod, copyFile, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { arch } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import { Writable } from 'node:stream'
import { unpackImageTar } from './image-tar.js'
import { OciRefused } from './oci-refused.js'
import type { ImagePreparer, NativeTarget } from './native-executor.js'

export interface OciImageOptions {
  /** Where unpacked images are kept, by manifest digest (inside the native executor's stage). */
  cacheDir: string
  umoci: string
  /** Bytes of one layer, decompressed. */
  maxLayerBytes: number
  /** Bytes of all layers together, decompressed, and of the unpacked tree. */
  maxImageBytes: number
  /** Layers of one image. */
  maxLayers: number
}

export const defaultOciImageOptions: Omit<OciImageOptions, 'cacheDir'> = {
  umoci: 'umoci',
  maxLayerBytes: 1024 * 1024 * 1024,
  maxImageBytes: 2 * 1024 * 1024 * 1024,
  maxLayers: 64
}

/** Why an image was refused, as a code (tests and logs). */
export { OciRefused } from './oci-refused.js'
export type { OciRefusal } from './oci-refused.js'

const OCI_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', riscv64: 'riscv64' }
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const INDEX = 'application/vnd.oci.image.index.v1+json'
const LAYER_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.docker.image.rootfs.diff.tar.gzip'
])

interface Descriptor { mediaType?: string, digest: string, size: number, platform?: { os?: string, architecture?: string } }

function descriptor (d: unknown, what: string): Descriptor {
  const o = d as Partial<Descriptor> | null
  if (o === null || typeof o !== 'object' || typeof o.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(o.digest) ||
      typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) {
    throw new OciRefused('OCI_BAD_LAYOUT', `${what} is not a sha256 descriptor`)
  }
  if (o.mediaType !== undefined && typeof o.mediaType !== 'string') throw new OciRefused('OCI_BAD_LAYOUT', `${what} has a media type that is not a string`)
  if (o.platform !== undefined && (o.platform === null || typeof o.platform !== 'object' || Array.isArray(o.platform))) {
    throw new OciRefused('OCI_BAD_LAYOUT', `${what} has a platform that is not an object`)
  }
  return o as Descriptor
}

function blobPath (layout: string, d: Descriptor): string {
  return join(layout, 'blobs', 'sha256', d.digest.slice('sha256:'.length))
}

/** Hashes a blob (streamed) and checks its size; the bytes of a decompressed layer are counted up to the cap. */
async function verifyBlob (layout: string, d: Descriptor, maxBytes: number): Promise<void> {
  const path = blobPath(layout, d)
  let st
  try {
    st = await lstat(path)
  } catch {
    throw new OciRefused('OCI_BAD_LAYOUT', `blob ${d.digest} is missing`)
  }
  if (!st.isFile()) throw new OciRefused('OCI_BAD_LAYOUT', `blob ${d.digest} is not a file`)
  if (st.size !== d.size) throw new OciRefused('OCI_BLOB_DIGEST', `blob ${d.digest} holds ${st.size} bytes, its descriptor says ${d.size}`)
  if (st.size > maxBytes) throw new OciRefused('OCI_TOO_LARGE', `blob ${d.digest} is above the cap of ${maxBytes} bytes`)
  const h = createHash('sha256')
  for await (const c of createReadStream(path)) h.update(c as Buffer)
  if (`sha256:${h.digest('hex')}` !== d.digest) throw new OciRefused('OCI_BLOB_DIGEST', `blob ${d.digest} does not hash to its digest`)
}

async function readJsonBlob (layout: string, d: Descriptor, what: string): Promise<Record<string, unknown>> {
  await verifyBlob(layout, d, 4 * 1024 * 1024)
  try {
    const v = JSON.parse(await readFile(blobPath(layout, d), 'utf8')) as unknown
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object')
    return v as Record<string, unknown>
  } catch (err) {
    throw new OciRefused('OCI_BAD_LAYOUT', `${what} is not a JSON object: ${(err as Error).message}`)
  }
}

async function decompressedSize (path: string, gzip: boolean, cap: number): Promise<number> {
  let n = 0
  const counter = new Writable({
    write (chunk: Buffer, _enc, cb) {
      n += chunk.byteLength
      cb(n > cap ? new OciRefused('OCI_TOO_LARGE', `a layer decompresses past the cap of ${cap} bytes`) : null)
    }
  })
  try {
    if (gzip) await pipeline(createReadStream(path), createGunzip(), counter)
    else await pipeline(createReadStream(path), counter)
  } catch (err) {
    if (err instanceof OciRefused) throw err
    throw new OciRefused('OCI_BAD_LAYOUT', `a layer is not a valid archive: ${(err as Error).message}`)
  }
  return n
}

/** The checked manifest of a layout for this host: its digest, config and layers. */
export interface CheckedImage {
  manifest: Descriptor
  config: Record<string, unknown>
  layers: Descriptor[]
}

/** Reads and checks a layout folder for this host's platform (nothing is unpacked). */
export async function checkLayout (layout: string, opts: Pick<OciImageOptions, 'maxLayerBytes' | 'maxImageBytes' | 'maxLayers'>, hostArch = arch()): Promise<CheckedImage> {
  const want = OCI_ARCH[hostArch]
  let marker: { imageLayoutVersion?: unknown }
  let index: { manifests?: unknown }
  try {
    marker = JSON.parse(await readFile(join(layout, 'oci-layout'), 'utf8')) as typeof marker
    index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as typeof index
    // JSON.parse answers null, numbers and arrays too
    for (const v of [marker, index]) if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object')
  } catch (err) {
    throw new OciRefused('OCI_BAD_LAYOUT', `not an OCI image layout (oci-layout and index.json): ${(err as Error).message}`)
  }
  if (typeof marker.imageLayoutVersion !== 'string') throw new OciRefused('OCI_BAD_LAYOUT', 'oci-layout has no imageLayoutVersion')
  if (!Array.isArray(index.manifests) || index.manifests.length === 0) throw new OciRefused('OCI_BAD_LAYOUT', 'index.json lists no manifest')
  let candidates = index.manifests.slice(0, 64).map((m, i) => descriptor(m, `index.json manifest ${i}`))
  // one level of nested index (what `docker buildx` and multi-platform copies make)
  const nested = candidates.find((c) => c.mediaType === INDEX)
  if (nested !== undefined) {
    const inner = await readJsonBlob(layout, nested, 'the nested index')
    if (!Array.isArray(inner.manifests)) throw new OciRefused('OCI_BAD_LAYOUT', 'the nested index lists no manifest')
    candidates = inner.manifests.slice(0, 64).map((m, i) => descriptor(m, `nested manifest ${i}`))
  }
  candidates = candidates.filter((c) => c.mediaType === undefined || c.mediaType === MANIFEST || c.mediaType === 'application/vnd.docker.distribution.manifest.v2+json')
  const forHost = candidates.filter((c) => c.platform === undefined || (c.platform.os === 'linux' && c.platform.architecture === want))
  for (const m of forHost) {
    const manifest = await readJsonBlob(layout, m, 'the manifest')
    const config = descriptor(manifest.config, 'the manifest config')
    const cfg = await readJsonBlob(layout, config, 'the image config')
    if (cfg.os !== 'linux' || cfg.architecture !== want) continue
    if (!Array.isArray(manifest.layers)) throw new OciRefused('OCI_BAD_LAYOUT', 'the manifest has no layers array')
    // nothing to run in an image without a layer: refused before it goes on chain, not at the first task
    if (manifest.layers.length === 0) throw new OciRefused('OCI_BAD_LAYOUT', 'the manifest lists no layer')
    if (manifest.layers.length > opts.maxLayers) throw new OciRefused('OCI_TOO_LARGE', `more than ${opts.maxLayers} layers`)
    const layers = manifest.layers.map((l, i) => descriptor(l, `layer ${i}`))
    let total = 0
    for (const l of layers) {
      if (l.mediaType === undefined || !LAYER_TYPES.has(l.mediaType)) throw new OciRefused('OCI_BAD_LAYOUT', `layer ${l.digest} has an unsupported media type ${String(l.mediaType)}`)
      await verifyBlob(layout, l, opts.maxLayerBytes)
      total += await decompressedSize(blobPath(layout, l), l.mediaType.endsWith('gzip'), opts.maxLayerBytes)
      if (total > opts.maxImageBytes) throw new OciRefused('OCI_TOO_LARGE', `the layers decompress past the cap of ${opts.maxImageBytes} bytes`)
    }
    return { manifest: m, config: cfg, layers }
  }
  throw new OciRefused('OCI_NO_PLATFORM', `no manifest for linux/${want}`)
}

async function treeBytes (dir: string, cap: number): Promise<number> {
  let n = 0
  const stack = [dir]
  while (stack.length > 0) {
    const d = stack.pop() as string
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) stack.push(p)
      else if (e.isFile()) n += (await lstat(p)).size
      if (n > cap) return n
    }
  }
  return n
}

async function exec (cmd: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 1 << 20 }, (err, _out, stderr) => {
      if (err !== null) reject(new OciRefused('OCI_UNPACK_FAILED', `${cmd} ${args[0] ?? ''} failed: ${stderr.trim().slice(-400) || err.message}`))
      else resolve()
    })
  })
}

/**
 * The image cache: layout (folder, tar path or tar bytes) → unpacked root
 * and command, once per manifest digest.
 */
export class OciImages {
  private readonly opts: OciImageOptions
  private readonly unpacked = new Map<string, Promise<NativeTarget>>()
  /** A module's target by its identity (moduleIdentity), once checked and unpacked. */
  private readonly byModule = new Map<string, Promise<NativeTarget>>()
  /** How many times an image was unpacked (the bench and tests check the second run does not). */
  unpacks = 0
  /** How many times a module was read and checked (the same module again is not). */
  checks = 0

  constructor (options: Partial<OciImageOptions> & { cacheDir: string }) {
    this.opts = { ...defaultOciImageOptions, ...options }
  }

  /** For NativeExecutorOptions.images. */
  get preparer (): ImagePreparer {
    return async (module) => {
      try {
        return { target: await this.prepare(module) }
      } catch (err) {
        if (err instanceof OciRefused) return { invalid: `${err.code}: ${err.message}` }
        throw err
      }
    }
  }

  async prepare (module: Uint8Array | string): Promise<NativeTarget> {
    // the same module again (a task's replicas, a bag of tasks): no second read, check nor unpack
    const id = moduleIdentity(module)
    let known = id !== undefined ? this.byModule.get(id) : undefined
    if (known === undefined) {
      known = this.prepareOnce(module)
      if (id !== undefined) {
        this.byModule.set(id, known)
        known.catch(() => { this.byModule.delete(id) })
      }
    }
    return await known
  }

  private async prepareOnce (module: Uint8Array | string): Promise<NativeTarget> {
    this.checks++
    await mkdir(this.opts.cacheDir, { recursive: true, mode: 0o711 })
    await chmod(this.opts.cacheDir, 0o711)
    const work = await mkdtemp(join(this.opts.cacheDir, 'in-'))
    try {
      let layout: string
      if (typeof module === 'string' && (await lstat(module)).isDirectory()) {
        layout = module
      } else {
        const source = typeof module === 'string'
          ? createReadStream(module)
          : (async function * () { yield module })()
        // an OCI layout, or a docker-archive converted to one
        layout = (await unpackImageTar(source, work, this.opts)).layout
      }
      const checked = await checkLayout(layout, this.opts)
      const key = checked.manifest.digest.slice('sha256:'.length)
      let entry = this.unpacked.get(key)
      if (entry === undefined) {
        entry = this.unpack(layout, checked, key)
        this.unpacked.set(key, entry)
        entry.catch(() => { this.unpacked.delete(key) })
      }
      return await entry
    } finally {
      await rm(work, { recursive: true, force: true })
    }
  }

  private async unpack (layout: string, checked: CheckedImage, key: string): Promise<NativeTarget> {
    const dest = join(this.opts.cacheDir, key)
    const ready = join(dest, 'target.json')
    if (existsSync(ready)) return JSON.parse(await readFile(ready, 'utf8')) as NativeTarget
    const tmp = await mkdtemp(join(this.opts.cacheDir, 'unpack-'))
    try {
      // umoci reads a tag: a layout of our own naming only the checked manifest
      const own = join(tmp, 'layout')
      await mkdir(join(own, 'blobs', 'sha256'), { recursive: true })
      await writeFile(join(own, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
      const { platform: _p, ...m } = checked.manifest
      await writeFile(join(own, 'index.json'), JSON.stringify({
        schemaVersion: 2,
        manifests: [{ ...m, mediaType: MANIFEST, annotations: { 'org.opencontainers.image.ref.name': 'app' } }]
      }))
      const cfg = descriptor((JSON.parse(await readFile(blobPath(layout, checked.manifest), 'utf8')) as { config: unknown }).config, 'config')
      for (const d of [checked.manifest, cfg, ...checked.layers]) {
        await copyFile(blobPath(layout, d), blobPath(own, d))
      }
      const bundle = join(tmp, 'bundle')
      this.unpacks++
      await exec(this.opts.umoci, ['unpack', '--rootless', '--image', `${own}:app`, bundle])
      const rootfs = join(bundle, 'rootfs')
      if (await treeBytes(rootfs, this.opts.maxImageBytes) > this.opts.maxImageBytes) {
        throw new OciRefused('OCI_TOO_LARGE', `the unpacked image is above the cap of ${this.opts.maxImageBytes} bytes`)
      }
      const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process?: { env?: string[], cwd?: string } }
      const imageCfg = (checked.config.config ?? {}) as { Entrypoint?: unknown, Cmd?: unknown }
      const strings = (v: unknown): string[] => Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : []
      const entrypoint = strings(imageCfg.Entrypoint)
      const cmd = strings(imageCfg.Cmd)
      if (entrypoint.length === 0 && cmd.length === 0) throw new OciRefused('OCI_NO_COMMAND', 'the image has no entrypoint or cmd')
      // the sandbox binds its folders here; a link in their place would point a mount elsewhere
      for (const d of ['proc', 'dev', 'iexec_in', 'iexec_out']) {
        const p = join(rootfs, d)
        try {
          const st = await lstat(p)
          if (!st.isDirectory()) throw new OciRefused('OCI_BAD_LAYOUT', `/${d} in the image is not a folder`)
        } catch (err) {
          if (err instanceof OciRefused) throw err
          await mkdir(p, { mode: 0o755 })
        }
      }
      // readable by the sandbox uids (the image's own modes inside are kept)
      await chmod(bundle, 0o711)
      await chmod(rootfs, 0o755)
      await rm(own, { recursive: true, force: true })
      const target: NativeTarget = { kind: 'image', rootfs: join(dest, 'bundle', 'rootfs'), entrypoint, cmd, env: spec.process?.env ?? [], cwd: spec.process?.cwd ?? '/' }
      await writeFile(join(tmp, 'target.json'), JSON.stringify(target))
      await chmod(tmp, 0o711)
      await rename(tmp, dest).catch(async (err: NodeJS.ErrnoException) => {
        // another process unpacked it first
        if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err
        await rm(tmp, { recursive: true, force: true })
      })
      return target
    } catch (err) {
      await rm(tmp, { recursive: true, force: true })
      throw err
    }
  }
}

/**
 * What makes a module the same one again: its bytes' hash; a tar file's
 * device, inode, size and times; a layout folder's index.json's (a new image
 * in the folder is a new index.json, and blobs are named by their digest).
 * Undefined when it cannot be read (prepare then says why).
 */
function moduleIdentity (module: Uint8Array | string): string | undefined {
  if (typeof module !== 'string') return 'bytes:' + createHash('sha256').update(module).digest('hex')
  try {
    let st = statSync(module, { bigint: true })
    let at = module
    if (st.isDirectory()) {
      at = join(module, 'index.json')
      st = statSync(at, { bigint: true })
    }
    return `file:${at}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
  } catch {
    return undefined
  }
}
