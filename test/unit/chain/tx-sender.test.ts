import assert from 'node:assert/strict'
import { Contract, Signature, Transaction, Wallet, hexlify, randomBytes } from 'ethers'
import { privateKeyOf, signDigest } from '../../../protocols/secp256k1.js'
import { startLocalChain, type LocalChain } from '../../../node/chain/local-chain.js'
import { createChainClient, type ChainClient } from '../../../node/chain/client.js'
import { isChainError, type ChainError, type ChainErrorCode } from '../../../node/chain/errors.js'
import { deployFixture, fixtureInterface, rawRpc, waitFor } from './fixture.js'

const hasCode = (code: ChainErrorCode) => (err: unknown): boolean => {
  assert.ok(isChainError(err, code), `expected ${code}, got ${String((err as { code?: string }).code)}: ${(err as Error).message}`)
  return true
}

describe('transaction sender', () => {
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()?.()
  })

  async function setup (opts: Parameters<typeof startLocalChain>[0] = {}): Promise<{ anvil: LocalChain, client: ChainClient, fixture: Contract }> {
    const anvil = await startLocalChain({ accounts: 3, ...opts })
    cleanup.push(anvil.stop)
    const address = await deployFixture(anvil.rpcUrl, anvil.chainId, anvil.privateKeys[0])
    const client = await createChainClient({
      rpcUrl: anvil.rpcUrl,
      privateKey: anvil.privateKeys[0],
      chainId: anvil.chainId,
      errorInterfaces: [fixtureInterface()],
      rpc: { retryAttempts: 4, retryBaseDelayMs: 100 }
    })
    cleanup.push(client.close)
    return { anvil, client, fixture: client.contract(address, fixtureInterface()) }
  }

  it('20 parallel sends from one wallet all mine with consecutive nonces', async () => {
    const { client, fixture } = await setup()
    const start = await client.provider.getTransactionCount(client.address, 'latest')
    const sent = await Promise.all(Array.from({ length: 20 }, async (_, i) => await client.sender.send(fixture.store.populateTransaction(i + 1))))
    const nonces = sent.map((s) => s.nonce).sort((a, b) => a - b)
    assert.deepEqual(nonces, Array.from({ length: 20 }, (_, i) => start + i))
    assert.equal(new Set(sent.map((s) => s.hash)).size, 20)
    for (const s of sent) assert.equal(s.receipt.status, 1)
    assert.equal(await fixture.seq(), 20n, 'every transaction changed the state')
    assert.equal(await client.provider.getTransactionCount(client.address, 'latest'), start + 20)
    // the headroom is applied: the limit is the estimate + 20 %, so above what was used
    for (const s of sent) assert.ok(s.gasLimit > s.gasUsed, `limit ${s.gasLimit} > used ${s.gasUsed}`)
  })

  it('prices sends with fee data read once per feeDataMaxAgeMs, shared by concurrent sends', async () => {
    const { client, fixture } = await setup()
    let reads = 0
    const getFeeData = client.provider.getFeeData.bind(client.provider)
    client.provider.getFeeData = async () => { reads++; return await getFeeData() }
    await Promise.all(Array.from({ length: 10 }, async (_, i) => await client.sender.send(fixture.store.populateTransaction(i + 1))))
    assert.equal(reads, 1, 'ten concurrent sends share one read')
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    const late = await client.sender.send(fixture.store.populateTransaction(99))
    assert.equal(late.receipt.status, 1)
    assert.equal(reads, 2, 'a send after the default 1 s reads the fee data again')
  })

  it('signs as ethers does: libsecp256k1 gives the same bytes for legacy and EIP-1559 transactions', async () => {
    const wallet = Wallet.createRandom()
    const key = privateKeyOf(wallet)
    assert.ok(key !== undefined)
    for (const fields of [
      { type: 2, maxFeePerGas: 2_000_000_000n, maxPriorityFeePerGas: 1n },
      { type: 0, gasPrice: 1_000_000_000n }
    ]) {
      for (let nonce = 0; nonce < 20; nonce++) {
        const tx = Transaction.from({ to: Wallet.createRandom().address, data: hexlify(randomBytes(nonce * 7)), value: BigInt(nonce), gasLimit: 100_000n + BigInt(nonce), nonce, chainId: 31337, ...fields })
        const theirs = await wallet.signTransaction(tx)
        tx.signature = Signature.from(signDigest(key, tx.unsignedHash))
        assert.equal(tx.serialized, theirs)
        assert.equal(Transaction.from(theirs).from, wallet.address)
      }
    }
  })

  it('a revert in estimation decodes to the custom error name and args, and is not retried', async () => {
    const { client, fixture } = await setup()
    const before = await client.provider.getTransactionCount(client.address, 'latest')
    await assert.rejects(client.sender.send(fixture.store.populateTransaction(5000)), (err: unknown) => {
      hasCode('CONTRACT_REVERT')(err)
      const e = err as ChainError
      assert.equal(e.reason, 'PriceAboveMax')
      assert.deepEqual(e.args, [5000n, 1000n])
      return true
    })
    // the failed send consumed no nonce: the next one goes through with the next nonce
    const ok = await client.sender.send(fixture.store.populateTransaction(7))
    assert.equal(ok.nonce, before)
  })

  it('a revert with an address argument and a revert string decode too', async () => {
    const { anvil, client, fixture } = await setup()
    const other = await createChainClient({ rpcUrl: anvil.rpcUrl, privateKey: anvil.privateKeys[1], errorInterfaces: [fixtureInterface()] })
    cleanup.push(other.close)
    await assert.rejects(other.sender.send(fixture.setMax.populateTransaction(1)), (err: unknown) => {
      hasCode('CONTRACT_REVERT')(err)
      assert.equal((err as ChainError).reason, 'NotOwner')
      assert.deepEqual((err as ChainError).args, [other.address])
      return true
    })
    await assert.rejects(client.sender.send(fixture.failWithString.populateTransaction()), (err: unknown) => {
      hasCode('CONTRACT_REVERT')(err)
      assert.equal((err as ChainError).reason, 'Error')
      assert.deepEqual((err as ChainError).args, ['plain revert string'])
      return true
    })
  })

  it('a transaction that reverts when mined (no estimation) is decoded by replaying it', async () => {
    const { client, fixture } = await setup()
    const req = await fixture.store.populateTransaction(99_999)
    await assert.rejects(client.sender.send({ ...req, gasLimit: 100_000n }), (err: unknown) => {
      hasCode('CONTRACT_REVERT')(err)
      const e = err as ChainError
      assert.equal(e.reason, 'PriceAboveMax')
      assert.deepEqual(e.args, [99_999n, 1000n])
      assert.match(String(e.details?.hash), /^0x[0-9a-f]{64}$/)
      return true
    })
  })

  it('waits for the asked confirmations (evm_mine) and times out with TX_TIMEOUT when they do not come', async () => {
    const { anvil, client, fixture } = await setup()
    let done = false
    const pending = client.sender.send(fixture.store.populateTransaction(1), { confirmations: 3, receiptTimeoutMs: 10_000 })
    void pending.then(() => { done = true }, () => { done = true })
    // automine put the transaction in a block at once: wait until it is there
    await waitFor('the transaction to be mined', async () => Number(await rawRpc<string>(anvil.rpcUrl, 'eth_blockNumber')) >= 2)
    await rawRpc(anvil.rpcUrl, 'evm_mine')
    // one confirmation short: the send must still be waiting after it has
    // looked at the new head twice (counted from the provider's debug events)
    const head = Number(await rawRpc<string>(anvil.rpcUrl, 'eth_blockNumber'))
    let headPolls = 0
    const onDebug = (ev: { action?: string, payload?: { method?: string } }): void => {
      if (ev.action === 'sendRpcPayload' && ev.payload?.method === 'eth_blockNumber') headPolls++
    }
    await client.provider.on('debug', onDebug)
    await waitFor('two polls of the head by the sender', () => headPolls >= 2)
    await client.provider.off('debug', onDebug)
    assert.equal(done, false, 'resolved with 2 of 3 confirmations')
    await rawRpc(anvil.rpcUrl, 'evm_mine')
    const sent = await pending
    assert.equal(sent.blockNumber, head - 1)

    await assert.rejects(client.sender.send(fixture.store.populateTransaction(2), { confirmations: 5, receiptTimeoutMs: 300 }), (err: unknown) => {
      hasCode('TX_TIMEOUT')(err)
      assert.equal((err as ChainError).details?.mined, true)
      return true
    })
  })

  it('anvil killed while a transaction waits to be mined: RPC_UNREACHABLE, not a hang', async () => {
    const { anvil, client, fixture } = await setup()
    // no more mining: the transaction sits in the pool, the sender polls for its receipt
    await rawRpc(anvil.rpcUrl, 'evm_setAutomine', [false])
    const started = Date.now()
    const pending = client.sender.send(fixture.store.populateTransaction(3), { receiptTimeoutMs: 60_000 })
    const outcome = pending.then(() => undefined, (err: unknown) => err)
    await waitFor('the transaction in the pool', async () => Number(await rawRpc<string>(anvil.rpcUrl, 'eth_getTransactionCount', [client.address, 'pending'])) === 2)
    await anvil.stop()
    const err = await outcome
    hasCode('RPC_UNREACHABLE')(err)
    assert.equal((err as ChainError).details?.url, anvil.rpcUrl)
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`)
    // and a new send fails the same way, quickly
    const t1 = Date.now()
    await assert.rejects(client.sender.send(fixture.store.populateTransaction(4)), hasCode('RPC_UNREACHABLE'))
    assert.ok(Date.now() - t1 < 5000, `took ${Date.now() - t1} ms`)
    // reads through the bindings too
    const t2 = Date.now()
    await assert.rejects(fixture.seq(), hasCode('RPC_UNREACHABLE'))
    assert.ok(Date.now() - t2 < 5000, `took ${Date.now() - t2} ms`)
  })

  it('recovers when another process used the next nonce', async () => {
    const { anvil, client, fixture } = await setup()
    await client.sender.send(fixture.store.populateTransaction(1))
    // the same key sends behind the sender's back
    const rogue = await createChainClient({ rpcUrl: anvil.rpcUrl, privateKey: anvil.privateKeys[0] })
    cleanup.push(rogue.close)
    await rogue.sender.send(fixture.store.populateTransaction(2))
    const sent = await client.sender.send(fixture.store.populateTransaction(3))
    assert.equal(sent.nonce, 3, 'deploy=0, 1, rogue=2, then 3')
    assert.equal(await fixture.seq(), 3n)
  })
})
