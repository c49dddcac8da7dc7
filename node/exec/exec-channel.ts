import { lpStream } from '@libp2p/utils'
import type { Stream, StreamHandler } from '@libp2p/interface'
import { EXEC_OFFENCE_CODES, EXEC_PROTOCOL, MAX_EXEC_MESSAGE_BYTES, decodeExecMessage, encodeExecMessage } from '../../protocols/execution.js'
import type { ExecMessage } from '../../protocols/execution.js'
import type { Network } from '../network/index.js'
import { ExecError } from './errors.js'
import { defaultExecChannelOptions, type ExecChannelOptions } from './options.js'

/** Answers one message; `from` is the remote peer id (authenticated by noise). */
export type ExecHandler = (message: ExecMessage, from: string) => Promise<ExecMessage>

/** The part of Network the channel uses. */
export type ExecNetwork = Pick<Network, 'peerId' | 'handle' | 'unhandle' | 'dialProtocol'>

/** An open stream to a peer between exchanges, and when it was last used (local ms). */
interface Session {
  stream: Stream
  lp: ReturnType<typeof lpStream>
  usedAt: number
}

/**
 * The node's one endpoint of the exec protocol. libp2p allows one handler per
 * protocol, and a node may be a scheduler and a worker at once, so both
 * services register handlers here by message type and the channel routes.
 *
 * Streams are kept open and reused, one exchange after the other: opening
 * a stream (protocol negotiation, its frames through noise and yamux, the
 * peer store's bookkeeping) costs several times the CPU of an exchange on
 * an open stream. A sender keeps a few idle
 * streams per peer (more are opened when several exchanges run at once)
 * and closes those idle past `idleMs`; the answering side closes a stream
 * idle past twice that. A stream found dead when reused (the remote closed
 * it, the connection dropped) is replaced by a fresh one, once: every
 * message of the protocol may be sent twice (the chain decides, messages
 * are hints).
 */
export class ExecChannel {
  private readonly handlers = new Map<ExecMessage['type'], ExecHandler>()
  private readonly opts: ExecChannelOptions
  private started = false
  /** idle outbound streams by peer */
  private readonly idle = new Map<string, Session[]>()
  /** every stream this channel has open, both directions (stop closes them) */
  private readonly streams = new Set<Stream>()
  private sweeper: NodeJS.Timeout | undefined

  /**
   * `onOffence` hears each inbound message that broke the protocol (it did
   * not decode, or its handler refused it with one of EXEC_OFFENCE_CODES),
   * with the sending peer: the node (execution/execution.ts) counts it toward that peer's ban, as a
   * REJECTed gossip message.
   */
  constructor (private readonly network: ExecNetwork, options: Partial<ExecChannelOptions> = {}, private readonly onOffence?: (peer: string, code: string) => void) {
    this.opts = { ...defaultExecChannelOptions, ...options }
    if (!(this.opts.timeoutMs > 0 && this.opts.maxInboundStreams >= 1 && this.opts.idleMs > 0 && this.opts.maxIdlePerPeer >= 0)) {
      throw new ExecError('EXEC_INVALID_OPTIONS', 'exec channel needs timeoutMs > 0, idleMs > 0, maxInboundStreams >= 1 and maxIdlePerPeer >= 0')
    }
  }

  /** Registers the handler of one message type. */
  on (type: ExecMessage['type'], handler: ExecHandler): void {
    if (this.handlers.has(type)) throw new ExecError('EXEC_HANDLER_EXISTS', `a handler for ${type} is already registered`, { type })
    this.handlers.set(type, handler)
  }

  off (type: ExecMessage['type']): void {
    this.handlers.delete(type)
  }

  async start (): Promise<void> {
    if (this.started) return
    await this.network.handle(EXEC_PROTOCOL, this.serve, { maxInboundStreams: this.opts.maxInboundStreams })
    this.started = true
    this.sweeper = setInterval(() => { this.sweep() }, this.opts.idleMs)
    this.sweeper.unref()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.sweeper)
    this.idle.clear()
    for (const stream of this.streams) stream.abort(new Error('exec channel stopped'))
    this.streams.clear()
    await this.network.unhandle(EXEC_PROTOCOL).catch(() => {})
  }

  /** This node's peer id (what a scheduler's proof signs). */
  get peerId (): string {
    return this.network.peerId
  }

  /** Open streams of this channel, both directions (tests). */
  get openStreams (): number {
    return this.streams.size
  }

  /** Closes outbound streams idle for idleMs. */
  private sweep (): void {
    const before = Date.now() - this.opts.idleMs
    for (const [peer, sessions] of this.idle) {
      const keep = sessions.filter((s) => s.usedAt >= before)
      for (const s of sessions) if (s.usedAt < before) this.close(s.stream)
      if (keep.length > 0) this.idle.set(peer, keep)
      else this.idle.delete(peer)
    }
  }

  private close (stream: Stream): void {
    this.streams.delete(stream)
    stream.close().catch(() => { stream.abort(new Error('close failed')) })
  }

  /** Answers the exchanges of one inbound stream, one after the other, until the remote closes it or leaves it idle. */
  private readonly serve: StreamHandler = async (stream, connection) => {
    const lp = lpStream(stream, { maxDataLength: MAX_EXEC_MESSAGE_BYTES })
    const from = connection.remotePeer.toString()
    this.streams.add(stream)
    try {
      while (this.started) {
        let bytes
        try {
          bytes = await lp.read({ signal: AbortSignal.timeout(2 * this.opts.idleMs) })
        } catch {
          // the remote closed its end (or went idle, or the connection dropped): so do we
          this.close(stream)
          return
        }
        let message: ExecMessage
        try {
          message = decodeExecMessage(bytes.subarray())
        } catch (err) {
          // a malformed message is dropped: no answer, the stream is closed, the sender is counted
          this.offence(from, typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'EXEC_WIRE_INVALID')
          stream.abort(new Error('malformed exec message'))
          return
        }
        const answer = await this.dispatch(message, from)
        if (answer.type === 'error' && EXEC_OFFENCE_CODES.has(answer.code)) this.offence(from, answer.code)
        await lp.write(encodeExecMessage(answer), { signal: AbortSignal.timeout(this.opts.timeoutMs) })
      }
      this.close(stream)
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      this.streams.delete(stream)
    }
  }

  private offence (peer: string, code: string): void {
    // a hook's failure must not reach the stream
    try { this.onOffence?.(peer, code) } catch {}
  }

  /** Runs the handler of a message; a thrown error becomes an `error` answer with its code. */
  private async dispatch (message: ExecMessage, from: string): Promise<ExecMessage> {
    const handler = this.handlers.get(message.type)
    if (handler === undefined) return { type: 'error', code: 'UNSUPPORTED', reason: `no handler for ${message.type}` }
    try {
      return await handler(message, from)
    } catch (err) {
      const code = typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'INTERNAL_ERROR'
      return { type: 'error', code: /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'INTERNAL_ERROR', reason: (err instanceof Error ? err.message : String(err)).slice(0, 500) }
    }
  }

  /** An idle stream to `peer` that still looks open, if any. */
  private takeIdle (peer: string): Session | undefined {
    const sessions = this.idle.get(peer)
    while (sessions !== undefined && sessions.length > 0) {
      const s = sessions.pop() as Session
      if (s.stream.status === 'open' && s.stream.writeStatus === 'writable') return s
      this.streams.delete(s.stream)
    }
    return undefined
  }

  private putIdle (peer: string, s: Session): void {
    const sessions = this.idle.get(peer) ?? []
    if (!this.started || sessions.length >= this.opts.maxIdlePerPeer) {
      this.close(s.stream)
      return
    }
    s.usedAt = Date.now()
    sessions.push(s)
    this.idle.set(peer, sessions)
  }

  /**
   * Sends one message to a peer and returns its answer (bounded by timeoutMs).
   * @throws ExecError EXEC_SEND_FAILED (unreachable, timeout, dropped), EXEC_REFUSED (an `error` answer)
   */
  async send (peer: string, message: ExecMessage, options: { signal?: AbortSignal } = {}): Promise<ExecMessage> {
    const timeout = AbortSignal.timeout(this.opts.timeoutMs)
    const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout])
    const bytes = encodeExecMessage(message)
    if (peer === this.network.peerId) {
      // the scheduler is one of its deal's workers: libp2p cannot dial itself, so the message
      // goes straight to the local handler (through the codec, as if it came from a peer)
      if (!this.started) throw new ExecError('EXEC_SEND_FAILED', 'the exec channel is stopped', { peer, type: message.type })
      const local = decodeExecMessage(encodeExecMessage(await this.dispatch(decodeExecMessage(bytes), peer)))
      if (local.type === 'error') throw new ExecError('EXEC_REFUSED', `refused ${message.type}: ${local.code} (${local.reason})`, { peer, type: message.type, code: local.code })
      return local
    }
    let answer: ExecMessage
    for (let attempt = 1; ; attempt++) {
      const reused = this.takeIdle(peer)
      let session = reused
      try {
        if (session === undefined) {
          const stream = await this.network.dialProtocol(peer, EXEC_PROTOCOL, { signal })
          this.streams.add(stream)
          session = { stream, lp: lpStream(stream, { maxDataLength: MAX_EXEC_MESSAGE_BYTES }), usedAt: Date.now() }
        }
        await session.lp.write(bytes, { signal })
        answer = decodeExecMessage((await session.lp.read({ signal })).subarray())
        this.putIdle(peer, session)
        break
      } catch (err) {
        if (session !== undefined) {
          this.streams.delete(session.stream)
          session.stream.abort(err instanceof Error ? err : new Error(String(err)))
        }
        // a kept stream the remote closed meanwhile: once more, on a new one
        if (reused !== undefined && attempt === 1 && !signal.aborted && this.started) continue
        throw new ExecError('EXEC_SEND_FAILED', `${message.type} to ${peer} failed: ${err instanceof Error ? err.message : String(err)}`, { peer, type: message.type }, { cause: err })
      }
    }
    if (answer.type === 'error') {
      throw new ExecError('EXEC_REFUSED', `${peer} refused ${message.type}: ${answer.code} (${answer.reason})`, { peer, type: message.type, code: answer.code })
    }
    return answer
  }
}
