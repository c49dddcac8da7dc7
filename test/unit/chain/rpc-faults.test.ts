import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { startLocalChain, type LocalChain } from '../../../node/chain/local-chain.js'
import { createChainClient } from '../../../node/chain/client.js'
import { isTransientRpcError } from '../../../node/chain/rpc.js'
import { deployFixture, fixtureInterface } from './fixture.js'

/**
 * A JSON-RPC proxy in front of anvil that injects transport faults: HTTP 429,
 * connections reset before forwarding, and, for each new raw transaction,
 * the answer lost after anvil has accepted it (the ambiguous case a sender
 * must not turn into a double send or a nonce gap).
 */
async function faultyProxy (target: string): Promise<{ url: string, faults: Record<string, number>, close: () => Promise<void> }> {
  const faults = { throttled: 0, reset: 0, lostAnswer: 0 }
  const seenRaw = new Set<string>()
  let n = 0
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString()
      const parsed = JSON.parse(body) as { method: string, params: unknown[] } | Array<{ method: string, params: unknown[] }>
      const calls = Array.isArray(parsed) ? parsed : [parsed]
      const raw = calls.find((c) => c.method === 'eth_sendRawTransaction')?.params[0] as string | undefined
      const loseAnswer = raw !== undefined && !seenRaw.has(raw)
      if (raw !== undefined) seenRaw.add(raw)
      n++
      if (!loseAnswer && n % 4 === 1) {
        faults.throttled++
        res.writeHead(429, { 'content-type': 'text/plain' }).end('slow down')
        return
      }
      if (!loseAnswer && n % 7 === 3) {
        faults.reset++
        req.socket.destroy()
        return
      }
      fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(5000) })
        .then(async (r) => {
          const text = await r.text()
          if (loseAnswer) {
            faults.lostAnswer++
            req.socket.destroy()
            return
          }
          res.writeHead(r.status, { 'content-type': 'application/json' }).end(text)
        })
        .catch(() => { req.socket.destroy() })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    faults,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}

describe('RPC faults', () => {
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()?.()
  })

  it('classifies transport failures as transient and answers as final', () => {
    assert.equal(isTransientRpcError(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' })), true)
    assert.equal(isTransientRpcError(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), true)
    assert.equal(isTransientRpcError(new Error('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) })), true)
    assert.equal(isTransientRpcError(Object.assign(new Error('revert'), { code: 'CALL_EXCEPTION' })), false)
    assert.equal(isTransientRpcError(new Error('nonce too low')), false)
  })

  it('sends through 429s, resets and lost answers: every transaction mined once, consecutive nonces', async () => {
    const anvil: LocalChain = await startLocalChain({ accounts: 2 })
    cleanup.push(anvil.stop)
    const address = await deployFixture(anvil.rpcUrl, anvil.chainId, anvil.privateKeys[0])
    const proxy = await faultyProxy(anvil.rpcUrl)
    cleanup.push(proxy.close)
    const client = await createChainClient({
      rpcUrl: proxy.url,
      privateKey: anvil.privateKeys[0],
      errorInterfaces: [fixtureInterface()],
      rpc: { retryAttempts: 8, retryBaseDelayMs: 20, retryMaxDelayMs: 200 }
    })
    cleanup.push(client.close)
    const fixture = client.contract(address, fixtureInterface())
    const sent = await Promise.all(Array.from({ length: 10 }, async (_, i) => await client.sender.send(fixture.store.populateTransaction(i + 1))))
    assert.deepEqual(sent.map((s) => s.nonce).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert.equal(await fixture.seq(), 10n, 'each transaction ran exactly once')
    assert.equal(proxy.faults.lostAnswer, 10, 'every first broadcast lost its answer')
    assert.ok(proxy.faults.throttled > 0 && proxy.faults.reset > 0, JSON.stringify(proxy.faults))
  })
})
