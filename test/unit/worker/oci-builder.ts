// Builds OCI image layouts for tests, without a registry: with umoci (as an
// operator would) or blob by blob (for layouts a tool would refuse to make).
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** An image holding one static binary at /bin/<name>, built with umoci init/new/insert/config. */
export function buildBinaryImage (layout: string, binary: string, opts: { name?: string, entrypoint?: string[], cmd?: string[] } = {}): void {
  const name = opts.name ?? 'app'
  execFileSync('umoci', ['init', '--layout', layout])
  execFileSync('umoci', ['new', '--image', `${layout}:app`])
  execFileSync('umoci', ['insert', '--rootless', '--image', `${layout}:app`, binary, `/bin/${name}`])
  const args = ['config', '--image', `${layout}:app`, '--config.workingdir', '/iexec_out']
  for (const e of opts.entrypoint ?? [`/bin/${name}`]) args.push('--config.entrypoint', e)
  for (const c of opts.cmd ?? []) args.push('--config.cmd', c)
  execFileSync('umoci', args)
  // umoci config leaves the old manifest behind: gc keeps the layout to what the tag names
  execFileSync('umoci', ['gc', '--layout', layout])
}

/** A tar of a layout folder, as `tar -C layout -cf - .` makes it. */
export function tarLayout (layout: string): Buffer {
  return execFileSync('tar', ['-C', layout, '-cf', '-', '.'], { maxBuffer: 256 * 1024 * 1024 })
}

function blob (bytes: Buffer): { digest: string, size: number, bytes: Buffer } {
  return { digest: 'sha256:' + createHash('sha256').update(bytes).digest('hex'), size: bytes.byteLength, bytes }
}

/** A gzipped layer made by tar from a function that fills a folder (links and all). */
export async function layerOf (fill: (dir: string) => Promise<void> | void): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'iexec-layer-'))
  try {
    await fill(dir)
    return execFileSync('tar', ['-C', dir, '-czf', '-', '.'])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Writes a layout blob by blob: gzipped layers, a config (os/architecture/entrypoint) and its manifest. */
export async function writeLayout (layout: string, layers: Buffer[], config: Record<string, unknown>): Promise<{ manifestDigest: string, layerDigests: string[] }> {
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true })
  const put = async (b: ReturnType<typeof blob>): Promise<void> => {
    await writeFile(join(layout, 'blobs', 'sha256', b.digest.slice(7)), b.bytes)
  }
  const ls = layers.map(blob)
  for (const l of ls) await put(l)
  // rootfs.diff_ids: digests of the uncompressed layers
  const { gunzipSync } = await import('node:zlib')
  const cfg = blob(Buffer.from(JSON.stringify({
    rootfs: { type: 'layers', diff_ids: layers.map((l) => 'sha256:' + createHash('sha256').update(gunzipSync(l)).digest('hex')) },
    ...config
  })))
  await put(cfg)
  const manifest = blob(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg.digest, size: cfg.size },
    layers: ls.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size }))
  })))
  await put(manifest)
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  await writeFile(join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifest.digest, size: manifest.size, annotations: { 'org.opencontainers.image.ref.name': 'app' } }]
  }))
  return { manifestDigest: manifest.digest, layerDigests: ls.map((l) => l.digest) }
}
