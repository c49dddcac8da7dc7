import assert from 'node:assert/strict'
import { Contract, Signature, Transaction, Wallet, hexlify, randomBytes } from 'ethers'
import { privateKeyOf, signDigest } from '../../../protocols/secp256k1.js'
import { startLocalChain, type LocalChain } from '../../../node/chain/local-chain.js'
import { createChainClient, type ChainClient } from '../../../node/chain/client.js'
import { bumpFees, type ResendInfo } from '../../../node/chain/tx-sender.js'
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
      rpc: { retryAttempts: 4, retryBaseDelayMs: 100 },
      // a stuck transaction is looked at again after 300 ms (the stuck and dropped tests below)
      tx: { replaceAfterMs: 300 }
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

  it('a transaction stuck under a base fee rise goes out again (same nonce) at a higher price within its cap, and is mined once', async () => {
    const { anvil, client, fixture } = await setup()
    await rawRpc(anvil.rpcUrl, 'evm_setAutomine', [false])
    const resends: ResendInfo[] = []
    const pending = client.sender.send(fixture.store.populateTransaction(5), { receiptTimeoutMs: 60_000, onResend: (r) => { resends.push(r) } })
    await waitFor('the transaction in the pool', async () => Number(await rawRpc<string>(anvil.rpcUrl, 'eth_getTransactionCount', [client.address, 'pending'])) === 2)
    const first = (await rawRpc<{ transactions: Array<{ hash: string, maxFeePerGas: string }> }>(anvil.rpcUrl, 'eth_getBlockByNumber', ['pending', true])).transactions[0]
    const firstFee = BigInt(first.maxFeePerGas)
    // the next block's base fee is three times what the transaction pays: as sent, it can never be mined
    await rawRpc(anvil.rpcUrl, 'anvil_setNextBlockBaseFeePerGas', ['0x' + (firstFee * 3n).toString(16)])
    await rawRpc(anvil.rpcUrl, 'evm_mine')
    assert.equal(Number(await rawRpc<string>(anvil.rpcUrl, 'eth_getTransactionCount', [client.address, 'latest'])), 1, 'not in the block at that base fee')
    await waitFor('re-priced above the old base fee', () => resends.some((r) => r.maxFeePerGas > firstFee * 3n), 30_000)
    await rawRpc(anvil.rpcUrl, 'evm_setAutomine', [true])
    await rawRpc(anvil.rpcUrl, 'evm_mine')
    const sent = await pending
    assert.ok(resends.every((r) => r.nonce === sent.nonce), 'every version at the same nonce')
    for (let i = 1; i < resends.length; i++) assert.ok(resends[i].maxFeePerGas > resends[i - 1].maxFeePerGas, 'each version pays more')
    assert.ok(resends.every((r) => r.maxFeePerGas <= firstFee * 4n), 'never above its cap (4x the first price)')
    assert.ok(sent.replaced.includes(first.hash), 'the first version was replaced')
    assert.equal(sent.hash, resends.at(-1)?.hash, 'the last version is the one mined')
    assert.equal(await fixture.seq(), 1n, 'mined once')
    // and the nonce queue goes on
    const next = await client.sender.send(fixture.store.populateTransaction(6))
    assert.equal(next.nonce, sent.nonce + 1)
  })

  it('a transaction left pending is replaced (same nonce) at rising fees until its cap, then waits; the last version is mined', async () => {
    const { anvil, client, fixture } = await setup()
    await rawRpc(anvil.rpcUrl, 'evm_setAutomine', [false])
    const resends: ResendInfo[] = []
    const pending = client.sender.send(fixture.store.populateTransaction(4), { receiptTimeoutMs: 60_000, onResend: (r) => { resends.push(r) } })
    let first = { hash: '', maxFeePerGas: '0x0' }
    await waitFor('the transaction in the pool', async () => {
      const block = await rawRpc<{ transactions: Array<{ hash: string, maxFeePerGas: string }> }>(anvil.rpcUrl, 'eth_getBlockByNumber', ['pending', true])
      if (block.transactions[0] !== undefined) first = block.transactions[0]
      return first.hash !== ''
    })
    const cap = BigInt(first.maxFeePerGas) * 4n
    await waitFor('re-priced up to the cap', () => resends.at(-1)?.maxFeePerGas === cap, 30_000)
    const atCap = resends.length
    // at the cap: two more looks (300 ms apart) bring no new version
    const lookedAt = Date.now()
    await waitFor('two more looks', () => Date.now() - lookedAt > 900, 5_000)
    assert.equal(resends.length, atCap, 'no version above the cap')
    assert.ok(resends.every((r) => r.reason === 'repriced' && r.previous !== r.hash))
    for (let i = 1; i < resends.length; i++) assert.ok(resends[i].maxFeePerGas > resends[i - 1].maxFeePerGas)
    const pool = await rawRpc<{ transactions: Array<{ hash: string }> }>(anvil.rpcUrl, 'eth_getBlockByNumber', ['pending', true])
    assert.deepEqual(pool.transactions.map((t) => t.hash), [resends.at(-1)?.hash], 'the pool holds the last version only')
    await rawRpc(anvil.rpcUrl, 'evm_setAutomine', [true])
    await rawRpc(anvil.rpcUrl, 'evm_mine')
    const sent = await pending
    assert.equal(sent.hash, resends.at(-1)?.hash)
    assert.equal(sent.replaced.length, resends.length)
    assert.equal(await fixture.seq(), 1n, 'mined once')
  })

  it('a transaction its node dropped is sent again and mined', async () => {
    const { anvil, client, fixture } = await setup()
    await rawRpc(anvil.rpcUrl, 'evm_setAutomine', [false])
    const resends: ResendInfo[] = []
    const hashes: string[] = []
    const pending = client.sender.send(fixture.store.populateTransaction(7), { receiptTimeoutMs: 60_000, onResend: (r) => { resends.push(r) } })
    await waitFor('the transaction in the pool', async () => {
      const block = await rawRpc<{ transactions: Array<{ hash: string }> }>(anvil.rpcUrl, 'eth_getBlockByNumber', ['pending', true])
      hashes.splice(0, hashes.length, ...block.transactions.map((t) => t.hash))
      return hashes.length === 1
    })
    await rawRpc(anvil.rpcUrl, 'anvil_dropTransaction', [hashes[0]])
    await waitFor('sent again', () => resends.some((r) => r.reason === 'resent'), 30_000)
    await rawRpc(anvil.rpcUrl, 'evm_setAutomine', [true])
    await rawRpc(anvil.rpcUrl, 'evm_mine')
    const sent = await pending
    assert.equal(sent.receipt.status, 1)
    assert.equal(await fixture.seq(), 1n)
  })

  it('after a TX_TIMEOUT of a dropped transaction, the next send takes its nonce (no gap)', async () => {
    const { anvil, client, fixture } = await setup()
    await rawRpc(anvil.rpcUrl, 'evm_setAutomine', [false])
    const start = Number(await rawRpc<string>(anvil.rpcUrl, 'eth_getTransactionCount', [client.address, 'latest']))
    // no re-send within the wait: the drop below outlives it
    const pending = client.sender.send(fixture.store.populateTransaction(8), { receiptTimeoutMs: 3_000, replaceAfterMs: 60_000 })
    const outcome = pending.then(() => undefined, (err: unknown) => err)
    let hash = ''
    await waitFor('the transaction in the pool', async () => {
      const block = await rawRpc<{ transactions: Array<{ hash: string }> }>(anvil.rpcUrl, 'eth_getBlockByNumber', ['pending', true])
      hash = block.transactions[0]?.hash ?? ''
      return hash !== ''
    })
    await rawRpc(anvil.rpcUrl, 'anvil_dropTransaction', [hash])
    const err = await outcome
    hasCode('TX_TIMEOUT')(err)
    assert.equal((err as ChainError).details?.dropped, true)
    assert.equal((err as ChainError).details?.nonce, start)
    await rawRpc(anvil.rpcUrl, 'evm_setAutomine', [true])
    const next = await client.sender.send(fixture.store.populateTransaction(9), { receiptTimeoutMs: 20_000 })
    assert.equal(next.nonce, start, 'the gap is filled by the next send')
    assert.equal(await fixture.values(1), 9n)
    const after = await client.sender.send(fixture.store.populateTransaction(10), { receiptTimeoutMs: 20_000 })
    assert.equal(after.nonce, start + 1)
  })

  it('bumpFees raises both fees by the percent, follows today\'s when higher, stops at the cap', () => {
    const old = { maxFeePerGas: 100n, maxPriorityFeePerGas: 10n }
    assert.deepEqual(bumpFees(old, { maxFeePerGas: 50n, maxPriorityFeePerGas: 1n }, 13, 1000n), { maxFeePerGas: 114n, maxPriorityFeePerGas: 12n })
    assert.deepEqual(bumpFees(old, { maxFeePerGas: 300n, maxPriorityFeePerGas: 20n }, 13, 1000n), { maxFeePerGas: 300n, maxPriorityFeePerGas: 20n })
    assert.deepEqual(bumpFees(old, { maxFeePerGas: 300n, maxPriorityFeePerGas: 20n }, 13, 200n), { maxFeePerGas: 200n, maxPriorityFeePerGas: 20n })
    assert.equal(bumpFees(old, old, 13, 100n), undefined, 'at the cap: no replacement')
    assert.deepEqual(bumpFees({ gasPrice: 0n }, { gasPrice: 0n }, 13, 10n), { gasPrice: 1n })
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
