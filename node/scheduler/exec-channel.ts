import { lpStream } from '@libp2p/utils'
import type { Stream, StreamHandler } from '@libp2p/interface'
import { EXEC_PROTOCOL, MAX_EXEC_MESSAGE_BYTES, decodeExecMessage, encodeExecMessage } from '../../protocols/execution.js'
import type { ExecMessage } from '../../protocols/execution.js'
import type { Network } from '../network/index.js'
import { SchedulerError } from './errors.js'
import { defaultExecChannelOptions, type ExecChannelOptions } from './options.js'

/** Answers one message; `from` is the remote peer id (authenticated by noise). */
export type ExecHandler = (message: ExecMessage, from: string) => Promise<ExecMessage>

/** The part of Network the channel uses. */
export type ExecNetwork = Pick<Network, 'peerId' | 'handle' | 'unhandle' | 'dialProtocol'>

/**
 * The node's one endpoint of the exec protocol. libp2p allows one handler per
 * protocol, and a node may be a scheduler and a worker at once, so both
 * services register handlers here by message type and the channel routes.
 */
export class ExecChannel {
  private readonly handlers = new Map<ExecMessage['type'], ExecHandler>()
  private readonly opts: ExecChannelOptions
  private started = false

  constructor (private readonly network: ExecNetwork, options: Partial<ExecChannelOptions> = {}) {
    this.opts = { ...defaultExecChannelOptions, ...options }
    if (!(this.opts.timeoutMs > 0 && this.opts.maxInboundStreams >= 1)) {
      throw new SchedulerError('SCHEDULER_INVALID_OPTIONS', 'exec channel needs timeoutMs > 0 and maxInboundStreams >= 1')
    }
  }

  /** Registers the handler of one message type. */
  on (type: ExecMessage['type'], handler: ExecHandler): void {
    if (this.handlers.has(type)) throw new SchedulerError('EXEC_HANDLER_EXISTS', `a handler for ${type} is already registered`, { type })
    this.handlers.set(type, handler)
  }

  off (type: ExecMessage['type']): void {
    this.handlers.delete(type)
  }

  async start (): Promise<void> {
    if (this.started) return
    await this.network.handle(EXEC_PROTOCOL, this.serve, { maxInboundStreams: this.opts.maxInboundStreams })
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    await this.network.unhandle(EXEC_PROTOCOL).catch(() => {})
  }

  private readonly serve: StreamHandler = async (stream, connection) => {
    const signal = AbortSignal.timeout(this.opts.timeoutMs)
    const lp = lpStream(stream, { maxDataLength: MAX_EXEC_MESSAGE_BYTES })
    try {
      const bytes = await lp.read({ signal })
      let answer: ExecMessage
      let message: ExecMessage | undefined
      try {
        message = decodeExecMessage(bytes.subarray())
      } catch {
        // a malformed message is dropped: no answer, the stream is closed
        stream.abort(new Error('malformed exec message'))
        return
      }
      answer = await this.dispatch(message, connection.remotePeer.toString())
      await lp.write(encodeExecMessage(answer), { signal })
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
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

  /**
   * Sends one message to a peer and returns its answer (bounded by timeoutMs).
   * @throws SchedulerError EXEC_SEND_FAILED (unreachable, timeout, dropped), EXEC_REFUSED (an `error` answer)
   */
  async send (peer: string, message: ExecMessage, options: { signal?: AbortSignal } = {}): Promise<ExecMessage> {
    const timeout = AbortSignal.timeout(this.opts.timeoutMs)
    const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout])
    const bytes = encodeExecMessage(message)
    if (peer === this.network.peerId) {
      // the scheduler is one of its deal's workers: libp2p cannot dial itself, so the message
      // goes straight to the local handler (through the codec, as if it came from a peer)
      if (!this.started) throw new SchedulerError('EXEC_SEND_FAILED', 'the exec channel is stopped', { peer, type: message.type })
      const local = decodeExecMessage(encodeExecMessage(await this.dispatch(decodeExecMessage(bytes), peer)))
      if (local.type === 'error') throw new SchedulerError('EXEC_REFUSED', `refused ${message.type}: ${local.code} (${local.reason})`, { peer, type: message.type, code: local.code })
      return local
    }
    let stream: Stream | undefined
    let answer: ExecMessage
    try {
      stream = await this.network.dialProtocol(peer, EXEC_PROTOCOL, { signal })
      const lp = lpStream(stream, { maxDataLength: MAX_EXEC_MESSAGE_BYTES })
      await lp.write(bytes, { signal })
      answer = decodeExecMessage((await lp.read({ signal })).subarray())
      await stream.close({ signal }).catch(() => {})
    } catch (err) {
      stream?.abort(err instanceof Error ? err : new Error(String(err)))
      throw new SchedulerError('EXEC_SEND_FAILED', `${message.type} to ${peer} failed: ${err instanceof Error ? err.message : String(err)}`, { peer, type: message.type }, { cause: err })
    }
    if (answer.type === 'error') {
      throw new SchedulerError('EXEC_REFUSED', `${peer} refused ${message.type}: ${answer.code} (${answer.reason})`, { peer, type: message.type, code: answer.code })
    }
    return answer
  }
}
