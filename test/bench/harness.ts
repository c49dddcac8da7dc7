import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector'
import { join } from 'node:path'

/** Percentile (nearest rank) of a list of numbers; NaN for an empty list. */
export function percentile (values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]
}

export function median (values: number[]): number {
  return percentile(values, 50)
}

/** Prints rows as an aligned table on stdout. */
export function printTable (title: string, rows: Array<Record<string, string | number>>): void {
  if (rows.length === 0) { process.stdout.write(`${title}: no rows\n`); return }
  const cols = Object.keys(rows[0])
  const cell = (v: string | number): string => typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c] ?? '').length)))
  const line = (vals: string[]): string => vals.map((v, i) => v.padStart(widths[i])).join('  ')
  process.stdout.write(`\n${title}\n${line(cols)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`)
  for (const r of rows) process.stdout.write(line(cols.map((c) => cell(r[c] ?? ''))) + '\n')
}

/** Writes bench-results/NAME.json (git-ignored). */
export async function writeResults (name: string, data: unknown): Promise<string> {
  const dir = join(process.cwd(), 'bench-results')
  await mkdir(dir, { recursive: true })
  const file = join(dir, `${name}.json`)
  await writeFile(file, JSON.stringify(data, null, 2) + '\n')
  process.stdout.write(`wrote ${file}\n`)
  return file
}

/** CPU this process used over `ms` of wall time, percent of one core. */
export async function cpuPercent (ms: number): Promise<number> {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await new Promise((resolve) => setTimeout(resolve, ms))
  const c = process.cpuUsage(c0)
  return Math.round((c.user + c.system) / 10 / (performance.now() - t0))
}

/**
 * Waits until this process's load settles: two `windowMs` windows in a row
 * under `belowPct` (percent of one core), or `maxMs` passed. A swarm just
 * started is still filling its DHT tables; what a bench measures then is its
 * setup. Returns every window's load and the time waited.
 */
export async function settleCpu (o: { windowMs: number, belowPct: number, maxMs: number }): Promise<{ windows: number[], waitedMs: number }> {
  const t0 = performance.now()
  const windows: number[] = []
  for (;;) {
    windows.push(await cpuPercent(o.windowMs))
    if (windows.length >= 2 && windows.slice(-2).every((w) => w < o.belowPct)) break
    if (performance.now() - t0 >= o.maxMs) break
  }
  return { windows, waitedMs: Math.round(performance.now() - t0) }
}

/**
 * With the environment variable `envVar` set to a folder, starts a CPU
 * profile of this process and returns the function that stops it and writes
 * FOLDER/NAME.cpuprofile (open it in Chrome's DevTools); a bench calls it
 * around what it measures, so set-up stays out of the profile. Undefined
 * when the variable is unset.
 */
export async function startProfile (envVar: string): Promise<((name: string) => Promise<void>) | undefined> {
  const dir = process.env[envVar]
  if (dir === undefined || dir === '') return undefined
  const session = new Session()
  session.connect()
  const post = async (method: string): Promise<unknown> => await new Promise((resolve, reject) => {
    session.post(method, (err, res) => { if (err !== null) reject(err); else resolve(res) })
  })
  await post('Profiler.enable')
  await post('Profiler.start')
  return async (name) => {
    const { profile } = await post('Profiler.stop') as { profile: unknown }
    session.disconnect()
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, `${name}.cpuprofile`), JSON.stringify(profile))
    process.stdout.write(`cpu profile: ${join(dir, `${name}.cpuprofile`)}\n`)
  }
}

/**
 * The compiled CLI, to run node processes as they are deployed (`npm run
 * bench` builds first): under tsx a swarm's nodes would run the sources
 * through the loader, whose hooks cost CPU a deployed node does not spend.
 */
export function compiledCli (): { execPath: string, args: string[] } {
  const bin = join(process.cwd(), 'dist', 'node', 'cli', 'bin.js')
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npm run build\` (npm run bench does) before the benchmarks that start node processes`)
  // BENCH_NODE_PROFILE=DIR: each node process writes a CPU profile of its whole life there when it exits;
  // BENCH_NODE_ARGS: more node options for them (e.g. V8 flags NODE_OPTIONS refuses)
  const profileDir = process.env.BENCH_NODE_PROFILE
  const profile = profileDir !== undefined && profileDir !== '' ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []
  const extra = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '')
  return { execPath: process.execPath, args: [...profile, ...extra, bin] }
}
