// The names of the node's bundle (launch/build.ts) and of its V8 code
// caches (launch/run.ts), both in dist/node/launch/: here, in the layer
// below launch/, because cliEntry looks for the bundle too.
export const BUNDLE_FILE = 'node.bundle.cjs'
/** A code cache is `node.bundle.cjs.<node version>-<V8 flags hash>-<bundle size>-<bundle mtime>.v8cache`. */
export const CACHE_SUFFIX = '.v8cache'
