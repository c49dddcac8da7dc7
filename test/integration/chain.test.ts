import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import {
  createChainClient, deployLocalSwarmChain, EventFollower, hubInterface, JsonFileCursorStore, startLocalChain,
  type ChainClient, type ChainEvent
} from '../../node/chain/index.js'

const RLC = 10n ** 9n

/** Polls `cond` every 20 ms until true or `timeoutMs` passes. */
async function waitFor (what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('chain: hub, senders and a follower together on anvil', () => {
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()?.()
  })

  it('parallel deposits from 3 wallets; the Deposit follower sees each once across a restart; RLC is conserved', async () => {
    const anvil = await startLocalChain({ accounts: 4 })
    cleanup.push(anvil.stop)
    const dir = await mkdtemp(join(tmpdir(), 'iexec-chain-int-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
    const keys = anvil.privateKeys.slice(1, 4)
    const addresses = keys.map((k) => new Wallet(k).address)
    const chain = await deployLocalSwarmChain({
      rpcUrl: anvil.rpcUrl,
      deployerKey: anvil.privateKeys[0],
      fund: addresses.map((address) => ({ address, rlc: 1_000n * RLC })),
      configFile: join(dir, 'chain.json')
    })
    const clients: ChainClient[] = []
    for (const privateKey of keys) {
      const c = await createChainClient({ rpcUrl: chain.rpc, chainId: chain.chainId, privateKey, hub: chain.hub, rlc: chain.rlc })
      cleanup.push(c.close)
      clients.push(c)
    }

    const seen: ChainEvent[] = []
    const cursorStore = new JsonFileCursorStore(join(dir, 'cursor.json'))
    const iface = hubInterface()
    const follow = (): EventFollower => {
      const f = new EventFollower(clients[0], {
        address: chain.hub,
        iface,
        topics: [iface.getEvent('Deposit')?.topicHash ?? null],
        fromBlock: chain.blockNumber,
        cursorStore,
        pollIntervalMs: 20,
        handler: async (e) => { seen.push(e) }
      })
      cleanup.push(async () => { await f.stop() })
      return f
    }

    const deposits = async (round: number): Promise<void> => {
      // each wallet: one approval then 4 deposits, all sent at once through its nonce queue
      await Promise.all(clients.map(async (c, w) => {
        const hub = c.hub
        const rlc = c.rlc
        assert.ok(hub !== undefined && rlc !== undefined)
        await Promise.all([
          c.sender.send(rlc.approve.populateTransaction(chain.hub, 200n * RLC)),
          ...[1, 2, 3, 4].map(async (i) => await c.sender.send(hub.deposit.populateTransaction(BigInt(round * 10 + w * 3 + i) * RLC)))
        ])
      }))
    }

    const first = follow()
    await first.start()
    await deposits(1)
    await waitFor('12 deposits', () => seen.length >= 12)
    await first.stop()
    await deposits(2) // while nobody follows
    const second = follow()
    await second.start()
    await waitFor('24 deposits', () => seen.length >= 24)
    assert.equal(await second.poll(), 0)

    assert.equal(seen.length, 24)
    assert.ok(seen.every((e) => e.name === 'Deposit'))
    const keysSeen = seen.map((e) => `${e.blockNumber}:${e.logIndex}`)
    assert.equal(new Set(keysSeen).size, 24, 'no event twice')
    const sorted = [...seen].sort((a, b) => a.blockNumber - b.blockNumber || a.logIndex - b.logIndex)
    assert.deepEqual(seen, sorted, 'chain order')

    // the events say what the hub holds, and RLC is conserved: wallets + hub = minted
    const hub = clients[0].hub
    const rlc = clients[0].rlc
    assert.ok(hub !== undefined && rlc !== undefined)
    let inHub = 0n
    for (const a of addresses) {
      const account = await hub.accountOf(a)
      const balance: bigint = account[0]
      const fromEvents = seen.filter((e) => e.args?.account === a).reduce((s, e) => s + BigInt(e.args?.amount as bigint), 0n)
      assert.equal(balance, fromEvents, `hub balance of ${a}`)
      inHub += balance
    }
    let inWallets = 0n
    for (const a of addresses) inWallets += await rlc.balanceOf(a)
    assert.equal(await rlc.balanceOf(chain.hub), inHub)
    assert.equal(inWallets + inHub, 3_000n * RLC)
  })
})
