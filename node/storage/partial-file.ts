import { open, rename, rm } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

/**
 * Streams `source` into `path` through `path.partial`, renamed once the
 * source has ended, so `path` never holds cut-short content. On any failure
 * the partial file is gone before this rejects.
 *
 * The file is opened here rather than by `fs.createWriteStream`:
 * that one opens asynchronously, so a source failing at its first pull made
 * the cleanup's `rm` run before the open and left a `.partial` behind.
 */
export async function writeThroughPartial (path: string, source: AsyncIterable<Uint8Array>): Promise<void> {
  const partial = `${path}.partial`
  const handle = await open(partial, 'w', 0o600)
  let done = false
  try {
    await pipeline(Readable.from(source), handle.createWriteStream())
    done = true
  } finally {
    await handle.close() // the stream closes it too; this waits for that close, or makes it
    if (!done) await rm(partial, { force: true })
  }
  await rename(partial, path)
}
