import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { startLocalChain, freePort, type LocalChain } from '../../../node/chain/local-chain.js'
import { createChainClient, type ChainClient } from '../../../node/chain/client.js'
import { isChainError, type ChainErrorCode } from '../../../node/chain/errors.js'

const hasCode = (code: ChainErrorCode) => (err: unknown): boolean => {
  assert.ok(isChainError(err, code), `expected ${code}, got ${String((err as { code?: string }).code)}: ${(err as Error).message}`)
  return true
}

describe('chain client', () => {
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()?.()
  })

  async function chain (opts: Parameters<typeof startLocalChain>[0] = {}): Promise<LocalChain> {
    const c = await startLocalChain({ accounts: 3, ...opts })
    cleanup.push(c.stop)
    return c
  }

  async function client (opts: Parameters<typeof createChainClient>[0]): Promise<ChainClient> {
    const c = await createChainClient(opts)
    cleanup.push(c.close)
    return c
  }

  it('connects, checks the chain id and reads the chain', async () => {
    const anvil = await chain()
    const c = await client({ rpcUrl: anvil.rpcUrl, privateKey: anvil.privateKeys[0], chainId: anvil.chainId })
    assert.equal(c.chainId, 31337)
    assert.equal(await c.blockNumber(), 0)
    assert.equal(await c.ethBalance(), 10_000n * 10n ** 18n, 'anvil funds its dev accounts with 10000 ETH')
  })

  it('a ws URL connects over WebSocket: chain id checked, reads and a transaction on the socket', async () => {
    const anvil = await chain()
    const wsUrl = anvil.rpcUrl.replace(/^http/, 'ws')
    await assert.rejects(client({ rpcUrl: wsUrl, privateKey: anvil.privateKeys[0], chainId: 1 }), hasCode('CHAIN_ID_MISMATCH'))
    const c = await client({ rpcUrl: wsUrl, privateKey: anvil.privateKeys[0], chainId: anvil.chainId })
    assert.equal(c.chainId, 31337)
    const to = (await client({ rpcUrl: anvil.rpcUrl, privateKey: anvil.privateKeys[1] })).address
    const before = await c.ethBalance(to)
    const sent = await c.sender.send({ to, value: 5n })
    assert.equal(sent.receipt.status, 1)
    assert.equal(await c.ethBalance(to), before + 5n)
    assert.equal(await c.blockNumber(), 1)
  })

  it('a dead ws endpoint gives RPC_UNREACHABLE within a bounded time', async () => {
    const rpcUrl = `ws://127.0.0.1:${await freePort()}`
    const started = Date.now()
    await assert.rejects(createChainClient({ rpcUrl, privateKey: '0x' + '11'.repeat(32), rpc: { requestTimeoutMs: 300, retryAttempts: 2, retryBaseDelayMs: 50 } }), (err: unknown) => {
      hasCode('RPC_UNREACHABLE')(err)
      assert.equal((err as { details: { url: string } }).details.url, rpcUrl)
      return true
    })
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`)
  })

  it('a dead endpoint gives RPC_UNREACHABLE naming the URL within a bounded time', async () => {
    const port = await freePort()
    const rpcUrl = `http://127.0.0.1:${port}`
    const started = Date.now()
    await assert.rejects(createChainClient({ rpcUrl, privateKey: '0x' + '11'.repeat(32) }), (err: unknown) => {
      hasCode('RPC_UNREACHABLE')(err)
      assert.equal((err as { details: { url: string } }).details.url, rpcUrl)
      assert.match((err as Error).message, new RegExp(rpcUrl.replace(/[.:/]/g, '\\$&')))
      return true
    })
    const elapsed = Date.now() - started
    // 5 attempts, backoff 100..800 ms with jitter: at most ~1.5 s of waiting
    assert.ok(elapsed < 5000, `took ${elapsed} ms`)
  })

  it('an endpoint that accepts connections but never answers gives RPC_UNREACHABLE after the request timeout', async () => {
    // a TCP server that holds every request open: the ethers default would wait 5 minutes
    const server: Server = createServer(() => { /* never answer */ })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanup.push(async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => { resolve() })) })
    const address = server.address()
    const port = typeof address === 'object' && address !== null ? address.port : 0
    const started = Date.now()
    await assert.rejects(createChainClient({
      rpcUrl: `http://127.0.0.1:${port}`,
      privateKey: '0x' + '11'.repeat(32),
      rpc: { requestTimeoutMs: 300, retryAttempts: 2, retryBaseDelayMs: 50 }
    }), hasCode('RPC_UNREACHABLE'))
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`)
  })

  it('a wrong chain id gives CHAIN_ID_MISMATCH', async () => {
    const anvil = await chain({ chainId: 1337 })
    await assert.rejects(createChainClient({ rpcUrl: anvil.rpcUrl, privateKey: anvil.privateKeys[0], chainId: 31337 }), (err: unknown) => {
      hasCode('CHAIN_ID_MISMATCH')(err)
      assert.deepEqual((err as { details: Record<string, unknown> }).details, { url: anvil.rpcUrl, expected: 31337, actual: 1337 })
      return true
    })
  })

  it('bad input gives INVALID_ARGUMENT before any network call', async () => {
    await assert.rejects(createChainClient({ rpcUrl: 'not a url', privateKey: '0x' + '11'.repeat(32) }), hasCode('INVALID_ARGUMENT'))
    await assert.rejects(createChainClient({ rpcUrl: 'ftp://127.0.0.1:8545', privateKey: '0x' + '11'.repeat(32) }), hasCode('INVALID_ARGUMENT'))
    await assert.rejects(createChainClient({ rpcUrl: 'http://127.0.0.1:8545' }), hasCode('INVALID_ARGUMENT'))
    await assert.rejects(createChainClient({ rpcUrl: 'http://127.0.0.1:8545', privateKey: '0x1234' }), (err: unknown) => {
      hasCode('INVALID_ARGUMENT')(err)
      assert.ok(!(err as Error).message.includes('0x1234'), 'the key is not echoed')
      return true
    })
  })
})
