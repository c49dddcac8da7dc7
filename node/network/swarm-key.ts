import { readFile, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { NetworkError } from './errors.js'

// the format go-ipfs/kubo and @libp2p/pnet share, so a key works with either
const KEY_PATTERN = /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n([0-9a-fA-F]{64})\s*$/

/** A fresh pre-shared swarm key, in the pnet file format. */
export function generateSwarmKey (): string {
  return `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}\n`
}

/** Writes a fresh swarm key file (mode 0600, never overwrites). */
export async function writeSwarmKeyFile (file: string): Promise<void> {
  await writeFile(file, generateSwarmKey(), { mode: 0o600, flag: 'wx' })
}

/**
 * Reads and checks a swarm key file; returns the bytes @libp2p/pnet expects.
 * @throws NetworkError SWARM_KEY_MISSING, SWARM_KEY_INVALID
 */
export async function readSwarmKeyFile (file: string): Promise<Uint8Array> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NetworkError('SWARM_KEY_MISSING', `swarm key file ${file} does not exist`, { file })
    }
    throw new NetworkError('SWARM_KEY_INVALID', `swarm key file ${file} cannot be read`, { file }, { cause: err })
  }
  const m = KEY_PATTERN.exec(text)
  if (m === null) {
    throw new NetworkError('SWARM_KEY_INVALID', `swarm key file ${file} is not a pnet key (/key/swarm/psk/1.0.0/, /base16/, 64 hex digits)`, { file })
  }
  // pnet parses the three lines itself; hand it a normalised copy
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${m[1].toLowerCase()}`)
}
