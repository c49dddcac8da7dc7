// Where the bundle of the node (build.ts) and its V8 code caches (run.ts) live, next to these modules in dist/node/launch/.
export const BUNDLE_FILE = 'node.bundle.cjs'
/** A code cache is `node.bundle.cjs.<node version>-<bundle size>-<bundle mtime>.v8cache`. */
export const CACHE_SUFFIX = '.v8cache'
