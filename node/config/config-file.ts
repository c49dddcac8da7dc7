import { readFile } from 'node:fs/promises'
import { writeFileDurable } from '../common/durable-file.js'
import { ConfigError } from './errors.js'
import { CONFIG_LIMITS, defaultNodeConfig } from './options.js'
import type { NodeConfig, NodeChainConfig, NodeNatConfig } from './options.js'
import { parseMetricsListen } from './metrics-listen.js'

function invalid (field: string, why: string): ConfigError {
  return new ConfigError('CONFIG_INVALID', `config: ${field} ${why}`, { field })
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function stringArray (v: unknown, field: string, max: number, maxLen: number): string[] {
  if (!Array.isArray(v)) throw invalid(field, 'must be an array of strings')
  if (v.length > max) throw invalid(field, `has more than ${max} entries`)
  for (const s of v) {
    if (typeof s !== 'string' || s.length === 0) throw invalid(field, 'must hold non-empty strings')
    if (s.length > maxLen) throw invalid(field, `entries must be at most ${maxLen} characters`)
  }
  return [...v] as string[]
}

function intIn (v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(field, `must be an integer in [${min}, ${max}]`)
  }
  return v
}

function chainConfig (v: unknown): NodeChainConfig {
  if (!isRecord(v)) throw invalid('chain', 'must be an object')
  const out: NodeChainConfig = {}
  if (v.rpc !== undefined) {
    if (typeof v.rpc !== 'string' || !/^(https?|wss?):\/\//.test(v.rpc)) throw invalid('chain.rpc', 'must be an http(s) or ws(s) URL')
    out.rpc = v.rpc
  }
  if (v.hub !== undefined) {
    if (typeof v.hub !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(v.hub)) throw invalid('chain.hub', 'must be a 0x-prefixed address')
    out.hub = v.hub
  }
  if (v.chainId !== undefined) out.chainId = intIn(v.chainId, 'chain.chainId', 1, Number.MAX_SAFE_INTEGER)
  if (v.fromBlock !== undefined) out.fromBlock = intIn(v.fromBlock, 'chain.fromBlock', 0, Number.MAX_SAFE_INTEGER)
  if (v.confirmations !== undefined) out.confirmations = intIn(v.confirmations, 'chain.confirmations', 0, 1000)
  if (v.pollIntervalMs !== undefined) out.pollIntervalMs = intIn(v.pollIntervalMs, 'chain.pollIntervalMs', 10, 600_000)
  return out
}

const NAT_KEYS = new Set(Object.keys(defaultNodeConfig().nat))

function natConfig (v: unknown): NodeNatConfig {
  if (!isRecord(v)) throw invalid('nat', 'must be an object')
  for (const k of Object.keys(v)) if (!NAT_KEYS.has(k)) throw invalid(`nat.${k}`, 'is not a known setting')
  const d = defaultNodeConfig().nat
  const m = { ...d, ...v } as Record<string, unknown>
  const sw = (k: 'relayServer' | 'relayClient'): boolean | 'auto' => {
    if (m[k] !== true && m[k] !== false && m[k] !== 'auto') throw invalid(`nat.${k}`, "must be true, false or 'auto'")
    return m[k] as boolean | 'auto'
  }
  const bool = (k: 'holePunching' | 'autonat' | 'upnp'): boolean => {
    if (typeof m[k] !== 'boolean') throw invalid(`nat.${k}`, 'must be true or false')
    return m[k] as boolean
  }
  return {
    relayServer: sw('relayServer'),
    relayClient: sw('relayClient'),
    relayMaxReservations: intIn(m.relayMaxReservations, 'nat.relayMaxReservations', 0, 10_000),
    relayDurationLimitMs: intIn(m.relayDurationLimitMs, 'nat.relayDurationLimitMs', 1_000, 24 * 3600_000),
    relayDataLimitBytes: intIn(m.relayDataLimitBytes, 'nat.relayDataLimitBytes', 1_024, 2 ** 40),
    holePunching: bool('holePunching'),
    autonat: bool('autonat'),
    upnp: bool('upnp')
  }
}

const KNOWN_KEYS = new Set(Object.keys(defaultNodeConfig()).concat('swarmKeyFile', 'metricsListen'))

/**
 * Checks a parsed config object field by field; missing fields take their
 * default (so an older config.json keeps loading), unknown fields are refused
 * (a typo must not be silently ignored).
 * @throws ConfigError CONFIG_INVALID with `details.field`
 */
export function validateConfig (input: unknown): NodeConfig {
  if (!isRecord(input)) throw invalid('(root)', 'must be a JSON object')
  for (const k of Object.keys(input)) if (!KNOWN_KEYS.has(k)) throw invalid(k, 'is not a known setting')
  const v = { ...defaultNodeConfig(), ...input } as Record<string, unknown>
  const cfg: NodeConfig = {
    listen: stringArray(v.listen, 'listen', 16, 256),
    bootstrap: stringArray(v.bootstrap, 'bootstrap', 256, 512),
    swarmId: '',
    apiPort: intIn(v.apiPort, 'apiPort', 0, 65535),
    role: 'provider',
    cpus: intIn(v.cpus, 'cpus', 0, 4096),
    memoryMb: intIn(v.memoryMb, 'memoryMb', 0, 64 * 1024 * 1024),
    diskMb: intIn(v.diskMb, 'diskMb', 0, 0xffffffff),
    gpus: intIn(v.gpus, 'gpus', 0, 1024),
    executors: stringArray(v.executors, 'executors', CONFIG_LIMITS.maxExecutors, 32),
    category: intIn(v.category, 'category', 0, 1_000_000),
    priceFloor: '',
    defaultMaxPrice: '',
    tags: stringArray(v.tags, 'tags', CONFIG_LIMITS.maxTags, CONFIG_LIMITS.maxTagLength),
    advertIntervalMs: intIn(v.advertIntervalMs, 'advertIntervalMs', CONFIG_LIMITS.minAdvertIntervalMs, CONFIG_LIMITS.maxAdvertIntervalMs),
    bidTransport: 'stream',
    chain: chainConfig(v.chain),
    nat: natConfig(v.nat),
    announce: stringArray(v.announce, 'announce', 16, 256),
    mdns: false,
    maxKnownPeers: intIn(v.maxKnownPeers, 'maxKnownPeers', 0, 1024)
  }
  if (typeof v.mdns !== 'boolean') throw invalid('mdns', 'must be true or false')
  cfg.mdns = v.mdns
  if (v.bidTransport !== 'stream' && v.bidTransport !== 'gossip') throw invalid('bidTransport', "must be 'stream' or 'gossip'")
  cfg.bidTransport = v.bidTransport
  if (cfg.listen.length === 0) throw invalid('listen', 'needs at least one address')
  if (typeof v.swarmId !== 'string' || !CONFIG_LIMITS.swarmIdPattern.test(v.swarmId)) {
    throw invalid('swarmId', 'must be 1-32 characters of [a-z0-9-], starting with a letter or digit')
  }
  cfg.swarmId = v.swarmId
  if (v.role !== 'provider' && v.role !== 'requester') throw invalid('role', "must be 'provider' or 'requester'")
  cfg.role = v.role
  // bigint-safe: nRLC amounts exceed 2^53 quickly (1 RLC = 1e9 nRLC)
  if (typeof v.priceFloor !== 'string' || !/^(0|[1-9][0-9]{0,30})$/.test(v.priceFloor)) {
    throw invalid('priceFloor', 'must be a non-negative integer (nRLC) as a decimal string')
  }
  cfg.priceFloor = v.priceFloor
  // a config.json written before it existed gets the default (merged above)
  const cap = v.defaultMaxPrice
  // below 2^48: the hub's price fields are 48 bits
  if (typeof cap !== 'string' || !/^(0|[1-9][0-9]{0,14})$/.test(cap) || BigInt(cap) >= 1n << 48n) {
    throw invalid('defaultMaxPrice', 'must be a non-negative integer (nRLC) below 2^48 as a decimal string')
  }
  cfg.defaultMaxPrice = cap
  if (v.metricsListen !== undefined) {
    if (typeof v.metricsListen !== 'string') throw invalid('metricsListen', 'must be HOST:PORT')
    try {
      parseMetricsListen(v.metricsListen)
    } catch {
      throw invalid('metricsListen', 'must be HOST:PORT (e.g. 127.0.0.1:9464)')
    }
    cfg.metricsListen = v.metricsListen
  }
  if (v.swarmKeyFile !== undefined) {
    if (typeof v.swarmKeyFile !== 'string' || v.swarmKeyFile.length === 0) throw invalid('swarmKeyFile', 'must be a file path')
    cfg.swarmKeyFile = v.swarmKeyFile
  }
  return cfg
}

/** Reads and validates config.json. */
export async function loadConfig (file: string): Promise<NodeConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError('DATA_DIR_NOT_INITIALIZED', `no config file at ${file}: run \`iexec-p2p init\``, { file })
    }
    throw new ConfigError('DATA_DIR_CORRUPT', `cannot read ${file}`, { file }, { cause: err })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new ConfigError('CONFIG_INVALID', `${file} is not valid JSON (truncated or edited?): ${CONFIG_FIX}`, { file, field: '(root)' }, { cause: err })
  }
  try {
    return validateConfig(parsed)
  } catch (err) {
    // the file named, so that an operator knows which one to fix
    if (err instanceof ConfigError) throw new ConfigError(err.code, `${file}: ${err.message}: ${CONFIG_FIX}`, { ...err.details, file }, { cause: err })
    throw err
  }
}

/** What an operator does about a config.json that does not load. */
const CONFIG_FIX = 'fix it, or move it away and run `iexec-p2p init` on the data dir to write a default one (the keys are kept)'

/** Validates then writes config.json atomically (write to a temp file, fsync, rename). */
export async function saveConfig (file: string, config: NodeConfig): Promise<void> {
  const checked = validateConfig(config)
  const tmp = `${file}.${process.pid}.tmp`
  // fsynced before the rename: a crash never leaves an empty or half config.json
  await writeFileDurable(file, JSON.stringify(checked, null, 2) + '\n', { mode: 0o600, tmp })
}
