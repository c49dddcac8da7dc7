import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { createNetwork } from '../../node/network/index.js'
import type { Network } from '../../node/network/index.js'
import { ConnectionWatch } from '../../node/network/connection-watch.js'
import { waitFor } from '../helpers/wait.js'

const PING = '/ipfs/ping/1.0.0'

/**
 * ConnectionWatch on two real libp2p nodes: the remote's ping handler is
 * replaced by one that swallows chosen pings (never answers them, as a
 * silent or frozen peer would), so pings time out on a live TCP connection.
 */
describe('network: ConnectionWatch drops silent connections, not slow ones', function () {
  this.timeout(60_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function start (bootstrap: string[] = []): Promise<Network> {
    // the network's own watch beats every 60 s: only the watch under test pings here
    const net = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, swarmId: 'watch', connectionPingIntervalMs: 60_000 })
    cleanup.push(async () => { await net.stop() })
    await net.start()
    return net
  }

  /** Replaces b's ping handler: pings for which `swallow()` says true are held open and never echoed. */
  async function pingHandler (b: Network, swallow: () => boolean): Promise<{ answered: () => number, swallowed: () => number }> {
    let answered = 0
    let swallowed = 0
    const held: Stream[] = []
    await b.helia.libp2p.unhandle(PING)
    await b.helia.libp2p.handle(PING, async (stream: Stream) => {
      if (swallow()) {
        swallowed++
        held.push(stream)
        return
      }
      answered++
      for await (const chunk of stream) stream.send(chunk.subarray())
      await stream.close()
    }, { maxInboundStreams: 16 })
    cleanup.push(async () => { for (const s of held) s.abort(new Error('test over')) })
    return { answered: () => answered, swallowed: () => swallowed }
  }

  async function pair (): Promise<{ a: Network, b: Network }> {
    const a = await start()
    const b = await start([a.multiaddrs()[0]])
    await waitFor(() => a.helia.libp2p.getConnections().length === 1, 10_000, 'a connected to b')
    return { a, b }
  }

  it('keeps a connection whose pings fail fewer times in a row than maxFailures, and writes its rtt', async () => {
    const { a, b } = await pair()
    // every other ping is swallowed: failures never reach 2 in a row
    let n = 0
    const h = await pingHandler(b, () => n++ % 2 === 1)
    const aborts: string[] = []
    const watch = new ConnectionWatch(a.helia.libp2p, { intervalMs: 100, timeoutMs: 300, maxFailures: 2, protocol: PING, onAbort: (peer) => { aborts.push(peer) } })
    cleanup.push(async () => { watch.stop() })
    const conn = a.helia.libp2p.getConnections()[0]
    conn.rtt = -1
    watch.start()
    await waitFor(() => h.answered() >= 4 && h.swallowed() >= 4, 20_000, 'four pings answered and four swallowed')
    assert.deepEqual(aborts, [])
    assert.equal(conn.status, 'open')
    assert.deepEqual(a.helia.libp2p.getConnections().map((c) => c.id), [conn.id], 'still the first connection')
    assert.ok((conn.rtt ?? -1) >= 0, 'the rtt of an answered ping is written')
  })

  it('aborts a connection after maxFailures unanswered pings in a row, and says so', async () => {
    const { a, b } = await pair()
    const h = await pingHandler(b, () => true)
    const aborts: Array<{ peer: string, failures: number }> = []
    const watch = new ConnectionWatch(a.helia.libp2p, { intervalMs: 100, timeoutMs: 300, maxFailures: 3, protocol: PING, onAbort: (peer, failures) => { aborts.push({ peer, failures }) } })
    cleanup.push(async () => { watch.stop() })
    const conn = a.helia.libp2p.getConnections()[0]
    watch.start()
    await waitFor(() => conn.status !== 'open', 20_000, 'the silent connection aborted')
    assert.deepEqual(aborts, [{ peer: b.peerId, failures: 3 }])
    assert.ok(h.swallowed() >= 3, `at least 3 pings went unanswered before the abort (${h.swallowed()})`)
  })

  it('refuses options that would abort at the first failure', () => {
    const libp2p = { getConnections: () => [] }
    assert.throws(() => new ConnectionWatch(libp2p, { intervalMs: 100, timeoutMs: 100, maxFailures: 1, protocol: PING }), RangeError)
    assert.throws(() => new ConnectionWatch(libp2p, { intervalMs: 0, timeoutMs: 100, maxFailures: 3, protocol: PING }), RangeError)
  })
})
