/**
 * Finds connections to peers that stopped answering, in place of libp2p's
 * connection monitor, which aborts a connection at its first failed ping.
 *
 * Why: with 50 nodes in one process (the market benchmark), pings failed on
 * live peers whose event loop was busy (a stream reset while the remote's
 * peer store write was queued, a ping slower than the timeout), and every
 * failure tore a connection down. In 20 s of idling 600 connections were
 * redialled; their noise handshakes, identifies and peer store writes were a
 * large part of the swarm's idle load, which made more pings fail. A single
 * late answer is not a dead peer, as a single missed heartbeat does not
 * reassign a task (node/scheduler).
 *
 * Each `intervalMs`, every connection with no ping in flight is pinged
 * (`timeoutMs` each); a connection is aborted after `maxFailures` failed
 * pings in a row, and any success resets its count. The round-trip time is
 * written to `connection.rtt`, as libp2p's monitor does.
 *
 * How it pings: with a yamux ping frame (12 bytes on stream 0) when the
 * connection's muxer has `ping()`, else on the ping protocol. A protocol
 * ping is a new stream: a SYN, a multistream-select round trip, 32 bytes
 * each way and two closes, with a stream object, loggers and abort signals
 * on both ends. At 50 nodes in one process those pings were the largest part
 * of an idle swarm's streams (~1100 connections, both ends every 10 s). A
 * frame ping is answered by the remote's muxer as soon as its event loop
 * reads the frame: it proves what the watch asks, that the peer reads.
 * `muxer` is libp2p's Connection implementation field, not its interface,
 * hence the feature check and the fallback.
 *
 * The muxer is never given our abort signal: yamux keeps one ping in flight
 * and, if the wait for it is aborted, forgets it, so a late answer would be
 * an unrequested ping and yamux would close the connection over it. The
 * timeout is ours (a race); the next ping waits on the same pending one, so
 * a late answer still counts as a success for the ping after it. A peer that
 * does not speak the ping protocol answered the negotiation, so it is alive
 * (as libp2p's monitor judges it).
 */
import { byteStream } from '@libp2p/utils'
import type { Connection, Libp2p } from '@libp2p/interface'

export interface ConnectionWatchOptions {
  intervalMs: number
  timeoutMs: number
  /** failed pings in a row before the connection is aborted (>= 2) */
  maxFailures: number
  /** the ping protocol id ('/ipfs/ping/1.0.0'), for connections whose muxer cannot ping */
  protocol: string
  /** told of each failed ping that does not (yet) abort its connection, with the failures in a row so far */
  onFailure?: (peer: string, failures: number, error: string) => void
  /** told of each aborted connection */
  onAbort?: (peer: string, failures: number, error: string) => void
}

const PING_LENGTH = 32

/** What the watch needs of a muxer (yamux's): a ping that resolves with the round-trip time. */
interface PingingMuxer { ping: () => Promise<number> }

function pingingMuxer (conn: Connection): PingingMuxer | undefined {
  const muxer = (conn as { muxer?: { ping?: unknown } }).muxer
  if (muxer === undefined || muxer === null || typeof muxer.ping !== 'function') return undefined
  return { ping: async () => await (muxer.ping as () => Promise<number>).call(muxer) }
}

export class PingTimeoutError extends Error {
  override name = 'PingTimeoutError'
}

export class ConnectionWatch {
  private timer: NodeJS.Timeout | undefined
  /** failed pings in a row, per connection id */
  private readonly failures = new Map<string, number>()
  private readonly inflight = new Set<string>()
  private readonly abort = new AbortController()
  /** rejects the frame pings in flight when the watch stops */
  private readonly stopping = new Set<(err: Error) => void>()

  constructor (private readonly libp2p: Pick<Libp2p, 'getConnections'>, private readonly opts: ConnectionWatchOptions) {
    if (!(opts.intervalMs > 0 && opts.timeoutMs > 0 && Number.isInteger(opts.maxFailures) && opts.maxFailures >= 2)) {
      throw new RangeError('the connection watch needs positive intervals and maxFailures >= 2')
    }
  }

  start (): void {
    if (this.timer !== undefined) return
    this.timer = setInterval(() => { this.beat() }, this.opts.intervalMs)
    // not a reason to keep the process alive
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
    this.abort.abort()
    for (const reject of this.stopping) reject(new PingTimeoutError('the connection watch stopped'))
    this.stopping.clear()
  }

  private beat (): void {
    const open = new Set<string>()
    for (const conn of this.libp2p.getConnections()) {
      open.add(conn.id)
      if (this.inflight.has(conn.id) || conn.status !== 'open') continue
      this.inflight.add(conn.id)
      void this.check(conn).finally(() => { this.inflight.delete(conn.id) })
    }
    // forget closed connections
    for (const id of this.failures.keys()) if (!open.has(id)) this.failures.delete(id)
  }

  private async check (conn: Connection): Promise<void> {
    try {
      conn.rtt = await this.ping(conn)
      this.failures.delete(conn.id)
    } catch (err) {
      if (this.abort.signal.aborted || conn.status !== 'open') return
      const n = (this.failures.get(conn.id) ?? 0) + 1
      const error = err instanceof Error ? err : new Error(String(err))
      if (n < this.opts.maxFailures) {
        this.failures.set(conn.id, n)
        this.opts.onFailure?.(conn.remotePeer.toString(), n, `${error.name}: ${error.message}`)
        return
      }
      this.failures.delete(conn.id)
      this.opts.onAbort?.(conn.remotePeer.toString(), n, `${error.name}: ${error.message}`)
      conn.abort(error)
    }
  }

  /** One ping on the connection: its round-trip time in ms. */
  private async ping (conn: Connection): Promise<number> {
    const muxer = pingingMuxer(conn)
    if (muxer !== undefined) return await this.framePing(muxer)
    return await this.protocolPing(conn)
  }

  private async framePing (muxer: PingingMuxer): Promise<number> {
    let timer: NodeJS.Timeout | undefined
    let stop: ((err: Error) => void) | undefined
    try {
      return await Promise.race([
        // no signal: see the class comment
        muxer.ping(),
        new Promise<never>((resolve, reject) => {
          timer = setTimeout(() => { reject(new PingTimeoutError(`no ping answer within ${this.opts.timeoutMs} ms`)) }, this.opts.timeoutMs)
          // one listener set for all pings, not a listener per ping on one signal
          stop = reject
          this.stopping.add(reject)
        })
      ])
    } finally {
      clearTimeout(timer)
      if (stop !== undefined) this.stopping.delete(stop)
    }
  }

  private async protocolPing (conn: Connection): Promise<number> {
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.opts.timeoutMs)])
    const start = Date.now()
    let stream
    try {
      stream = await conn.newStream(this.opts.protocol, { signal, runOnLimitedConnection: true })
    } catch (err) {
      // it answered the negotiation: alive
      if ((err as Error | undefined)?.name === 'UnsupportedProtocolError') return (Date.now() - start) / 2
      throw err
    }
    try {
      const bs = byteStream(stream)
      const sent = crypto.getRandomValues(new Uint8Array(PING_LENGTH))
      const t0 = Date.now()
      const [, got] = await Promise.all([bs.write(sent, { signal }), bs.read({ bytes: PING_LENGTH, signal })])
      const rtt = Date.now() - t0
      if (!got.subarray().every((b, i) => b === sent[i])) throw new Error('the ping came back different')
      await stream.close({ signal })
      return rtt
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }
}
