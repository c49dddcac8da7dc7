// deployHub on a real anvil: local and non-local deployments, bad options.
import assert from 'node:assert/strict'
import { JsonRpcProvider, Wallet } from 'ethers'
import { startLocalChain, type LocalChain } from '../../node/chain/local-chain.js'
import { isIexecError } from '../../node/common/errors.js'
import { deployHub, artifact, Hub__factory, RLC__factory, DEFAULT_LOCAL_CATEGORIES } from '../../contracts-abi/index.js'

describe('contracts-abi: deployHub', () => {
  let chain: LocalChain | undefined
  afterEach(async () => { await chain?.stop(); chain = undefined })

  it('local: deploys RLC (mintable by the deployer) and the hub with the default categories', async () => {
    chain = await startLocalChain({ accounts: 2 })
    const provider = new JsonRpcProvider(chain.rpcUrl, undefined, { staticNetwork: true, pollingInterval: 20, cacheTimeout: -1 })
    const admin = new Wallet(chain.privateKeys[0], provider)
    const d = await deployHub(admin, { local: true })
    assert.equal(d.chainId, 31337)
    assert.ok(d.blockNumber > 0)
    // immutables (token, cooldown, EIP-712 domain cache) are filled in at deployment: compare sizes
    assert.equal((await provider.getCode(d.hub)).length, artifact('Hub').deployedBytecode.length, 'deployed code = committed artifact')
    const hub = Hub__factory.connect(d.hub, admin)
    assert.equal(await hub.categoryCount(), BigInt(DEFAULT_LOCAL_CATEGORIES.length))
    assert.equal(await hub.token(), d.rlc)
    assert.equal(await hub.unstakeCooldown(), 60n)
    const rlc = RLC__factory.connect(d.rlc, admin)
    await (await rlc.mint(new Wallet(chain.privateKeys[1]).address, 5n)).wait()
    assert.equal(await rlc.totalSupply(), 5n)
  })

  it('non-local: 87M RLC to the deployer, no minter; custom categories and cooldown', async () => {
    chain = await startLocalChain({ accounts: 1 })
    const provider = new JsonRpcProvider(chain.rpcUrl, undefined, { staticNetwork: true, pollingInterval: 20, cacheTimeout: -1 })
    const admin = new Wallet(chain.privateKeys[0], provider)
    const d = await deployHub(admin, { local: false, categories: [{ name: 'one', timeRef: 120, memoryMiB: 512, diskMiB: 100 }], unstakeCooldown: 3600 })
    const rlc = RLC__factory.connect(d.rlc, admin)
    assert.equal(await rlc.balanceOf(admin.address), 87_000_000n * 10n ** 9n)
    assert.equal(await rlc.minter(), '0x0000000000000000000000000000000000000000')
    const hub = Hub__factory.connect(d.hub, admin)
    assert.equal(await hub.categoryCount(), 1n)
    const one = await hub.categoryOf(0)
    assert.deepEqual([one.name, one.timeRef, one.memoryMiB, one.diskMiB], ['one', 120n, 512n, 100n])
    assert.equal(await hub.unstakeCooldown(), 3600n)
  })

  it('bad options: DEPLOY_INVALID_OPTIONS', async () => {
    const noProvider = Wallet.createRandom()
    await assert.rejects(deployHub(noProvider, { local: true }), (e: unknown) => isIexecError(e, 'DEPLOY_INVALID_OPTIONS'))
    chain = await startLocalChain({ accounts: 1 })
    const provider = new JsonRpcProvider(chain.rpcUrl, undefined, { staticNetwork: true })
    const admin = new Wallet(chain.privateKeys[0], provider)
    await assert.rejects(deployHub(admin, { local: true, categories: [{ name: 'bad', timeRef: 0, memoryMiB: 1, diskMiB: 1 }] }), (e: unknown) => isIexecError(e, 'DEPLOY_INVALID_OPTIONS'))
    await assert.rejects(deployHub(admin, { local: true, categories: [{ name: 'bad', timeRef: 60, memoryMiB: 0, diskMiB: 1 }] }), (e: unknown) => isIexecError(e, 'DEPLOY_INVALID_OPTIONS'))
    await assert.rejects(deployHub(admin, { local: true, categories: [{ name: 'bad', timeRef: 2 ** 24, memoryMiB: 1, diskMiB: 1 }] }), (e: unknown) => isIexecError(e, 'DEPLOY_INVALID_OPTIONS'))
    await assert.rejects(deployHub(admin, { local: true, unstakeCooldown: -1 }), (e: unknown) => isIexecError(e, 'DEPLOY_INVALID_OPTIONS'))
  })
})
