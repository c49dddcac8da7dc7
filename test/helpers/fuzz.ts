/**
 * A decoder against hostile bytes, with fast-check: random bytes, random JSON
 * shaped like its messages, and valid messages mutated (a field replaced,
 * removed or added at any depth, the text truncated, bytes flipped, inserted
 * or dropped). The decoder must answer every case: a decoded value (checked
 * by the caller's `accepted`), or an error with one of its codes. Anything
 * else (a TypeError, a RangeError, an uncoded Error) fails the property, and
 * so does a case slower than `maxCaseMs` (a decoder that loops on a crafted
 * input). The seed is fixed so a failure replays.
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'

export const FUZZ_SEED = 1919

export interface FuzzTarget<T> {
  decode: (bytes: Uint8Array) => T | Promise<T>
  /** the codes a refusal may carry */
  codes: ReadonlySet<string>
  /** the code of a refusal, or undefined when `err` is not one of the decoder's errors */
  codeOf: (err: unknown) => string | undefined
  /** valid encodings, the seeds of the mutations */
  valid: Uint8Array[]
  /** what an accepted value must satisfy (a round trip, a bound) */
  accepted?: (value: T, bytes: Uint8Array) => void | Promise<void>
  /** field names worth trying in random JSON objects (JSON decoders) */
  keys?: string[]
  /** the largest input the decoder reads; random inputs go a little past it */
  maxBytes?: number
  maxCaseMs?: number
}

const enc = new TextEncoder()
const dec = new TextDecoder()

/** Any JSON-ish value, including the shapes decoders look for. */
export const hostileValue = fc.oneof(
  fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.string({ maxLength: 80 }),
  fc.constantFrom('0x', '0x' + '00'.repeat(32), '0x' + 'ff'.repeat(65), '0x' + 'a'.repeat(40), '0xZZ', -1, 0, 1, 2 ** 53, 1e308, -0, '__proto__',
    'constructor', '', '1'.repeat(90), 'sha256:' + '0'.repeat(64), [], {}, [[]], { length: 1e9 }),
  fc.array(fc.anything({ maxDepth: 2 }), { maxLength: 4 }), fc.object({ maxDepth: 2 })
)

let lastRefusal = ''

async function check<T> (t: FuzzTarget<T>, bytes: Uint8Array, stats: { maxMs: number, accepted: number, refused: number }): Promise<void> {
  const started = performance.now()
  let value: T
  try {
    value = await t.decode(bytes)
  } catch (err) {
    const code = t.codeOf(err)
    assert.ok(code !== undefined, `a coded refusal, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`)
    assert.ok(t.codes.has(code), `a known code, got ${code}`)
    stats.refused++
    lastRefusal = err instanceof Error ? err.message : String(err)
    return
  } finally {
    const ms = performance.now() - started
    if (ms > stats.maxMs) stats.maxMs = ms
    assert.ok(ms < (t.maxCaseMs ?? 2_000), `a case took ${Math.round(ms)} ms`)
  }
  stats.accepted++
  await t.accepted?.(value, bytes)
}

function paths (v: unknown, at: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  if (at.length > 0) out.push(at)
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out))
  else if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) paths((v as Record<string, unknown>)[k], [...at, k], out)
  return out
}

function parentOf (root: unknown, path: Array<string | number>): Record<string | number, unknown> {
  let o = root as Record<string | number, unknown>
  for (const p of path.slice(0, -1)) o = o[p] as Record<string | number, unknown>
  return o
}

function jsonOf (bytes: Uint8Array): unknown {
  try {
    return JSON.parse(dec.decode(bytes))
  } catch {
    return undefined
  }
}

export interface FuzzRuns { random: number, json: number, mutated: number }

/** Runs the three families; returns how many cases were accepted and refused. */
export async function fuzzDecoder<T> (t: FuzzTarget<T>, runs: FuzzRuns): Promise<{ accepted: number, refused: number, maxMs: number }> {
  const stats = { maxMs: 0, accepted: 0, refused: 0 }
  const max = t.maxBytes ?? 4096
  // the valid ones first: the harness would prove nothing if they were refused
  for (const v of t.valid) {
    await check(t, v, stats)
    assert.equal(stats.refused, 0, `every valid seed decodes (${lastRefusal})`)
  }
  stats.accepted = 0

  const sizes = fc.oneof(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: Math.max(0, max - 64), max: max + 64 }).map((n) => new Uint8Array(n).fill(0x20)))
  await fc.assert(fc.asyncProperty(sizes, async (b) => { await check(t, b, stats) }), { numRuns: runs.random, seed: FUZZ_SEED })

  if (t.keys !== undefined && runs.json > 0) {
    const obj = fc.dictionary(fc.constantFrom(...t.keys), hostileValue, { maxKeys: t.keys.length })
    const arb = fc.oneof(fc.anything({ maxDepth: 3 }), obj, obj, obj)
    await fc.assert(fc.asyncProperty(arb, async (v) => {
      let text: string | undefined
      try {
        text = JSON.stringify(v)
      } catch {
        return
      }
      await check(t, enc.encode(text ?? 'undefined'), stats)
    }), { numRuns: runs.json, seed: FUZZ_SEED + 1 })
  }

  const mutation = fc.record({
    i: fc.nat({ max: t.valid.length - 1 }),
    pick: fc.nat(),
    key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom(...(t.keys ?? ['x']))),
    value: hostileValue,
    at: fc.nat(),
    byte: fc.integer({ min: 0, max: 255 }),
    how: fc.constantFrom('replace', 'remove', 'add', 'truncate', 'flip', 'insert', 'drop', 'duplicate')
  })
  await fc.assert(fc.asyncProperty(mutation, async ({ i, pick, key, value, at, byte, how }) => {
    const base = t.valid[i]
    const parsed = jsonOf(base)
    let out: Uint8Array
    if ((how === 'replace' || how === 'remove' || how === 'add') && parsed !== undefined && typeof parsed === 'object' && parsed !== null) {
      const all = paths(parsed)
      const path = all[pick % all.length]
      const parent = parentOf(parsed, path)
      const last = path[path.length - 1]
      if (how === 'replace') parent[last] = value
      else if (how === 'remove') {
        if (Array.isArray(parent)) parent.splice(Number(last), 1)
        else delete parent[last]
      } else {
        const target = parent[last]
        if (target !== null && typeof target === 'object' && !Array.isArray(target)) (target as Record<string, unknown>)[key] = value
        else parent[key] = value
      }
      out = enc.encode(JSON.stringify(parsed))
    } else if (how === 'truncate') {
      out = base.subarray(0, at % (base.byteLength + 1))
    } else {
      const pos = base.byteLength === 0 ? 0 : at % base.byteLength
      const copy = Array.from(base)
      if (how === 'flip' || how === 'replace') copy[pos] = (copy[pos] ?? 0) ^ (1 << (byte % 8))
      else if (how === 'insert' || how === 'add') copy.splice(pos, 0, byte)
      else if (how === 'drop' || how === 'remove') copy.splice(pos, 1)
      else copy.splice(pos, 0, ...copy.slice(pos, pos + 1 + (byte % 64)))
      out = Uint8Array.from(copy)
    }
    await check(t, out, stats)
  }), { numRuns: runs.mutated, seed: FUZZ_SEED + 2 })
  return stats
}
