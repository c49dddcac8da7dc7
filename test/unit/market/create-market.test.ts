import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { startLocalChain, type LocalChain } from '../../../node/chain/local-chain.js'
import { deployLocalSwarmChain, type LocalSwarmChain } from '../../../node/chain/deploy.js'
import type { ChainClient } from '../../../node/chain/index.js'
import { isIexecError } from '../../../node/common/errors.js'
import { defaultNodeConfig } from '../../../node/config/options.js'
import type { NodeConfig } from '../../../node/config/index.js'
import { DbController } from '../../../node/db/index.js'
import type { Network } from '../../../node/network/index.js'
import { createMarket } from '../../../node/market/create-market.js'
import type { CreateMarketInit } from '../../../node/market/create-market.js'

/**
 * createMarket over a real anvil with the hub deployed (it connects with the
 * chain client itself); the network is a fake: the market only sets its
 * topic validators before the network starts.
 */
describe('market: createMarket', function () {
  this.timeout(60_000)
  let anvil: LocalChain
  let swarm: LocalSwarmChain
  const cleanup: Array<() => Promise<void>> = []

  before(async () => {
    anvil = await startLocalChain({ accounts: 2 })
    swarm = await deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0] })
  })

  after(async () => { await anvil?.stop() })

  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()?.()
  })

  async function openDb (): Promise<DbController> {
    const dir = await mkdtemp(join(tmpdir(), 'create-market-'))
    const db = new DbController({ path: join(dir, 'db') })
    await db.open()
    cleanup.push(async () => { await db.close(); await rm(dir, { recursive: true, force: true }) })
    return db
  }

  interface Made { init: CreateMarketInit, handed: ChainClient[], validators: string[], rpcCalls: string[] }

  async function init (chain: NodeConfig['chain'], over: Partial<NodeConfig> = {}, run: CreateMarketInit['run'] = {}, db?: DbController): Promise<Made> {
    const handed: ChainClient[] = []
    const validators: string[] = []
    const rpcCalls: string[] = []
    const config: NodeConfig = { ...defaultNodeConfig(), cpus: 3, role: 'provider', ...over, chain }
    return {
      handed,
      validators,
      rpcCalls,
      init: {
        config,
        wallet: new Wallet(anvil.privateKeys[1]),
        network: { setTopicValidator: (topic: string) => { validators.push(topic) } } as unknown as Network,
        db: db ?? await openDb(),
        fromBlock: swarm.blockNumber,
        run,
        observer: { rpc: (method) => { rpcCalls.push(method) } },
        provider: { busyTasks: () => 0, appProblem: async () => undefined, appExecutorOf: async () => 'wasi' },
        advertisedTags: async () => undefined,
        log: { info: () => {}, warn: () => {} } as unknown as CreateMarketInit['log'],
        onChainClient: (client) => {
          handed.push(client)
          cleanup.push(async () => { await client.close() })
        }
      }
    }
  }

  it('builds nothing without an RPC URL or a hub: the market routes answer CHAIN_NOT_CONFIGURED', async () => {
    for (const chain of [{}, { rpc: anvil.rpcUrl }, { hub: swarm.hub }]) {
      const m = await init(chain)
      assert.equal(await createMarket(m.init), undefined, JSON.stringify(chain))
      assert.deepEqual(m.handed, [])
    }
  })

  it('connects with the hub\'s RLC token, hands the chain client over, and builds the market on it', async () => {
    const m = await init({ rpc: anvil.rpcUrl, hub: swarm.hub })
    const made = await createMarket(m.init)
    assert.ok(made !== undefined)
    assert.deepEqual(m.handed, [made.chain], 'the caller closes the client')
    assert.equal(await made.chain.rlc?.getAddress(), swarm.rlc, 'read from the hub')
    assert.equal(made.chain.chainId, 31337)
    assert.equal(made.market.domain.verifyingContract, swarm.hub)
    assert.ok(m.validators.length > 0, 'the topic validators are set before the network starts')
    assert.ok(made.market.provider !== undefined, 'a provider node bids')
    assert.ok(m.rpcCalls.length > 0, 'the observer sees the client\'s RPC exchanges')
  })

  it('takes the chain\'s profile (a dev chain), config.json\'s chain section over it, and an embedder\'s market options last', async () => {
    const dev = await createMarket((await init({ rpc: anvil.rpcUrl, hub: swarm.hub })).init)
    assert.ok(dev !== undefined)
    assert.equal(dev.market.options.eventConfirmations, 0)
    assert.equal(dev.market.options.eventPollIntervalMs, 100)
    assert.equal(dev.chain.rpcOptions.pollingIntervalMs, 50)
    assert.equal(dev.market.options.bidTransport, 'stream')
    const m = await init({ rpc: anvil.rpcUrl, hub: swarm.hub, confirmations: 2, pollIntervalMs: 700 }, { bidTransport: 'gossip', defaultMaxPrice: '42' }, { market: { eventPollIntervalMs: 300 } })
    const made = await createMarket(m.init)
    assert.ok(made !== undefined)
    assert.equal(made.market.options.eventConfirmations, 2)
    assert.equal(made.market.options.eventPollIntervalMs, 300, 'the embedder\'s option wins')
    assert.equal(made.market.options.bidTransport, 'gossip')
    assert.equal(made.market.options.defaultMaxPrice, 42n)
  })

  it('loads the bans from level before it answers', async () => {
    const db = await openDb()
    const first = await createMarket((await init({ rpc: anvil.rpcUrl, hub: swarm.hub }, {}, {}, db)).init)
    assert.ok(first !== undefined)
    await first.market.bans.banPeer('peerBanned', 'test')
    const again = await createMarket((await init({ rpc: anvil.rpcUrl, hub: swarm.hub }, {}, {}, db)).init)
    assert.ok(again !== undefined)
    assert.equal(again.market.isPeerBanned('peerBanned'), true)
    assert.equal(again.market.isPeerBanned('peerOther'), false)
  })

  it('refuses another chain than the one configured, and a hub address with no contract, handing nothing over', async () => {
    const wrongChain = await init({ rpc: anvil.rpcUrl, hub: swarm.hub, chainId: 1 })
    await assert.rejects(createMarket(wrongChain.init), (err: unknown) => isIexecError(err) && err.code === 'CHAIN_ID_MISMATCH')
    assert.deepEqual(wrongChain.handed, [])
    const noHub = await init({ rpc: anvil.rpcUrl, hub: '0x' + '12'.repeat(20) })
    await assert.rejects(createMarket(noHub.init), (err: unknown) => isIexecError(err) && err.code === 'CONTRACT_NOT_FOUND')
    assert.deepEqual(noHub.handed, [])
  })
})
