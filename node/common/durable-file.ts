import { open, rename } from 'node:fs/promises'
import { dirname } from 'node:path'

/**
 * Writes `data` to `file` so that a crash (kill -9, power loss) leaves
 * either nothing or the whole file: written and fsynced before it is
 * renamed into place (when `tmp` is given) and the folder fsynced after.
 * A file renamed before its bytes reach the disk can come back empty
 * after a power loss on ext4 and xfs.
 */
export async function writeFileDurable (file: string, data: string | Uint8Array, opts: { mode?: number, tmp?: string, exclusive?: boolean } = {}): Promise<void> {
  const target = opts.tmp ?? file
  const fh = await open(target, opts.exclusive === true ? 'wx' : 'w', opts.mode ?? 0o600)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
  if (opts.tmp !== undefined) await rename(opts.tmp, file)
  await syncDir(dirname(file))
}

/** fsync of a folder, so a new or renamed entry in it is on disk too (best effort: some filesystems refuse it). */
async function syncDir (dir: string): Promise<void> {
  let fh
  try {
    fh = await open(dir, 'r')
    await fh.sync()
  } catch {
  } finally {
    await fh?.close()
  }
}
