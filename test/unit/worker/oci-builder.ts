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

/**
 * A docker-archive, as `docker save` made it before Docker 25 (manifest.json,
 * the config as <sha256>.json, <id>/layer.tar per layer): one layer holding a
 * static binary at /bin/<name>, listed `layers` times, the repeats as links to
 * the first (as docker writes a repeated layer). `tamper` alters it for tests.
 */
export async function buildDockerArchive (out: string, binary: string, opts: {
  name?: string, entrypoint?: string[], cmd?: string[], layers?: number,
  tamper?: 'layer-bytes' | 'config-name' | 'link-escape' | 'path-escape'
} = {}): Promise<void> {
  const name = opts.name ?? 'app'
  const stage = await mkdtemp(join(tmpdir(), 'iexec-docker-archive-'))
  try {
    const { symlink, readFile } = await import('node:fs/promises')
    const fs = join(stage, 'fs')
    await mkdir(join(fs, 'bin'), { recursive: true })
    await writeFile(join(fs, 'bin', name), await readFile(binary), { mode: 0o755 })
    await mkdir(join(fs, 'iexec_out'))
    let layer = execFileSync('tar', ['-C', fs, '-cf', '-', '.'], { maxBuffer: 256 * 1024 * 1024 })
    const diffId = 'sha256:' + createHash('sha256').update(layer).digest('hex')
    if (opts.tamper === 'layer-bytes') {
      layer = Buffer.from(layer)
      layer[layer.byteLength - 2048] ^= 1
    }
    const root = join(stage, 'archive')
    const count = opts.layers ?? 1
    const ids = Array.from({ length: count }, (_, i) => createHash('sha256').update(`layer ${i}`).digest('hex'))
    await mkdir(join(root, ids[0]), { recursive: true })
    await writeFile(join(root, ids[0], 'layer.tar'), layer)
    for (const id of ids.slice(1)) {
      await mkdir(join(root, id))
      await symlink(`../${ids[0]}/layer.tar`, join(root, id, 'layer.tar'))
    }
    if (opts.tamper === 'link-escape') {
      await mkdir(join(root, 'evil'))
      await symlink('../../../../etc/passwd', join(root, 'evil', 'layer.tar'))
    }
    for (const id of ids) {
      await writeFile(join(root, id, 'VERSION'), '1.0')
      await writeFile(join(root, id, 'json'), JSON.stringify({ id }))
    }
    const config = Buffer.from(JSON.stringify({
      architecture: 'amd64', os: 'linux',
      config: { Entrypoint: opts.entrypoint ?? [`/bin/${name}`], Cmd: opts.cmd ?? null, WorkingDir: '/iexec_out', Env: ['PATH=/bin'] },
      rootfs: { type: 'layers', diff_ids: ids.map(() => diffId) }
    }))
    const configHex = createHash('sha256').update(config).digest('hex')
    const configName = opts.tamper === 'config-name' ? `${'0'.repeat(64)}.json` : `${configHex}.json`
    await writeFile(join(root, configName), config)
    const layers = ids.map((id) => `${id}/layer.tar`)
    if (opts.tamper === 'link-escape') layers[layers.length - 1] = 'evil/layer.tar'
    if (opts.tamper === 'path-escape') layers[0] = `../${ids[0]}/layer.tar`
    await writeFile(join(root, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: [`${name}:latest`], Layers: layers }]))
    await writeFile(join(root, 'repositories'), JSON.stringify({ [name]: { latest: ids[count - 1] } }))
    execFileSync('tar', ['-C', root, '-cf', out, '.'])
  } finally {
    await rm(stage, { recursive: true, force: true })
  }
}
