/**
 * A live node through a reorg: a real IexecNode following a real anvil's
 * hub, whose chain is rolled back under it after it acted on an event.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IexecNode } from '../../node/node.js'
import { initDataDir } from '../../node/config/index.js'
import { createChainClient, deployLocalSwarmChain, hubInterface, startLocalChain } from '../../node/chain/index.js'
import { waitFor } from '../helpers/wait.js'

describe('chain: a live node through a reorg', function () {
  this.timeout(120_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('rewinds and goes on hearing the hub, without a restart', async () => {
    const root = await mkdtemp(join(tmpdir(), 'iexec-chain-reorg-'))
    cleanup.push(async () => { await rm(root, { recursive: true, force: true }) })
    const anvil = await startLocalChain({ accounts: 2 })
    cleanup.push(async () => { await anvil.stop() })
    const chain = await deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0] })
    const owner = await createChainClient({ rpcUrl: anvil.rpcUrl, privateKey: anvil.privateKeys[1], hub: chain.hub })
    cleanup.push(async () => { await owner.close() })
    const dataDir = join(root, 'n0')
    await initDataDir({ dataDir, devUnprotectedKey: true, config: { swarmId: 'reorg', advertIntervalMs: 3_600_000, role: 'requester', chain: { rpc: chain.rpc, hub: chain.hub, chainId: chain.chainId } } })
    const node = await IexecNode.create({ dataDir, chainFromBlock: chain.blockNumber })
    cleanup.push(async () => { await node.stop() })
    await node.start()
    const market = node.market!
    const register = async (name: string): Promise<string> => {
      const tx = await owner.sender.send(owner.hub!.registerApp.populateTransaction(name, `bafy-${name}`, '0x' + '11'.repeat(32)))
      return tx.receipt.logs.map((l) => hubInterface().parseLog(l)).find((p) => p?.name === 'AppRegistered')?.args.app as string
    }
    const snapshot = await owner.provider.send('evm_snapshot', []) as string
    const first = await register('before-reorg')
    await waitFor(async () => (await market.knownApp(first)) !== undefined, 20_000, 'the node to learn the first app')
    // the block the node read from is replaced: same height, other block
    await owner.provider.send('evm_revert', [snapshot])
    owner.sender.resetNonce()
    await owner.sender.send({ to: owner.address, value: 1n })
    await waitFor(() => node.hubEvents!.follower.rewindCount >= 1, 20_000, 'the follower to rewind')
    const second = await register('after-reorg')
    // the hub's state went back too: the new app may take the old one's address, so its name tells them apart
    await waitFor(async () => (await market.knownApp(second))?.name === 'after-reorg', 20_000, 'the node to learn an app registered after the reorg')
    assert.ok(node.hubEvents!.follower.following, 'the follower runs on')
  })
})
