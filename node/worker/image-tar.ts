// An image as a tar, as `app publish` and the worker receive it: an OCI
// image layout (what `skopeo copy … oci:`, umoci or Docker 25+ `docker
// save` make), or a docker-archive (what older `docker save` makes:
// manifest.json, the image config as <sha256>.json and one layer.tar per
// layer, duplicates as links). A docker-archive is converted here to an OCI
// layout, in code (no skopeo, no daemon), with its digests checked: the
// config's name, when it names a sha256, is the config's hash, and each
// layer's uncompressed hash is the config's rootfs.diff_ids entry for it.
//
// The tar is read by the storage archive reader: only files and folders are
// written, every path stays inside the target, and link entries are only
// recorded (a docker-archive names a repeated layer by a link), then
// resolved inside the archive's own paths.
import { createHash } from 'node:crypto'
import { createReadStream, existsSync } from 'node:fs'
import { copyFile, lstat, mkdir, open, readFile, writeFile } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Writable } from 'node:stream'
import { createGunzip } from 'node:zlib'
import { safeEntryPath, unpackArchive } from '../storage/archive.js'
import { OciRefused } from './oci-refused.js'

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
const LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar'
const LAYER_TAR_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'
/** The config and manifest.json are small documents: read whole, so bounded. */
const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
const MAX_LINK_HOPS = 8

export interface ImageTarLimits {
  /** bytes of all files in the tar, and of one layer decompressed */
  maxImageBytes: number
  maxLayerBytes: number
  maxLayers: number
  /** entries of the tar */
  maxEntries?: number
}

export interface ImageTar {
  /** the OCI image layout folder */
  layout: string
  /** true when the tar was a docker-archive, converted */
  converted: boolean
}

/**
 * Reads an image tar into `work` (absent or empty) and returns its OCI
 * layout. OciRefused (OCI_BAD_LAYOUT, OCI_BLOB_DIGEST, OCI_TOO_LARGE) when it
 * is neither kind, or a docker-archive whose digests or links do not hold.
 */
export async function unpackImageTar (source: AsyncIterable<Uint8Array>, work: string, limits: ImageTarLimits): Promise<ImageTar> {
  const tree = join(work, 'tar')
  const links = new Map<string, string>()
  try {
    await unpackArchive(source, tree, {
      maxBytes: limits.maxImageBytes,
      ...(limits.maxEntries !== undefined ? { maxEntries: limits.maxEntries } : {}),
      onLink: (path, target, kind) => {
        const at = normal(path)
        const to = at === undefined ? undefined : kind === 'hard' ? normal(target) : normal(posix.join(posix.dirname(at), target))
        if (at === undefined || to === undefined) throw new OciRefused('OCI_BAD_LAYOUT', `link ${path} points outside the archive`)
        links.set(at, to)
      }
    })
  } catch (err) {
    if (err instanceof OciRefused) throw err
    throw new OciRefused('OCI_BAD_LAYOUT', `the image tar cannot be read: ${(err as Error).message}`)
  }
  if (existsSync(join(tree, 'oci-layout'))) return { layout: tree, converted: false }
  if (!existsSync(join(tree, 'manifest.json'))) throw new OciRefused('OCI_BAD_LAYOUT', 'neither an OCI image layout (oci-layout, index.json) nor a docker-archive (manifest.json)')
  const layout = join(work, 'layout')
  await convertDockerArchive(tree, links, layout, limits)
  return { layout, converted: true }
}

/** An archive path without '.', '..' or leading '/'; undefined when it would leave the archive. */
function normal (path: string): string | undefined {
  if (path.startsWith('/')) return undefined
  const p = posix.normalize(path).replace(/\/$/, '')
  if (p === '' || p === '.' || p === '..' || p.startsWith('../')) return undefined
  return p
}

/** The file an archive path names, through the archive's own links. */
async function resolveEntry (tree: string, links: Map<string, string>, name: unknown, what: string): Promise<string> {
  if (typeof name !== 'string' || name.length === 0 || name.length > 1024) throw new OciRefused('OCI_BAD_LAYOUT', `manifest.json: ${what} is not a path`)
  let p = normal(name)
  for (let hop = 0; p !== undefined && links.has(p); hop++) {
    if (hop >= MAX_LINK_HOPS) throw new OciRefused('OCI_BAD_LAYOUT', `${what} ${name}: too many links`)
    p = links.get(p)
  }
  if (p === undefined) throw new OciRefused('OCI_BAD_LAYOUT', `${what} ${name} is outside the archive`)
  let file: string
  try {
    file = safeEntryPath(tree, p)
  } catch {
    throw new OciRefused('OCI_BAD_LAYOUT', `${what} ${name} is outside the archive`)
  }
  const st = await lstat(file).catch(() => undefined)
  if (st === undefined || !st.isFile()) throw new OciRefused('OCI_BAD_LAYOUT', `${what} ${name} is not a file in the archive`)
  return file
}

async function readDocument (file: string, what: string): Promise<{ bytes: Buffer, value: unknown }> {
  const st = await lstat(file)
  if (st.size > MAX_DOCUMENT_BYTES) throw new OciRefused('OCI_TOO_LARGE', `${what} is larger than ${MAX_DOCUMENT_BYTES} bytes`)
  const bytes = await readFile(file)
  try {
    return { bytes, value: JSON.parse(bytes.toString('utf8')) as unknown }
  } catch {
    throw new OciRefused('OCI_BAD_LAYOUT', `${what} is not JSON`)
  }
}

const sha256 = (b: Uint8Array): string => 'sha256:' + createHash('sha256').update(b).digest('hex')

/** A layer file's digest and size as stored, and the digest of its tar (decompressed when gzipped), within the cap. */
async function hashLayer (file: string, cap: number): Promise<{ digest: string, size: number, diffId: string, gzip: boolean }> {
  const fh = await open(file, 'r')
  let gzip: boolean
  try {
    const head = Buffer.alloc(2)
    const { bytesRead } = await fh.read(head, 0, 2, 0)
    gzip = bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b
  } finally {
    await fh.close()
  }
  const stored = createHash('sha256')
  const plain = createHash('sha256')
  let size = 0
  let plainSize = 0
  const tap = async function * (src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const c of src) {
      size += c.byteLength
      if (size > cap) throw new OciRefused('OCI_TOO_LARGE', `a layer is larger than the cap of ${cap} bytes`)
      stored.update(c)
      yield c
    }
  }
  const sink = new Writable({
    write (c: Buffer, _enc, cb) {
      plainSize += c.byteLength
      if (plainSize > cap) { cb(new OciRefused('OCI_TOO_LARGE', `a layer decompresses past the cap of ${cap} bytes`)); return }
      plain.update(c)
      cb()
    }
  })
  try {
    if (gzip) await pipeline(createReadStream(file), tap, createGunzip(), sink)
    else await pipeline(createReadStream(file), tap, sink)
  } catch (err) {
    if (err instanceof OciRefused) throw err
    throw new OciRefused('OCI_BAD_LAYOUT', `a layer cannot be read: ${(err as Error).message}`)
  }
  const digest = 'sha256:' + stored.digest('hex')
  return { digest, size, diffId: 'sha256:' + plain.digest('hex'), gzip }
}

/** Writes an OCI layout at `layout` from a docker-archive unpacked at `tree`. */
async function convertDockerArchive (tree: string, links: Map<string, string>, layout: string, limits: ImageTarLimits): Promise<void> {
  const { value: list } = await readDocument(join(tree, 'manifest.json'), 'manifest.json')
  if (!Array.isArray(list) || list.length === 0) throw new OciRefused('OCI_BAD_LAYOUT', 'manifest.json lists no image')
  // `docker save a b` holds several images: the first is the app
  const entry = list[0] as { Config?: unknown, Layers?: unknown } | null
  if (entry === null || typeof entry !== 'object') throw new OciRefused('OCI_BAD_LAYOUT', 'manifest.json: the image is not an object')
  if (!Array.isArray(entry.Layers) || entry.Layers.length === 0) throw new OciRefused('OCI_BAD_LAYOUT', 'manifest.json: the image lists no layer')
  if (entry.Layers.length > limits.maxLayers) throw new OciRefused('OCI_TOO_LARGE', `more than ${limits.maxLayers} layers`)

  const configFile = await resolveEntry(tree, links, entry.Config, 'the config')
  const { bytes: configBytes, value: config } = await readDocument(configFile, 'the image config')
  const configDigest = sha256(configBytes)
  // docker names the config by its hash (<hex>.json, or blobs/sha256/<hex>): a name that says another is a tampered archive
  const named = /([0-9a-f]{64})(\.json)?$/.exec(entry.Config as string)?.[1]
  if (named !== undefined && `sha256:${named}` !== configDigest) throw new OciRefused('OCI_BLOB_DIGEST', `the config ${String(entry.Config)} does not hash to its name`)
  const diffIds = (config as { rootfs?: { diff_ids?: unknown } } | null)?.rootfs?.diff_ids
  if (!Array.isArray(diffIds) || diffIds.length !== entry.Layers.length || !diffIds.every((d) => typeof d === 'string')) {
    throw new OciRefused('OCI_BAD_LAYOUT', 'the image config\'s rootfs.diff_ids do not list one digest per layer')
  }

  const blobs = join(layout, 'blobs', 'sha256')
  await mkdir(blobs, { recursive: true })
  const layers: Array<{ mediaType: string, digest: string, size: number }> = []
  let total = 0
  // every name resolved before any file moves: the same file may be named twice
  const files: string[] = []
  for (let i = 0; i < entry.Layers.length; i++) files.push(await resolveEntry(tree, links, entry.Layers[i], `layer ${i}`))
  const hashed = new Map<string, Awaited<ReturnType<typeof hashLayer>>>()
  for (let i = 0; i < files.length; i++) {
    const file = files[i]
    const h = hashed.get(file) ?? await hashLayer(file, limits.maxLayerBytes)
    hashed.set(file, h)
    if (h.diffId !== diffIds[i]) throw new OciRefused('OCI_BLOB_DIGEST', `layer ${i} (${String(entry.Layers[i])}) does not hash to the config's diff_id ${String(diffIds[i])}`)
    total += h.size
    if (total > limits.maxImageBytes) throw new OciRefused('OCI_TOO_LARGE', `the layers are larger than the cap of ${limits.maxImageBytes} bytes`)
    const blob = join(blobs, h.digest.slice(7))
    // a layer named twice (by links or by name) is one blob; copied, as the archive's file may be named again
    if (!existsSync(blob)) await copyFile(file, blob)
    layers.push({ mediaType: h.gzip ? LAYER_TAR_GZIP : LAYER_TAR, digest: h.digest, size: h.size })
  }
  await writeFile(join(blobs, configDigest.slice(7)), configBytes)
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: configBytes.byteLength },
    layers
  }))
  const manifestDigest = sha256(manifest)
  await writeFile(join(blobs, manifestDigest.slice(7)), manifest)
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  await writeFile(join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: OCI_MANIFEST, digest: manifestDigest, size: manifest.byteLength, annotations: { 'org.opencontainers.image.ref.name': 'app' } }]
  }))
}
