// Swarms of 5, 20 and 50 full nodes (IexecNode: level stores, DHT, gossipsub,
// adverts, API) in ONE process on 127.0.0.1. Measures: start -> connected DHT,
// gossip delivery latency to every node, findProviders latency, RSS per node.
// All nodes share this process's event loop and the machine's cores, so the
// latencies include that contention: a node per process would do better.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { IexecNode } from '../../node/node.js'
import { initDataDir } from '../../node/config/index.js'
import { writeSwarmKeyFile } from '../../node/network/index.js'
import { categoryCid, topic } from '../../protocols/topics.js'
import { percentile, median, printTable, settleCpu, writeResults } from './harness.js'
import { natTopology, processStart } from './network-processes.js'
import type { NatTopologyResult, ProcessStartResult } from './network-processes.js'

const SWARM = 'bench'
const SIZES = (process.env.BENCH_NETWORK_SIZES ?? '5,20,50').split(',').map(Number).filter((n) => n > 0)
// node processes of `swarm up` (0 = skip), with its chain unless BENCH_NETWORK_PROCESS_CHAIN=0
const PROCESSES = Number(process.env.BENCH_NETWORK_PROCESSES ?? 50)
const PROCESS_CHAIN = process.env.BENCH_NETWORK_PROCESS_CHAIN !== '0'
// hole-punch attempts in the NAT topology (network namespaces; needs root, ip and nft)
const NAT_ATTEMPTS = Number(process.env.BENCH_NETWORK_NAT_ATTEMPTS ?? 3)
// messages per swarm: enough for a p95 over (N-1) receivers each
const MESSAGES = Number(process.env.BENCH_NETWORK_MESSAGES ?? 40)
const LOOKUPS = Number(process.env.BENCH_NETWORK_LOOKUPS ?? 20)
// pnet off by default: its xsalsa20 WASM module shares ONE linear memory per
// process, and ~50 nodes x 49 connections of ciphers exhausted it
// ("WebAssembly.Memory.grow(): Maximum memory size exceeded"). One node per
// process, as deployed, stays far below that. BENCH_NETWORK_PNET=1 turns it on.
const PNET = process.env.BENCH_NETWORK_PNET === '1'

async function waitFor (cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + timeoutMs
  const ok = async (): Promise<boolean> => { try { return await cond() } catch { return false } }
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

function pick<T> (xs: T[], rnd: () => number): T {
  return xs[Math.floor(rnd() * xs.length)]
}

// deterministic pseudo-random (mulberry32) so runs pick the same publishers
function rng (seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6D2B79F5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function describe (nodes: IexecNode[]): string {
  return nodes.map((x) => `${(x.network.helia.libp2p.services.pubsub.getPeers()).length}:${new Set(x.network.helia.libp2p.getConnections().map((c) => c.remotePeer.toString())).size}:${x.network.dhtPeerCount()}/${x.status().connections}/${x.network.bootstrapStatus().map((b) => b.state[0]).join('')}`).join(' ')
}

interface SwarmResult {
  nodes: number
  pnet: string
  startSeconds: number
  /** the wait for the start-up's load to settle before measuring */
  settleMs: number
  gossipP50Ms: number
  gossipP95Ms: number
  gossipMaxMs: number
  gossipLost: number
  findProvidersP50Ms: number
  findProvidersP95Ms: number
  resourcesP50Ms: number
  providersFoundMin: number
  publishFailures: number
  lookupFailures: number
  rssMbPerNode: number
  rssDeltaMbPerNode: number
}

async function runSwarm (n: number): Promise<SwarmResult> {
  const root = await mkdtemp(join(tmpdir(), `iexec-bench-${n}-`))
  const nodes: IexecNode[] = []
  const rnd = rng(n)
  try {
    const swarmKey = join(root, 'swarm.key')
    await writeSwarmKeyFile(swarmKey)
    const keyOpt = PNET ? { swarmKeyFile: swarmKey } : {}
    // data dirs are made before the clock starts: `init` is not part of joining a swarm
    const dirs: string[] = []
    for (let i = 0; i < n; i++) {
      const dataDir = join(root, `n${i}`)
      await initDataDir({ dataDir, devUnprotectedKey: true, config: { swarmId: SWARM, cpus: 1, memoryMb: 512, tags: [i % 2 === 0 ? 'energy:green' : 'energy:grid'] } })
      dirs.push(dataDir)
    }
    const rssBefore = process.memoryUsage().rss

    const t0 = performance.now()
    // three seeds start first (like a swarm's bootstrap list); the rest start
    // together, each given the seeds as bootstrap peers
    const seeds = Math.min(3, n)
    for (let i = 0; i < seeds; i++) {
      const node = await IexecNode.create({ dataDir: dirs[i], ...keyOpt, bootstrap: nodes.map((x) => x.multiaddrs()[0]) })
      await node.start()
      nodes.push(node)
    }
    const seedAddrs = nodes.map((x) => x.multiaddrs()[0])
    const rest = await Promise.all(dirs.slice(seeds).map(async (dataDir) => {
      const node = await IexecNode.create({ dataDir, ...keyOpt, bootstrap: seedAddrs })
      await node.start()
      return node
    }))
    nodes.push(...rest)
    const cid = await categoryCid(SWARM, 0)
    await waitFor(() => nodes.every((x) => x.network.dhtPeerCount() >= 1), 180_000, () => `every node has a DHT peer (dht/conns/bootstrap: ${describe(nodes)})`)
    // "connected DHT": a lookup from the last node to start finds a provider
    await waitFor(async () => {
      for await (const _p of nodes[n - 1].network.findProviders(cid, { signal: AbortSignal.timeout(20_000) })) {
        if (_p.peerId !== nodes[n - 1].peerId) return true
      }
      return false
    }, 180_000, 'a findProviders that finds another provider')
    const startSeconds = (performance.now() - t0) / 1000

    // measured once the setup's DHT traffic has settled, as in a swarm that
    // has run for a while (the market bench does the same): right after
    // start-up the tail of gossip latency is the start-up's load
    const settled = await settleCpu({ windowMs: 2_000, belowPct: 40, maxMs: 120_000 })
    process.stdout.write(`  load after start (% of a core, 2 s windows): ${settled.windows.join(' ')}\n`)

    // gossip: every node subscribes; wait for each to know a subscribed neighbour
    const t = topic(SWARM, 'requestorder')
    const arrivals = new Map<number, Map<string, number>>()
    for (const node of nodes) {
      node.network.subscribe(t, (msg) => {
        const id = Number(new TextDecoder().decode(msg.data))
        arrivals.get(id)?.set(node.peerId, performance.now())
      })
    }
    await waitFor(() => nodes.every((x) => x.network.topicPeers(t).length > 0), 60_000, () => `topic subscriptions (topic peers: ${nodes.map((x) => x.network.topicPeers(t).length).join(' ')}; ${describe(nodes)})`)
    // one warm-up message lets gossipsub's first heartbeat build the mesh
    const latencies: number[] = []
    let lost = 0
    for (let m = -1; m < MESSAGES; m++) {
      const publisher = pick(nodes, rnd)
      const got = new Map<string, number>()
      arrivals.set(m, got)
      const sent = performance.now()
      await publisher.network.publish(t, new TextEncoder().encode(String(m)))
      try {
        await waitFor(() => got.size >= n - 1, 10_000, `message ${m} delivered`)
      } catch {
        lost += (n - 1) - got.size
      }
      if (m >= 0) for (const at of got.values()) latencies.push(at - sent)
    }

    // lookups in steady state: every provider re-publishes once the routing
    // tables are full (what the periodic refresh does), then lookups run
    // five at a time: real refreshes are spread over the interval, not synchronised
    let publishFailures = 0
    for (let i = 0; i < n; i += 5) {
      const batch = await Promise.allSettled(nodes.slice(i, i + 5).map(async (x) => { await x.adverts.publishNow() }))
      publishFailures += batch.filter((r) => r.status === 'rejected').length
    }
    const fp: number[] = []
    const res: number[] = []
    let providersFoundMin = Number.POSITIVE_INFINITY
    let lookupFailures = 0
    for (let k = 0; k < LOOKUPS; k++) {
      const asker = pick(nodes, rnd)
      const s = performance.now()
      let count = 0
      try {
        for await (const _p of asker.network.findProviders(cid, { signal: AbortSignal.timeout(10_000) })) count++
      } catch {
        lookupFailures++
      }
      fp.push(performance.now() - s)
      providersFoundMin = Math.min(providersFoundMin, count)
      const s2 = performance.now()
      await asker.resources({ category: 0 })
      res.push(performance.now() - s2)
    }

    // idle RSS: sampled over 2 s after the work (a measurement window, not a sync)
    const samples: number[] = []
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 400))
      samples.push(process.memoryUsage().rss)
    }
    const rss = median(samples)
    return {
      nodes: n,
      pnet: PNET ? 'yes' : 'no',
      startSeconds,
      settleMs: settled.waitedMs,
      gossipP50Ms: percentile(latencies, 50),
      gossipP95Ms: percentile(latencies, 95),
      gossipMaxMs: Math.max(...latencies),
      gossipLost: lost,
      findProvidersP50Ms: median(fp),
      findProvidersP95Ms: percentile(fp, 95),
      resourcesP50Ms: median(res),
      providersFoundMin,
      publishFailures,
      lookupFailures,
      rssMbPerNode: rss / 1048576 / n,
      rssDeltaMbPerNode: (rss - rssBefore) / 1048576 / n
    }
  } finally {
    await Promise.all(nodes.map(async (x) => { await x.stop() }))
    await rm(root, { recursive: true, force: true })
  }
}

export async function run (): Promise<void> {
  // Under heavy load kad-dht's query-path abort listener throws an AbortError
  // out of an EventTarget (an uncaught exception), seen while stopping 50
  // nodes with queries in flight. Count those instead of dying; anything
  // else still crashes the run.
  let strayAborts = 0
  const onUncaught = (err: Error): void => {
    if (err.name === 'AbortError') { strayAborts++; return }
    throw err
  }
  process.on('uncaughtException', onUncaught)
  const swarms: SwarmResult[] = []
  for (const n of SIZES) {
    process.stdout.write(`swarm of ${n}...\n`)
    swarms.push(await runSwarm(n))
  }
  process.off('uncaughtException', onUncaught)
  process.stdout.write(`stray kad-dht AbortErrors caught: ${strayAborts}\n`)
  if (swarms.length > 0) printTable('network (one process, 127.0.0.1)', swarms.map((s) => ({ ...s })))
  let processes: ProcessStartResult | undefined
  if (PROCESSES > 0) {
    process.stdout.write(`swarm up --nodes ${PROCESSES}${PROCESS_CHAIN ? '' : ' --no-chain'} (one process per node)...\n`)
    processes = await processStart(PROCESSES, PROCESS_CHAIN)
    printTable('network (one process per node)', [{ ...processes, chain: String(processes.chain), processStartMs: String(processes.processStartMs) }])
  }
  let nat: NatTopologyResult | undefined
  if (NAT_ATTEMPTS > 0) {
    process.stdout.write('NAT topology (network namespaces)...\n')
    nat = await natTopology(NAT_ATTEMPTS)
    printTable('network: NAT topology', [Object.fromEntries(Object.entries(nat).map(([k, v]) => [k, typeof v === 'number' ? v : String(v)]))])
  }
  await writeResults('network', {
    swarms,
    ...(processes !== undefined ? { processStart50Ms: processes.nodes === 50 ? processes.processStartMs : undefined, processes } : {}),
    ...(nat !== undefined ? { nat } : {}),
    strayAbortErrors: strayAborts,
    notes: 'all nodes in one Node.js process sharing its event loop; rssMbPerNode = process RSS / nodes; rssDeltaMbPerNode = (RSS after - RSS before the swarm) / nodes; gossip latency = publish call to subscriber callback, sequential messages from random publishers; findProviders = full iteration (kad-dht stops at k=20 providers); resources = findProviders + DHT get + verify of each record'
  })
}
