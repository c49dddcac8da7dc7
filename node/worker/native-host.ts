// What this host lets a native sandbox use: bubblewrap, umoci, root (to run
// sandboxes as an unprivileged uid and to mount size-capped output folders),
// and the cgroups the node may create (v1 controllers, the v2 tree, or a mix
// of both as on hybrid hosts). Each limit is used only where it can be put
// in force, and `describe` says which are.
import { execFileSync } from 'node:child_process'
import { accessSync, constants, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { seccompSupported } from './seccomp.js'

/** One controller usable for limits: where runs' cgroups are made and what it is. */
export interface CgroupController {
  /** 'v1' or 'v2' (a v2 directory carries memory, pids and cpu together) */
  version: 'v1' | 'v2'
  /** which limits it carries */
  limits: Array<'memory' | 'pids' | 'cpu'>
  /** the folder under which each run gets its own cgroup */
  parent: string
}

/** What the host offers, found once. */
export interface NativeHost {
  bwrap?: string
  umoci?: string
  /** the node runs as root: sandboxes run as an unprivileged uid and /iexec_out is a size-capped tmpfs */
  root: boolean
  seccomp: boolean
  cgroups: CgroupController[]
}

/** The executable `cmd` in `path` (a PATH value), or undefined. */
export function which (cmd: string, path = process.env.PATH ?? '/usr/bin:/bin'): string | undefined {
  for (const dir of path.split(':')) {
    if (dir === '') continue
    const p = join(dir, cmd)
    try {
      accessSync(p, constants.X_OK)
      return p
    } catch {}
  }
  return undefined
}

/** Lines of /proc/self/cgroup: hierarchy id, controllers, path. */
function ownCgroups (): Array<{ controllers: string[], path: string }> {
  try {
    return readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n').map((line) => {
      const [, ctl, ...rest] = line.split(':')
      return { controllers: ctl === '' ? [] : ctl.split(','), path: rest.join(':') }
    })
  } catch {
    return []
  }
}

/** Whether a child cgroup can be made (and removed) under dir. */
function canMakeChild (dir: string): boolean {
  const probe = join(dir, `iexec-probe-${process.pid}`)
  try {
    mkdirSync(probe)
    rmdirSync(probe)
    return true
  } catch {
    return false
  }
}

function v1Parent (mount: string, own: string): string | undefined {
  // a node in a container sees its own cgroup as the mount's root, or at its path
  for (const dir of [join(mount, own), mount]) {
    if (canMakeChild(dir)) return dir
  }
  return undefined
}

/** Finds the cgroup controllers this process may create children in. */
export function probeCgroups (root = '/sys/fs/cgroup'): CgroupController[] {
  const own = ownCgroups()
  const found: CgroupController[] = []
  const taken = new Set<string>()
  // v1 first: on hybrid hosts the controllers live there and the v2 tree has none
  for (const [ctl, limit] of [['memory', 'memory'], ['pids', 'pids'], ['cpu', 'cpu']] as const) {
    const line = own.find((l) => l.controllers.includes(ctl))
    if (line === undefined) continue
    let mount = join(root, ctl)
    try { accessSync(join(mount, 'cgroup.procs')) } catch {
      // merged mounts such as cpu,cpuacct
      mount = join(root, line.controllers.join(','))
    }
    const parent = v1Parent(mount, line.path)
    if (parent !== undefined) {
      found.push({ version: 'v1', limits: [limit], parent })
      taken.add(limit)
    }
  }
  const unified = own.find((l) => l.controllers.length === 0 && l.path.startsWith('/'))
  if (unified !== undefined) {
    for (const mount of [join(root, 'unified'), root]) {
      try {
        const controllers = readFileSync(join(mount, 'cgroup.controllers'), 'utf8').trim().split(/\s+/)
        const dir = join(mount, unified.path)
        const limits = (['memory', 'pids', 'cpu'] as const).filter((l) => controllers.includes(l) && !taken.has(l))
        if (limits.length === 0) continue
        // a v2 controller is usable in a child only once the parent's subtree_control enables it
        const enabled = readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/)
        const usable = limits.filter((l) => enabled.includes(l) || tryEnable(dir, l))
        if (usable.length > 0 && canMakeChild(dir)) found.push({ version: 'v2', limits: usable, parent: dir })
        break
      } catch {}
    }
  }
  return found
}

function tryEnable (dir: string, controller: string): boolean {
  try {
    writeFileSync(join(dir, 'cgroup.subtree_control'), `+${controller}`)
    return true
  } catch {
    return false
  }
}

let cached: NativeHost | undefined

/** Probes the host once per process (tests may pass refresh). */
export function probeNativeHost (refresh = false): NativeHost {
  if (cached !== undefined && !refresh) return cached
  const bwrap = which('bwrap')
  const umoci = which('umoci')
  const root = process.getuid?.() === 0
  cached = {
    ...(bwrap !== undefined ? { bwrap } : {}),
    ...(umoci !== undefined ? { umoci } : {}),
    root,
    seccomp: seccompSupported(),
    cgroups: probeCgroups()
  }
  return cached
}

const bwrapChecked = new Map<string, boolean>()

/**
 * Whether user namespaces work for bubblewrap here (one short sandbox, once
 * per process and bwrap: every executor would otherwise block the event
 * loop on it).
 */
export function bwrapWorks (bwrap: string, refresh = false): boolean {
  const known = bwrapChecked.get(bwrap)
  if (known !== undefined && !refresh) return known
  let works: boolean
  try {
    execFileSync(bwrap, ['--unshare-all', '--unshare-user', '--ro-bind', '/', '/', '--', '/bin/true'], { stdio: 'ignore', timeout: 10_000 })
    works = true
  } catch {
    works = false
  }
  bwrapChecked.set(bwrap, works)
  return works
}
