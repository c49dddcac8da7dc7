import { getAddress } from 'ethers'
import { ConfigError } from './errors.js'
import type { NodeChainConfig } from './options.js'

/** Chain settings as a user types them (CLI flags): strings, all optional. */
export interface RawChainSettings {
  rpc?: string
  hub?: string
  chainId?: string | number
  fromBlock?: string | number
}

function invalid (field: string, why: string): ConfigError {
  return new ConfigError('CONFIG_INVALID', `${field} ${why}`, { field })
}

/**
 * A JSON-RPC URL the node's chain client can use: http(s), polled, or
 * ws(s), where the node subscribes to new heads and the hub's logs
 * (`eth_subscribe`) and polls only when subscriptions fail.
 */
export function checkRpcUrl (raw: string, field = 'chain.rpc'): string {
  let url: URL
  try {
    url = new URL(raw.trim())
  } catch {
    throw invalid(field, `must be a URL like http://127.0.0.1:8545, got "${raw}"`)
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) throw invalid(field, `must be an http(s) or ws(s) URL, got "${raw}"`)
  if (url.username !== '' || url.password !== '') {
    // credentials in the URL would end up in config.json, logs and `ps`; providers take an API key in the path instead
    throw invalid(field, 'must not carry a user name or password')
  }
  return raw.trim()
}

/**
 * An Ethereum address, returned in its EIP-55 checksummed form. All-lower or
 * all-upper hex carries no checksum and is accepted; mixed case must be a
 * valid checksum (a mistyped character is then caught instead of sending
 * money or reading events at a wrong address).
 */
export function checkAddress (raw: string, field = 'chain.hub'): string {
  const s = raw.trim()
  if (!/^0x[0-9a-fA-F]{40}$/.test(s)) throw invalid(field, `must be an Ethereum address (0x and 40 hex digits), got "${raw}"`)
  try {
    return getAddress(s)
  } catch {
    throw invalid(field, `has a bad EIP-55 checksum (a mistyped character?): "${raw}"`)
  }
}

function checkInt (raw: string | number, field: string, min: number): number {
  const s = String(raw).trim()
  if (!/^\d{1,16}$/.test(s)) throw invalid(field, `must be a whole number, got "${raw}"`)
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n < min) throw invalid(field, `must be a whole number >= ${min}, got "${raw}"`)
  return n
}

/**
 * Checks chain settings offline (format only: URL, checksummed address,
 * integers); the fields left out stay out. Contacting the RPC is the
 * caller's choice (the CLI's `init` does it when the RPC answers).
 * @throws ConfigError CONFIG_INVALID with `details.field` (chain.rpc, chain.hub, chain.chainId, chain.fromBlock)
 */
export function checkChainSettings (raw: RawChainSettings): NodeChainConfig {
  const out: NodeChainConfig = {}
  if (raw.rpc !== undefined) out.rpc = checkRpcUrl(raw.rpc)
  if (raw.hub !== undefined) out.hub = checkAddress(raw.hub)
  if (raw.chainId !== undefined) out.chainId = checkInt(raw.chainId, 'chain.chainId', 1)
  if (raw.fromBlock !== undefined) out.fromBlock = checkInt(raw.fromBlock, 'chain.fromBlock', 0)
  return out
}
