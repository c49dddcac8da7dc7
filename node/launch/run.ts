#!/usr/bin/env node
// Runs the CLI from its bundle (build.ts), compiled from a V8 code cache:
// what `swarm up` starts each node process with (cliEntry). Node 20 has no
// compile cache for ES modules; a CommonJS bundle run through vm.Script
// takes `cachedData`. The first node process of a bundle (or of another
// node version or other V8 flags, which V8 refuses a cache made under)
// writes the cache once it is ready, when its start's functions are
// compiled; the next ones start from it.
import { createHash } from 'node:crypto'
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Script, constants } from 'node:vm'
import { BUNDLE_FILE, CACHE_SUFFIX } from '../cli/bundle-files.js'

/** What entry.ts exports. */
export interface BundleExports {
  runCli: (argv: string[]) => Promise<number>
  onNodeReady: (listener: () => void) => void
}

/** The code cache of `bundle` for this node version and these V8 flags. */
export function cacheFileOf (bundle: string): string {
  const st = statSync(bundle)
  const flags = createHash('sha256').update(process.execArgv.join('\0')).digest('hex').slice(0, 12)
  return `${bundle}.${process.version}-${flags}-${st.size}-${Math.round(st.mtimeMs)}${CACHE_SUFFIX}`
}

/**
 * Loads the bundle in `dir` (its code cache when there is a usable one) and
 * returns its exports; with none usable, the cache is written when the
 * bundle says a node is ready. Writing is best effort: a read-only install
 * runs without a cache.
 */
export function loadBundle (dir: string): { exports: BundleExports, cacheUsed: boolean } {
  const bundle = join(dir, BUNDLE_FILE)
  const cacheFile = cacheFileOf(bundle)
  let cachedData: Buffer | undefined
  try {
    cachedData = readFileSync(cacheFile)
  } catch {
    // none yet
  }
  // ASCII (build.ts): Latin-1 decodes it into a one-byte string at once
  const source = readFileSync(bundle, 'latin1')
  // the wrapper CommonJS gives a module; on the first line, so line numbers stay
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    ...(cachedData !== undefined ? { cachedData } : {}),
    importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER
  })
  const cacheUsed = cachedData !== undefined && script.cachedDataRejected !== true
  const module = { exports: {} as BundleExports }
  const wrapper = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: unknown, filename: string, dirname: string) => void
  wrapper.call(module.exports, module.exports, createRequire(bundle), module, bundle, dir)
  if (!cacheUsed) {
    module.exports.onNodeReady(() => {
      const tmp = `${cacheFile}.${process.pid}.tmp`
      try {
        writeFileSync(tmp, script.createCachedData())
        // whole or not at all: another process may be reading it
        renameSync(tmp, cacheFile)
      } catch {
        try { rmSync(tmp, { force: true }) } catch {}
      }
    })
  }
  return { exports: module.exports, cacheUsed }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { exports } = loadBundle(dirname(fileURLToPath(import.meta.url)))
  const code = await exports.runCli(process.argv.slice(2))
  // exit now: libp2p and helia keep timers for a few seconds after stop
  process.exit(code)
}
