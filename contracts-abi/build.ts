// Compiles contracts-abi/contracts/*.sol with solc-js (offline, standard JSON),
// writes contracts-abi/artifacts/<Name>.json and TypeChain bindings in
// contracts-abi/types/. `--check` builds into a temp dir and exits 1 if the
// committed artifacts or types differ (CI).
import { createRequire } from 'node:module'
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { existsSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runTypeChain, DEFAULT_FLAGS } from 'typechain'

const here = dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)

/** contracts whose artifacts are published (libraries with internal functions only are inlined) */
const PUBLISHED = ['Hub', 'RLC', 'TaskReader']

// viaIR: the legacy pipeline stops on "stack too deep" in matchOrders.
// runs = 200: Hub is 24,557 bytes, under the 24,576-byte (EIP-170) limit;
// 1000 runs gives 25,882 bytes (over), 50 runs 24,260 (no smaller).
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  viaIR: true,
  evmVersion: 'cancun',
  metadata: { bytecodeHash: 'none', appendCBOR: false },
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } }
}

interface SolcOutput {
  errors?: Array<{ severity: string, formattedMessage: string }>
  contracts?: Record<string, Record<string, { abi: unknown[], evm: { bytecode: { object: string }, deployedBytecode: { object: string } } }>>
}

interface SolcModule { compile: (input: string, opts: { import: (path: string) => { contents: string } | { error: string } }) => string }

function findImport (path: string): { contents: string } | { error: string } {
  const candidates = [join(here, 'contracts', path), join(here, path)]
  if (path.startsWith('@')) candidates.unshift(join(dirname(require.resolve('@openzeppelin/contracts/package.json')), '..', '..', path))
  for (const c of candidates) {
    if (existsSync(c)) return { contents: readFileSync(c, 'utf8') }
  }
  return { error: `import not found: ${path}` }
}

async function compile (): Promise<Record<string, { abi: unknown[], bytecode: string, deployedBytecode: string }>> {
  const dir = join(here, 'contracts')
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sol')).sort()
  const sources: Record<string, { content: string }> = {}
  for (const f of files) sources[f] = { content: await readFile(join(dir, f), 'utf8') }
  const solc = require('solc') as SolcModule
  const out = JSON.parse(solc.compile(JSON.stringify({ language: 'Solidity', sources, settings: SETTINGS }), { import: findImport })) as SolcOutput
  const errors = (out.errors ?? []).filter((e) => e.severity === 'error')
  if (errors.length > 0) throw new Error('solc failed:\n' + errors.map((e) => e.formattedMessage).join('\n'))
  for (const w of (out.errors ?? []).filter((e) => e.severity !== 'error')) process.stderr.write(w.formattedMessage + '\n')
  const result: Record<string, { abi: unknown[], bytecode: string, deployedBytecode: string }> = {}
  for (const [, contracts] of Object.entries(out.contracts ?? {})) {
    for (const [name, c] of Object.entries(contracts)) {
      if (!PUBLISHED.includes(name)) continue
      result[name] = { abi: c.abi, bytecode: '0x' + c.evm.bytecode.object, deployedBytecode: '0x' + c.evm.deployedBytecode.object }
    }
  }
  for (const name of PUBLISHED) if (result[name] === undefined) throw new Error(`contract ${name} not found in the sources`)
  return result
}

async function writeAll (root: string): Promise<void> {
  const artifacts = join(root, 'artifacts')
  const types = join(root, 'types')
  await rm(artifacts, { recursive: true, force: true })
  await rm(types, { recursive: true, force: true })
  await mkdir(artifacts, { recursive: true })
  const compiled = await compile()
  const files: string[] = []
  for (const name of Object.keys(compiled).sort()) {
    const c = compiled[name]
    const file = join(artifacts, `${name}.json`)
    // fixed key order and a trailing newline: the same sources give the same bytes
    await writeFile(file, JSON.stringify({ contractName: name, abi: c.abi, bytecode: c.bytecode, deployedBytecode: c.deployedBytecode }, null, 2) + '\n')
    files.push(file)
    const size = (c.deployedBytecode.length - 2) / 2
    process.stdout.write(`${name}: ${size} bytes deployed${size > 24576 ? ' (over the 24 KiB limit!)' : ''}\n`)
  }
  await runTypeChain({
    cwd: root,
    filesToProcess: files,
    allFiles: files,
    outDir: types,
    target: 'ethers-v6',
    flags: { ...DEFAULT_FLAGS, node16Modules: true }
  })
}

async function listFiles (dir: string): Promise<string[]> {
  if (!existsSync(dir)) return []
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...await listFiles(p))
    else out.push(p)
  }
  return out.sort()
}

async function check (): Promise<number> {
  const tmp = await mkdtemp(join(tmpdir(), 'contracts-check-'))
  try {
    await writeAll(tmp)
    const diffs: string[] = []
    for (const sub of ['artifacts', 'types']) {
      const want = (await listFiles(join(tmp, sub))).map((f) => relative(tmp, f))
      const have = (await listFiles(join(here, sub))).map((f) => relative(here, f))
      for (const f of new Set([...want, ...have])) {
        if (!want.includes(f)) { diffs.push(`${f}: committed but no longer generated`); continue }
        if (!have.includes(f)) { diffs.push(`${f}: missing (not committed)`); continue }
        const a = await readFile(join(tmp, f), 'utf8')
        const b = await readFile(join(here, f), 'utf8')
        if (a !== b) diffs.push(`${f}: differs from the sources`)
      }
    }
    if (diffs.length > 0) {
      process.stderr.write(`contracts-abi is out of date; run \`npm run contracts:build\` and commit:\n  ${diffs.join('\n  ')}\n`)
      return 1
    }
    process.stdout.write('contracts-abi artifacts and types are up to date\n')
    return 0
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}

const started = Date.now()
if (process.argv.includes('--check')) {
  process.exitCode = await check()
} else {
  await writeAll(here)
  process.stdout.write(`contracts built in ${Date.now() - started} ms\n`)
}
