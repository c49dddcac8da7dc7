import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'

/** The compiled CLI: these tests run what users run (`npm test` builds first). */
export const BIN = resolve('dist/node/cli/bin.js')

export function assertBuilt (): void {
  assert.ok(existsSync(BIN), `${BIN} is missing: run \`npm run build\` first`)
}

export interface RunResult { code: number | null, signal: string | null, stdout: string, stderr: string }

/** Runs the CLI to completion; kills it and fails when it outlives `timeoutMs`. */
export async function runCli (args: string[], timeoutMs = 60_000, env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return await runCommand(process.execPath, [BIN, ...args], timeoutMs, env)
}

/** Runs any command (npm, bash) to completion; kills it and fails when it outlives `timeoutMs`. */
export async function runCommand (command: string, args: string[], timeoutMs = 60_000, env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return await new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${command} ${args.join(' ')} did not finish in ${timeoutMs} ms; stderr: ${stderr}`))
    }, timeoutMs)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolvePromise({ code, signal, stdout, stderr })
    })
  })
}

/** The `{ ok: false, error }` envelope of a `--json` failure: exactly one line on stderr. */
export function jsonError (r: RunResult): { code: string, message: string } {
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`)
  const parsed = JSON.parse(lines[0]) as { ok: boolean, error: { code: string, message: string } }
  assert.equal(parsed.ok, false)
  assert.equal(typeof parsed.error.message, 'string')
  return parsed.error
}

/** A long-running CLI process (start) whose output lines the test can wait for. */
export class CliProcess {
  readonly child: ChildProcess
  stdout = ''
  stderr = ''
  readonly exited: Promise<{ code: number | null, signal: string | null }>

  constructor (args: string[]) {
    this.child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child.stdout?.on('data', (d: Buffer) => { this.stdout += d.toString() })
    this.child.stderr?.on('data', (d: Buffer) => { this.stderr += d.toString() })
    this.exited = new Promise((resolvePromise) => {
      this.child.on('exit', (code, signal) => { resolvePromise({ code, signal }) })
    })
  }

  /** Polls the captured output until `pred` holds; bounded. */
  async waitFor (what: string, pred: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let done = false
    void this.exited.then(() => { done = true })
    while (!pred()) {
      if (done) throw new Error(`process exited while waiting for ${what}; stdout: ${this.stdout} stderr: ${this.stderr}`)
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stdout: ${this.stdout} stderr: ${this.stderr}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  /** SIGTERM, then SIGKILL when it does not exit in time. Safe to call twice. */
  async stop (graceMs = 15_000): Promise<{ code: number | null, signal: string | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM')
      const timer = setTimeout(() => { this.child.kill('SIGKILL') }, graceMs)
      const r = await this.exited
      clearTimeout(timer)
      return r
    }
    return await this.exited
  }
}

/** Retries `fn` until it returns a value `ok` accepts; bounded. */
export async function pollUntil<T> (what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: T | undefined
  while (true) {
    last = await fn()
    if (ok(last)) return last
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(last)}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

/**
 * PIDs of live processes whose command line mentions `marker` (a swarm dir):
 * catches a node that a swarm.json never recorded.
 */
export function processesMentioning (marker: string): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')
      if (cmdline.some((arg) => arg.includes(marker))) found.push(Number(entry))
    } catch {
      // the process ended while we looked
    }
  }
  return found
}
