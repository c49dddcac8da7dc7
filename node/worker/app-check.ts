// What `app publish PATH` checks before anything goes on chain: the app's
// kind (a WASI module, a static ELF binary for the worker's architecture with
// an entry point, or an OCI image layout, folder or tar, with a manifest for
// linux on this architecture and an entrypoint or cmd), and the bytes to add
// to the swarm (a layout folder is packed as a tar).
import { lstat, mkdtemp, readFile, rm } from 'node:fs/promises'
import { createReadStream } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { packFolder } from '../storage/archive.js'
import { unpackImageTar } from './image-tar.js'
import { appKind, checkElf } from './app-kind.js'
import type { AppKind } from './app-kind.js'
import { checkLayout, defaultOciImageOptions, OciRefused } from './oci-image.js'

export interface AppCheck {
  kind: AppKind
  bytes: Buffer
  /** what was found, for the publisher */
  detail: string
  /** a docker-archive: `bytes` are the OCI layout it was converted to, not the file's */
  converted?: boolean
}

/** Why an app cannot be published; `code` is for tests and scripts. */
export class AppCheckError extends Error {
  constructor (readonly code: 'APP_UNKNOWN_KIND' | 'APP_NATIVE_UNRUNNABLE' | 'APP_IMAGE_INVALID', message: string) { super(message) }
}

async function checkImage (layout: string, arch?: string): Promise<string> {
  let image
  try {
    image = await checkLayout(layout, defaultOciImageOptions, arch)
  } catch (err) {
    if (err instanceof OciRefused) throw new AppCheckError('APP_IMAGE_INVALID', `${err.code}: ${err.message}`)
    throw err
  }
  const cfg = (image.config.config ?? {}) as { Entrypoint?: unknown, Cmd?: unknown }
  const list = (v: unknown): string[] => Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
  const command = [...list(cfg.Entrypoint), ...list(cfg.Cmd)]
  if (command.length === 0) throw new AppCheckError('APP_IMAGE_INVALID', 'the image has no entrypoint or cmd')
  return `OCI image ${image.manifest.digest}, ${image.layers.length} layer(s), runs ${JSON.stringify(command)}`
}

/** A layout folder as the tar that goes to the swarm. */
async function packed (dir: string, onProgress?: (bytes: number) => void): Promise<Buffer> {
  const parts: Uint8Array[] = []
  let n = 0
  for await (const c of packFolder(dir)) {
    parts.push(c)
    n += c.byteLength
    onProgress?.(n)
  }
  return Buffer.concat(parts)
}

/**
 * Checks a file or folder for `app publish`; `onProgress` hears the bytes
 * read while a folder is packed.
 */
export async function checkAppPath (path: string, opts: { arch?: string, onProgress?: (bytes: number) => void } = {}): Promise<AppCheck> {
  if ((await lstat(path)).isDirectory()) {
    const detail = await checkImage(path, opts.arch)
    return { kind: 'oci', bytes: await packed(path, opts.onProgress), detail }
  }
  const bytes = await readFile(path)
  const kind = appKind(bytes.subarray(0, 512))
  if (kind === 'wasi') return { kind, bytes, detail: 'WASI module' }
  if (kind === 'native') {
    const elf = checkElf(bytes, opts.arch)
    if (!elf.ok) throw new AppCheckError('APP_NATIVE_UNRUNNABLE', `the binary cannot run on a worker: ${elf.reason ?? ''}`)
    return { kind, bytes, detail: `static ELF binary for ${elf.machine}` }
  }
  if (kind === 'oci') {
    const dir = await mkdtemp(join(tmpdir(), 'iexec-app-check-'))
    try {
      let image
      try {
        image = await unpackImageTar(createReadStream(path), dir, defaultOciImageOptions)
      } catch (err) {
        if (err instanceof OciRefused) throw new AppCheckError('APP_IMAGE_INVALID', `the tar is not an image: ${err.code}: ${err.message}`)
        throw err
      }
      const detail = await checkImage(image.layout, opts.arch)
      if (!image.converted) return { kind, bytes, detail }
      // a docker-archive goes to the swarm as the OCI layout it was converted to (what workers read)
      return { kind, bytes: await packed(image.layout, opts.onProgress), detail: `${detail} (converted from a docker-archive)`, converted: true }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }
  throw new AppCheckError('APP_UNKNOWN_KIND', 'not a WASI module, an ELF binary or an OCI image layout (folder or tar)')
}
