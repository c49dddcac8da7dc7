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
 * Each `intervalMs`, every connection with no ping in flight is pinged on
 * the ping protocol (`timeoutMs` each); a connection is aborted after
 * `maxFailures` failed pings in a row, and any success resets its count. A
 * peer that does not speak the ping protocol answered, so it is alive (as
 * libp2p's monitor judges it). The round-trip time is written to
 * `connection.rtt`, as libp2p's monitor does.
 */
import { byteStream } from '@libp2p/utils'
import type { Connection, Libp2p } from '@libp2p/interface'

export interface ConnectionWatchOptions {
  intervalMs: number
  timeoutMs: number
  /** failed pings in a row before the connection is aborted (>= 2) */
  maxFailures: number
  /** the ping protocol id, '/ipfs/ping/1.0.0' */
  protocol: string
  /** told of each aborted connection */
  onAbort?: (peer: string, failures: number, error: string) => void
}

const PING_LENGTH = 32

export class ConnectionWatch {
  private timer: NodeJS.Timeout | undefined
  /** failed pings in a row, per connection id */
  private readonly failures = new Map<string, number>()
  private readonly inflight = new Set<string>()
  private readonly abort = new AbortController()

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
      if (n < this.opts.maxFailures) {
        this.failures.set(conn.id, n)
        return
      }
      this.failures.delete(conn.id)
      const error = err instanceof Error ? err : new Error(String(err))
      this.opts.onAbort?.(conn.remotePeer.toString(), n, `${error.name}: ${error.message}`)
      conn.abort(error)
    }
  }

  /** One ping on the connection: its round-trip time in ms. */
  private async ping (conn: Connection): Promise<number> {
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
