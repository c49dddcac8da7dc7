/**
 * What an idle node costs its JSON-RPC endpoint: a real IexecNode (market,
 * scheduler, worker duties) on a chain that is not a dev chain (anvil with
 * chain id 134 and a block every 2 s), reached through a proxy that counts
 * every JSON-RPC call.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IexecNode } from '../../node/node.js'
import { initDataDir } from '../../node/config/index.js'
import { deployLocalSwarmChain, startLocalChain } from '../../node/chain/index.js'
import { RpcProxy } from '../helpers/rpc-proxy.js'
import { waitFor } from '../helpers/wait.js'

/** The window the calls are counted over. */
const WINDOW_MS = 20_000

describe('chain: an idle node on a remote-chain profile', function () {
  this.timeout(120_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('asks its endpoint at most one JSON-RPC call per second, and still follows the hub', async () => {
    const root = await mkdtemp(join(tmpdir(), 'iexec-chain-idle-'))
    cleanup.push(async () => { await rm(root, { recursive: true, force: true }) })
    const anvil = await startLocalChain({ accounts: 2, chainId: 134, blockTime: 2 })
    cleanup.push(async () => { await anvil.stop() })
    const chain = await deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0] })
    const proxy = await RpcProxy.start(anvil.rpcUrl)
    cleanup.push(async () => { await proxy.close() })
    const dataDir = join(root, 'p0')
    await initDataDir({ dataDir, devUnprotectedKey: true, config: { swarmId: 'idle', advertIntervalMs: 3_600_000, role: 'provider', cpus: 1, memoryMb: 512, chain: { rpc: proxy.url, hub: chain.hub, chainId: chain.chainId } } })
    const node = await IexecNode.create({ dataDir, chainFromBlock: chain.blockNumber })
    cleanup.push(async () => { await node.stop() })
    await node.start()
    const follower = node.market!.follower
    // settled: the follower has caught up with the chain once
    await waitFor(() => (follower.position?.blockNumber ?? 0) > chain.blockNumber, 30_000, 'the follower to catch up')
    // startup calls (chain id, code checks) are behind us once the follower has moved twice
    const settled = follower.position?.blockNumber ?? 0
    await waitFor(() => (follower.position?.blockNumber ?? 0) > settled, 30_000, 'the follower to move again')
    const from = proxy.totalCalls
    const requestsFrom = proxy.requests
    const blockFrom = follower.position?.blockNumber ?? 0
    const t0 = Date.now()
    await waitFor(() => Date.now() - t0 >= WINDOW_MS, WINDOW_MS + 5_000, 'the counting window', 250)
    const seconds = (Date.now() - t0) / 1000
    const calls = proxy.totalCalls - from
    const requests = proxy.requests - requestsFrom
    process.stderr.write(`      idle node, remote profile, a block every 2 s: ${requests} HTTP requests (${(requests / seconds).toFixed(2)}/s), ${calls} JSON-RPC calls (${(calls / seconds).toFixed(2)}/s) in ${seconds.toFixed(1)} s\n`)
    assert.ok(requests / seconds <= 1, `an idle node makes ${(requests / seconds).toFixed(2)} HTTP requests/s (at most 1)`)
    assert.ok(calls / seconds <= 1.2, `an idle node makes ${(calls / seconds).toFixed(2)} JSON-RPC calls/s`)
    assert.ok((follower.position?.blockNumber ?? 0) > blockFrom, 'the follower kept up with the new blocks meanwhile')
    assert.ok(follower.following)
  })
})
