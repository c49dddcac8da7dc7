import type { RpcOptions } from './options.js'

/** Backoff before attempt `attempt` (1-based retry count): doubling, capped, with jitter to spread herds. */
export function backoffDelay (attempt: number, opts: Pick<RpcOptions, 'retryBaseDelayMs' | 'retryMaxDelayMs'>): number {
  const exp = Math.min(opts.retryMaxDelayMs, opts.retryBaseDelayMs * 2 ** (attempt - 1))
  return Math.round(exp / 2 + Math.random() * exp / 2)
}
