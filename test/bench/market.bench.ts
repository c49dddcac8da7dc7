// The market, end to end, on swarms of 5, 20 and 50 IexecNodes in ONE
// process (1 requester + N-1 providers) over one anvil (automine). Per
// request: time from the request's gossip to the first bid accepted by the
// requester, and to the mined deal (matchOrders receipt). Trust 1, so one bid
// closes the bidding window early: the deal time is first bid + one
// matchOrders transaction. Both bid transports: a direct stream to the
// requester, and the bid gossip topic.
// All nodes share this process's event loop and the machine's cores (2 here),
// so the figures include that contention.
import { performance } from 'node:perf_hooks'
import { percentile, printTable, writeResults } from './harness.js'
import { RLC, ok, startSwarm, waitFor } from '../integration/market-helpers.js'

const SIZES = (process.env.BENCH_MARKET_SIZES ?? '5,20,50').split(',').map(Number)
const REQUESTS = Number(process.env.BENCH_MARKET_REQUESTS ?? 15)
// gossip transport at these sizes too (the issue asks for at least 20)
// (gossip at 50 nodes in one process floods the shared event loop: every node validates every bid)
const GOSSIP_SIZES = (process.env.BENCH_MARKET_GOSSIP_SIZES ?? '20').split(',').map(Number)

interface Row { nodes: number, transport: 'stream' | 'gossip', firstBidP50Ms: number, firstBidP95Ms: number, dealP50Ms: number, dealP95Ms: number, requests: number, failed: number, setupMs: number }

async function measure (nodes: number, transport: 'stream' | 'gossip'): Promise<Row> {
  const cleanup: Array<() => Promise<void>> = []
  const t0 = performance.now()
  try {
    const s = await startSwarm({
      providers: nodes - 1,
      market: {
        bidTransport: transport,
        // long enough that a slow swarm shows up as latency, not as NO_BIDS
        biddingWindowMs: 20_000,
        // 50 followers polling anvil every 100 ms would load the shared cores for nothing measured here
        eventPollIntervalMs: nodes > 20 ? 1_000 : 250
      }
    }, cleanup)
    const setupMs = Math.round(performance.now() - t0)
    const requester = s.requesters[0]
    await ok(s.providers[0], 'POST', '/v1/apps', { name: 'bench', cid: 'bafy-bench', checksum: '0x' + '33'.repeat(32), price: RLC.toString() })
    await waitFor(async () => ((await ok(requester, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 1, 30_000, 'app order at the requester')
    const market = requester.market
    if (market === undefined) throw new Error('requester has no market')
    // warm-up (not counted): the first request opens the providers' streams
    // to the requester and warms the JIT of every node in this process
    await market.requester.submit({ app: 'bench', args: 'warm-up', trust: 1, biddingWindowMs: 60_000 })
    const firstBid: number[] = []
    const deal: number[] = []
    let failed = 0
    for (let i = 0; i < REQUESTS; i++) {
      try {
        const r = await market.requester.submit({ app: 'bench', args: `run ${i}`, trust: 1 })
        if (r.timings.firstBidMs !== null) firstBid.push(r.timings.firstBidMs)
        deal.push(r.timings.dealMs)
      } catch (err) {
        // counted, not hidden: a request with no bid in the window is a failure of the swarm
        failed++
        process.stdout.write(`request ${i} at ${nodes} nodes failed: ${err instanceof Error ? err.message : String(err)}\n`)
      }
    }
    return {
      nodes,
      transport,
      firstBidP50Ms: Math.round(percentile(firstBid, 50)),
      firstBidP95Ms: Math.round(percentile(firstBid, 95)),
      dealP50Ms: Math.round(percentile(deal, 50)),
      dealP95Ms: Math.round(percentile(deal, 95)),
      requests: REQUESTS,
      failed,
      setupMs
    }
  } finally {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  }
}

export async function run (): Promise<void> {
  const swarms: Row[] = []
  for (const n of SIZES) {
    swarms.push(await measure(n, 'stream'))
    if (GOSSIP_SIZES.includes(n)) swarms.push(await measure(n, 'gossip'))
    printTable(`market (after ${n} nodes)`, swarms.map((r) => ({ ...r })))
  }
  await writeResults('market', { swarms })
}
