// The tree's layering, checked: no import cycle between files, and none
// between folders (node/<folder>, protocols, contracts-abi). Type-only
// imports count too: a cycle through types still ties two modules' designs.
import assert from 'node:assert/strict'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import madge from 'madge'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** The folder a file belongs to for the layering: node/<first folder>, or the top folder. */
export function folderOf (file: string): string {
  const parts = file.split('/')
  if (parts[0] !== 'node') return parts[0]
  return parts.length > 2 ? `node/${parts[1]}` : 'node'
}

/** Strongly connected groups of more than one folder in a file graph (Tarjan). */
export function folderCycles (graph: Record<string, string[]>): string[][] {
  const edges = new Map<string, Set<string>>()
  for (const [file, deps] of Object.entries(graph)) {
    const a = folderOf(file)
    for (const dep of deps) {
      const b = folderOf(dep)
      if (a === b) continue
      if (!edges.has(a)) edges.set(a, new Set())
      edges.get(a)?.add(b)
    }
  }
  const nodes = new Set<string>([...edges.keys(), ...[...edges.values()].flatMap((s) => [...s])])
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const out: string[][] = []
  let next = 0
  const visit = (v: string): void => {
    index.set(v, next); low.set(v, next); next++
    stack.push(v); onStack.add(v)
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number))
      }
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = []
      let w: string
      do { w = stack.pop() as string; onStack.delete(w); group.push(w) } while (w !== v)
      if (group.length > 1) out.push(group.sort())
    }
  }
  for (const v of [...nodes].sort()) if (!index.has(v)) visit(v)
  return out
}

describe('import cycles', function () {
  // madge parses every file with the TypeScript compiler: seconds, more on a loaded machine
  this.timeout(120_000)

  it('finds a folder cycle when there is one, and only then', () => {
    assert.deepEqual(folderCycles({
      'node/a/x.ts': ['node/b/y.ts'],
      'node/b/y.ts': ['node/c/z.ts'],
      'node/c/z.ts': ['node/a/w.ts'],
      'node/a/w.ts': [],
      'protocols/p.ts': []
    }), [['node/a', 'node/b', 'node/c']])
    assert.deepEqual(folderCycles({ 'node/a/x.ts': ['node/a/y.ts', 'protocols/p.ts'], 'node/a/y.ts': ['node/a/x.ts'] }), [])
  })

  it('has none between files or folders of node/ and protocols/', async () => {
    const result = await madge([join(ROOT, 'node'), join(ROOT, 'protocols')], {
      baseDir: ROOT,
      fileExtensions: ['ts'],
      tsConfig: join(ROOT, 'tsconfig.json'),
      detectiveOptions: { ts: { skipTypeImports: false }, es6: { skipTypeImports: false } }
    })
    const graph = result.obj()
    // the graph must hold the tree, or an empty parse would pass
    assert.ok(Object.keys(graph).length > 150, `madge saw ${Object.keys(graph).length} files`)
    assert.ok(graph['node/node.ts']?.includes('node/network/index.ts'), 'node.ts -> network/index.ts is in the graph')
    assert.deepEqual(result.circular(), [], 'file-level cycles')
    assert.deepEqual(folderCycles(graph), [], 'folder-level cycles')
  })
})
