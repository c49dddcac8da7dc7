/**
 * The bag of the execution benchmark: ONE trust-1 deal of `n` tasks with the
 * bids of every provider, on a swarm whose nodes run either in this process
 * (execution-swarm.ts) or each in its own process (`swarm up`, the way nodes
 * are deployed: each on its own event loop). From the DealCreated event on,
 * the nodes do everything: election, assignments, runs, transactions.
 *
 * What is measured comes from the nodes' own operator logs (node.log), which
 * both layouts have: a worker logs 'task assigned', 'task computed' (with
 * prepareMs, runMs, digestMs, storeMs) and 'task contributed and finalized' (with the
 * transaction, its batch size, queuedMs, broadcastMs, receiptMs). A task is
 * held by its worker from assigned to computed (a compute slot's turn, then
 * prepare, run, digest); its commit waits for the chain off the slot. CPU is the nodes' (this process, or the node processes) and
 * anvil's, read from the OS over the bag.
 *
 * The chain's bound, for comparison: with 1 s blocks, what one block holds
 * (block gas limit / gas per task as the workers committed them); with
 * automine, anvil's rate of transactions from 8 concurrent senders (as many
 * as the workers' slots) times the tasks a commit transaction carried.
 */
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { hexlify, randomBytes } from 'ethers'
import type { Wallet } from 'ethers'
import { hubInterface } from '../../node/chain/index.js'
import type { ChainClient } from '../../node/chain/index.js'
import { emptyDatasetOrder, hashOrder, signOrder, taskId as taskIdOf, ZERO_ADDRESS, ZERO_BYTES32 } from '../../protocols/eip712.js'
import type { HubDomain } from '../../protocols/eip712.js'
import { TaskStatus } from '../../contracts-abi/index.js'
import { median, startProfile } from './harness.js'
import { waitFor } from '../helpers/wait.js'
import type { LogLine } from './execution-swarm.js'

export type ChainMode = 'automine' | 'block1s'
export type Layout = 'in-process' | 'processes'

/** A swarm as the bag sees it, whatever its layout. */
export interface BagSwarm {
  layout: Layout
  mode: ChainMode
  providers: Array<{ address: string, wallet: Wallet, logs: () => Promise<LogLine[]> }>
  requester: { address: string, wallet: Wallet }
  /** the requester's chain client (hub binding): sends matchOrders, reads the deal */
  client: ChainClient
  domain: HubDomain
  /** CPU used so far (ms) by the nodes, and by anvil */
  nodesCpuMs: () => number
  anvilCpuMs: () => number
  /** anvil's rate of plain transactions from 8 concurrent senders (automine's bound) */
  txRate: (n: number) => Promise<number>
}

export interface BagResult {
  layout: Layout
  mode: ChainMode
  tasks: number
  completed: number
  workersUsed: Record<string, number>
  /** deal mined -> the last task committed */
  elapsedMs: number
  tasksPerSecond: number
  /** deal mined -> the first worker's 'task assigned' */
  firstAssignMs: number | null
  /** per task, 'task assigned' -> 'task computed': held by its worker (waiting for a compute slot, then computing) */
  heldP50Ms: number | null
  /** its compute, p50 (ms): prepare (its deal's app and inputs: once per deal and worker), run, digest, store (the result archive into Helia) */
  computeSplitP50Ms: { prepare: number | null, run: number | null, digest: number | null, store: number | null }
  /** per task, 'task computed' -> committed, p50 (ms), and its split: queued (the group commit's wait), broadcast, receipt */
  commitP50Ms: number | null
  commitSplitP50Ms: { queued: number | null, broadcast: number | null, receipt: number | null }
  /** commit transactions and the tasks each carried */
  transactions: number
  tasksPerTransaction: number
  /** time the compute slots computed (prepare + run + digest + store) / (the providers' cpus x elapsed) */
  slotUtilization: number
  /** CPU per task over the bag (ms): every node, and anvil */
  nodesCpuMsPerTask: number
  anvilCpuMsPerTask: number
  /** blocks from the deal's to the last commit's (1 s blocks: the bag's length in blocks) */
  blocks: number
  chainBoundTasksPerSecond: number
  chainBoundHow: string
  /** tasksPerSecond / chainBoundTasksPerSecond: near 1 means the chain is the bound */
  ratioToChainBound: number
}

/** What the bag runs: the wordcount app over one input file, both added to a provider's Helia. */
export interface Published { app: string, inputCid: string }

/** Task slots of a provider: its advertised cpus in both layouts. */
export const SLOTS_PER_PROVIDER = 2

const p50 = (v: number[]): number | null => (v.length > 0 ? Math.round(median(v)) : null)
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined)

/** CPU time (ms) of a process, from /proc (user + system, children excluded). */
export function processCpuMs (pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    // utime and stime, in clock ticks (100 per second on Linux)
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return 0
  }
}

/** Every JSON line of a node.log file (a torn last line is skipped). */
export async function readLogFile (path: string): Promise<LogLine[]> {
  const text = await readFile(path, 'utf8').catch(() => '')
  const out: LogLine[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    try {
      const j = JSON.parse(line) as Record<string, unknown>
      out.push({ ...j, t: Date.parse(String(j.t)), component: String(j.component), msg: String(j.msg), ...(typeof j.taskid === 'string' ? { taskid: j.taskid.toLowerCase() } : {}) })
    } catch {
      // a torn last line while the node writes
    }
  }
  return out
}

export async function runBag (s: BagSwarm, pub: Published, n: number): Promise<BagResult> {
  const { domain, client } = s
  const hub = client.hub
  if (hub === undefined) throw new Error('the requester\'s client has no hub binding')
  const salt = (): string => hexlify(randomBytes(32))
  const appOrder = await signOrder(s.providers[0].wallet, domain, 'AppOrder', {
    app: pub.app, appprice: 0n, volume: 1_000_000n, tag: ZERO_BYTES32,
    datasetrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: salt()
  })
  const request = await signOrder(s.requester.wallet, domain, 'RequestOrder', {
    app: pub.app, appmaxprice: 0n, dataset: ZERO_ADDRESS, datasetmaxprice: 0n, workerpool: ZERO_ADDRESS, workerpoolmaxprice: 0n,
    requester: s.requester.address, volume: BigInt(n), tag: ZERO_BYTES32, category: 0n, trust: 1n, beneficiary: s.requester.address,
    callback: ZERO_ADDRESS, params: JSON.stringify({ iexec_input_files: [pub.inputCid] }), salt: salt()
  })
  const requestHash = hashOrder(domain, 'RequestOrder', request)
  const bids = await Promise.all(s.providers.map(async (p) => await signOrder(p.wallet, domain, 'Bid', {
    requestHash, worker: p.address, price: 0n, volume: BigInt(n), salt: salt()
  })))
  const profile = s.layout === 'in-process' ? await startProfile('BENCH_EXEC_PROFILE') : undefined
  const cpu0 = s.nodesCpuMs()
  const anvil0 = s.anvilCpuMs()
  const tx = await client.sender.send(hub.matchOrders.populateTransaction(appOrder, emptyDatasetOrder(), request, bids))
  const dealAt = Date.now()
  let dealid: string | undefined
  for (const l of tx.receipt.logs) {
    const p = hubInterface().parseLog(l)
    if (p?.name === 'DealCreated') dealid = String(p.args.dealid).toLowerCase()
  }
  if (dealid === undefined) throw new Error('matchOrders emitted no DealCreated')
  const id = dealid
  // polled every 250 ms: in one process the bench shares the nodes' event loop, and the end is read from their logs
  await waitFor(async () => Number((await hub.dealOf(id)).done) >= n, s.mode === 'automine' ? 300_000 : 400_000, `the bag's ${n} tasks done`, 250)
  const nodesCpu = s.nodesCpuMs() - cpu0
  const anvilCpu = s.anvilCpuMs() - anvil0
  await profile?.(`bag-${s.mode}`)

  let completed = 0
  for (let i = 0; i < n; i++) if (Number(await hub.taskStatus(id, i)) === TaskStatus.COMPLETED) completed++
  // each worker logs its task once its own receipt poll has seen the transaction, which can be a little after the hub's counter moved
  const ids = new Set(Array.from({ length: n }, (_, i) => taskIdOf(id, i).toLowerCase()))
  const finals = async (): Promise<LogLine[][]> => await Promise.all(s.providers.map(async (p) => (await p.logs()).filter((l) => l.component === 'worker' && l.taskid !== undefined && ids.has(l.taskid))))
  let logs = await finals()
  await waitFor(async () => {
    logs = await finals()
    return logs.flat().filter((l) => l.msg === 'task contributed and finalized').length >= completed
  }, 30_000, 'the workers\' log lines of the bag')

  let last = dealAt
  let firstAssigned = Number.POSITIVE_INFINITY
  const workersUsed: Record<string, number> = {}
  const held: number[] = []
  let computeMs = 0
  const split = { prepare: [] as number[], run: [] as number[], digest: [] as number[], store: [] as number[] }
  const commit: number[] = []
  const commitSplit = { queued: [] as number[], broadcast: [] as number[], receipt: [] as number[] }
  const txTasks = new Map<string, number>()
  for (const [i, lines] of logs.entries()) {
    const at = new Map<string, { assigned?: number, computed?: number }>()
    for (const l of lines) {
      const taskid = l.taskid as string
      const m = at.get(taskid) ?? {}
      at.set(taskid, m)
      if (l.msg === 'task assigned') {
        m.assigned ??= l.t
        firstAssigned = Math.min(firstAssigned, l.t)
      } else if (l.msg === 'task computed') {
        m.computed = l.t
        if (m.assigned !== undefined) held.push(l.t - m.assigned)
        for (const k of ['prepare', 'run', 'digest', 'store'] as const) {
          const v = num(l[`${k}Ms`])
          if (v !== undefined) {
            split[k].push(v)
            computeMs += v
          }
        }
      } else if (l.msg === 'task contributed and finalized') {
        last = Math.max(last, l.t)
        workersUsed[`p${i}`] = (workersUsed[`p${i}`] ?? 0) + 1
        if (typeof l.tx === 'string') txTasks.set(l.tx, (txTasks.get(l.tx) ?? 0) + 1)
        if (m.computed !== undefined) commit.push(l.t - m.computed)
        for (const k of ['queued', 'broadcast', 'receipt'] as const) {
          const v = num(l[`${k}Ms`])
          if (v !== undefined) commitSplit[k].push(v)
        }
      }
    }
  }
  const elapsedMs = last - dealAt
  const tasksPerSecond = completed / (elapsedMs / 1000)
  const slots = s.providers.length * SLOTS_PER_PROVIDER

  // the commit transactions: gas per task, and the block of the last one
  const provider = client.provider
  const gasPerTask: number[] = []
  let lastBlock = tx.blockNumber
  for (const [hash, tasks] of txTasks) {
    const receipt = await provider.getTransactionReceipt(hash)
    if (receipt === null) continue
    gasPerTask.push(Number(receipt.gasUsed) / tasks)
    lastBlock = Math.max(lastBlock, receipt.blockNumber)
  }
  const tasksPerTransaction = txTasks.size > 0 ? completed / txTasks.size : 0
  const block = await provider.getBlock('latest')
  const gasLimit = block !== null ? Number(block.gasLimit) : 0
  let chainBound: number
  let how: string
  if (s.mode === 'block1s') {
    const g = gasPerTask.length > 0 ? median(gasPerTask) : Number.NaN
    chainBound = Math.floor(gasLimit / g)
    how = `block gas limit ${gasLimit} / ${Math.round(g)} gas per task as committed (${tasksPerTransaction.toFixed(1)} tasks per transaction), one block per second`
  } else {
    const rate = await s.txRate(n)
    chainBound = rate * Math.max(1, tasksPerTransaction)
    how = `anvil automining ${rate.toFixed(0)} transactions per second from 8 concurrent senders (RLC approve) x ${tasksPerTransaction.toFixed(1)} tasks per commit transaction`
  }
  return {
    layout: s.layout,
    mode: s.mode,
    tasks: n,
    completed,
    workersUsed,
    elapsedMs,
    tasksPerSecond,
    firstAssignMs: Number.isFinite(firstAssigned) ? firstAssigned - dealAt : null,
    heldP50Ms: p50(held),
    computeSplitP50Ms: { prepare: p50(split.prepare), run: p50(split.run), digest: p50(split.digest), store: p50(split.store) },
    commitP50Ms: p50(commit),
    commitSplitP50Ms: { queued: p50(commitSplit.queued), broadcast: p50(commitSplit.broadcast), receipt: p50(commitSplit.receipt) },
    transactions: txTasks.size,
    tasksPerTransaction,
    slotUtilization: computeMs / (slots * elapsedMs),
    nodesCpuMsPerTask: nodesCpu / Math.max(1, completed),
    anvilCpuMsPerTask: anvilCpu / Math.max(1, completed),
    blocks: lastBlock - tx.blockNumber,
    chainBoundTasksPerSecond: chainBound,
    chainBoundHow: how,
    ratioToChainBound: tasksPerSecond / chainBound
  }
}

/**
 * Transactions per second automining anvil takes from `clients` (the
 * providers' keys), two concurrent streams of sequential sends each. The
 * transaction re-sets the sender's RLC allowance to its current value (no
 * state change that matters).
 */
export async function automineTxRate (clients: ChainClient[], n: number): Promise<number> {
  const perStream = Math.max(1, Math.ceil(n / (clients.length * 2)))
  const t0 = Date.now()
  let sent = 0
  await Promise.all(clients.flatMap((chain) => [0, 1].map(async () => {
    const rlc = chain.rlc
    const hub = chain.hub
    if (rlc === undefined || hub === undefined) throw new Error('a chain client without RLC and hub bindings')
    const spender = await hub.getAddress()
    const allowance = await rlc.allowance(chain.address, spender)
    for (let i = 0; i < perStream; i++) {
      await chain.sender.send(rlc.approve.populateTransaction(spender, allowance))
      sent++
    }
  })))
  return sent / ((Date.now() - t0) / 1000)
}
