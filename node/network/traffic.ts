import type { Metrics, MultiaddrConnection, Stream } from '@libp2p/interface'

/** Bytes one way and the other. */
export interface ByteCounts { in: number, out: number }

/** One object answers every metric libp2p's components register: they are not exported. */
const noop: Record<string, unknown> = {}
const stopTimer = (): void => {}
for (const m of ['update', 'increment', 'decrement', 'reset', 'observe']) noop[m] = () => {}
noop.timer = () => stopTimer
const noopMetric = (): any => noop

/** The parts of a stream or connection that carry its bytes (libp2p 3's message streams). */
interface Carrier {
  send: (data: { byteLength: number }) => boolean
  dispatchEvent: (evt: Event) => boolean
}

/**
 * libp2p's `metrics` component, counting bytes only: per negotiated protocol
 * (`/ipfs/bitswap/1.2.0`, gossipsub, the DHT...) and on the wire of every
 * connection (after encryption and muxing). @libp2p/prometheus-metrics is
 * not used: it keeps its metrics in a module-wide map and clears prom-client's
 * global registry when built, so the second node of a process (tests run
 * several) would write into the first node's registry. The metrics libp2p's
 * components register themselves are dropped (one shared no-op), which also
 * keeps their per-message bookkeeping out of the hot paths.
 *
 * A stream's `send` and `dispatchEvent` are wrapped, as
 * @libp2p/prometheus-metrics does: no `message` listener is added (a listener
 * makes the stream deliver its buffered data before the protocol's handler
 * reads), and each chunk costs one add to a counter found when the stream
 * opened. Protocol labels are bounded: only protocols this node handles or
 * dials are ever negotiated.
 */
export class TrafficMetrics implements Metrics {
  private readonly protocols = new Map<string, ByteCounts>()
  /** streams opened since start by protocol: `in` the remote opened, `out` this node did */
  private readonly streams = new Map<string, ByteCounts>()
  /** every connection's bytes on the wire */
  readonly wire: ByteCounts = { in: 0, out: 0 }

  /** Bytes by protocol since start (live objects: read, do not change). */
  byProtocol (): ReadonlyMap<string, Readonly<ByteCounts>> {
    return this.protocols
  }

  /** Streams since start by protocol, opened by the remote (`in`) or by this node (`out`). */
  streamsByProtocol (): ReadonlyMap<string, Readonly<ByteCounts>> {
    return this.streams
  }

  trackMultiaddrConnection (maConn: MultiaddrConnection): void {
    track(maConn as unknown as Carrier, this.wire)
  }

  trackProtocolStream (stream: Stream): void {
    // the upgrader calls this after negotiation: the protocol is known
    if (stream.protocol == null || stream.protocol === '') return
    const opened = countsOf(this.streams, stream.protocol)
    if (stream.direction === 'inbound') opened.in++
    else opened.out++
    track(stream as unknown as Carrier, countsOf(this.protocols, stream.protocol))
  }

  readonly registerMetric = noopMetric as Metrics['registerMetric']
  readonly registerMetricGroup = noopMetric as Metrics['registerMetricGroup']
  readonly registerCounter = noopMetric as Metrics['registerCounter']
  readonly registerCounterGroup = noopMetric as Metrics['registerCounterGroup']
  readonly registerHistogram = noopMetric as Metrics['registerHistogram']
  readonly registerHistogramGroup = noopMetric as Metrics['registerHistogramGroup']
  readonly registerSummary = noopMetric as Metrics['registerSummary']
  readonly registerSummaryGroup = noopMetric as Metrics['registerSummaryGroup']
  createTrace (): undefined { return undefined }
  traceFunction<F extends (...args: any[]) => any>(_name: string, fn: F): F { return fn }
}

function track (carrier: Carrier, counts: ByteCounts): void {
  const send = carrier.send.bind(carrier)
  carrier.send = (data) => {
    counts.out += data.byteLength
    return send(data)
  }
  const dispatch = carrier.dispatchEvent.bind(carrier)
  carrier.dispatchEvent = (evt) => {
    if (evt.type === 'message') counts.in += (evt as unknown as { data: { byteLength: number } }).data.byteLength
    return dispatch(evt)
  }
}

/** A protocol's counts in `map`, made at zero on its first stream. */
function countsOf (map: Map<string, ByteCounts>, protocol: string): ByteCounts {
  let counts = map.get(protocol)
  if (counts === undefined) {
    counts = { in: 0, out: 0 }
    map.set(protocol, counts)
  }
  return counts
}
