import { JsonRpcProvider, Network, isError, type Interface, type JsonRpcPayload, type JsonRpcResult } from 'ethers'
import { ChainError } from './errors.js'
import { HttpTransport } from './http-transport.js'
import { WsTransport, type RpcCall, type RpcSubscriber } from './ws-transport.js'
import type { RpcOptions } from './options.js'
import { backoffDelay } from './backoff.js'

/** true for a ws:// or wss:// endpoint (JSON-RPC over a WebSocket, with `eth_subscribe`) */
export function isWsUrl (url: string): boolean {
  return /^wss?:\/\//i.test(url)
}

/**
 * A JsonRpcProvider whose transport retries transient failures (refused or
 * reset connections, timeouts, 429, 5xx) with bounded backoff, then fails
 * with RPC_UNREACHABLE naming the URL. Every read, typed bindings included,
 * gets this; ethers alone would either hang (network detection retried
 * forever) or fail on the first reset. Raw transaction broadcasts are not
 * retried here: the sender does it, because only it can tell a lost answer
 * from a real "nonce too low".
 */
class ResilientProvider extends JsonRpcProvider {
  private readonly transport: HttpTransport | WsTransport

  constructor (private readonly url: string, network: Network, private readonly rpcOpts: RpcOptions) {
    super(url, network, {
      staticNetwork: network,
      pollingInterval: rpcOpts.pollingIntervalMs,
      // without this, fast successive transactions reuse a cached nonce (STACK-NOTES)
      cacheTimeout: -1,
      // ethers holds each request 10 ms to batch it with others; the follower
      // and the sender make short chains of dependent calls, where that stall
      // added up to ~40 ms per delivered event on anvil
      batchStallTime: 0
    })
    this.transport = isWsUrl(url) ? new WsTransport(url, rpcOpts) : new HttpTransport(url, rpcOpts.requestTimeoutMs)
  }

  /** The WebSocket transport's subscriptions; undefined on HTTP. */
  get subscriber (): RpcSubscriber | undefined {
    return this.transport instanceof WsTransport ? this.transport : undefined
  }

  /** One exchange (an HTTP request or a WebSocket message): the JSON-RPC answers (a JSON-RPC error is an answer; ethers turns it into its error). */
  private async post (payload: JsonRpcPayload | JsonRpcPayload[]): Promise<JsonRpcResult[]> {
    if (this.transport instanceof WsTransport) {
      return await this.transport.call((Array.isArray(payload) ? payload : [payload]) as RpcCall[]) as JsonRpcResult[]
    }
    const answer = JSON.parse(await this.transport.post(JSON.stringify(payload))) as JsonRpcResult | JsonRpcResult[]
    return Array.isArray(answer) ? answer : [answer]
  }

  override destroy (): void {
    super.destroy()
    this.transport.close()
  }

  override async _send (payload: JsonRpcPayload | JsonRpcPayload[]): Promise<JsonRpcResult[]> {
    const observe = this.rpcOpts.observer?.rpc
    if (observe === undefined) return await this.sendNow(payload)
    const calls = Array.isArray(payload) ? payload : [payload]
    const t0 = performance.now()
    let failed = true
    try {
      const answers = await this.sendNow(payload)
      failed = false
      return answers
    } finally {
      const ms = performance.now() - t0
      for (const c of calls) observe(c.method, ms, failed)
    }
  }

  private async sendNow (payload: JsonRpcPayload | JsonRpcPayload[]): Promise<JsonRpcResult[]> {
    const calls = Array.isArray(payload) ? payload : [payload]
    if (calls.some((c) => c.method === 'eth_sendRawTransaction')) return await this.post(payload)
    const what = calls.map((c) => c.method).join(',')
    // a destroyed provider tries no more: the failure so far is the answer
    return await withRpcRetry(this.url, what, this.rpcOpts, async () => await this.post(payload), undefined, () => this.destroyed)
  }
}

/**
 * Builds the one kind of provider the node uses. The chain id is fixed up
 * front (a `Network` object as `staticNetwork`) because `staticNetwork: true`
 * alone still makes ethers detect the network once, and when the endpoint is
 * dead that detection loops forever (retry every 1 s, console noise) while
 * every request waits behind it. With the network known, a request to a dead
 * endpoint fails at once and the bounded retry decides.
 */
export function makeProvider (url: string, chainId: number, opts: RpcOptions): JsonRpcProvider {
  return new ResilientProvider(url, Network.from(chainId), opts)
}

/** The `eth_subscribe` side of a provider made by `makeProvider` on a ws(s) URL; undefined otherwise. */
export function subscriberOf (provider: JsonRpcProvider): RpcSubscriber | undefined {
  return provider instanceof ResilientProvider ? provider.subscriber : undefined
}

/** Node socket errors that mean "try again", not "you did something wrong". */
const TRANSIENT_SOCKET_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH',
  'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT'
])

function errorCodeOf (err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code
    return typeof code === 'string' ? code : undefined
  }
  return undefined
}

/**
 * True for failures of the transport (the request may not have reached the
 * node, or the node is overloaded): refused or reset connections, timeouts,
 * HTTP 429 and 5xx. A revert or a JSON-RPC error answer is never transient.
 */
export function isTransientRpcError (err: unknown): boolean {
  // already judged (retries exhausted, or a typed failure): never retried again
  if (err instanceof ChainError) return false
  if (isError(err, 'CALL_EXCEPTION')) return false
  if (isError(err, 'TIMEOUT')) return true
  if (isError(err, 'NETWORK_ERROR')) return true
  if (isError(err, 'SERVER_ERROR')) {
    const status = (err as { response?: { statusCode?: number } }).response?.statusCode
    // 600 is ethers' "exceeded maximum retry limit" after its own 429 retries
    return status === undefined || status === 429 || status >= 500
  }
  const code = errorCodeOf(err)
  if (code !== undefined && TRANSIENT_SOCKET_CODES.has(code)) return true
  const cause = (err as { cause?: unknown } | null)?.cause
  if (cause !== undefined && cause !== err) return isTransientRpcError(cause)
  return false
}

/** Thrown by `sleep` when its signal aborts. */
function abortError (signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted')
}

/** A sleep that ends early (rejecting) when `signal` aborts. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) throw abortError(signal)
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(abortError(signal as AbortSignal))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}


/**
 * Runs `fn`, retrying transient RPC failures with bounded backoff. After the
 * last attempt (or once `stopped` says so) the failure becomes
 * RPC_UNREACHABLE naming `url`. Any other error (revert, bad input, JSON-RPC
 * error) is thrown at once. The one retry loop of the module: the provider's
 * transport and the callers above it all go through here.
 */
export async function withRpcRetry<T> (url: string, what: string, opts: RpcOptions, fn: () => Promise<T>, signal?: AbortSignal, stopped?: () => boolean): Promise<T> {
  let last: unknown
  for (let attempt = 1; attempt <= opts.retryAttempts; attempt++) {
    if (stopped?.() === true) break
    try {
      return await fn()
    } catch (err) {
      if (!isTransientRpcError(err)) throw err
      last = err
      if (attempt < opts.retryAttempts) await sleep(backoffDelay(attempt, opts), signal)
    }
  }
  throw unreachable(url, what, opts.retryAttempts, last)
}

/** The RPC_UNREACHABLE error for `url`, with the last transport failure as cause. */
export function unreachable (url: string, what: string, attempts: number, cause: unknown): ChainError {
  const why = cause instanceof Error ? cause.message : String(cause)
  return new ChainError('RPC_UNREACHABLE', `JSON-RPC endpoint ${url} unreachable (${what}, ${attempts} attempts): ${why}`, { url, operation: what, attempts }, { cause })
}

/**
 * Asks `url` for its chain id with plain fetch, bounded by the retry options.
 * Used before a provider exists, so that a wrong URL fails fast and clearly.
 */
export async function probeChainId (url: string, opts: RpcOptions): Promise<number> {
  if (isWsUrl(url)) return await probeChainIdWs(url, opts)
  return await withRpcRetry(url, 'eth_chainId', opts, async () => {
    let res: Response
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        signal: AbortSignal.timeout(opts.requestTimeoutMs)
      })
    } catch (err) {
      // fetch wraps socket errors as TypeError('fetch failed', { cause }); a
      // timeout is a DOMException named TimeoutError. Both are transport failures.
      throw Object.assign(new Error(`request to ${url} failed: ${(err as Error).message}`, { cause: err }), { code: 'ECONNREFUSED' })
    }
    if (res.status === 429 || res.status >= 500) {
      throw Object.assign(new Error(`HTTP ${res.status} from ${url}`), { code: 'ECONNRESET' })
    }
    const body = await res.json().catch(() => undefined) as { result?: unknown } | undefined
    if (typeof body?.result !== 'string') {
      throw new ChainError('RPC_UNREACHABLE', `${url} is not an Ethereum JSON-RPC endpoint (no eth_chainId result)`, { url, status: res.status })
    }
    return Number(BigInt(body.result))
  })
}

/** `probeChainId` over a WebSocket of its own, closed after. */
async function probeChainIdWs (url: string, opts: RpcOptions): Promise<number> {
  const ws = new WsTransport(url, opts)
  try {
    return await withRpcRetry(url, 'eth_chainId', opts, async () => {
      const [answer] = await ws.call([{ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }])
      if (typeof answer.result !== 'string' || !/^0x[0-9a-fA-F]{1,16}$/.test(answer.result)) {
        throw new ChainError('RPC_UNREACHABLE', `${url} is not an Ethereum JSON-RPC endpoint (no eth_chainId result)`, { url })
      }
      return Number(BigInt(answer.result))
    })
  } finally {
    ws.close()
  }
}

/** Digs the revert data (0x-hex) out of an ethers error, if any. */
export function revertDataOf (err: unknown): string | undefined {
  const seen = new Set<unknown>()
  const dig = (v: unknown, depth: number): string | undefined => {
    if (v === null || typeof v !== 'object' || seen.has(v) || depth > 6) return undefined
    seen.add(v)
    const data = (v as { data?: unknown }).data
    if (typeof data === 'string' && /^0x[0-9a-fA-F]*$/.test(data) && data.length >= 10) return data
    for (const key of ['error', 'info', 'cause', 'data']) {
      const found = dig((v as Record<string, unknown>)[key], depth + 1)
      if (found !== undefined) return found
    }
    return undefined
  }
  return dig(err, 0)
}

/**
 * Turns a revert into CONTRACT_REVERT with the custom error's name and args,
 * trying each interface in turn (hub, RLC, any extra ABI). `Error(string)` and
 * `Panic(uint256)` come out as reasons `Error` and `Panic`; undecodable data as `unknown`.
 */
export function decodeRevert (err: unknown, interfaces: readonly Interface[], context: Record<string, unknown> = {}): ChainError {
  const data = revertDataOf(err)
  if (data !== undefined) {
    for (const iface of interfaces) {
      try {
        const parsed = iface.parseError(data)
        if (parsed !== null) {
          const args = parsed.args.toArray(true) as unknown[]
          return new ChainError('CONTRACT_REVERT', `reverted with ${parsed.name}(${args.map(String).join(', ')})`, { ...context, reason: parsed.name, args, data }, { cause: err })
        }
      } catch {
        // not this interface's error: try the next
      }
    }
  }
  // ethers decodes Error(string) and Panic(uint256) itself
  const revert = (err as { revert?: { name?: string, args?: unknown[] } } | null)?.revert
  if (revert?.name !== undefined) {
    const args = [...(revert.args ?? [])]
    return new ChainError('CONTRACT_REVERT', `reverted with ${revert.name}(${args.map(String).join(', ')})`, { ...context, reason: revert.name, args, data }, { cause: err })
  }
  return new ChainError('CONTRACT_REVERT', `reverted without decodable reason${data !== undefined ? ` (data ${data.slice(0, 10)})` : ''}`, { ...context, reason: 'unknown', args: [], data }, { cause: err })
}

/** True when ethers reports a revert (estimateGas, eth_call, or a mined transaction with status 0). */
export function isRevert (err: unknown): boolean {
  if (isError(err, 'CALL_EXCEPTION')) return true
  const msg = err instanceof Error ? err.message : ''
  return /execution reverted|revert/i.test(msg) && revertDataOf(err) !== undefined
}

export { backoffDelay }
