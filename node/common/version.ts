import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The package version, from the package.json above this file (src or dist). */
export function packageVersion (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  // bounded walk: node/ or node/cli in src, dist/node/... when compiled
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'iexec-p2p' && typeof pkg.version === 'string') return pkg.version
    } catch {
      // not here: go up
    }
    dir = dirname(dir)
  }
  return '0.0.0'
}
