import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'

// Helpers to watch and stop detached node processes by PID. PIDs get reused,
// so before signalling we check that the process is still one of ours.

/** True when `pid` runs and is not a zombie (an exited child nobody reaped yet). */
export async function isAlive (pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0)
  } catch (err) {
    // EPERM: it exists but belongs to someone else
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // "pid (comm) S ...": the state follows the last ')'
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    // no /proc (not Linux) or it vanished in between: trust kill(0) unless it vanished
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
}

/**
 * True when `pid` is alive and its command line mentions `marker` (the node's
 * data dir): a recycled PID of an unrelated process is never signalled.
 */
export async function isOurProcess (pid: number, marker: string): Promise<boolean> {
  if (!await isAlive(pid)) return false
  try {
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')
    return cmdline.includes(marker)
  } catch {
    // without /proc we cannot tell; alive is the best we know
    return true
  }
}

/** Polls until every pid has exited or the deadline passes; returns the survivors. */
export async function waitForExit (pids: number[], timeoutMs: number, pollMs = 100): Promise<number[]> {
  const deadline = Date.now() + timeoutMs
  let left = pids
  while (true) {
    const alive = await Promise.all(left.map(async (pid) => await isAlive(pid)))
    left = left.filter((_, i) => alive[i])
    if (left.length === 0 || Date.now() >= deadline) return left
    await sleep(pollMs)
  }
}

export interface StopResult {
  /** exited after SIGTERM */
  stopped: number[]
  /** had to be SIGKILLed */
  killed: number[]
  /** still alive after SIGKILL (should never happen) */
  survivors: number[]
}

/** SIGTERM, wait up to `graceMs`, SIGKILL the rest, wait up to `killWaitMs`. */
export async function stopProcesses (pids: number[], graceMs: number, killWaitMs: number): Promise<StopResult> {
  for (const pid of pids) signal(pid, 'SIGTERM')
  const afterTerm = await waitForExit(pids, graceMs)
  for (const pid of afterTerm) signal(pid, 'SIGKILL')
  const survivors = await waitForExit(afterTerm, killWaitMs)
  return { stopped: pids.filter((p) => !afterTerm.includes(p)), killed: afterTerm.filter((p) => !survivors.includes(p)), survivors }
}

function signal (pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

/** The last `lines` lines of a log file, or a note that there is none. */
export async function logTail (file: string, lines: number): Promise<string> {
  try {
    const text = await readFile(file, 'utf8')
    return text.trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return `(no log at ${file})`
  }
}
