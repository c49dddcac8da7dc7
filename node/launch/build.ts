// Bundles the compiled CLI (dist/node/launch/entry.js and everything it
// imports, node_modules included) into one CommonJS file, node.bundle.cjs,
// which `swarm up` runs its node processes from (run.ts). Part of
// `npm run build`, after tsc. A node loaded from some 1400 ES modules spent
// most of its start resolving, reading and compiling them; one file read
// once, and compiled from a V8 code cache, starts in a fraction of that.
import { readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build, type Plugin } from 'esbuild'
import { BUNDLE_FILE, CACHE_SUFFIX } from '../cli/bundle-files.js'

const here = dirname(fileURLToPath(import.meta.url))

/**
 * A bundled module's import.meta.url becomes the URL of the file it came
 * from, found from the bundle's own directory at run time: relative paths
 * (a wasm file next to a module, a package.json two levels up) keep
 * resolving as they did, and dist/ and node_modules/ may move together.
 * CommonJS output has no import.meta: any other use fails the build.
 */
function importMetaUrl (bundleDir: string): Plugin {
  return {
    name: 'import-meta-url',
    setup (b) {
      b.onLoad({ filter: /\.m?js$/ }, async (args) => {
        const text = await readFile(args.path, 'utf8')
        if (!text.includes('import.meta.')) return undefined
        const rel = JSON.stringify(relative(bundleDir, args.path).split(sep).join('/'))
        const contents = text.replaceAll('import.meta.url', `__moduleUrl(${rel})`).replaceAll('import.meta.resolve(', `__moduleResolve(${rel}, `)
        return { contents, loader: 'js', resolveDir: dirname(args.path) }
      })
    }
  }
}

export async function buildBundle (dir = here): Promise<void> {
  const outfile = join(dir, BUNDLE_FILE)
  // a code cache of an older bundle must not be offered to the new one
  for (const f of await readdir(dir)) if (f.endsWith(CACHE_SUFFIX)) await rm(join(dir, f), { force: true })
  const result = await build({
    entryPoints: [join(dir, 'entry.js')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // a dynamic import() fails in code V8 compiled from the code cache ("A dynamic
    // import callback was not specified"): every one becomes a require
    supported: { 'dynamic-import': false },
    // paths through the node_modules symlink of a worktree stay under it
    preserveSymlinks: true,
    // native addons find their binaries from their own directory
    external: ['classic-level'],
    banner: {
      js: [
        'const __moduleUrl = (rel) => require("node:url").pathToFileURL(require("node:path").join(__dirname, rel)).href;',
        // CommonJS resolution from the module's file: only the from-source paths ask (tsx), never taken in the bundle
        'const __moduleResolve = (rel, spec) => require("node:url").pathToFileURL(require("node:module").createRequire(__moduleUrl(rel)).resolve(spec)).href;'
      ].join('\n')
    },
    plugins: [importMetaUrl(dir)],
    // less to read and parse at each start; names kept for stack traces
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    charset: 'ascii',
    logLevel: 'error',
    logOverride: { 'empty-import-meta': 'error' }
  })
  if (result.errors.length > 0) throw new Error(`bundle failed: ${result.errors.map((e) => e.text).join('; ')}`)
  await writeFile(outfile, asciiOnly(await readFile(outfile, 'utf8')))
}

/**
 * esbuild escapes other characters everywhere but in template literals (the
 * explorer's pages have a few): escaped there too, each UTF-16 unit as
 * \uXXXX (the same cooked string; no template of the bundle reads .raw),
 * the bundle is ASCII, which run.ts reads as Latin-1: a one-byte string,
 * faster to decode and parse and half the memory of a two-byte one.
 */
export function asciiOnly (text: string): string {
  return text.replace(/\\?[^\x00-\x7f]/g, (m) => {
    // after a backslash, an escape would change meaning: not met so far, so refused rather than guessed
    if (m.length > 1) throw new Error(`the bundle has a backslash before a non-ASCII character: ${JSON.stringify(m)}`)
    return `\\u${m.charCodeAt(0).toString(16).padStart(4, '0')}`
  })
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildBundle()
}
