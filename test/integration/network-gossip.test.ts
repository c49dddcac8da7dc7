import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createNetwork } from '../../node/network/index.js'
import type { Network } from '../../node/network/index.js'
import { topic } from '../../protocols/topics.js'
import { waitFor } from '../helpers/wait.js'

// gossipsub scores down peers sharing an IP beyond 10 (a Sybil defence);
// unexempted, a swarm of more than 11 nodes on one machine graylists itself
// and drops every message. 14 nodes on 127.0.0.1 guard the exemption.
describe('network: gossip in a 14-node swarm on one IP', function () {
  this.timeout(120_000)
  const cleanup: Array<() => Promise<void>> = []

  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  it('delivers a message to all 13 other nodes', async () => {
    const nets: Network[] = []
    for (let i = 0; i < 14; i++) {
      const net = await createNetwork({
        privateKey: await generateKeyPair('Ed25519'),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        bootstrap: nets.slice(0, 3).map((n) => n.multiaddrs()[0]),
        swarmId: 'gossip14'
      })
      cleanup.push(async () => { await net.stop() })
      await net.start()
      nets.push(net)
    }
    const t = topic('gossip14', 'bid')
    const got = new Map<string, string[]>()
    for (const n of nets) {
      got.set(n.peerId, [])
      n.subscribe(t, (m) => { got.get(n.peerId)?.push(new TextDecoder().decode(m.data)) })
    }
    await waitFor(() => nets.every((n) => n.topicPeers(t).length >= 3), 30_000, 'every node knows 3 subscribed peers')
    const publisher = nets[13]
    await publisher.publish(t, new TextEncoder().encode('bid-1'))
    await waitFor(() => nets.every((n) => n === publisher || (got.get(n.peerId)?.length ?? 0) === 1), 20_000, 'delivery to all')
    for (const n of nets) assert.deepEqual(got.get(n.peerId), n === publisher ? [] : ['bid-1'])
  })
})
