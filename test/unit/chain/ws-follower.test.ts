/**
 * The event follower on a ws:// endpoint (anvil serves WebSocket on its
 * HTTP port), reached through a proxy that counts calls and can cut the
 * socket: heads and logs pushed over `eth_subscribe`, confirmations and
 * rewinds on pushed heads, a dropped socket resubscribed without losing an
 * event, and polling when the endpoint refuses subscriptions.
 */
import assert from 'node:assert/strict'
import type { Contract } from 'ethers'
import { startLocalChain, type LocalChain } from '../../../node/chain/local-chain.js'
import { createChainClient, type ChainClient } from '../../../node/chain/client.js'
import { EventFollower, type ChainEvent, type EventFollowerInit } from '../../../node/chain/event-follower.js'
import { MemoryCursorStore } from '../../../node/chain/cursor-store.js'
import { isChainError, type ChainError } from '../../../node/chain/errors.js'
import { RpcProxy } from '../../helpers/rpc-proxy.js'
import { deployFixture, fixtureInterface, rawRpc, waitFor } from './fixture.js'

/** Long enough that no timed poll happens within a case: whatever is read was pushed. */
const NO_POLL_MS = 120_000

describe('event follower over WebSocket (eth_subscribe)', function () {
  this.timeout(60_000)
  let anvil: LocalChain
  let proxy: RpcProxy
  /** sends the transactions, over HTTP straight to anvil */
  let writer: ChainClient
  /** reads over ws:// through the proxy */
  let reader: ChainClient
  let fixture: Contract
  const cleanup: Array<() => Promise<void>> = []

  before(async () => {
    anvil = await startLocalChain({ accounts: 2 })
    const address = await deployFixture(anvil.rpcUrl, anvil.chainId, anvil.privateKeys[0])
    writer = await createChainClient({ rpcUrl: anvil.rpcUrl, privateKey: anvil.privateKeys[0], errorInterfaces: [fixtureInterface()] })
    fixture = writer.contract(address, fixtureInterface())
    proxy = await RpcProxy.start(anvil.rpcUrl)
    reader = await createChainClient({ rpcUrl: proxy.wsUrl, privateKey: anvil.privateKeys[1], chainId: anvil.chainId, rpc: { retryBaseDelayMs: 50, retryMaxDelayMs: 500 } })
  })

  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()?.()
    proxy.up()
    proxy.refuseSubscribe = false
  })

  after(async () => {
    await reader?.close()
    await writer?.close()
    await proxy?.close()
    await anvil?.stop()
  })

  async function follower (init: Omit<EventFollowerInit, 'address' | 'iface' | 'cursorStore'>, source: ChainClient = reader): Promise<EventFollower> {
    const fromBlock = await writer.blockNumber() + 1
    const f = new EventFollower(source, { address: fixture.target as string, iface: fixtureInterface(), cursorStore: new MemoryCursorStore(), fromBlock, pollIntervalMs: NO_POLL_MS, ...init })
    cleanup.push(async () => { await f.stop() })
    return f
  }

  const valueOf = (e: ChainEvent): number => Number(e.args?.value)

  async function store (...values: number[]): Promise<void> {
    for (const v of values) await writer.sender.send(fixture.store.populateTransaction(v))
  }

  it('a ws URL: the client reads over the socket, and events are delivered as heads and logs are pushed, without a timed poll', async () => {
    assert.equal(await reader.blockNumber(), await writer.blockNumber())
    const seen: number[] = []
    const f = await follower({ handler: async (e) => { seen.push(valueOf(e)) } })
    const subscribesBefore = proxy.count('eth_subscribe')
    await f.start()
    await waitFor('the subscriptions', () => f.subscribed)
    assert.equal(proxy.count('eth_subscribe') - subscribesBefore, 2, 'newHeads and logs')
    await store(11, 12, 13)
    await waitFor('3 pushed events', () => seen.length >= 3)
    assert.deepEqual(seen, [11, 12, 13])
    assert.equal(proxy.requests, 0, 'no HTTP request went through the proxy: everything on the socket')
    assert.ok(proxy.count('eth_getLogs') > 0, 'the logs were read over the socket')
  })

  it('blocks without a pushed log are not read: an idle follower asks nothing of its endpoint', async () => {
    const seen: number[] = []
    const f = await follower({ handler: async (e) => { seen.push(valueOf(e)) } })
    await f.start()
    await waitFor('the subscriptions', () => f.subscribed)
    await store(61)
    await waitFor('the first event', () => seen.length >= 1)
    const logsBefore = proxy.count('eth_getLogs')
    const callsBefore = proxy.totalCalls
    for (let i = 0; i < 5; i++) await rawRpc(anvil.rpcUrl, 'evm_mine')
    await store(62)
    await waitFor('the next event', () => seen.length >= 2)
    assert.deepEqual(seen, [61, 62])
    assert.equal(proxy.count('eth_getLogs') - logsBefore, 1, 'one read, from the first empty block to the event\'s')
    assert.ok(proxy.totalCalls - callsBefore <= 3, `${proxy.totalCalls - callsBefore} calls for 6 blocks`)
  })

  it('pushed heads still wait for the confirmations', async () => {
    const seen: number[] = []
    const f = await follower({ confirmations: 2, handler: async (e) => { seen.push(valueOf(e)) } })
    await f.start()
    await waitFor('the subscriptions', () => f.subscribed)
    await store(21)
    const block = await writer.blockNumber()
    await rawRpc(anvil.rpcUrl, 'evm_mine')
    // one confirmation: a read now stops before the event's block
    assert.equal(await f.poll(), 0)
    assert.equal(f.position?.blockNumber, block)
    assert.deepEqual(seen, [], 'one confirmation of two: not delivered')
    await rawRpc(anvil.rpcUrl, 'evm_mine')
    await waitFor('the confirmed event', () => seen.length >= 1)
    assert.deepEqual(seen, [21])
  })

  it('a reorg seen through pushed heads rewinds: the replaced event is taken back and the new one delivered', async () => {
    const seen: number[] = []
    const removed: number[] = []
    const errors: ChainError[] = []
    const f = await follower({ handler: async (e) => { seen.push(valueOf(e)) }, onRemoved: async (e) => { removed.push(valueOf(e)) }, onError: (err) => { errors.push(err) } })
    await f.start()
    await waitFor('the subscriptions', () => f.subscribed)
    await store(31)
    await waitFor('the event', () => seen.length >= 1)
    // the last block replaced at the same height by one holding another transaction of ours
    const data = fixture.interface.encodeFunctionData('store', [32])
    const nonce = await writer.provider.getTransactionCount(writer.address, 'latest')
    await rawRpc(anvil.rpcUrl, 'anvil_reorg', [1, [[{ from: writer.address, to: fixture.target, data, gas: '0x30000', nonce: '0x' + (nonce - 1).toString(16) }, 0]]])
    await waitFor('the rewind', () => removed.length >= 1 && seen.length >= 2, 15_000)
    assert.deepEqual(removed, [31])
    assert.deepEqual(seen, [31, 32])
    assert.equal(f.rewindCount, 1)
    assert.ok(errors.some((e) => isChainError(e, 'REORG_DETECTED')))
    assert.ok(f.following)
  })

  it('a dropped socket: the follower resubscribes with backoff and delivers what was mined meanwhile, each event once', async () => {
    const seen: number[] = []
    const errors: ChainError[] = []
    const f = await follower({ handler: async (e) => { seen.push(valueOf(e)) }, onError: (err) => { errors.push(err) } })
    await f.start()
    await waitFor('the subscriptions', () => f.subscribed)
    await store(41)
    await waitFor('the first event', () => seen.length >= 1)
    const subscribes = proxy.count('eth_subscribe')
    proxy.down()
    await waitFor('the loss to be seen', () => !f.subscribed)
    await store(42, 43, 44)
    // the transport knocks on the closed endpoint (reconnects with backoff) before it comes back
    await waitFor('reconnection attempts', () => proxy.refused >= 2, 15_000)
    proxy.up()
    await waitFor('the subscriptions back', () => f.subscribed, 15_000)
    await waitFor('the events mined while down', () => seen.length >= 4, 15_000)
    await store(45)
    await waitFor('a pushed event after the drop', () => seen.length >= 5)
    assert.deepEqual(seen, [41, 42, 43, 44, 45], 'nothing lost, nothing twice')
    assert.equal(proxy.count('eth_subscribe') - subscribes, 2, 'newHeads and logs subscribed again')
    assert.ok(errors.some((e) => isChainError(e, 'RPC_UNREACHABLE') && e.details?.subscription === 'newHeads'), 'the loss is reported')
    assert.ok(errors.every((e) => !isChainError(e, 'CURSOR_STORE_FAILED')))
    assert.ok(f.following)
  })

  it('an endpoint that refuses eth_subscribe: SUBSCRIPTION_REFUSED, and the follower polls at its interval', async () => {
    proxy.refuseSubscribe = true
    const seen: number[] = []
    const errors: ChainError[] = []
    const f = await follower({ pollIntervalMs: 100, handler: async (e) => { seen.push(valueOf(e)) }, onError: (err) => { errors.push(err) } })
    await f.start()
    await waitFor('both refusals', () => errors.filter((e) => isChainError(e, 'SUBSCRIPTION_REFUSED')).length >= 2)
    assert.equal(f.subscribed, false)
    await store(51, 52)
    await waitFor('2 polled events', () => seen.length >= 2)
    assert.deepEqual(seen, [51, 52])
    assert.ok(f.following)
  })
})
