/**
 * What an idle node costs its JSON-RPC endpoint: a real IexecNode (market,
 * scheduler, worker duties) reached through a proxy that counts every
 * JSON-RPC call, over HTTP or over WebSocket. Shared by
 * test/integration/chain-idle.test.ts and `npm run bench -- chain`.
 */
import { join } from 'node:path'
import { IexecNode } from '../../node/node.js'
import { initDataDir } from '../../node/config/index.js'
import { createChainClient, type LocalSwarmChain } from '../../node/chain/index.js'
import type { RpcProxy } from './rpc-proxy.js'
import { waitFor } from './wait.js'

export interface IdleFigures {
  transport: 'http' | 'ws'
  seconds: number
  /** HTTP requests a second (a batch is one) */
  httpRequestsPerSecond: number
  /** WebSocket messages a second to the endpoint (a batch is one) */
  wsMessagesPerSecond: number
  /** JSON-RPC calls a second, whatever carried them */
  callsPerSecond: number
  /** blocks the follower moved through in the window */
  blocksFollowed: number
  /** the follower was on live subscriptions at the end */
  subscribed: boolean
  following: boolean
  /** after the window: from the receipt of a hub transaction (`poke`) to the node's follower delivering its event, ms */
  eventLatencyMs?: number
  /** each of the `pokes` events' latency */
  eventLatenciesMs?: number[]
}

/**
 * Starts a provider node in `dataDir` on `chain` through `proxy` (its ws URL
 * when `transport` is 'ws'), lets it catch up, counts its calls over
 * `windowMs`, stops it.
 */
export async function measureIdleNode (o: { dataDir: string, chain: LocalSwarmChain, proxy: RpcProxy, transport: 'http' | 'ws', windowMs: number, poke?: () => Promise<void>, pokes?: number }): Promise<IdleFigures> {
  const { chain, proxy } = o
  const rpc = o.transport === 'ws' ? proxy.wsUrl : proxy.url
  await initDataDir({ dataDir: o.dataDir, devUnprotectedKey: true, config: { swarmId: 'idle', advertIntervalMs: 3_600_000, role: 'provider', cpus: 1, memoryMb: 512, chain: { rpc, hub: chain.hub, chainId: chain.chainId } } })
  const node = await IexecNode.create({ dataDir: o.dataDir, chainFromBlock: chain.blockNumber })
  try {
    await node.start()
    const follower = node.hubEvents!.follower
    const at = (): number => follower.position?.blockNumber ?? 0
    // settled: the follower has caught up with the chain, then moved again
    // (start-up calls, chain id and code checks, are behind us)
    await waitFor(() => at() > chain.blockNumber, 30_000, 'the follower to catch up')
    if (o.transport === 'ws') {
      // on pushed heads and logs a quiet chain is not read: settled once subscribed
      await waitFor(() => follower.subscribed, 30_000, 'the subscriptions')
    } else {
      const settled = at()
      await waitFor(() => at() > settled, 30_000, 'the follower to move again')
    }
    const calls0 = proxy.totalCalls
    const requests0 = proxy.requests
    const messages0 = proxy.wsMessages
    const block0 = at()
    const t0 = Date.now()
    await waitFor(() => Date.now() - t0 >= o.windowMs, o.windowMs + 5_000, 'the counting window', 250)
    const seconds = (Date.now() - t0) / 1000
    const rate = (n: number): number => Math.round(n / seconds * 100) / 100
    const counted = { requests: proxy.requests - requests0, messages: proxy.wsMessages - messages0, calls: proxy.totalCalls - calls0, blocks: at() - block0 }
    const latencies: number[] = []
    for (let i = 0; o.poke !== undefined && i < (o.pokes ?? 1); i++) {
      const before = follower.deliveredCount
      await o.poke()
      const mined = Date.now()
      await waitFor(() => follower.deliveredCount > before, 60_000, 'the node to see the hub event')
      latencies.push(Date.now() - mined)
    }
    return {
      transport: o.transport,
      seconds: Math.round(seconds * 10) / 10,
      httpRequestsPerSecond: rate(counted.requests),
      wsMessagesPerSecond: rate(counted.messages),
      callsPerSecond: rate(counted.calls),
      blocksFollowed: counted.blocks,
      subscribed: follower.subscribed,
      following: follower.following,
      ...(latencies.length > 0 ? { eventLatencyMs: latencies[0], eventLatenciesMs: latencies } : {})
    }
  } finally {
    await node.stop()
  }
}

/**
 * A `poke` for `measureIdleNode`: deposits 1 nRLC into the hub from
 * `privateKey` (funded with RLC by deployLocalSwarmChain), resolving once mined.
 */
export async function hubDepositPoke (chain: LocalSwarmChain, privateKey: string): Promise<{ poke: () => Promise<void>, close: () => Promise<void> }> {
  const client = await createChainClient({ rpcUrl: chain.rpc, chainId: chain.chainId, privateKey, hub: chain.hub, rlc: chain.rlc })
  await client.sender.send(client.rlc!.approve.populateTransaction(chain.hub, 10n ** 18n))
  return {
    poke: async () => { await client.sender.send(client.hub!.deposit.populateTransaction(1n)) },
    close: async () => { await client.close() }
  }
}

/** A data dir path per transport under `root`. */
export const idleDataDir = (root: string, transport: string): string => join(root, `idle-${transport}`)
