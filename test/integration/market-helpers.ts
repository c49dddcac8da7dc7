/**
 * A real swarm for the market tests: one anvil with the hub deployed, N
 * IexecNodes in this process (real data dirs, libp2p on 127.0.0.1, level
 * stores), funded, providers staked through the node's own API routes.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IexecNode } from '../../node/node.js'
import type { IexecNodeInit } from '../../node/node.js'
import { initDataDir, dataDirPaths } from '../../node/config/index.js'
import { createChainClient, deployLocalSwarmChain, startLocalChain } from '../../node/chain/index.js'
import type { LocalChain, LocalSwarmChain } from '../../node/chain/index.js'
import type { BidStrategy, MarketServiceOptions } from '../../node/market/index.js'
import { swarmTopics } from '../../protocols/topics.js'
import { waitFor } from '../helpers/wait.js'
export { waitFor }

export const RLC = 10n ** 9n

export interface ApiAnswer { status: number, body: Record<string, unknown> }

/** One authenticated call to a node's API. */
export async function api (node: IexecNode, method: 'GET' | 'POST', path: string, body?: unknown): Promise<ApiAnswer> {
  const token = (await readFile(dataDirPaths(node.dataDir).apiToken, 'utf8')).trim()
  const res = await fetch(`${node.apiUrl()}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {})
  })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

/** The call must answer 200; returns its body. */
export async function ok (node: IexecNode, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await api(node, method, path, body)
  if (r.status !== 200) throw new Error(`${method} ${path} answered ${r.status}: ${JSON.stringify(r.body)}`)
  return r.body
}

export interface SwarmSpec {
  providers: number
  requesters?: number
  /** provider i's settings (price floor in nRLC, category, tags) */
  provider?: (i: number) => { priceFloor?: bigint, category?: number, tags?: string[], memoryMb?: number, bidStrategy?: BidStrategy }
  market?: Partial<MarketServiceOptions>
  /** stake of each provider, nRLC */
  stake?: bigint
  /** config of every node, over this helper's own (advertIntervalMs 60 s, 2 cpus, 1 GiB) */
  config?: Record<string, unknown>
}

export interface Swarm {
  root: string
  anvil: LocalChain
  chain: LocalSwarmChain
  providers: IexecNode[]
  requesters: IexecNode[]
  all: IexecNode[]
  /** makes (inits, funds) and starts one more node; cleaned up with the swarm */
  addNode: (name: string, role: 'provider' | 'requester', opts?: { bootstrap?: string[], config?: Record<string, unknown>, fund?: boolean, market?: Partial<MarketServiceOptions>, bidStrategy?: BidStrategy }) => Promise<IexecNode>
  /** creates and starts a node again on an existing data dir */
  restart: (dataDir: string, opts?: { bootstrap?: string[] }) => Promise<IexecNode>
}

/**
 * Bootstrap peers of the next node: the first one, the previous one and one
 * halfway, so the swarm is a connected graph of small degree (a star around
 * one node would exceed gossipsub's mesh bound D_high = 12 at 20 nodes and
 * leave most peers on the 1 s IHAVE/IWANT path).
 */
function meshBootstrap (nodes: IexecNode[]): string[] {
  if (nodes.length === 0) return []
  const picks = new Set([0, Math.floor((nodes.length - 1) / 2), nodes.length - 1])
  return [...picks].map((i) => nodes[i].multiaddrs()[0])
}

/**
 * Builds and starts the swarm; every resource goes into `cleanup` (run it in afterEach).
 */
export async function startSwarm (spec: SwarmSpec, cleanup: Array<() => Promise<void>>): Promise<Swarm> {
  const root = await mkdtemp(join(tmpdir(), 'iexec-market-node-'))
  cleanup.push(async () => { await rm(root, { recursive: true, force: true }) })
  const anvil = await startLocalChain({ accounts: 2 })
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

  const baseInit = (dataDir: string, market?: Partial<MarketServiceOptions>, bootstrap?: string[]): IexecNodeInit => ({
    dataDir, chainFromBlock: chain.blockNumber, market: { ...spec.market, ...market }, ...(bootstrap !== undefined ? { bootstrap } : {})
  })

  const all: IexecNode[] = []
  const addNode: Swarm['addNode'] = async (name, role, opts = {}) => {
    const dataDir = join(root, name)
    const res = await initDataDir({
      dataDir,
      devUnprotectedKey: true,
      config: {
        swarmId: 'mkt', advertIntervalMs: 60_000, role, cpus: 2, memoryMb: 1024,
        chain: { rpc: chain.rpc, hub: chain.hub, chainId: chain.chainId },
        ...opts.config
      }
    })
    if (opts.fund !== false) await fund(res.address)
    const node = await IexecNode.create({ ...baseInit(dataDir, opts.market, opts.bootstrap), ...(opts.bidStrategy !== undefined ? { bidStrategy: opts.bidStrategy } : {}) })
    cleanup.push(async () => { await node.stop() })
    await node.start()
    all.push(node)
    return node
  }
  const restart: Swarm['restart'] = async (dataDir, opts = {}) => {
    const node = await IexecNode.create(baseInit(dataDir, undefined, opts.bootstrap))
    cleanup.push(async () => { await node.stop() })
    await node.start()
    return node
  }

  const providers: IexecNode[] = []
  const requesters: IexecNode[] = []
  for (let i = 0; i < spec.providers; i++) {
    const p = spec.provider?.(i) ?? {}
    const config: Record<string, unknown> = { ...spec.config }
    if (p.priceFloor !== undefined) config.priceFloor = p.priceFloor.toString()
    if (p.category !== undefined) config.category = p.category
    if (p.tags !== undefined) config.tags = p.tags
    if (p.memoryMb !== undefined) config.memoryMb = p.memoryMb
    providers.push(await addNode(`p${i}`, 'provider', { config, bootstrap: meshBootstrap(providers), ...(p.bidStrategy !== undefined ? { bidStrategy: p.bidStrategy } : {}) }))
  }
  for (let i = 0; i < (spec.requesters ?? 1); i++) {
    requesters.push(await addNode(`r${i}`, 'requester', { config: { ...spec.config }, bootstrap: meshBootstrap(providers) }))
  }
  // money through the nodes' own routes: deposit everywhere, stake the providers
  const stake = spec.stake ?? 1_000n * RLC
  await Promise.all([...providers, ...requesters].map(async (n) => {
    await ok(n, 'POST', '/v1/account/deposit', { amount: (10_000n * RLC).toString() })
    if (n.config.role === 'provider') await ok(n, 'POST', '/v1/stake', { amount: stake.toString() })
  }))
  // every node has its gossip neighbours on the market topics before the test publishes
  const topic = swarmTopics('mkt').requestorder
  await waitFor(() => all.every((n) => n.network.topicPeers(topic).length >= Math.min(2, all.length - 1)), 20_000 + 1_000 * all.length, 'market topic peers')
  return { root, anvil, chain, providers, requesters, all, addNode, restart }
}
