/**
 * The swarm of the execution benchmark: full IexecNodes (node.ts wiring:
 * market, scheduler, worker duties, WASI executor, API) in this process over
 * one anvil, with the node's default options.
 *
 * A variant of test/integration/market-helpers.ts `startSwarm` (copied, not
 * imported, because that one starts anvil with automining only): here the
 * chain can mine one block every `blockTime` seconds, and each provider's
 * executor is wrapped to record when each run starts and ends (a timing
 * probe: the run itself is the node's own, unchanged).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IexecNode } from '../../node/node.js'
import { initDataDir, dataDirPaths } from '../../node/config/index.js'
import { createChainClient, deployLocalSwarmChain, startLocalChain } from '../../node/chain/index.js'
import type { LocalChain, LocalSwarmChain } from '../../node/chain/index.js'
import { swarmTopics } from '../../protocols/topics.js'
import { RLC, ok, waitFor } from '../integration/market-helpers.js'
import { readLogFile } from './execution-bag.js'

export { RLC, ok, waitFor }

/** One executor run seen by the probe, in Date.now() ms (the clock of node.log). */
export interface RunTiming { start: number, end: number, status: string }

export interface BenchSwarm {
  anvil: LocalChain
  chain: LocalSwarmChain
  providers: IexecNode[]
  requester: IexecNode
  /** provider index -> task id (lower case) -> its executor run */
  runs: Array<Map<string, RunTiming>>
  /** provider index of an address, -1 when it is no provider */
  providerIndex: (address: string) => number
}

/** One JSON line of a node.log. */
export interface LogLine { t: number, component: string, msg: string, taskid?: string, [k: string]: unknown }

/** Every line of a node's node.log (the node's operator record: JSON lines). */
export async function readNodeLog (node: IexecNode): Promise<LogLine[]> {
  return await readLogFile(dataDirPaths(node.dataDir).logs)
}

/** Wraps provider i's executor so each run's start and end are recorded (by task id). */
function probeExecutor (node: IexecNode, runs: Map<string, RunTiming>): void {
  const executor = node.execution?.executor
  if (executor === undefined) throw new Error(`node ${node.address} has no execution services (no chain configured?)`)
  const original = executor.run.bind(executor)
  executor.run = async (req, signal) => {
    const start = Date.now()
    let status = 'THREW'
    try {
      const r = await original(req, signal)
      status = r.status
      return r
    } finally {
      runs.set(req.taskId.toLowerCase(), { start, end: Date.now(), status })
    }
  }
}

/**
 * Starts anvil (automining when blockTime is undefined), deploys the hub,
 * makes `providers` provider nodes and one requester, funds them, deposits
 * and stakes through the nodes' own API routes, and waits for the market
 * topic mesh. Every resource goes into `cleanup` (run in reverse order).
 */
export async function startBenchSwarm (spec: { providers: number, blockTime?: number, cpus?: number }, cleanup: Array<() => Promise<void>>): Promise<BenchSwarm> {
  const root = await mkdtemp(join(tmpdir(), 'iexec-exec-bench-'))
  cleanup.push(async () => { await rm(root, { recursive: true, force: true }) })
  const anvil = await startLocalChain({ accounts: 2, ...(spec.blockTime !== undefined ? { blockTime: spec.blockTime } : {}) })
  cleanup.push(async () => { await anvil.stop() })
  const chain = await deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0] })
  const deployer = await createChainClient({ rpcUrl: anvil.rpcUrl, privateKey: anvil.privateKeys[0], rlc: chain.rlc, chainId: chain.chainId })
  cleanup.push(async () => { await deployer.close() })

  const fund = async (address: string): Promise<void> => {
    const rlc = deployer.rlc as NonNullable<typeof deployer.rlc>
    await Promise.all([
      deployer.sender.send(rlc.mint.populateTransaction(address, 100_000n * RLC)),
      deployer.sender.send({ to: address, value: 10n ** 20n })
    ])
  }

  const nodes: IexecNode[] = []
  // a connected graph of small degree, as market-helpers builds it
  const bootstrapOf = (): string[] => {
    if (nodes.length === 0) return []
    const picks = new Set([0, Math.floor((nodes.length - 1) / 2), nodes.length - 1])
    return [...picks].map((i) => nodes[i].multiaddrs()[0])
  }
  const addNode = async (name: string, role: 'provider' | 'requester'): Promise<IexecNode> => {
    const dataDir = join(root, name)
    const res = await initDataDir({
      dataDir,
      devUnprotectedKey: true,
      config: {
        swarmId: 'xbench', advertIntervalMs: 60_000, role, cpus: spec.cpus ?? 2, memoryMb: 1024,
        chain: { rpc: chain.rpc, hub: chain.hub, chainId: chain.chainId }
      }
    })
    await fund(res.address)
    // BENCH_NO_METRICS=1: the nodes observe no RPC call, transaction or run (the metrics' cost, measured against it)
    const node = await IexecNode.create({ dataDir, chainFromBlock: chain.blockNumber, bootstrap: bootstrapOf(), ...(process.env.BENCH_NO_METRICS === '1' ? { metricsObservers: false } : {}) })
    cleanup.push(async () => { await node.stop() })
    await node.start()
    nodes.push(node)
    return node
  }

  const providers: IexecNode[] = []
  const runs: Array<Map<string, RunTiming>> = []
  for (let i = 0; i < spec.providers; i++) {
    const p = await addNode(`p${i}`, 'provider')
    const m = new Map<string, RunTiming>()
    probeExecutor(p, m)
    providers.push(p)
    runs.push(m)
  }
  const requester = await addNode('r0', 'requester')
  await Promise.all(nodes.map(async (n) => {
    await ok(n, 'POST', '/v1/account/deposit', { amount: (10_000n * RLC).toString() })
    if (n.config.role === 'provider') await ok(n, 'POST', '/v1/stake', { amount: (1_000n * RLC).toString() })
  }))
  const topic = swarmTopics('xbench').requestorder
  await waitFor(() => nodes.every((n) => n.network.topicPeers(topic).length >= Math.min(2, nodes.length - 1)), 20_000 + 1_000 * nodes.length, 'market topic peers')
  const byAddress = new Map(providers.map((p, i) => [p.address.toLowerCase(), i]))
  return { anvil, chain, providers, requester, runs, providerIndex: (a) => byAddress.get(a.toLowerCase()) ?? -1 }
}
