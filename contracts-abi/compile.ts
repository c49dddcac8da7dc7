// Compiles Solidity sources outside contracts-abi/contracts (the example DApp,
// test contracts) with the project's solc (a devDependency), imports resolved
// against contracts-abi/contracts and @openzeppelin/contracts. Not viaIR: small
// contracts compile in a second or two.
import { createRequire } from 'node:module'
import { existsSync, readFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)

export interface CompiledContract { abi: unknown[], bytecode: string }

interface SolcOutput {
  errors?: Array<{ severity: string, formattedMessage: string }>
  contracts?: Record<string, Record<string, { abi: unknown[], evm: { bytecode: { object: string } } }>>
}

function findImport (path: string, from: string[]): { contents: string } | { error: string } {
  const candidates = [...from.map((d) => join(d, path)), join(here, 'contracts', path), join(here, 'contracts', basename(path))]
  if (path.startsWith('@')) candidates.unshift(join(dirname(require.resolve('@openzeppelin/contracts/package.json')), '..', '..', path))
  for (const c of candidates) if (existsSync(c)) return { contents: readFileSync(c, 'utf8') }
  return { error: `import not found: ${path}` }
}

/** Compiles the given .sol files; every contract of them by name. */
export function compileSolidity (files: string[]): Record<string, CompiledContract> {
  const solc = require('solc') as { compile: (input: string, opts: { import: (p: string) => { contents: string } | { error: string } }) => string }
  const sources: Record<string, { content: string }> = {}
  for (const f of files) sources[basename(f)] = { content: readFileSync(f, 'utf8') }
  const dirs = [...new Set(files.map((f) => dirname(f)))]
  const input = {
    language: 'Solidity',
    sources,
    settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: 'cancun', outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } }
  }
  const out = JSON.parse(solc.compile(JSON.stringify(input), { import: (p) => findImport(p, dirs) })) as SolcOutput
  const errors = (out.errors ?? []).filter((e) => e.severity === 'error')
  if (errors.length > 0) throw new Error('solc failed:\n' + errors.map((e) => e.formattedMessage).join('\n'))
  const result: Record<string, CompiledContract> = {}
  for (const f of Object.keys(sources)) {
    for (const [name, c] of Object.entries(out.contracts?.[f] ?? {})) result[name] = { abi: c.abi, bytecode: '0x' + c.evm.bytecode.object }
  }
  return result
}
