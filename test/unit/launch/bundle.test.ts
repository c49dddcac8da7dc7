import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Script } from 'node:vm'
import { asciiOnly, buildBundle } from '../../../node/launch/build.js'
import { BUNDLE_FILE, CACHE_SUFFIX } from '../../../node/cli/bundle-files.js'
import { cacheFileOf, loadBundle } from '../../../node/launch/run.js'

// A bundle with entry.ts's exports, small enough to write by hand: its
// module-level counter tells whether it ran, onNodeReady as the CLI's.
const FAKE_BUNDLE = `
const listeners = []
let runs = 0
exports.runCli = async (argv) => { runs++; return argv.length + runs * 100 }
exports.onNodeReady = (l) => { listeners.push(l) }
exports.ready = () => { for (const l of listeners.splice(0)) l() }
exports.moduleFile = __filename
exports.required = typeof require('node:path').join
`

describe('launch: the node bundle and its code cache', () => {
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-bundle-'))
    await writeFile(join(dir, BUNDLE_FILE), FAKE_BUNDLE)
  })

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  const caches = async (): Promise<string[]> => (await readdir(dir)).filter((f) => f.endsWith(CACHE_SUFFIX))

  it('runs the bundle as a CommonJS module; the first load writes the cache when a node is ready, the next one reads it', async () => {
    const first = loadBundle(dir)
    assert.equal(first.cacheUsed, false)
    const exports = first.exports as unknown as { runCli: (a: string[]) => Promise<number>, ready: () => void, moduleFile: string, required: string }
    assert.equal(await exports.runCli(['start', '--json']), 102)
    assert.equal(exports.moduleFile, join(dir, BUNDLE_FILE))
    assert.equal(exports.required, 'function')
    assert.deepEqual(await caches(), [], 'nothing written before the node is ready')
    exports.ready()
    assert.deepEqual(await caches(), [cacheFileOf(join(dir, BUNDLE_FILE)).slice(dir.length + 1)])

    const second = loadBundle(dir)
    assert.equal(second.cacheUsed, true)
    // a fresh module: its own state
    assert.equal(await second.exports.runCli([]), 100)
  })

  it('a cache V8 refuses is replaced, and one of another bundle is never offered', async () => {
    const cacheFile = cacheFileOf(join(dir, BUNDLE_FILE))
    await writeFile(cacheFile, 'not a code cache')
    const loaded = loadBundle(dir)
    assert.equal(loaded.cacheUsed, false)
    ;(loaded.exports as unknown as { ready: () => void }).ready()
    assert.equal(loadBundle(dir).cacheUsed, true)
    // a rebuilt bundle (another size) has another cache file name
    await writeFile(join(dir, BUNDLE_FILE), FAKE_BUNDLE + '\n// rebuilt\n')
    assert.notEqual(cacheFileOf(join(dir, BUNDLE_FILE)), cacheFile)
    assert.equal(loadBundle(dir).cacheUsed, false)
  })

  it('builds a bundle with no dynamic import left: one loaded from its code cache still runs the module that had one', async () => {
    // code V8 compiled from a code cache has no dynamic import callback: the build turns import() into require
    await writeFile(join(dir, 'entry.js'), [
      "export async function runCli (argv) { const { basename } = await import('node:path'); return basename('/a/' + argv[0]).length }",
      'export function onNodeReady (l) { l() }'
    ].join('\n'))
    await buildBundle(dir)
    assert.doesNotMatch(await readFile(join(dir, BUNDLE_FILE), 'utf8'), /[^\w.$]import\(/)
    const first = loadBundle(dir)
    assert.equal(first.cacheUsed, false)
    assert.equal(await first.exports.runCli(['abcd']), 4)
    const second = loadBundle(dir)
    assert.equal(second.cacheUsed, true)
    assert.equal(await second.exports.runCli(['abcdef']), 6)
  })

  it('asciiOnly escapes what esbuild leaves in template literals, to the same strings', () => {
    const source = 'const badge = `○ offline · ${1 + 1}…`; const s = "é"; const r = /[●]/.test("●")'
    const ascii = asciiOnly(source)
    assert.match(ascii, /^[\x00-\x7f]*$/)
    // each in a function scope: the script's consts would otherwise clash in the shared global scope
    const run = (code: string): unknown => new Script(`(() => { ${code}; return [badge, s, r] })()`).runInThisContext()
    assert.deepEqual(run(ascii), run(source))
    assert.deepEqual(run(ascii), ['○ offline · 2…', 'é', true])
    assert.throws(() => asciiOnly('const x = "\\é"'), /backslash before a non-ASCII character/)
  })
})
