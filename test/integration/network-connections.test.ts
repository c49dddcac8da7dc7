import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createNetwork } from '../../node/network/index.js'
import type { Network } from '../../node/network/index.js'
import { waitFor } from '../helpers/wait.js'

/**
 * The node's connection watch (node/network/connection-watch.ts, in place of
 * libp2p's connection monitor) pings every connection on the ping protocol
 * and aborts a connection whose pings fail; kad-dht pings its contacts with
 * the ping service on the same protocol. With the ping service's default of
 * one outbound ping stream per connection, a heartbeat that met a DHT ping
 * failed ("too many outbound protocol streams") and the connection was torn
 * down: in a swarm, every connection about every 10 s. Here the monitor
 * beats every 100 ms while the ping service pings back to back, as a busy
 * DHT does: the connection must stay the same one.
 */
describe('network: connections outlive the connection monitor', function () {
  this.timeout(60_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function start (bootstrap: string[] = []): Promise<Network> {
    const net = await createNetwork({
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap,
      swarmId: 'monitor',
      connectionPingIntervalMs: 100
    })
    cleanup.push(async () => { await net.stop() })
    await net.start()
    return net
  }

  it('monitor heartbeats meeting DHT-style pings on one connection leave it open', async () => {
    const a = await start()
    const b = await start([a.multiaddrs()[0]])
    const libp2p = a.helia.libp2p
    await waitFor(() => libp2p.getConnections().length === 1, 10_000, 'a connected to b')
    const conn = libp2p.getConnections()[0]
    let closed = 0
    libp2p.addEventListener('connection:close', () => { closed++ })
    // the ping service on the same connection, back to back, while the monitor beats 10 times
    let pings = 0
    let stop = false
    const pinger = (async () => {
      while (!stop && conn.status === 'open') {
        await libp2p.services.ping.ping(b.helia.libp2p.peerId, { signal: AbortSignal.timeout(5_000) })
        pings++
      }
    })()
    for (let i = 0; i < 10; i++) {
      // the monitor writes the round-trip time after each ping that succeeded
      conn.rtt = -1
      await waitFor(() => (conn.rtt ?? -1) >= 0 || conn.status !== 'open', 10_000, `monitor ping ${i + 1}`)
      assert.equal(conn.status, 'open', `the connection was aborted at monitor ping ${i + 1}`)
    }
    stop = true
    await pinger
    assert.ok(pings > 10, `the ping service pinged meanwhile (${pings})`)
    assert.equal(closed, 0, 'no connection closed')
    assert.deepEqual(libp2p.getConnections().map((c) => c.id), [conn.id], 'still the first connection')
    assert.equal(b.helia.libp2p.getConnections().length, 1)
  })
})
