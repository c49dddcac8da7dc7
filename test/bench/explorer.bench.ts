// Explorer first render with 10,000 tasks in the node's history: 1,000
// deals of 10 tasks, each task finalized, written through the explorer's
// index into a real level store; then a fresh index on the same store (a
// node restarted) serves each main page through the real route on a real
// API server. First render = the first request of a page after the restart
// (cold), to the last byte; then the median of 5 more (warm). Target: ≤ 1 s.
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DbController } from '../../node/db/index.js'
import { startApiServer } from '../../node/api/index.js'
import { BrowserSessions } from '../../node/api/session.js'
import { ExplorerStore, type HubEventLike } from '../../node/api/explorer/store.js'
import { explorerRoutes } from '../../node/api/routes/explorer.js'
import { taskId } from '../../protocols/eip712.js'
import { median, printTable, writeResults } from './harness.js'

const TOKEN = 'bench-token-0123456789abcdef'
const DEALS = 1_000
const TASKS_PER_DEAL = 10
const TARGET_MS = 1_000
const hex = (n: number, width = 64): string => '0x' + n.toString(16).padStart(width, '0')

async function fetchMs (url: string): Promise<{ ms: number, bytes: number, status: number }> {
  const t0 = performance.now()
  return await new Promise((resolve, reject) => {
    const req = request(url, { headers: { authorization: `Bearer ${TOKEN}` }, agent: false }, (res) => {
      let bytes = 0
      res.on('data', (c: Buffer) => { bytes += c.length })
      res.on('end', () => { resolve({ ms: performance.now() - t0, bytes, status: res.statusCode ?? 0 }) })
    })
    req.on('error', reject)
    req.end()
  })
}

export async function run (): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'iexec-bench-explorer-'))
  const db = new DbController({ path: join(dir, 'db') })
  await db.open()
  try {
    const writer = new ExplorerStore(db)
    await writer.start()
    const app = hex(0xa11, 40)
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    await writer.apply({ name: 'AppRegistered', block: 1, logIndex: 0, txHash: hex(1), args: { app, owner: hex(0xb0b, 40), name: 'primes', cid: 'bafyapp', checksum: hex(2) } })
    let lastTask = ''
    for (let d = 0; d < DEALS; d++) {
      const dealId = hex(0xd000000 + d)
      const block = 10 + d * 3
      const e: HubEventLike = {
        name: 'DealCreated', block, logIndex: 0, txHash: hex(0x7000000 + d),
        args: { dealid: dealId, scheduler: hex(0x5c, 40), requester: hex(0xc0, 40), info: { requestHash: hex(0x8000000 + d), app, dataset: hex(0, 40), workers: [hex(0xd1, 40)], beneficiary: hex(0xc0, 40), callback: hex(0, 40), params: `{"iexec_args":"${d}"}`, tag: hex(0), volume: String(TASKS_PER_DEAL), trust: '1', category: '0', appPrice: '1000', datasetPrice: '0', workerPrice: '100000', startTime: '1', contributionDeadline: '2', finalDeadline: '3' } }
      }
      await writer.apply(e)
      for (let i = 0; i < TASKS_PER_DEAL; i++) {
        lastTask = taskId(dealId, BigInt(i)).toLowerCase()
        await writer.apply({ name: 'TaskFinalized', block: block + 1, logIndex: i, txHash: hex(0x9000000 + d), args: { taskid: lastTask, dealid: dealId, resultHash: hex(i), resultsCid: `bafyresult${d}x${i}` } })
      }
    }
    await writer.stop()
    const buildMs = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const buildCpuMs = (cpu.user + cpu.system) / 1000

    // a restarted node: a fresh index over the same level store
    const store = new ExplorerStore(db)
    await store.start()
    // every task counted once, whatever flushes ran under the updates
    if (store.stats.tasks !== DEALS * TASKS_PER_DEAL || store.stats.completed !== DEALS * TASKS_PER_DEAL) throw new Error(`the index counts ${store.stats.tasks} tasks, ${store.stats.completed} completed, not ${DEALS * TASKS_PER_DEAL}`)
    const sessions = new BrowserSessions(TOKEN)
    const status = { peerId: '12D3KooWBench', address: hex(0xc0, 40), multiaddrs: [], role: 'requester' as const, version: 'bench', connections: 0 }
    const server = await startApiServer({
      port: 0,
      token: TOKEN,
      backend: { status: () => status, peers: async () => [], resources: async () => [], shutdown: async () => {} },
      sessions,
      routes: explorerRoutes({ store: () => store, market: () => undefined, sessions, status: () => status, peers: async () => [], resources: async () => [], url: () => server.url })
    })
    const rows: Array<Record<string, string | number>> = []
    const results: Record<string, { firstMs: number, warmMedianMs: number, bytes: number }> = {}
    try {
      const pages = ['/explorer', '/explorer/tasks', '/explorer/deals', '/explorer/assets', `/explorer/tasks/${lastTask}`, `/explorer/search?q=${lastTask}`]
      for (const path of pages) {
        const first = await fetchMs(`${server.url}${path}`)
        if (first.status !== 200 && first.status !== 303) throw new Error(`${path} answered ${first.status}`)
        const warm: number[] = []
        for (let i = 0; i < 5; i++) warm.push((await fetchMs(`${server.url}${path}`)).ms)
        const name = path.includes('/tasks/0x') ? '/explorer/tasks/:id' : path.includes('search') ? '/explorer/search?q=TASKID' : path
        results[name] = { firstMs: Math.round(first.ms * 10) / 10, warmMedianMs: Math.round(median(warm) * 10) / 10, bytes: first.bytes }
        rows.push({ page: name, 'first ms': first.ms, 'warm median ms': median(warm), bytes: first.bytes })
      }
    } finally {
      await server.close()
      await store.stop()
    }
    printTable(`explorer first render, ${store.stats.tasks} tasks in ${store.stats.deals} deals (target ≤ ${TARGET_MS} ms)`, rows)
    const worst = Math.max(...Object.values(results).map((r) => r.firstMs))
    await writeResults('explorer', {
      tasks: store.stats.tasks,
      deals: store.stats.deals,
      indexBuildMs: Math.round(buildMs),
      // what each node pays per hub event it follows: CPU of the index update and its share of the batched level writes
      indexCpuMsPerEvent: Math.round(buildCpuMs / (1 + DEALS * (1 + TASKS_PER_DEAL)) * 1000) / 1000,
      targetMs: TARGET_MS,
      worstFirstRenderMs: worst,
      withinTarget: worst <= TARGET_MS,
      pages: results
    })
  } finally {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  }
}
