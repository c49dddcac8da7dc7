import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { startLocalChain, type LocalChain } from '../../../node/chain/local-chain.js'
import { createChainClient, type ChainClient } from '../../../node/chain/client.js'
import { deployLocalSwarmChain } from '../../../node/chain/deploy.js'
import { isChainError, type ChainError, type ChainErrorCode } from '../../../node/chain/errors.js'

const RLC = 10n ** 9n
const hasCode = (code: ChainErrorCode) => (err: unknown): boolean => {
  assert.ok(isChainError(err, code), `expected ${code}, got ${String((err as { code?: string }).code)}: ${(err as Error).message}`)
  return true
}

describe('deploy a local swarm chain', () => {
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()?.()
  })
  let anvil: LocalChain
  let dir: string
  beforeEach(async () => {
    anvil = await startLocalChain({ accounts: 4 })
    cleanup.push(anvil.stop)
    dir = await mkdtemp(join(tmpdir(), 'iexec-chain-deploy-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
  })

  async function client (privateKey: string, addresses: { hub?: string, rlc?: string } = {}): Promise<ChainClient> {
    const c = await createChainClient({ rpcUrl: anvil.rpcUrl, privateKey, chainId: anvil.chainId, ...addresses })
    cleanup.push(c.close)
    return c
  }

  it('deploys the hub, funds dev accounts (RLC and ETH) and writes the chain config', async () => {
    const dev1 = new Wallet(anvil.privateKeys[1]).address
    const fresh = Wallet.createRandom()
    const configFile = join(dir, 'swarm', 'chain.json')
    const chain = await deployLocalSwarmChain({
      rpcUrl: anvil.rpcUrl,
      deployerKey: anvil.privateKeys[0],
      fund: [{ address: dev1, rlc: 1_000n * RLC }, { address: fresh.address, rlc: 250n * RLC, eth: 10n ** 18n }],
      configFile
    })
    assert.equal(chain.chainId, 31337)
    assert.ok(chain.blockNumber >= 1)
    assert.deepEqual(JSON.parse(await readFile(configFile, 'utf8')), { rpc: anvil.rpcUrl, chainId: 31337, hub: chain.hub, rlc: chain.rlc })

    const c = await client(anvil.privateKeys[1], { hub: chain.hub, rlc: chain.rlc })
    assert.ok(c.rlc !== undefined && c.hub !== undefined)
    assert.equal(await c.rlc.balanceOf(dev1), 1_000n * RLC)
    assert.equal(await c.rlc.balanceOf(fresh.address), 250n * RLC)
    assert.equal(await c.rlc.totalSupply(), 1_250n * RLC, 'nothing else was minted')
    assert.equal(await c.ethBalance(fresh.address), 10n ** 18n)
    assert.equal(await c.hub.categoryCount(), 4n)

    // the freshly funded account can pay gas and use the hub through the typed bindings
    const f = await client(fresh.privateKey, { hub: chain.hub, rlc: chain.rlc })
    assert.ok(f.rlc !== undefined && f.hub !== undefined)
    await f.sender.send(f.rlc.approve.populateTransaction(chain.hub, 100n * RLC))
    await f.sender.send(f.hub.deposit.populateTransaction(100n * RLC))
    const [balance] = await f.hub.accountOf(fresh.address)
    assert.equal(balance, 100n * RLC)
  })

  it("the hub's and the token's custom errors decode to typed CONTRACT_REVERT", async () => {
    const chain = await deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0], fund: [{ address: new Wallet(anvil.privateKeys[2]).address, rlc: 10n * RLC }] })
    const c = await client(anvil.privateKeys[2], { hub: chain.hub, rlc: chain.rlc })
    assert.ok(c.rlc !== undefined && c.hub !== undefined)
    await assert.rejects(c.sender.send(c.hub.withdraw.populateTransaction(5n * RLC)), (err: unknown) => {
      hasCode('CONTRACT_REVERT')(err)
      assert.equal((err as ChainError).reason, 'InsufficientBalance')
      assert.deepEqual((err as ChainError).args, [c.address, 0n, 5n * RLC])
      return true
    })
    // no approval: the revert comes from inside the token (OpenZeppelin's custom error)
    await assert.rejects(c.sender.send(c.hub.deposit.populateTransaction(RLC)), (err: unknown) => {
      hasCode('CONTRACT_REVERT')(err)
      assert.equal((err as ChainError).reason, 'ERC20InsufficientAllowance')
      assert.deepEqual((err as ChainError).args, [chain.hub, 0n, RLC])
      return true
    })
    // only the deployer mints
    await assert.rejects(c.sender.send(c.rlc.mint.populateTransaction(c.address, 1n)), (err: unknown) => {
      hasCode('CONTRACT_REVERT')(err)
      assert.equal((err as ChainError).reason, 'NotMinter')
      return true
    })
  })

  it('rejects bad fund entries and hub addresses without code', async () => {
    await assert.rejects(deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0], fund: [{ address: '0x1234', rlc: 1n }] }), hasCode('INVALID_ARGUMENT'))
    await assert.rejects(deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0], fund: [{ address: Wallet.createRandom().address, rlc: -1n }] }), hasCode('INVALID_ARGUMENT'))
    await assert.rejects(createChainClient({ rpcUrl: anvil.rpcUrl, privateKey: anvil.privateKeys[0], hub: Wallet.createRandom().address }), hasCode('CONTRACT_NOT_FOUND'))
  })
})
