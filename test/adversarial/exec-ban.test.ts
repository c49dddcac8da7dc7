/**
 * Bad exec messages cost their sender its place in the swarm, as bad gossip
 * does: real IexecNodes (anvil, the market, the execution services) and a
 * bare network of the same swarm that opens exec streams to a provider and
 * sends it garbage and forged scheduler messages. At the market's REJECT
 * limit the provider hangs up on it and refuses it from then on; honest
 * peers are never counted.
 */
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { Wallet, hexlify, randomBytes } from 'ethers'
import { createNetwork } from '../../node/network/index.js'
import type { Network } from '../../node/network/index.js'
import { DEFAULT_REJECT_LIMIT } from '../../node/market/gossip-adapter.js'
import { EXEC_PROTOCOL, decodeExecMessage, encodeExecMessage, signExecPeer } from '../../protocols/execution.js'
import { startSwarm, waitFor } from '../integration/market-helpers.js'

describe('adversarial: malformed and forged exec messages count toward a ban (real nodes, anvil)', function () {
  this.timeout(180_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('a peer past the REJECT limit with bad exec messages is hung up on and refused', async () => {
    const s = await startSwarm({ providers: 1 }, cleanup)
    const victim = s.providers[0]
    const market = victim.market
    assert.ok(market !== undefined)
    const forger: Network = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], swarmId: 'mkt' })
    cleanup.push(async () => { await forger.stop() })
    await forger.start()
    const forgerId = forger.peerId
    await forger.dial(victim.multiaddrs()[0])
    const proof = await signExecPeer(Wallet.createRandom(), market.domain, forgerId)

    // a forged upload-request for a task the worker does not hold: DUTY_UNKNOWN_TASK, a refusal an honest
    // scheduler can meet, not an offence; then malformed messages, each an offence
    const exchange = async (bytes: Uint8Array): Promise<string> => {
      const stream = await forger.dialProtocol(victim.peerId, EXEC_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      const lp = lpStream(stream)
      await lp.write(bytes)
      try {
        const answer = decodeExecMessage((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray())
        return answer.type === 'error' ? answer.code : answer.type
      } catch {
        return 'closed'
      } finally {
        stream.abort(new Error('done'))
      }
    }
    assert.equal(await exchange(encodeExecMessage({ type: 'upload-request', taskid: hexlify(randomBytes(32)), proof })), 'DUTY_UNKNOWN_TASK')
    assert.equal(market.rejects.count(forgerId), 0, 'a refusal an honest peer can meet is not counted')
    for (let i = 0; i < DEFAULT_REJECT_LIMIT; i++) {
      const before = market.rejects.count(forgerId)
      const code = await exchange(new TextEncoder().encode(i % 2 === 0 ? '{"type":"finalized"}' : 'not json'))
      assert.equal(code, 'closed', 'a malformed message gets no answer')
      await waitFor(() => market.rejects.count(forgerId) > before, 10_000, `offence ${before + 1} counted`)
    }
    assert.ok(market.rejects.isBanned(forgerId))
    await waitFor(() => victim.network.helia.libp2p.getConnections(peerIdFromString(forgerId)).length === 0, 20_000, 'the victim hung up on the forger')
    await forger.dial(victim.multiaddrs()[0], { signal: AbortSignal.timeout(10_000) }).catch(() => {})
    await waitFor(() => forger.helia.libp2p.getConnections(peerIdFromString(victim.peerId)).length === 0, 10_000, 'the forger cannot get back in')
    for (const n of s.all) for (const m of s.all) assert.equal(n.market?.rejects.count(m.peerId), 0, 'no honest peer counted')
  })
})
