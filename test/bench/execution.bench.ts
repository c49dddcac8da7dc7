// Execution, end to end, on 4 provider nodes and 1 requester (full
// IexecNodes in ONE process, node defaults, one anvil): submit-to-result
// latency of a trivial task (wordcount over a 24-byte input file) at trust 1
// and trust 3, with anvil automining and with 1-second blocks, split by phase;
// the throughput of a bag of tiny tasks on the 4 providers; the executor's
// start overhead per task. Writes bench-results/execution.json.
//
// Phases come from what the nodes already expose, no node code changed:
//   bids      submit() called -> first bid (requester's timings.firstBidMs, plus
//             the request's preparation before it is gossiped)
//   deal      first bid -> matchOrders mined (timings.dealMs - firstBidMs)
//   schedule  deal mined -> the worker logs 'task assigned' (node.log); at
//             trust 3 this includes the scheduler's initialize transaction
//   fetch     'task assigned' -> executor run starts (app and input over
//             bitswap, checksum, the deal read): the run start is taken by a
//             probe wrapped around the provider's executor (execution-swarm.ts)
//   compute   the executor run (WASI, worker thread)
//   commit    run end -> 'task contributed and finalized' (trust 1: digest,
//             archive added to Helia, one transaction) or 'task contributed'
//             of the contribution that reaches consensus (trust 3)
//   reveal    consensus -> the last 'task revealed' (trust 3 only)
//   finalize  last reveal -> the scheduler's 'task finalized' (upload request,
//             finalize transaction; trust 3 only: trust 1 finalizes in commit)
//   retrieve  finalized -> the result in the requester's hands: it polls
//             GET /v1/results/:taskId every 25 ms (404 until finalized), which
//             fetches the archive over bitswap, checks its digest against the
//             chain and unpacks it
// The phases are differences of consecutive marks, so they add up to the
// total. All nodes share this process's clock (node.log's `t` and Date.now()).
// Marks logged by a node are when its receipt poll (50 ms) saw the
// transaction; the finalized mark is the earlier of the finalizing node's line
// and the start of the requester's successful result call.
//
// Each case (trust x chain, bag x chain) runs on a fresh swarm; a task with no
// result within its timeout is counted as failed, with who had to act, what
// they logged and, per worker, the finished deals' tasks its scheduler still
// counts as in flight (staleLoads). Those once stalled trust-1 tasks after a
// few deals; the scheduler now counts in-flight work over open deals only, so
// a non-zero count there means that regression is back.
// The bag (execution-bag.ts) is ONE deal of BENCH_EXEC_BAG tasks with the 4
// providers' bids, run twice per chain mode: with every node in this process,
// and with one node process each as `swarm up` starts them (the deployed
// layout: each node on its own event loop; here all share 2 cores).
//
// Knobs (to shrink while developing): BENCH_EXEC_TASKS (20), BENCH_EXEC_BAG
// (200), BENCH_EXEC_MODES (automine,block1s), BENCH_EXEC_TRUSTS (1,3),
// BENCH_EXEC_BAG_MODES (automine,block1s: in one process),
// BENCH_EXEC_BAG_PROCESSES (automine,block1s: node processes).
// BENCH_EXEC_PROFILE=DIR writes a CPU profile of this process over each
// in-process bag (deal to last task done).
import '../../node/common/polyfills.js'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Wallet } from 'ethers'
import { appWasmPath } from '../../examples/build-apps.js'
import { ApiClient } from '../../node/api/index.js'
import { createChainClient } from '../../node/chain/index.js'
import type { ChainClient } from '../../node/chain/index.js'
import { swarmDown, swarmUp } from '../../node/cli/index.js'
import { dataDirPaths, loadDataDir } from '../../node/config/index.js'
import { WasiExecutor } from '../../node/worker/index.js'
import { hubDomain } from '../../protocols/eip712.js'
import { TaskStatus } from '../../contracts-abi/index.js'
import { buildModule } from '../unit/worker/wasm-builder.js'
import { api } from '../integration/market-helpers.js'
import { compiledCli, median, percentile, printTable, writeResults } from './harness.js'
import { SLOTS_PER_PROVIDER, automineTxRate, processCpuMs, readLogFile, runBag } from './execution-bag.js'
import type { BagResult, BagSwarm } from './execution-bag.js'
import { ok, readNodeLog, startBenchSwarm, waitFor } from './execution-swarm.js'
import type { BenchSwarm, LogLine } from './execution-swarm.js'

const TASKS = Number(process.env.BENCH_EXEC_TASKS ?? 20)
const BAG = Number(process.env.BENCH_EXEC_BAG ?? 200)
const MODES = (process.env.BENCH_EXEC_MODES ?? 'automine,block1s').split(',').filter((m) => m !== '') as Mode[]
const TRUSTS = (process.env.BENCH_EXEC_TRUSTS ?? '1,3').split(',').filter((t) => t !== '').map(Number)
const BAG_MODES = (process.env.BENCH_EXEC_BAG_MODES ?? 'automine,block1s').split(',').filter((m) => m !== '') as Mode[]
const BAG_PROCESS_MODES = (process.env.BENCH_EXEC_BAG_PROCESSES ?? 'automine,block1s').split(',').filter((m) => m !== '') as Mode[]
for (const m of [...MODES, ...BAG_MODES, ...BAG_PROCESS_MODES]) if (m !== 'automine' && m !== 'block1s') throw new Error(`BENCH_EXEC_MODES / BENCH_EXEC_BAG_MODES: unknown chain mode "${m}" (automine, block1s)`)
for (const [name, v] of [['BENCH_EXEC_TASKS', TASKS], ['BENCH_EXEC_BAG', BAG]] as const) if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer`)
if (TRUSTS.some((t) => !Number.isInteger(t) || t < 1 || t > 255)) throw new Error('BENCH_EXEC_TRUSTS: trust levels are integers in [1, 255]')
const PROVIDERS = 4
const INPUT = 'hello world\nfoo bar baz\n'
/** how often the requester asks for its result (a 404 until the task is finalized) */
const RESULT_POLL_MS = 25

const AIMS = { trust1Block1sP50Ms: 3_000, trust1AutomineP50Ms: 500 }
const PHASES = ['bids', 'deal', 'schedule', 'fetch', 'compute', 'commit', 'reveal', 'finalize', 'retrieve'] as const
type Phase = typeof PHASES[number]
type Mode = 'automine' | 'block1s'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

interface Sample {
  taskId: string
  t0: number
  tRet: number
  firstBidMs: number | null
  dealMs: number
  resultAt: number
  retrieveCallMs: number
}

interface Measured { phases: Record<Phase, number | null>, totalMs: number, initializeMs: number | null }

interface Stat { p50: number | null, p95: number | null, n: number }

function stat (values: Array<number | null>): Stat {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x))
  return { p50: v.length > 0 ? Math.round(median(v)) : null, p95: v.length > 0 ? Math.round(percentile(v, 95)) : null, n: v.length }
}

interface ModeResult { tasks: number, failed: number, failures: string[], p50Ms: number | null, p95Ms: number | null, phases: Record<Phase, Stat>, initialize: Stat, retrieveCall: Stat, missingMarks: number }

interface Published { app: string, inputCid: string, expected: string }

/** Adds the wordcount module and the input to provider 0's Helia, registers the app; waits for its order at the requester. */
async function publish (s: BenchSwarm): Promise<Published> {
  const owner = s.providers[0]
  const module = await readFile(appWasmPath('wordcount'))
  const added = await ok(owner, 'POST', '/v1/content', { data: module.toString('base64') })
  const input = await ok(owner, 'POST', '/v1/content', { data: Buffer.from(INPUT).toString('base64') })
  const checksum = '0x' + createHash('sha256').update(module).digest('hex')
  const app = await ok(owner, 'POST', '/v1/apps', { name: 'wordcount', cid: added.cid, checksum, price: '0' })
  await waitFor(async () => ((await ok(s.requester, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length >= 1, 30_000, 'the app order at the requester')
  const inputCid = String(input.cid)
  return { app: String(app.address), inputCid, expected: `${inputCid} lines=2 words=5 bytes=${Buffer.byteLength(INPUT)}\n` }
}

/**
 * Tasks of deals that are over (done on chain) which a scheduler node still
 * counts as in flight for `worker`: its scheduler/service.ts `loads()` counts
 * them against maxTasksPerWorker, so such a worker gets no new assignment
 * from that node. Reads the node's own records (no change to them).
 */
async function staleLoads (s: BenchSwarm, scheduler: number, worker: string, submitted: Array<{ taskId: string, dealId: string }>): Promise<number> {
  const service = s.providers[scheduler]?.execution?.scheduler
  if (service === undefined) return 0
  let n = 0
  for (const t of submitted) {
    const rec = await service.taskRecord(t.taskId)
    const deal = await service.dealRecord(t.dealId)
    if (rec === undefined || rec.closed || deal?.done !== true) continue
    if (rec.replicas.some((r) => r.worker.toLowerCase() === worker.toLowerCase() && !r.dead && !r.contributed)) n++
  }
  return n
}

/** Submits one task through the requester's market and waits for its result through the API. */
async function runTask (s: BenchSwarm, pub: Published, trust: number, timeoutMs: number, submitted: Array<{ taskId: string, dealId: string }> = []): Promise<Sample> {
  const market = s.requester.market
  if (market === undefined) throw new Error('the requester has no market')
  const t0 = Date.now()
  const r = await market.requester.submit({ app: pub.app, inputs: [pub.inputCid], trust })
  const tRet = Date.now()
  const taskId = r.tasks[0].taskId.toLowerCase()
  submitted.push({ taskId, dealId: r.dealId.toLowerCase() })
  const deadline = tRet + timeoutMs
  let calls = 0
  let longestCallMs = 0
  while (true) {
    const c0 = Date.now()
    const a = await api(s.requester, 'GET', `/v1/results/${taskId}`)
    calls++
    longestCallMs = Math.max(longestCallMs, Date.now() - c0)
    if (a.status === 200) {
      const resultAt = Date.now()
      const text = await readFile(join(String(a.body.path), 'result.txt'), 'utf8')
      if (text !== pub.expected) throw new Error(`task ${taskId}: wrong result ${JSON.stringify(text)}`)
      return { taskId, t0, tRet, firstBidMs: r.timings.firstBidMs, dealMs: r.timings.dealMs, resultAt, retrieveCallMs: resultAt - c0 }
    }
    if (a.status !== 404) throw new Error(`task ${taskId}: GET /v1/results answered ${a.status} ${JSON.stringify(a.body)}`)
    if (Date.now() > deadline) {
      const status = Number(await market.hub.taskStatus(r.dealId, 0))
      // who had to act, and what their node.log says about this deal
      const roles = `scheduler p${s.providerIndex(r.scheduler)}, workers ${r.workers.map((w) => `p${s.providerIndex(w)}`).join(' ')}`
      const seen: string[] = []
      for (const [i, p] of s.providers.entries()) {
        for (const l of await readNodeLog(p)) {
          if (l.taskid === taskId || l.dealid === r.dealId || l.dealid === r.dealId.toLowerCase()) seen.push(`p${i} ${l.component}: ${l.msg}`)
        }
      }
      const sched = s.providerIndex(r.scheduler)
      const stale = await Promise.all(r.workers.map(async (w) => `p${s.providerIndex(w)}:${await staleLoads(s, sched, w, submitted)}`))
      throw new Error(`task ${taskId}: no result within ${timeoutMs} ms (${calls} calls, last answer ${a.status}, status on chain ${TaskStatus[status]}; ${roles}; the scheduler's stale in-flight tasks per worker ${stale.join(' ')}; logged: ${seen.join('; ') || 'nothing'})`)
    }
    await sleep(RESULT_POLL_MS)
  }
}

/** First (or last) time a node.log line matches; undefined when none does. */
function mark (lines: LogLine[], component: string, msg: string, taskId: string, last = false): number | undefined {
  let out: number | undefined
  for (const l of lines) {
    if (l.component !== component || l.msg !== msg || l.taskid !== taskId) continue
    if (!last) return l.t
    out = l.t
  }
  return out
}

const diff = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined ? null : b - a)

/**
 * When the task was final: the finalizing node logs it once its receipt poll
 * (every 50 ms) sees the transaction, and the requester's result call that
 * succeeded found TaskFinalized on chain when it started. Both observe the
 * same block; the earlier one is the closer to it.
 */
function finalMark (logged: number | undefined, x: Sample): number | undefined {
  const callStart = x.resultAt - x.retrieveCallMs
  return logged === undefined ? undefined : Math.min(logged, callStart)
}

/** Splits one task's latency into phases from the nodes' logs and the executor probe. */
function measure (s: BenchSwarm, logs: LogLine[][], trust: number, x: Sample): Measured {
  const bidsMark = x.tRet - x.dealMs + (x.firstBidMs ?? 0)
  const base = { bids: bidsMark - x.t0, deal: x.tRet - bidsMark }
  if (trust === 1) {
    const w = logs.findIndex((l) => mark(l, 'worker', 'task contributed and finalized', x.taskId) !== undefined)
    const lines = logs[w] ?? []
    const assigned = mark(lines, 'worker', 'task assigned', x.taskId)
    const run = s.runs[w]?.get(x.taskId)
    const committed = finalMark(mark(lines, 'worker', 'task contributed and finalized', x.taskId), x)
    return {
      phases: {
        ...base,
        schedule: diff(x.tRet, assigned),
        fetch: diff(assigned, run?.start),
        compute: diff(run?.start, run?.end),
        commit: diff(run?.end, committed),
        reveal: null,
        finalize: null,
        retrieve: diff(committed, x.resultAt)
      },
      totalMs: x.resultAt - x.t0,
      initializeMs: null
    }
  }
  // the contribution that reaches consensus is the later one: its worker is on the critical path
  let critical = -1
  let contributed: number | undefined
  for (const [i, l] of logs.entries()) {
    const t = mark(l, 'worker', 'task contributed', x.taskId)
    if (t !== undefined && (contributed === undefined || t > contributed)) { contributed = t; critical = i }
  }
  const lines = logs[critical] ?? []
  const assigned = mark(lines, 'worker', 'task assigned', x.taskId)
  const run = s.runs[critical]?.get(x.taskId)
  let revealed: number | undefined
  let finalized: number | undefined
  let initialized: number | undefined
  for (const l of logs) {
    const t = mark(l, 'worker', 'task revealed', x.taskId)
    if (t !== undefined && (revealed === undefined || t > revealed)) revealed = t
    finalized ??= mark(l, 'scheduler', 'task finalized', x.taskId)
    initialized ??= mark(l, 'scheduler', 'task initialized', x.taskId)
  }
  finalized = finalMark(finalized, x)
  return {
    phases: {
      ...base,
      schedule: diff(x.tRet, assigned),
      fetch: diff(assigned, run?.start),
      compute: diff(run?.start, run?.end),
      commit: diff(run?.end, contributed),
      reveal: diff(contributed, revealed),
      finalize: diff(revealed, finalized),
      retrieve: diff(finalized, x.resultAt)
    },
    totalMs: x.resultAt - x.t0,
    initializeMs: diff(x.tRet, initialized)
  }
}

async function latency (s: BenchSwarm, pub: Published, trust: number, mode: Mode): Promise<ModeResult> {
  // 20x the trust-1 automine aim, ~7x the 1 s-block aim, doubled for trust 3
  // (about 3x its latency): a task without result by then is stalled (see
  // staleLoads) and counted as failed; the bench goes on with the next one
  const timeoutMs = (mode === 'automine' ? 10_000 : 20_000) * (trust === 1 ? 1 : 2)
  // warm-up (not counted): opens the streams between the nodes, fills the
  // workers' Helia with the app and input, warms the JIT of this process
  const submitted: Array<{ taskId: string, dealId: string }> = []
  await runTask(s, pub, trust, timeoutMs, submitted)
  const samples: Sample[] = []
  const failures: string[] = []
  for (let i = 0; i < TASKS; i++) {
    try {
      samples.push(await runTask(s, pub, trust, timeoutMs, submitted))
    } catch (err) {
      // counted and shown, never hidden
      failures.push(err instanceof Error ? err.message : String(err))
      process.stdout.write(`trust ${trust} ${mode}: task ${i} failed: ${failures[failures.length - 1]}\n`)
    }
  }
  const logs = await Promise.all(s.providers.map(async (p) => await readNodeLog(p)))
  const measured = samples.map((x) => measure(s, logs, trust, x))
  const applicable = (p: Phase): boolean => trust > 1 || (p !== 'reveal' && p !== 'finalize')
  const missingMarks = measured.filter((m) => PHASES.some((p) => applicable(p) && m.phases[p] === null)).length
  const phases = Object.fromEntries(PHASES.map((p) => [p, stat(measured.map((m) => m.phases[p]))])) as Record<Phase, Stat>
  const totals = stat(measured.map((m) => m.totalMs))
  return {
    tasks: samples.length,
    failed: failures.length,
    failures: failures.slice(0, 5).map((f) => f.slice(0, 400)),
    p50Ms: totals.p50,
    p95Ms: totals.p95,
    phases,
    initialize: stat(measured.map((m) => m.initializeMs)),
    retrieveCall: stat(samples.map((x) => x.retrieveCallMs)),
    missingMarks
  }
}

/** The in-process swarm as the bag sees it. */
function inProcessBag (s: BenchSwarm, mode: Mode): BagSwarm {
  const market = s.requester.market
  if (market === undefined) throw new Error('the requester has no market')
  return {
    layout: 'in-process',
    mode,
    providers: s.providers.map((p) => ({ address: p.address, wallet: p.wallet, logs: async () => await readNodeLog(p) })),
    requester: { address: s.requester.address, wallet: s.requester.wallet },
    client: market.chain,
    domain: market.domain,
    nodesCpuMs: () => { const c = process.cpuUsage(); return (c.user + c.system) / 1000 },
    anvilCpuMs: () => processCpuMs(s.anvil.pid),
    txRate: async (n) => await automineTxRate(s.providers.map((p) => p.market?.chain).filter((c): c is ChainClient => c !== undefined), n)
  }
}

/**
 * The bag on node processes, as `swarm up` starts them (its own anvil, 1 s
 * blocks in block1s mode): node-0 the requester, the others providers with
 * 2 cpus each. The app and input are added through node-1's API; the
 * orders are signed with the nodes' own keys (their dev data dirs).
 */
async function processesBag (mode: Mode, n: number): Promise<BagResult> {
  const dir = await mkdtemp(join(tmpdir(), 'iexec-exec-bag-'))
  const clients: ChainClient[] = []
  try {
    const t0 = Date.now()
    const file = await swarmUp({ dir, nodes: PROVIDERS + 1, cli: compiledCli(), ...(mode === 'block1s' ? { blockTime: 1 } : {}), nodeConfig: { cpus: SLOTS_PER_PROVIDER, memoryMb: 1024 } })
    const chain = file.chain
    if (chain === null || chain === undefined) throw new Error('swarm up started no chain')
    const wallets = await Promise.all(file.nodes.map(async (node) => (await loadDataDir(node.dataDir)).wallet as Wallet))
    const connect = async (w: Wallet): Promise<ChainClient> => {
      const c = await createChainClient({ rpcUrl: chain.rpc, wallet: w, hub: chain.hub, rlc: chain.rlc, chainId: chain.chainId })
      clients.push(c)
      return c
    }
    const client = await connect(wallets[0])
    const owner = new ApiClient(file.nodes[1].api, (await readFile(file.nodes[1].tokenFile, 'utf8')).trim())
    const module = new Uint8Array(await readFile(appWasmPath('wordcount')))
    const added = await owner.addContent(module)
    const input = await owner.addContent(new TextEncoder().encode(INPUT))
    const app = await owner.registerApp({ name: 'wordcount', cid: added.cid, checksum: '0x' + createHash('sha256').update(module).digest('hex'), price: 0n })
    process.stdout.write(`${mode}: ${PROVIDERS} provider processes + 1 requester ready in ${Date.now() - t0} ms\n`)
    const pids = file.nodes.map((node) => node.pid)
    const providerClients = mode === 'automine' ? await Promise.all(wallets.slice(1).map(connect)) : []
    return await runBag({
      layout: 'processes',
      mode,
      providers: file.nodes.slice(1).map((node, i) => ({ address: node.address, wallet: wallets[i + 1], logs: async () => await readLogFile(dataDirPaths(node.dataDir).logs) })),
      requester: { address: file.nodes[0].address, wallet: wallets[0] },
      client,
      domain: hubDomain(chain.chainId, chain.hub),
      nodesCpuMs: () => pids.reduce((sum, pid) => sum + processCpuMs(pid), 0),
      anvilCpuMs: () => processCpuMs(chain.pid),
      txRate: async (m) => await automineTxRate(providerClients, m)
    }, { app: app.address, inputCid: input.cid }, n)
  } finally {
    for (const c of clients) await c.close().catch(() => {})
    await swarmDown(dir).catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  }
}

/** The executor's start overhead: run() of a module that does nothing, threads reused (the node's default) and fresh. */
async function executorStart (): Promise<{ reusedMs: number, freshMs: number, runs: number }> {
  const root = await mkdtemp(join(tmpdir(), 'iexec-exec-start-'))
  const module = buildModule({ memory: { min: 1, max: 1 } })
  const runs = 30
  const out: number[][] = []
  try {
    await mkdir(join(root, 'in'))
    await writeFile(join(root, 'in', 'data.txt'), 'x\n')
    for (const reuseThreads of [true, false]) {
      const executor = new WasiExecutor({ reuseRunners: reuseThreads })
      const times: number[] = []
      try {
        for (let i = 0; i < runs + 3; i++) {
          const outputDir = join(root, `out-${String(reuseThreads)}-${i}`)
          const t0 = performance.now()
          const r = await executor.run({
            taskId: `0x${i.toString(16).padStart(64, '0')}`, module, appName: 'empty', args: [], inputDir: join(root, 'in'), outputDir,
            datasetFilename: 'data.txt', inputFiles: [], timeoutMs: 10_000, maxMemoryBytes: 64 << 20, maxOutputBytes: 1 << 20
          })
          if (r.status !== 'COMPLETED') throw new Error(`the empty module ended ${r.status}`)
          if (i >= 3) times.push(performance.now() - t0)
        }
      } finally {
        await executor.close()
      }
      out.push(times)
    }
  } finally {
    await rm(root, { recursive: true, force: true })
  }
  return { reusedMs: median(out[0]), freshMs: median(out[1]), runs }
}

async function withSwarm<T> (mode: Mode, fn: (s: BenchSwarm, pub: Published) => Promise<T>): Promise<T> {
  const cleanup: Array<() => Promise<void>> = []
  try {
    const t0 = Date.now()
    const s = await startBenchSwarm({ providers: PROVIDERS, ...(mode === 'block1s' ? { blockTime: 1 } : {}) }, cleanup)
    const pub = await publish(s)
    process.stdout.write(`${mode}: swarm of ${PROVIDERS} providers + 1 requester ready in ${Date.now() - t0} ms\n`)
    return await fn(s, pub)
  } finally {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => {})
  }
}

const cell = (v: number | null | undefined): string | number => (v === null || v === undefined || Number.isNaN(v) ? '-' : v)

export async function run (): Promise<void> {
  const started = Date.now()
  const lat = new Map<string, ModeResult>()
  const bags: BagResult[] = []
  // a fresh swarm for each case: what a scheduler keeps from one case's deals
  // (see staleLoads) must not change the next case's figures
  for (const mode of [...new Set([...MODES, ...(BAG > 0 ? [...BAG_MODES, ...BAG_PROCESS_MODES] : [])])]) {
    if (MODES.includes(mode)) {
      for (const trust of TRUSTS) {
        await withSwarm(mode, async (s, pub) => {
          const t0 = Date.now()
          lat.set(`${trust}:${mode}`, await latency(s, pub, trust, mode))
          process.stdout.write(`trust ${trust} ${mode}: ${TASKS} tasks in ${Date.now() - t0} ms\n`)
        })
      }
    }
    if (BAG_MODES.includes(mode) && BAG > 0) {
      await withSwarm(mode, async (s, pub) => {
        const t0 = Date.now()
        bags.push(await runBag(inProcessBag(s, mode), pub, BAG))
        process.stdout.write(`bag of ${BAG} ${mode}, in one process: ${Date.now() - t0} ms\n`)
      })
    }
    if (BAG_PROCESS_MODES.includes(mode) && BAG > 0) {
      const t0 = Date.now()
      try {
        bags.push(await processesBag(mode, BAG))
        process.stdout.write(`bag of ${BAG} ${mode}, node processes: ${Date.now() - t0} ms\n`)
      } catch (err) {
        // a swarm that could not start is a result too: reported, the other cases still run
        process.stdout.write(`bag of ${BAG} ${mode} on node processes failed: ${err instanceof Error ? err.message : String(err)}\n`)
      }
    }
  }
  const exec = await executorStart()

  const rows: Array<Record<string, string | number>> = []
  const rows95: Array<Record<string, string | number>> = []
  for (const [key, r] of lat) {
    const [trust, mode] = key.split(':')
    const head = { trust, chain: mode, tasks: r.tasks, failed: r.failed }
    rows.push({ ...head, totalP50: cell(r.p50Ms), ...Object.fromEntries(PHASES.map((p) => [p, cell(r.phases[p].p50)])), init: cell(r.initialize.p50), call: cell(r.retrieveCall.p50) })
    rows95.push({ ...head, totalP95: cell(r.p95Ms), ...Object.fromEntries(PHASES.map((p) => [p, cell(r.phases[p].p95)])), init: cell(r.initialize.p95), call: cell(r.retrieveCall.p95) })
  }
  printTable('submit-to-result latency, p50 per phase (ms; init = deal -> initialize mined, part of schedule; call = the successful GET /v1/results, part of retrieve)', rows)
  printTable('submit-to-result latency, p95 per phase (ms)', rows95)
  printTable(`bag of ${BAG} trust-1 tasks, one deal, ${PROVIDERS} providers x ${SLOTS_PER_PROVIDER} task slots`, bags.map((b) => ({
    nodes: b.layout, chain: b.mode, completed: b.completed, elapsedMs: b.elapsedMs, blocks: b.blocks, tasksPerS: b.tasksPerSecond, chainBoundPerS: b.chainBoundTasksPerSecond,
    ratio: b.ratioToChainBound, nodesCpuMsPerTask: b.nodesCpuMsPerTask, anvilCpuMsPerTask: b.anvilCpuMsPerTask, firstAssignMs: cell(b.firstAssignMs), slotUse: b.slotUtilization,
    txs: b.transactions, tasksPerTx: b.tasksPerTransaction, perWorker: Object.entries(b.workersUsed).map(([w, c]) => `${w}:${c}`).join(' ')
  })))
  printTable('bag: where a task\'s time went, p50 (ms): held by its worker (assigned -> computed: its turn, prepare, run, digest, store), then its commit (computed -> on chain)', bags.map((b) => ({
    nodes: b.layout, chain: b.mode, held: cell(b.heldP50Ms), prepare: cell(b.computeSplitP50Ms.prepare), run: cell(b.computeSplitP50Ms.run), digest: cell(b.computeSplitP50Ms.digest), store: cell(b.computeSplitP50Ms.store),
    commit: cell(b.commitP50Ms), queued: cell(b.commitSplitP50Ms.queued), broadcast: cell(b.commitSplitP50Ms.broadcast), receipt: cell(b.commitSplitP50Ms.receipt)
  })))
  const bagOf = (layout: string, mode: Mode): BagResult | undefined => bags.find((b) => b.layout === layout && b.mode === mode)
  const t1a = lat.get('1:automine')
  const t1b = lat.get('1:block1s')
  const aims = [
    { aim: 'trust 1, automine, p50 <= 500 ms', measuredMs: cell(t1a?.p50Ms), aimMs: AIMS.trust1AutomineP50Ms, ratio: cell(t1a?.p50Ms != null ? t1a.p50Ms / AIMS.trust1AutomineP50Ms : null) },
    { aim: 'trust 1, 1 s blocks, p50 <= 3 s', measuredMs: cell(t1b?.p50Ms), aimMs: AIMS.trust1Block1sP50Ms, ratio: cell(t1b?.p50Ms != null ? t1b.p50Ms / AIMS.trust1Block1sP50Ms : null) }
  ]
  printTable('aims (ratio = measured / aim; <= 1 meets it)', aims)
  printTable('executor start overhead per task (empty module, 30 runs after 3 warm-up, TypeScript sources via tsx)', [
    { threads: 'reused (node default)', p50Ms: exec.reusedMs }, { threads: 'fresh', p50Ms: exec.freshMs }
  ])

  const trustJson = (trust: number): Record<string, unknown> => {
    const a = lat.get(`${trust}:automine`)
    const b = lat.get(`${trust}:block1s`)
    return {
      automineP50Ms: a?.p50Ms ?? null,
      automineP95Ms: a?.p95Ms ?? null,
      block1sP50Ms: b?.p50Ms ?? null,
      block1sP95Ms: b?.p95Ms ?? null,
      phases: { automine: a?.phases ?? null, block1s: b?.phases ?? null },
      initialize: { automine: a?.initialize ?? null, block1s: b?.initialize ?? null },
      retrieveCall: { automine: a?.retrieveCall ?? null, block1s: b?.retrieveCall ?? null },
      runs: { automine: a === undefined ? null : { tasks: a.tasks, failed: a.failed, failures: a.failures, missingMarks: a.missingMarks }, block1s: b === undefined ? null : { tasks: b.tasks, failed: b.failed, failures: b.failures, missingMarks: b.missingMarks } }
    }
  }
  const distExecutor = join(process.cwd(), 'bench-results', 'executor.json')
  let executorDist: unknown = null
  if (existsSync(distExecutor)) executorDist = (JSON.parse(await readFile(distExecutor, 'utf8')) as { executorStartMs?: number }).executorStartMs ?? null
  await writeResults('execution', {
    trust1: trustJson(1),
    trust3: trustJson(3),
    bag200: {
      // the issue's figure: automining, nodes in one process (as the other cases run)
      tasksPerSecond: bagOf('in-process', 'automine')?.tasksPerSecond ?? bags[0]?.tasksPerSecond ?? null,
      automine: bagOf('in-process', 'automine') ?? null,
      block1s: bagOf('in-process', 'block1s') ?? null,
      processes: { automine: bagOf('processes', 'automine') ?? null, block1s: bagOf('processes', 'block1s') ?? null }
    },
    executorStartMs: exec.reusedMs,
    executorFreshThreadStartMs: exec.freshMs,
    executorStartMsFromExecutorBench: executorDist,
    aims: {
      trust1AutomineP50: { aimMs: AIMS.trust1AutomineP50Ms, measuredMs: t1a?.p50Ms ?? null },
      trust1Block1sP50: { aimMs: AIMS.trust1Block1sP50Ms, measuredMs: t1b?.p50Ms ?? null }
    },
    setup: { providers: PROVIDERS, requesters: 1, tasksPerCase: TASKS, app: 'wordcount over one 24-byte input file', process: 'all nodes in one process on a 2-core machine', benchMs: Date.now() - started }
  })
}
