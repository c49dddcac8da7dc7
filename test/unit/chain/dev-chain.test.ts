import assert from 'node:assert/strict'
import { isDevChain } from '../../../node/chain/dev-chain.js'
import { startLocalChain } from '../../../node/chain/local-chain.js'
import { JsonRpcProvider } from 'ethers'

/** A provider that answers web3_clientVersion with `version` (a stand-in for a real chain's node). */
function answering (version: string): JsonRpcProvider {
  return { send: async (method: string) => method === 'web3_clientVersion' ? version : null } as unknown as JsonRpcProvider
}

describe('chain/dev-chain: only a dev chain is ever told to mine', function () {
  this.timeout(60_000)

  it('anvil on chain id 31337 is a dev chain', async () => {
    const anvil = await startLocalChain({ accounts: 1 })
    try {
      const provider = new JsonRpcProvider(anvil.rpcUrl, undefined, { staticNetwork: true })
      try {
        assert.equal(await isDevChain({ chainId: anvil.chainId, provider }), true)
      } finally {
        provider.destroy()
      }
    } finally {
      await anvil.stop()
    }
  })

  it('another chain id, or another client on 31337, is not', async () => {
    assert.equal(await isDevChain({ chainId: 1, provider: answering('anvil/v1.7.1') }), false)
    assert.equal(await isDevChain({ chainId: 31337, provider: answering('Geth/v1.14.0-stable/linux-amd64/go1.22') }), false)
    assert.equal(await isDevChain({ chainId: 31337, provider: answering('') }), false)
    assert.equal(await isDevChain({ chainId: 31337, provider: answering('HardhatNetwork/2.22.0/@ethereumjs/vm/7.0.0') }), true)
  })
})
