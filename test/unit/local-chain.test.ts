import assert from 'node:assert/strict'
import { startLocalChain, type LocalChain } from '../../node/chain/local-chain.js'

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

describe('local chain (anvil)', () => {
  let chain: LocalChain | undefined
  afterEach(async () => { await chain?.stop() })

  it('starts on a free loopback port, answers RPC and stops by PID', async () => {
    chain = await startLocalChain({ accounts: 3 })
    assert.match(chain.rpcUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(chain.privateKeys.length, 3)
    const res = await fetch(chain.rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] })
    })
    const body = await res.json() as { result: string }
    assert.equal(Number(body.result), 0)
    assert.ok(alive(chain.pid))
    await chain.stop()
    assert.equal(alive(chain.pid), false)
  })

  it('fails with CHAIN_START_FAILED when the port is taken', async () => {
    chain = await startLocalChain({ accounts: 1 })
    await assert.rejects(startLocalChain({ port: chain.port, readyTimeoutMs: 3000 }), (err: { code?: string }) => err.code === 'CHAIN_START_FAILED')
  })
})
