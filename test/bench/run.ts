// `npm run bench` runs every suite; `npm run bench -- NAME` runs one.
// A suite is test/bench/NAME.bench.ts exporting `run(): Promise<void>`.
import '../../node/common/polyfills.js'
import { readdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const all = (await readdir(here)).filter((f) => f.endsWith('.bench.ts')).map((f) => f.slice(0, -'.bench.ts'.length)).sort()
const wanted = process.argv.slice(2)
const unknown = wanted.filter((w) => !all.includes(w))
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; known: ${all.join(', ') || 'none'}\n`)
  process.exit(2)
}
for (const name of wanted.length > 0 ? wanted : all) {
  process.stdout.write(`== bench ${name}\n`)
  const mod = await import(pathToFileURL(join(here, `${name}.bench.ts`)).href) as { run: () => Promise<void> }
  await mod.run()
}
process.exit(0)
