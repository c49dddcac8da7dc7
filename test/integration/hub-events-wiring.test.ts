/**
 * The node's one follower of the hub, as node.ts wires it: a real
 * IexecNode (a provider: market, on-chain requests, explorer, scheduler and
 * worker) on a real anvil. One follower reads the hub for all of them, and
 * the scheduler hears an event only after the market's book applied it,
 * however long the book's write keeps failing.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IexecNode } from '../../node/node.js'
import { initDataDir } from '../../node/config/index.js'
import { EventFollower, createChainClient, deployLocalSwarmChain, hubInterface, startLocalChain } from '../../node/chain/index.js'
import type { ChainEvent } from '../../node/chain/index.js'
import { ZERO_ADDRESS, ZERO_BYTES32 } from '../../protocols/eip712.js'
import { waitFor } from '../helpers/wait.js'

describe('hub events: one follower per node, subscribers in order', function () {
  this.timeout(120_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('one follower polls for the market, the explorer and the execution; a failing book write holds the scheduler on the event until it passes', async () => {
    // every follower of this process that reads the chain, by instance (the spy calls through)
    const polling = new Set<EventFollower>()
    const poll = Object.getOwnPropertyDescriptor(EventFollower.prototype, 'poll')?.value as EventFollower['poll']
    EventFollower.prototype.poll = async function (this: EventFollower) {
      polling.add(this)
      return await poll.call(this)
    }
    cleanup.push(async () => { EventFollower.prototype.poll = poll })
    const root = await mkdtemp(join(tmpdir(), 'iexec-hub-events-'))
    cleanup.push(async () => { await rm(root, { recursive: true, force: true }) })
    const anvil = await startLocalChain({ accounts: 2 })
    cleanup.push(async () => { await anvil.stop() })
    const chain = await deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0] })
    const requester = await createChainClient({ rpcUrl: anvil.rpcUrl, privateKey: anvil.privateKeys[1], hub: chain.hub })
    cleanup.push(async () => { await requester.close() })
    const dataDir = join(root, 'n0')
    await initDataDir({ dataDir, devUnprotectedKey: true, config: { swarmId: 'hub-events', advertIntervalMs: 3_600_000, role: 'provider', cpus: 1, memoryMb: 512, chain: { rpc: chain.rpc, hub: chain.hub, chainId: chain.chainId } } })
    const node = await IexecNode.create({ dataDir, chainFromBlock: chain.blockNumber })
    cleanup.push(async () => { await node.stop() })
    await node.start()
    const market = node.market!
    const hubEvents = node.hubEvents!
    assert.equal(market.hubEvents, hubEvents, 'the market is fed by the node\'s HubEvents')
    assert.equal('follower' in market, false, 'the market has no follower of its own')
    // the market's records, its on-chain requests, the explorer, the scheduler and worker
    assert.equal(hubEvents.subscriberCount, 4)

    // the book's write of an OrderCancelled fails until the test lets it pass
    let failing = true
    let failures = 0
    const book = market.book
    const apply = book.applyHubEvent.bind(book)
    book.applyHubEvent = async (ev, consumedOf) => {
      if (ev.name === 'OrderCancelled' && failing) {
        failures++
        throw new Error('the book\'s level write failed')
      }
      await apply(ev, consumedOf)
    }
    // what the book holds of the event when the scheduler is told of it
    const told: Array<string | undefined> = []
    const scheduler = node.execution!.scheduler
    const onChainEvent = scheduler.onChainEvent.bind(scheduler)
    scheduler.onChainEvent = async (e: ChainEvent) => {
      if (e.name === 'OrderCancelled') told.push(await book.dropped(e.topics[1]))
      await onChainEvent(e)
    }

    // a requester cancels a request order of its own on the hub: one OrderCancelled
    const tx = await requester.sender.send(requester.hub!.cancelRequestOrder.populateTransaction({
      app: ZERO_ADDRESS, appmaxprice: 0n, dataset: ZERO_ADDRESS, datasetmaxprice: 0n, workerpool: ZERO_ADDRESS, workerpoolmaxprice: 0n,
      requester: requester.address, volume: 1n, tag: ZERO_BYTES32, category: 0n, trust: 1n, beneficiary: requester.address, callback: ZERO_ADDRESS,
      params: '', salt: ZERO_BYTES32, sign: '0x'
    }))
    const cancelled = tx.receipt.logs.map((l) => hubInterface().parseLog(l)).find((p) => p?.name === 'OrderCancelled')?.args.orderHash as string
    assert.ok(cancelled !== undefined, 'the hub emitted OrderCancelled')

    await waitFor(() => failures >= 2, 30_000, 'the follower to deliver the event to the book again')
    assert.deepEqual(told, [], 'the scheduler is not told while the book fails')
    assert.ok((hubEvents.position?.blockNumber ?? 0) <= tx.receipt.blockNumber, 'the cursor waits before the event\'s block')
    assert.equal(await book.dropped(cancelled), undefined)

    failing = false
    await waitFor(() => told.length > 0, 30_000, 'the scheduler to be told once the book applied the event')
    assert.deepEqual(told, ['cancelled'], 'the scheduler is told once, after the book dropped the order')
    await waitFor(() => (hubEvents.position?.blockNumber ?? 0) > tx.receipt.blockNumber, 30_000, 'the cursor to move past the event')

    assert.deepEqual([...polling], [hubEvents.follower], 'one follower read the hub')
  })
})
