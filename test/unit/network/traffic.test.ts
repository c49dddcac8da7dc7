/**
 * TrafficMetrics as libp2p's `metrics` component on two real libp2p nodes
 * (TCP, noise, yamux): an echo protocol's bytes are counted exactly, both
 * ways on both nodes, the wire counts more (encryption, muxing, identify),
 * the stream still delivers every byte (no listener steals the first frame),
 * and the node's registry renders the counts.
 */
import assert from 'node:assert/strict'
import { createLibp2p } from 'libp2p'
import type { Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { byteStream } from '@libp2p/utils'
import { TrafficMetrics } from '../../../node/network/traffic.js'
import { NodeMetrics } from '../../../node/api/metrics.js'
import { waitFor } from '../../helpers/wait.js'

const ECHO = '/iexec-test/echo/1.0.0'
const CHUNK = 1000
const CHUNKS = 20

describe('TrafficMetrics (libp2p metrics component, real streams)', function () {
  this.timeout(60_000)
  const nodes: Libp2p[] = []

  async function node (traffic: TrafficMetrics): Promise<Libp2p> {
    const n = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      metrics: () => traffic,
      services: { identify: identify() }
    })
    nodes.push(n)
    return n
  }

  after(async () => {
    for (const n of nodes.splice(0)) await Promise.resolve(n.stop()).catch(() => {})
  })

  it('counts a protocol\'s bytes both ways on both nodes, and the wire\'s', async () => {
    const serverTraffic = new TrafficMetrics()
    const clientTraffic = new TrafficMetrics()
    const server = await node(serverTraffic)
    const client = await node(clientTraffic)
    await server.handle(ECHO, async (stream) => {
      for await (const chunk of stream) {
        if (!stream.send(chunk)) await new Promise((resolve) => stream.addEventListener('drain', resolve, { once: true }))
      }
      await stream.close()
    })
    const stream = await client.dialProtocol(server.getMultiaddrs()[0]!, ECHO)
    const bs = byteStream(stream)
    const sent = crypto.getRandomValues(new Uint8Array(CHUNK * CHUNKS))
    const [, got] = await Promise.all([
      (async () => { for (let i = 0; i < CHUNKS; i++) await bs.write(sent.subarray(i * CHUNK, (i + 1) * CHUNK)) })(),
      bs.read({ bytes: sent.length })
    ])
    assert.deepEqual(got.subarray(), sent, 'every byte echoed back')
    await stream.close()

    const total = CHUNK * CHUNKS
    await waitFor(() => serverTraffic.byProtocol().get(ECHO)?.out === total, 10_000, 'the server\'s echo counted')
    assert.deepEqual(clientTraffic.byProtocol().get(ECHO), { in: total, out: total })
    assert.deepEqual(serverTraffic.byProtocol().get(ECHO), { in: total, out: total })
    // identify ran on the same connection: its protocol is counted on its own
    await waitFor(() => (clientTraffic.byProtocol().get('/ipfs/id/1.0.0')?.in ?? 0) > 0, 10_000, 'identify counted')
    for (const t of [clientTraffic, serverTraffic]) {
      assert.ok(t.wire.in > total && t.wire.out > total, 'the wire carries the payload and more')
    }

    // one echo stream, opened by the client
    assert.deepEqual(clientTraffic.streamsByProtocol().get(ECHO), { in: 0, out: 1 })
    assert.deepEqual(serverTraffic.streamsByProtocol().get(ECHO), { in: 1, out: 0 })

    const metrics = new NodeMetrics({ protocolBytes: () => clientTraffic.byProtocol(), protocolStreams: () => clientTraffic.streamsByProtocol(), wireBytes: () => clientTraffic.wire })
    const text = await metrics.text()
    assert.match(text, new RegExp(`^iexec_p2p_libp2p_protocol_bytes_total\\{protocol="${ECHO}",direction="in"\\} ${total}$`, 'm'))
    assert.match(text, new RegExp(`^iexec_p2p_libp2p_protocol_bytes_total\\{protocol="${ECHO}",direction="out"\\} ${total}$`, 'm'))
    assert.match(text, new RegExp(`^iexec_p2p_libp2p_protocol_streams_total\\{protocol="${ECHO}",direction="out"\\} 1$`, 'm'))
    assert.match(text, new RegExp(`^iexec_p2p_libp2p_wire_bytes_total\\{direction="in"\\} ${clientTraffic.wire.in}$`, 'm'))
  })

  it('hands libp2p\'s components metrics that accept every call and export nothing', () => {
    const t = new TrafficMetrics()
    const counter = t.registerCounter('x')
    counter.increment(3)
    counter.reset()
    const group = t.registerHistogramGroup('y')
    group.observe({ a: 1 })
    group.timer('a')()
    t.registerMetricGroup('z', { calculate: () => ({ a: 1 }) })
    assert.equal(t.byProtocol().size, 0)
    assert.equal(t.streamsByProtocol().size, 0)
    assert.deepEqual(t.wire, { in: 0, out: 0 })
  })
})
