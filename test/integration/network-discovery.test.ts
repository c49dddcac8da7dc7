import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { createNetwork, readKnownPeers } from '../../node/network/index.js'
import type { Network, NetworkOptions } from '../../node/network/index.js'
import { waitFor } from '../helpers/wait.js'

const SWARM = 'disc'

/**
 * Discovery without hand-typed addresses and the relay policy, on real
 * libp2p nodes in one process (loopback): known peers found again after a
 * restart, mDNS on the LAN, and a relayed connection that carries none of
 * the node's own protocols.
 */
describe('network: known peers, mDNS and relayed connections', function () {
  this.timeout(120_000)
  let dir = ''
  const started: Network[] = []

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'iexec-disc-')) })
  after(async () => {
    for (const n of started) await n.stop().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })

  async function net (opts: Partial<NetworkOptions> & { privateKey?: PrivateKey } = {}): Promise<Network> {
    const n = await createNetwork({
      privateKey: opts.privateKey ?? await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [],
      swarmId: SWARM,
      topics: [],
      ...opts
    })
    await n.start()
    started.push(n)
    return n
  }

  it('a restarted node with no bootstrap list finds its peers again from the known-peers file', async () => {
    const a = await net()
    const key = await generateKeyPair('Ed25519')
    const file = join(dir, 'known-peers.json')
    const b = await net({ privateKey: key, bootstrap: [a.multiaddrs()[0]], knownPeersFile: file })
    await b.bootstrapSettled()
    await b.stop()
    const known = await readKnownPeers(file)
    assert.ok(known.some((p) => p.peerId === a.peerId), 'stop wrote the connected peer')
    const again = await net({ privateKey: key, knownPeersFile: file })
    await waitFor(async () => (await again.peers()).some((p) => p.peerId === a.peerId), 30_000, 'the restarted node to reconnect to its known peer')
  })

  it('WebSockets is a second transport: a node listening on /ws is dialled over it', async () => {
    const a = await net({ listen: ['/ip4/127.0.0.1/tcp/0/ws'] })
    const wsAddr = a.multiaddrs().find((m) => m.includes('/ws/'))
    assert.ok(wsAddr !== undefined, a.multiaddrs().join(', '))
    const b = await net()
    await b.dial(wsAddr)
    const seen = (await b.peers()).find((p) => p.peerId === a.peerId)
    assert.ok(seen?.multiaddrs.some((m) => m.includes('/ws')), JSON.stringify(seen))
  })

  it('mDNS: two nodes with no addresses of each other connect on the LAN', async function () {
    const a = await net({ mdns: true, listen: ['/ip4/0.0.0.0/tcp/0'], nat: { relayClient: false } })
    const b = await net({ mdns: true, listen: ['/ip4/0.0.0.0/tcp/0'], nat: { relayClient: false } })
    await waitFor(async () => (await b.peers()).some((p) => p.peerId === a.peerId), 60_000, 'mDNS to find and dial the other node')
  })

  it('over a relayed (limited) connection the node\'s own protocols do not run: a stream waits for a direct one and says why', async () => {
    const relay = await net({ nat: { relayServer: true } })
    // no listener of its own: reachable only through the relay, as behind a closed NAT
    const hidden = await net({ listen: ['/p2p-circuit'], bootstrap: [relay.multiaddrs()[0]], nat: { relayClient: true } })
    await waitFor(() => hidden.reachability().reachability === 'relayed', 30_000, 'a relay reservation')
    let opened = 0
    await hidden.handle('/iexec-p2p/disc/test/1.0.0', (stream) => { opened++; stream.abort(new Error('test')) })
    // closed as well (no listener): neither side can reach the other but through the relay
    const dialer = await net({ listen: ['/p2p-circuit'], nat: { relayClient: true }, bootstrap: [relay.multiaddrs()[0]], directWaitMs: 2_000 })
    // the relayed address is its only one: DCUtR has no address to try
    const circuit = `${relay.multiaddrs()[0]}/p2p-circuit/p2p/${hidden.peerId}`
    await dialer.dial(circuit)
    const peers = await dialer.peers()
    assert.equal(peers.find((p) => p.peerId === hidden.peerId)?.limited, true, 'the connection is relayed (limited)')
    await assert.rejects(dialer.dialProtocol(hidden.peerId, '/iexec-p2p/disc/test/1.0.0'), (err: Error & { code?: string, details?: { reason?: string } }) => {
      assert.equal(err.code, 'NETWORK_TIMEOUT')
      assert.equal(err.details?.reason, 'NO_DIRECT_CONNECTION')
      return true
    })
    assert.equal(opened, 0, 'no stream of ours ran over the relay')
  })
})
