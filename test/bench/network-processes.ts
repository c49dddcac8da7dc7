// The network bench's node-process parts: `swarm up --nodes N` (one process
// per node) until node 0 finds every provider, with the idle CPU and memory
// of each node after; and the NAT topology of the namespace test (relayed
// and direct latency, hole-punch success and time). Both start real
// `iexec-p2p start` processes from dist/.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { ApiClient } from '../../node/api/index.js'
import type { NodeStatus, PeerView } from '../../node/api/index.js'
import { loadDataDir } from '../../node/config/index.js'
import { writeSwarmKeyFile } from '../../node/network/index.js'
import { compiledCli, median, percentile } from './harness.js'
import { createNatTopology, netnsUnavailable } from '../helpers/netns.js'

async function run (cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${cmd} ${args.join(' ')} ran over ${timeoutMs} ms; ${stderr.slice(-500)}`)) }, timeoutMs)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

// how long node 0 may take to list every provider before the figure is reported as missed
const FIND_ALL_MS = Number(process.env.BENCH_NETWORK_FIND_ALL_MS ?? 300_000)

async function sleep (ms: number): Promise<void> { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** utime + stime of a process, in clock ticks (100 per second here) */
async function cpuTicks (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

async function rssMb (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 'NaN')
  return kb / 1024
}

export interface ProcessStartResult {
  nodes: number
  chain: boolean
  /** `swarm up` spawned to node 0 listing every provider; null when it did not within the bound */
  processStartMs: number | null
  /** providers node 0 listed (verified records) at the end of the wait */
  providersFound: number
  providers: number
  /** `swarm up` alone (its own readiness: every API answers, funded and staked with a chain) */
  swarmUpMs: number
  /**
   * CPU the node processes used from their spawn until node 0 listed every
   * provider (or the bound passed): on a shared machine a steadier figure
   * than the wall times above
   */
  startCpuMsPerNodeMean: number
  startCpuMsPerNodeMax: number
  idleCpuPctPerNodeMean: number
  idleCpuPctPerNodeMax: number
  rssMbPerNodeMean: number
  rssMbPerNodeMax: number
  idleWindowMs: number
  loadAverage1mAtEnd: number
}

export async function processStart (n: number, chain: boolean): Promise<ProcessStartResult> {
  const cli = compiledCli()
  const dir = await mkdtemp(join(tmpdir(), 'iexec-bench-procs-'))
  const swarmDir = join(dir, 'swarm')
  const t0 = performance.now()
  try {
    const up = await run(cli.execPath, [...cli.args, 'swarm', 'up', '--nodes', String(n), '--dir', swarmDir, '--json', '--timeout', '600', ...(chain ? [] : ['--no-chain'])], 900_000)
    if (up.code !== 0) throw new Error(`swarm up failed: ${up.stderr.slice(-2000)}`)
    const swarmUpMs = performance.now() - t0
    const nodes = (JSON.parse(up.stdout) as { nodes: Array<{ api: string, role: string, peerId: string }> }).nodes
    const file = JSON.parse(await readFile(join(swarmDir, 'swarm.json'), 'utf8')) as { nodes: Array<{ pid: number, dataDir: string }> }
    const providers = new Set(nodes.filter((x) => x.role === 'provider').map((x) => x.peerId))
    const loaded = await loadDataDir(file.nodes[0].dataDir)
    const api = new ApiClient(nodes[0].api, loaded.apiToken, { timeoutMs: 60_000 })
    const deadline = Date.now() + FIND_ALL_MS
    let best = 0
    let processStartMs: number | null = null
    for (;;) {
      const found = new Set((await api.resources({}).catch(() => [])).map((r) => r.peerId))
      best = Math.max(best, [...providers].filter((p) => found.has(p)).length)
      if (best === providers.size) { processStartMs = performance.now() - t0; break }
      if (Date.now() > deadline) break
      await sleep(500)
    }
    const pids = file.nodes.map((x) => x.pid)
    const startCpu = (await Promise.all(pids.map(cpuTicks))).map((t) => t * 10)
    // idle: after the start-up's work, what a node costs doing nothing
    await sleep(20_000)
    const before = await Promise.all(pids.map(cpuTicks))
    const w0 = performance.now()
    await sleep(10_000)
    const after = await Promise.all(pids.map(cpuTicks))
    const windowMs = performance.now() - w0
    const cpu = pids.map((_, i) => (after[i] - before[i]) / 100 * 1000 / windowMs * 100)
    const rss = await Promise.all(pids.map(rssMb))
    const load = Number((await readFile('/proc/loadavg', 'utf8')).split(' ')[0])
    return {
      nodes: n,
      chain,
      processStartMs: processStartMs === null ? null : Math.round(processStartMs),
      providersFound: best,
      providers: providers.size,
      swarmUpMs: Math.round(swarmUpMs),
      startCpuMsPerNodeMean: Math.round(startCpu.reduce((a, b) => a + b, 0) / startCpu.length),
      startCpuMsPerNodeMax: Math.max(...startCpu),
      idleCpuPctPerNodeMean: cpu.reduce((a, b) => a + b, 0) / cpu.length,
      idleCpuPctPerNodeMax: Math.max(...cpu),
      rssMbPerNodeMean: rss.reduce((a, b) => a + b, 0) / rss.length,
      rssMbPerNodeMax: Math.max(...rss),
      idleWindowMs: Math.round(windowMs),
      loadAverage1mAtEnd: load
    }
  } finally {
    await run(cli.execPath, [...cli.args, 'swarm', 'down', '--dir', swarmDir], 180_000).catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}

export interface NatTopologyResult {
  available: boolean
  reason?: string
  /** ping round trips between the two homes, relayed (both closed) and direct (after DCUtR) */
  relayedPingMsP50?: number
  directPingMsP50?: number
  holePunchAttempts?: number
  holePunchSuccesses?: number
  /** relayed connection opened -> direct connection opened, as the dialling node measured it */
  holePunchMsP50?: number
  holePunchMsMax?: number
}

/** The namespace test's topology: relay and two homes, node processes inside. */
export async function natTopology (attempts: number): Promise<NatTopologyResult> {
  const why = await netnsUnavailable()
  if (why !== undefined) return { available: false, reason: why }
  const cli = compiledCli()
  const dir = await mkdtemp(join(tmpdir(), 'iexec-bench-nat-'))
  const topo = await createNatTopology(4001)
  const procs: ChildProcess[] = []
  const key = join(dir, 'swarm.key')
  await writeSwarmKeyFile(key)
  const ns = async (name: string, args: string[]): Promise<string> => {
    const r = await run('ip', ['netns', 'exec', name, cli.execPath, ...cli.args, ...args], 120_000)
    if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  const start = async (name: string, dataDir: string, extra: string[]): Promise<{ child: ChildProcess, peerId: string }> => {
    await run(cli.execPath, [...cli.args, 'init', '--data-dir', dataDir, '--dev-unprotected-key'], 60_000)
    const child = spawn('ip', ['netns', 'exec', name, cli.execPath, ...cli.args, 'start', '--data-dir', dataDir, '--swarm-key', key, '--listen', '/ip4/0.0.0.0/tcp/4001', '--json', ...extra], { stdio: ['ignore', 'pipe', 'ignore'] })
    procs.push(child)
    let out = ''
    child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
    const deadline = Date.now() + 120_000
    while (!out.includes('\n')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`node in ${name} did not start`)
      await sleep(100)
    }
    return { child, peerId: (JSON.parse(out.split('\n')[0]) as { peerId: string }).peerId }
  }
  const stop = async (child: ChildProcess): Promise<void> => {
    if (child.exitCode !== null) return
    child.kill('SIGTERM')
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { child.kill('SIGKILL'); resolve() }, 15_000)
      child.once('exit', () => { clearTimeout(t); resolve() })
    })
  }
  const pings = async (name: string, dataDir: string, peer: string, limited: boolean, count: number): Promise<number[]> => {
    const out: number[] = []
    const deadline = Date.now() + 120_000
    while (out.length < count && Date.now() < deadline) {
      const ps = JSON.parse(await ns(name, ['peers', '--data-dir', dataDir, '--json'])) as PeerView[]
      const p = ps.find((x) => x.peerId === peer && x.limited === limited)
      if (p?.latencyMs != null) out.push(p.latencyMs)
      else await sleep(500)
    }
    return out
  }
  try {
    const relay = await start(topo.pub, join(dir, 'relay'), ['--requester'])
    const relayAddr = `/ip4/${topo.pubIp}/tcp/4001/p2p/${relay.peerId}`
    const provider = await start(topo.home1, join(dir, 'provider'), ['--bootstrap', relayAddr])
    const deadline = Date.now() + 60_000
    while ((JSON.parse(await ns(topo.home1, ['status', '--data-dir', join(dir, 'provider'), '--json'])) as NodeStatus).nat?.reachability !== 'relayed') {
      if (Date.now() > deadline) throw new Error('the provider got no relay reservation')
      await sleep(500)
    }
    const circuit = `${relayAddr}/p2p-circuit/p2p/${provider.peerId}`
    // both homes closed: the connection stays relayed (no address to punch to)
    const closed = await start(topo.home2, join(dir, 'closed'), ['--requester', '--bootstrap', relayAddr, circuit])
    const relayed = await pings(topo.home2, join(dir, 'closed'), provider.peerId, true, 10)
    await stop(closed.child)
    // home 2's router forwards the port: DCUtR upgrades; a fresh node per attempt
    const times: number[] = []
    let successes = 0
    let direct: number[] = []
    for (let i = 0; i < attempts; i++) {
      const d = join(dir, `open-${i}`)
      const open = await start(topo.home2, d, ['--requester', '--announce', `/ip4/${topo.router2Wan}/tcp/4001`, '--bootstrap', relayAddr, circuit])
      const until = Date.now() + 60_000
      let s: NodeStatus | undefined
      while (Date.now() < until) {
        s = JSON.parse(await ns(topo.home2, ['status', '--data-dir', d, '--json'])) as NodeStatus
        if ((s.nat?.directUpgrades ?? 0) > 0) break
        await sleep(300)
      }
      if ((s?.nat?.directUpgrades ?? 0) > 0) {
        successes++
        if (s?.nat?.lastUpgradeMs !== undefined) times.push(s.nat.lastUpgradeMs)
        if (i === 0) direct = await pings(topo.home2, d, provider.peerId, false, 10)
      }
      await stop(open.child)
    }
    return {
      available: true,
      relayedPingMsP50: median(relayed),
      directPingMsP50: median(direct),
      holePunchAttempts: attempts,
      holePunchSuccesses: successes,
      holePunchMsP50: median(times),
      holePunchMsMax: percentile(times, 100)
    }
  } finally {
    for (const c of procs) await stop(c)
    await topo.remove()
    await rm(dir, { recursive: true, force: true })
  }
}
