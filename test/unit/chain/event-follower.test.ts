import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Contract } from 'ethers'
import { startLocalChain, type LocalChain } from '../../../node/chain/local-chain.js'
import { createChainClient, type ChainClient } from '../../../node/chain/client.js'
import { EventFollower, type ChainEvent, type EventFollowerInit } from '../../../node/chain/event-follower.js'
import { JsonFileCursorStore, MemoryCursorStore } from '../../../node/chain/cursor-store.js'
import { isChainError, type ChainError } from '../../../node/chain/errors.js'
import { deployFixture, fixtureInterface, rawRpc, waitFor } from './fixture.js'

describe('event follower', () => {
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()?.()
  })

  let anvil: LocalChain
  let client: ChainClient
  let fixture: Contract
  let dir: string

  beforeEach(async () => {
    anvil = await startLocalChain({ accounts: 2 })
    cleanup.push(anvil.stop)
    const address = await deployFixture(anvil.rpcUrl, anvil.chainId, anvil.privateKeys[0])
    client = await createChainClient({ rpcUrl: anvil.rpcUrl, privateKey: anvil.privateKeys[0], errorInterfaces: [fixtureInterface()] })
    cleanup.push(client.close)
    fixture = client.contract(address, fixtureInterface())
    dir = await mkdtemp(join(tmpdir(), 'iexec-chain-follower-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
  })

  function follower (init: Omit<EventFollowerInit, 'address' | 'iface'>): EventFollower {
    const f = new EventFollower(client, { address: fixture.target as string, iface: fixtureInterface(), pollIntervalMs: 20, ...init })
    cleanup.push(async () => { await f.stop() })
    return f
  }

  /** the Stored events' seq numbers, as the handler saw them */
  const seqOf = (e: ChainEvent): number => Number(e.args?.seq)

  async function store (n: number): Promise<void> {
    for (let i = 0; i < n; i++) await client.sender.send(fixture.store.populateTransaction(i + 1))
  }

  it('delivers every event once, in order, including several logs of one transaction', async () => {
    await store(3)
    await client.sender.send(fixture.storeMany.populateTransaction(100, 4)) // seq 4..7 in one tx
    const seen: ChainEvent[] = []
    const f = follower({ cursorStore: new JsonFileCursorStore(join(dir, 'cursor.json')), handler: async (e) => { seen.push(e) } })
    await f.start()
    await waitFor('7 events', () => seen.length >= 7)
    await store(2)
    await waitFor('9 events', () => seen.length >= 9)
    assert.deepEqual(seen.map(seqOf), [1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert.ok(seen.every((e) => e.name === 'Stored'))
    const manyTx = seen.slice(3, 7)
    assert.equal(new Set(manyTx.map((e) => e.transactionHash)).size, 1, 'seq 4..7 come from one transaction')
    assert.deepEqual(manyTx.map((e) => e.logIndex), [0, 1, 2, 3])
    // nothing more arrives after a further full poll
    assert.equal(await f.poll(), 0)
    assert.equal(seen.length, 9)
  })

  it('decodes an event\'s arguments when a handler reads them, once', async () => {
    await store(3)
    const iface = fixtureInterface()
    let decoded = 0
    const decode = iface.decodeEventLog.bind(iface)
    iface.decodeEventLog = (...a: Parameters<typeof decode>) => { decoded++; return decode(...a) }
    const seen: ChainEvent[] = []
    const f = new EventFollower(client, { address: fixture.target as string, iface, cursorStore: new MemoryCursorStore(), handler: async (e) => { seen.push(e) } })
    assert.equal(await f.poll(), 3)
    assert.deepEqual(seen.map((e) => e.name), ['Stored', 'Stored', 'Stored'], 'named without decoding')
    assert.equal(decoded, 0, 'nothing decoded while nobody read the arguments')
    assert.equal(seqOf(seen[1]), 2)
    assert.equal(seqOf(seen[1]), 2)
    assert.equal(decoded, 1, 'decoded on the first read, kept for the next')
  })

  it('resumes after a restart mid-stream without missing or doubling an event', async () => {
    await store(4)
    await client.sender.send(fixture.storeMany.populateTransaction(100, 6)) // seq 5..10 in one block
    const cursorStore = new JsonFileCursorStore(join(dir, 'cursor.json'))
    const first: number[] = []
    const a = follower({
      cursorStore,
      handler: async (e) => {
        first.push(seqOf(e))
        // stop in the middle of a block's logs (seq 7 is log 2 of 6 in its block)
        if (first.length === 7) void a.stop()
      }
    })
    await a.start()
    await waitFor('the first follower to stop', () => first.length >= 7 && a.position?.logIndex === 3)
    await a.stop()
    assert.deepEqual(first, [1, 2, 3, 4, 5, 6, 7])
    const saved = await cursorStore.load()
    assert.equal(saved?.logIndex, 3, 'the cursor points inside the block, after the 7th event')

    // more events while no follower runs
    await store(3)
    const second: number[] = []
    const b = follower({ cursorStore, handler: async (e) => { second.push(seqOf(e)) } })
    await b.start()
    await waitFor('all 13 events', () => first.length + second.length >= 13)
    assert.equal(await b.poll(), 0)
    assert.deepEqual([...first, ...second], Array.from({ length: 13 }, (_, i) => i + 1))
  })

  it('with confirmations it waits for them before delivering (evm_mine)', async () => {
    const seen: number[] = []
    const f = follower({ cursorStore: new MemoryCursorStore(), confirmations: 2, handler: async (e) => { seen.push(seqOf(e)) } })
    await store(1)
    assert.equal(await f.poll(), 0, 'no confirmation yet')
    await rawRpc(anvil.rpcUrl, 'evm_mine')
    assert.equal(await f.poll(), 0, 'one confirmation of two')
    await rawRpc(anvil.rpcUrl, 'evm_mine')
    assert.equal(await f.poll(), 1, 'two confirmations')
    assert.deepEqual(seen, [1])
    // the head the last poll saw, past the confirmed position: what a caller may use as a head hint
    assert.equal(f.headSeen, Number(await rawRpc(anvil.rpcUrl, 'eth_blockNumber')))
    assert.ok((f.position?.blockNumber ?? Infinity) <= f.headSeen)
  })

  it('reads a long history in bounded ranges', async () => {
    await store(12) // blocks 2..13
    const seen: number[] = []
    const ranges: Array<[number, number]> = []
    type Payload = { method?: string, params?: Array<{ fromBlock?: string, toBlock?: string }> }
    const onDebug = (ev: { action?: string, payload?: Payload | Payload[] }): void => {
      if (ev.action !== 'sendRpcPayload' || ev.payload === undefined) return
      // the follower's reads of one range go in one batch
      for (const call of Array.isArray(ev.payload) ? ev.payload : [ev.payload]) {
        if (call.method !== 'eth_getLogs') continue
        const p = call.params?.[0]
        ranges.push([Number(p?.fromBlock), Number(p?.toBlock)])
      }
    }
    await client.provider.on('debug', onDebug)
    const f = follower({ cursorStore: new MemoryCursorStore(), maxBlockRange: 3, handler: async (e) => { seen.push(seqOf(e)) } })
    assert.equal(await f.poll(), 12)
    await client.provider.off('debug', onDebug)
    assert.deepEqual(seen, Array.from({ length: 12 }, (_, i) => i + 1))
    assert.ok(ranges.length >= 5, `${ranges.length} getLogs calls`)
    for (const [from, to] of ranges) assert.ok(to - from + 1 <= 3, `range ${from}..${to}`)
  })

  it('saves its cursor once per range read, not per event, and a restart from it misses nothing', async () => {
    await store(6) // blocks 2..7
    const saved: Array<{ blockNumber: number, logIndex: number }> = []
    const inner = new MemoryCursorStore()
    const counting = {
      load: async () => await inner.load(),
      save: async (c: Parameters<MemoryCursorStore['save']>[0]) => { saved.push({ blockNumber: c.blockNumber, logIndex: c.logIndex }); await inner.save(c) }
    }
    const seen: number[] = []
    const f = follower({ cursorStore: counting, maxBlockRange: 100, handler: async (e) => { seen.push(seqOf(e)) } })
    assert.equal(await f.poll(), 6)
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6])
    assert.equal(saved.length, 1, `one save for one range of 6 events, got ${JSON.stringify(saved)}`)
    await store(2)
    const again: number[] = []
    const g = follower({ cursorStore: counting, maxBlockRange: 100, handler: async (e) => { again.push(seqOf(e)) } })
    assert.equal(await g.poll(), 2)
    assert.deepEqual(again, [7, 8], 'a follower started from the saved cursor delivers what came after, and only that')
  })

  it('refuses a malformed eth_getLogs answer without delivering it, and delivers the logs once the endpoint answers well', async () => {
    await store(2)
    const seen: number[] = []
    let corrupt = true
    // the real endpoint behind a proxy that spoils its logs' block hashes while `corrupt`
    const provider = new Proxy(client.provider, {
      get (target, prop) {
        if (prop !== 'send') {
          const v = Reflect.get(target, prop, target) as unknown
          return typeof v === 'function' ? v.bind(target) : v
        }
        return async (method: string, params: unknown[]) => {
          const answer = await target.send(method, params) as unknown
          if (method !== 'eth_getLogs' || !corrupt) return answer
          return (answer as Array<Record<string, unknown>>).map((l) => ({ ...l, blockHash: '0x1234' }))
        }
      }
    })
    const f = new EventFollower({ ...client, provider, rpcUrl: client.rpcUrl }, { address: fixture.target as string, iface: fixtureInterface(), cursorStore: new MemoryCursorStore(), retryAttempts: 1, handler: async (e) => { seen.push(seqOf(e)) } })
    await assert.rejects(f.poll(), (err: unknown) => isChainError(err) && /bad blockHash/.test(err.message))
    assert.deepEqual(seen, [])
    corrupt = false
    assert.equal(await f.poll(), 2)
    assert.deepEqual(seen, [1, 2])
  })

  it('follows on new-block events too', async () => {
    const seen: number[] = []
    // a poll interval of a minute: only the provider's block events can bring these within the wait below
    const f = follower({ cursorStore: new MemoryCursorStore(), trigger: 'block', pollIntervalMs: 60_000, handler: async (e) => { seen.push(seqOf(e)) } })
    await f.start()
    await store(3)
    await waitFor('3 events', () => seen.length >= 3, 5000)
    assert.deepEqual(seen, [1, 2, 3])
  })

  it('retries a failing handler with backoff, reports HANDLER_FAILED without stopping, and delivers the event once it passes', async () => {
    await store(3)
    const cursorStore = new MemoryCursorStore()
    let calls = 0
    let failSeq3 = true
    const seen: number[] = []
    const errors: Array<{ err: ChainError, fatal: boolean }> = []
    const f = follower({
      cursorStore,
      handlerAttempts: 3,
      retryBaseDelayMs: 10,
      retryMaxDelayMs: 50,
      handler: async (e) => {
        if (seqOf(e) === 1 && calls++ === 0) throw new Error('transient handler failure')
        if (seqOf(e) === 3 && failSeq3) throw new Error('handler failure while it lasts (an RPC outage)')
        seen.push(seqOf(e))
      },
      onError: (err, fatal) => { errors.push({ err, fatal }) }
    })
    await f.start()
    await waitFor('two HANDLER_FAILED reports', () => errors.filter((e) => isChainError(e.err, 'HANDLER_FAILED')).length >= 2)
    assert.deepEqual(seen, [1, 2], 'seq 1 delivered once after one retry; seq 3 not yet')
    assert.ok(errors.every((e) => !e.fatal), 'a failing handler is not fatal')
    const cursor = await cursorStore.load()
    // deploy = block 1, seq n in block n + 1: the cursor points right after seq 2 (block 3, log 0)
    assert.deepEqual([cursor?.blockNumber, cursor?.logIndex], [3, 1], 'the cursor stays before seq 3')
    failSeq3 = false
    await waitFor('seq 3 delivered by the same running follower', () => seen.length >= 3)
    await store(1)
    await waitFor('seq 4 too', () => seen.length >= 4)
    assert.deepEqual(seen, [1, 2, 3, 4])
  })

  it('rewinds on a replaced block (evm_revert with confirmations 0): takes back the removed event, delivers the new history, no stop', async () => {
    const seen: number[] = []
    const removed: number[] = []
    const errors: ChainError[] = []
    const cursorStore = new MemoryCursorStore()
    const f = follower({ cursorStore, handler: async (e) => { seen.push(seqOf(e)) }, onRemoved: async (e) => { removed.push(seqOf(e)) }, onError: (err) => { errors.push(err) } })
    await store(1)
    assert.equal(await f.poll(), 1)
    const snapshot = await rawRpc<string>(anvil.rpcUrl, 'evm_snapshot')
    await client.sender.send(fixture.store.populateTransaction(500)) // seq 2, value 500: reverted below
    assert.equal(await f.poll(), 1)
    await rawRpc(anvil.rpcUrl, 'evm_revert', [snapshot])
    client.sender.resetNonce() // the reverted chain forgot our transaction
    await client.sender.send(fixture.store.populateTransaction(7)) // seq 2 again, other block, same height
    await client.sender.send(fixture.store.populateTransaction(8)) // seq 3
    const values: number[] = []
    const f2 = follower({ cursorStore: new MemoryCursorStore(), handler: async (e) => { values.push(Number(e.args?.value)) } })
    await f2.poll()
    assert.deepEqual(values, [1, 7, 8], 'the chain now holds 1, 7, 8')
    assert.equal(await f.poll(), 2, 'the new seq 2 and seq 3 are delivered')
    assert.deepEqual(removed, [2], 'the replaced block\'s event is taken back')
    assert.deepEqual(seen, [1, 2, 2, 3])
    assert.equal(f.rewindCount, 1)
    assert.ok(errors.some((e) => isChainError(e, 'REORG_DETECTED')), 'the rewind is reported')
    const saved = await cursorStore.load()
    const head = await rawRpc<{ hash: string }>(anvil.rpcUrl, 'eth_getBlockByNumber', ['latest', false])
    assert.equal(saved?.checkHash, head.hash, 'the saved cursor names a block of the new chain')
    assert.equal(await f.poll(), 0, 'and stays quiet after')
  })

  it('a restart on a saved cursor whose block was replaced rewinds and reads the new history', async () => {
    const path = join(dir, 'cursor.json')
    const seen: number[] = []
    await store(1)
    const snapshot = await rawRpc<string>(anvil.rpcUrl, 'evm_snapshot')
    await client.sender.send(fixture.store.populateTransaction(500))
    const first = follower({ cursorStore: new JsonFileCursorStore(path), handler: async (e) => { seen.push(Number(e.args?.value)) } })
    assert.equal(await first.poll(), 2)
    const before = await new JsonFileCursorStore(path).load()
    await rawRpc(anvil.rpcUrl, 'evm_revert', [snapshot])
    client.sender.resetNonce()
    await client.sender.send(fixture.store.populateTransaction(9))
    const again = follower({ cursorStore: new JsonFileCursorStore(path), handler: async (e) => { seen.push(Number(e.args?.value)) } })
    assert.equal(await again.poll(), 1)
    assert.deepEqual(seen, [1, 500, 9])
    const after = await new JsonFileCursorStore(path).load()
    assert.notEqual(after?.checkHash, before?.checkHash, 'the replaced block\'s hash is not kept')
    assert.equal(await again.poll(), 0)
  })

  it('rewinds after anvil_rollback (a shorter chain) and after anvil_reorg, then follows on', async () => {
    const seen: Array<{ seq: number, value: number }> = []
    const removed: number[] = []
    const f = follower({
      cursorStore: new MemoryCursorStore(),
      handler: async (e) => { seen.push({ seq: seqOf(e), value: Number(e.args?.value) }) },
      onRemoved: async (e) => { removed.push(seqOf(e)) }
    })
    await store(3)
    await f.start()
    await waitFor('3 events', () => seen.length >= 3)
    await rawRpc(anvil.rpcUrl, 'anvil_rollback', [1]) // seq 3's block is gone
    await waitFor('seq 3 taken back', () => removed.length >= 1)
    assert.deepEqual(removed, [3])
    client.sender.resetNonce()
    await client.sender.send(fixture.store.populateTransaction(33)) // seq 3 again, value 33
    await waitFor('the new seq 3', () => seen.length >= 4)
    assert.deepEqual(seen.at(-1), { seq: 3, value: 33 })
    // anvil_reorg: the last block replaced at the same height by one holding a transaction of ours
    const data = fixture.interface.encodeFunctionData('store', [44])
    const nonce = await client.provider.getTransactionCount(client.address, 'latest')
    await rawRpc(anvil.rpcUrl, 'anvil_reorg', [1, [[{ from: client.address, to: fixture.target, data, gas: '0x30000', nonce: '0x' + (nonce - 1).toString(16) }, 0]]])
    await waitFor('the reorged seq 3 taken back', () => removed.length >= 2, 15_000)
    await waitFor('the reorg\'s seq 3', () => seen.some((e) => e.value === 44), 15_000)
    assert.deepEqual(removed, [3, 3])
    assert.deepEqual(seen.at(-1), { seq: 3, value: 44 })
    assert.ok(f.rewindCount >= 2)
  })

  it('a corrupt cursor file gives CURSOR_STORE_FAILED; bad options give INVALID_ARGUMENT', async () => {
    const path = join(dir, 'bad.json')
    await writeFile(path, '{"blockNumber": -1}')
    const f = follower({ cursorStore: new JsonFileCursorStore(path), handler: async () => {} })
    await assert.rejects(f.start(), (err: unknown) => isChainError(err, 'CURSOR_STORE_FAILED'))
    await writeFile(path, 'not json')
    await assert.rejects(new JsonFileCursorStore(path).load(), (err: unknown) => isChainError(err, 'CURSOR_STORE_FAILED'))
    assert.throws(() => follower({ cursorStore: new MemoryCursorStore(), maxBlockRange: 0, handler: async () => {} }), (err: unknown) => isChainError(err, 'INVALID_ARGUMENT'))
  })
})
