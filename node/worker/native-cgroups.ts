// A native run's cgroups: one folder per controller the node may write
// (native-host.ts probes which), with the run's memory, pids and cpu limits;
// read after the run for an OOM kill, emptied and removed at its end.
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { CgroupController } from './native-host.js'

/** One controller's folder for one run. */
export interface RunCgroup { ctl: CgroupController, dir: string }

/** The limits a run's cgroups carry. */
export interface RunLimits {
  memoryBytes: number
  processes: number
  /** cores, as a CFS quota */
  cpus: number
}

/** Makes the run's cgroups under each controller's parent, with its limits; a controller that refuses is skipped. */
export function makeRunCgroups (controllers: CgroupController[], id: number, limits: RunLimits): RunCgroup[] {
  const made: RunCgroup[] = []
  for (const ctl of controllers) {
    const dir = join(ctl.parent, `iexec-native-${process.pid}-${id}`)
    try {
      mkdirSync(dir)
    } catch {
      continue
    }
    made.push({ ctl, dir })
    const set = (file: string, value: string): void => {
      try { writeFileSync(join(dir, file), value) } catch {}
    }
    for (const limit of ctl.limits) {
      if (ctl.version === 'v1') {
        if (limit === 'memory') {
          set('memory.limit_in_bytes', String(limits.memoryBytes))
          set('memory.memsw.limit_in_bytes', String(limits.memoryBytes))
        }
        if (limit === 'pids') set('pids.max', String(limits.processes))
        if (limit === 'cpu') {
          set('cpu.cfs_period_us', '100000')
          set('cpu.cfs_quota_us', String(Math.round(100000 * limits.cpus)))
        }
      } else {
        if (limit === 'memory') {
          set('memory.max', String(limits.memoryBytes))
          set('memory.swap.max', '0')
        }
        if (limit === 'pids') set('pids.max', String(limits.processes))
        if (limit === 'cpu') set('cpu.max', `${Math.round(100000 * limits.cpus)} 100000`)
      }
    }
  }
  return made
}

/** Whether the run hit its memory cgroup's bound. */
export function runOomed (cgroups: RunCgroup[]): boolean {
  for (const { ctl, dir } of cgroups) {
    if (!ctl.limits.includes('memory')) continue
    try {
      if (ctl.version === 'v1') {
        // the limit with swap is met first where swap accounting is on; the kill is counted in oom_control
        if (/^oom_kill [1-9]/m.test(readFileSync(join(dir, 'memory.oom_control'), 'utf8'))) return true
        for (const f of ['memory.failcnt', 'memory.memsw.failcnt']) {
          try { if (Number(readFileSync(join(dir, f), 'utf8')) > 0) return true } catch {}
        }
      } else {
        const events = readFileSync(join(dir, 'memory.events'), 'utf8')
        if (/^(oom|oom_kill|max) [1-9]/m.test(events)) return true
      }
    } catch {}
  }
  return false
}

/** Kills whatever is left in the run's cgroups, then removes them. */
export async function dropRunCgroups (cgroups: RunCgroup[]): Promise<void> {
  for (const { dir } of cgroups) {
    for (let attempt = 0; attempt < 500; attempt++) {
      let pids: number[] = []
      try {
        pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim().split('\n').filter((s) => s !== '').map(Number)
      } catch {}
      for (const pid of pids) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
      try {
        // rmdir, not rm: a cgroup folder holds files that cannot be removed one by one
        rmdirSync(dir)
        break
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') break
        // the run's last process leaves its cgroups a moment after its exit is seen: retry soon, then back off
        await new Promise((resolve) => setTimeout(resolve, Math.min(20, 1 << attempt)))
      }
    }
  }
}
