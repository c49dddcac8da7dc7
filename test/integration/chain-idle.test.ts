/**
 * What an idle node costs its JSON-RPC endpoint: a real IexecNode (market,
 * scheduler, worker duties) on a chain that is not a dev chain (anvil with
 * chain id 134 and a block every 2 s), reached through a proxy that counts
 * every JSON-RPC call, over HTTP (polling) and over WebSocket (eth_subscribe).
 */
import assert from 'node:assert/strict'
import { Wallet } from 'ethers'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { deployLocalSwarmChain, startLocalChain, type LocalChain, type LocalSwarmChain } from '../../node/chain/index.js'
import { RpcProxy } from '../helpers/rpc-proxy.js'
import { hubDepositPoke, idleDataDir, measureIdleNode, type IdleFigures } from '../helpers/chain-idle.js'

/** The window the calls are counted over. */
const WINDOW_MS = 20_000

describe('chain: an idle node on a remote-chain profile', function () {
  this.timeout(120_000)
  let root: string
  let anvil: LocalChain | undefined
  let chain: LocalSwarmChain
  let proxy: RpcProxy | undefined
  let poker: Awaited<ReturnType<typeof hubDepositPoke>> | undefined

  before(async () => {
    root = await mkdtemp(`${tmpdir()}/iexec-chain-idle-`)
    anvil = await startLocalChain({ accounts: 2, chainId: 134, blockTime: 2 })
    chain = await deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0], fund: [{ address: new Wallet(anvil.privateKeys[1]).address, rlc: 10n ** 12n }] })
    proxy = await RpcProxy.start(anvil.rpcUrl)
    poker = await hubDepositPoke(chain, anvil.privateKeys[1])
  })

  after(async () => {
    await poker?.close()
    await proxy?.close()
    await anvil?.stop()
    await rm(root, { recursive: true, force: true })
  })

  const print = (f: IdleFigures): void => {
    process.stderr.write(`      idle node, remote profile, a block every 2 s, ${f.transport}: ${f.httpRequestsPerSecond} HTTP requests/s, ${f.wsMessagesPerSecond} WebSocket messages/s, ${f.callsPerSecond} JSON-RPC calls/s over ${f.seconds} s; a hub event seen ${String(f.eventLatencyMs)} ms after its receipt\n`)
  }

  it('over HTTP it asks its endpoint at most one request per second, and still follows the hub', async () => {
    const f = await measureIdleNode({ dataDir: idleDataDir(root, 'http'), chain, proxy: proxy!, transport: 'http', windowMs: WINDOW_MS, poke: poker!.poke })
    print(f)
    assert.ok(f.httpRequestsPerSecond <= 1, `an idle node makes ${f.httpRequestsPerSecond} HTTP requests/s (at most 1)`)
    assert.ok(f.callsPerSecond <= 1.2, `an idle node makes ${f.callsPerSecond} JSON-RPC calls/s`)
    assert.equal(f.wsMessagesPerSecond, 0)
    assert.ok(f.blocksFollowed > 0, 'the follower kept up with the new blocks meanwhile')
    assert.ok(f.following)
    assert.equal(f.subscribed, false, 'nothing to subscribe to over HTTP')
  })

  it('over WebSocket it reads only what is pushed: no HTTP, almost no message when idle, and a hub event still arrives', async () => {
    const f = await measureIdleNode({ dataDir: idleDataDir(root, 'ws'), chain, proxy: proxy!, transport: 'ws', windowMs: WINDOW_MS, poke: poker!.poke })
    print(f)
    assert.equal(f.httpRequestsPerSecond, 0, 'nothing over HTTP')
    assert.ok(f.subscribed, 'on live subscriptions')
    assert.ok(f.following)
    // blocks without a hub log are not read; a re-read every 40 s (10 poll intervals) covers a lost notification
    assert.ok(f.wsMessagesPerSecond <= 0.1, `an idle node sends ${f.wsMessagesPerSecond} WebSocket messages/s`)
    assert.ok(f.eventLatencyMs !== undefined, 'the deposit was seen')
  })
})
