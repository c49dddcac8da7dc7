import { resolve } from 'node:path'
import { defaultDataDir } from '../config/paths.js'
import { isIexecError } from '../common/errors.js'
import type { NodeChainConfig } from '../config/index.js'
import { UsageError } from './errors.js'
import { CLI_DEFAULTS } from './options.js'
import { printJson, type CliIo } from './output.js'
import { parseIntOption, parsePortOption, parsePriceOption, parseTagOption, resolvePassword } from './parse.js'
import { hasChainFlags, parseChainFlags, type ChainFlags } from './chain-commands.js'
import { nodeReady } from './ready.js'

/** Raw strings from commander: validated here, then handed to the node. */
export interface StartCommandOptions extends ChainFlags {
  /** a chain profile instead of the four chain flags (issue 24) */
  chain?: string
  chainsFile?: string
  requester?: boolean
  listen?: string[]
  bootstrap?: string[]
  announce?: string[]
  mdns?: boolean
  relayServer?: string
  relayClient?: string
  upnp?: boolean
  swarmKey?: string
  apiPort?: string
  cpus?: string
  memory?: string
  disk?: string
  metricsListen?: string
  price?: string
  category?: string
  tag?: string[]
  dataDir?: string
  passwordFile?: string
  init?: boolean
  devUnprotectedKey?: boolean
  /** forget the stored event cursor and read the hub's events again (a damaged cursor) */
  resyncEvents?: boolean
  json?: boolean
}

/** What `start --json` prints once the node is ready (one line). */
export interface StartReadyJson {
  peerId: string
  address: string
  role: string
  multiaddrs: string[]
  api: string
  dataDir: string
  pid: number
}

/**
 * `iexec-p2p start`: runs a node in the foreground until SIGINT/SIGTERM or an
 * API shutdown. Returns the exit code.
 */
export async function startCommand (io: CliIo, opts: StartCommandOptions): Promise<number> {
  const dataDir = resolve(opts.dataDir ?? defaultDataDir())
  const { parseMultiaddrs } = await import('../network/index.js')
  const addrs = (flag: string, list: string[] | undefined, kind: 'listen' | 'bootstrap'): string[] | undefined => {
    if (list === undefined) return undefined
    try {
      parseMultiaddrs(list, kind)
    } catch (err) {
      // a typo on the command line is a usage error, with the network module's code
      if (isIexecError(err)) throw new UsageError(err.code, `${flag}: ${err.message}`, err.details)
      throw err
    }
    return list
  }
  const listen = addrs('--listen', opts.listen, 'listen')
  let bootstrap = addrs('--bootstrap', opts.bootstrap, 'bootstrap')
  if (opts.announce !== undefined) {
    const { checkAnnounceAddrs } = await import('../network/index.js')
    try {
      checkAnnounceAddrs(opts.announce)
    } catch (err) {
      if (isIexecError(err)) throw new UsageError(err.code, `--announce: ${err.message}`, err.details)
      throw err
    }
  }
  const natSwitch = (flag: string, v: string | undefined): boolean | 'auto' | undefined => {
    if (v === undefined) return undefined
    if (v === 'on') return true
    if (v === 'off') return false
    if (v === 'auto') return 'auto'
    throw new UsageError('CLI_BAD_OPTION', `${flag} must be on, off or auto, got "${v}"`)
  }
  const relayServer = natSwitch('--relay-server', opts.relayServer)
  const relayClient = natSwitch('--relay-client', opts.relayClient)
  const nat = {
    ...(relayServer !== undefined ? { relayServer } : {}),
    ...(relayClient !== undefined ? { relayClient } : {}),
    ...(opts.upnp === true ? { upnp: true } : {})
  }
  const apiPort = opts.apiPort !== undefined ? parsePortOption('--api-port', opts.apiPort) : undefined
  const cpus = opts.cpus !== undefined ? parseIntOption('--cpus', opts.cpus, 1, 1024) : undefined
  const memoryMb = opts.memory !== undefined ? parseIntOption('--memory', opts.memory, 64, 16 * 1024 * 1024) : undefined
  const diskMb = opts.disk !== undefined ? parseIntOption('--disk', opts.disk, 1, 0xffffffff) : undefined
  const priceFloor = opts.price !== undefined ? parsePriceOption('--price', opts.price) : undefined
  const category = opts.category !== undefined ? parseIntOption('--category', opts.category, 0, 1_000_000) : undefined
  const tags = opts.tag?.map(parseTagOption)
  const swarmKeyFile = opts.swarmKey !== undefined ? resolve(opts.swarmKey) : undefined
  const password = await resolvePassword(opts.passwordFile)
  // chain flags override config.json for this run only; the node itself
  // checks the RPC, chain id and hub code when it connects (RPC_UNREACHABLE,
  // CHAIN_ID_MISMATCH, CONTRACT_NOT_FOUND)
  let chain: Partial<NodeChainConfig> | undefined
  // --chain NAME: the four flags from a chain profile (issue 24)
  const { chainFlagsFromProfile } = await import('./chain-profiles.js')
  const chainFlags = await chainFlagsFromProfile(opts)
  // --chain NAME also names the swarm's peers, unless --bootstrap does
  if (bootstrap === undefined) {
    const { profileBootstrap } = await import('./chain-profiles.js')
    bootstrap = await profileBootstrap(opts)
  }
  if (hasChainFlags(chainFlags)) {
    const flags = parseChainFlags(chainFlags)
    chain = { ...flags }
    // a hub or RPC of this run must not inherit the start block or chain id
    // config.json holds for another one: keys set to undefined are dropped
    if (flags.hub !== undefined && flags.fromBlock === undefined) chain.fromBlock = undefined
    if (flags.rpc !== undefined && flags.chainId === undefined) chain.chainId = undefined
  }

  if (opts.init === true) {
    const { initDataDir } = await import('../config/index.js')
    await initDataDir({
      dataDir,
      ...(password !== undefined ? { password } : {}),
      ...(opts.devUnprotectedKey === true ? { devUnprotectedKey: true } : {})
    })
  } else if (opts.devUnprotectedKey === true) {
    throw new UsageError('CLI_USAGE', '--dev-unprotected-key only applies with --init (or `iexec-p2p init`)')
  }

  // a signal during the slow start is remembered and honoured once start() returns
  let stopRequested = false
  let node: import('../node.js').IexecNode | undefined
  let signals = 0
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++
    if (signals > 1) {
      // a second Ctrl-C means "now": do not wait for a slow stop
      io.err(`iexec-p2p: ${sig} again, exiting without a clean stop\n`)
      process.exit(130)
    }
    stopRequested = true
    if (node !== undefined) void stopWithBound(node, io)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    const { IexecNode } = await import('../node.js')
    node = await IexecNode.create({
      dataDir,
      ...(password !== undefined ? { password } : {}),
      ...(listen !== undefined ? { listen } : {}),
      ...(bootstrap !== undefined ? { bootstrap } : {}),
      ...(opts.announce !== undefined ? { announce: opts.announce } : {}),
      ...(opts.mdns === true ? { mdns: true } : {}),
      ...(Object.keys(nat).length > 0 ? { nat } : {}),
      ...(swarmKeyFile !== undefined ? { swarmKeyFile } : {}),
      ...(apiPort !== undefined ? { apiPort } : {}),
      ...(opts.requester === true ? { requester: true } : {}),
      ...(cpus !== undefined ? { cpus } : {}),
      ...(memoryMb !== undefined ? { memoryMb } : {}),
      ...(diskMb !== undefined ? { diskMb } : {}),
      ...(opts.metricsListen !== undefined ? { metricsListen: opts.metricsListen } : {}),
      ...(priceFloor !== undefined ? { priceFloor } : {}),
      ...(tags !== undefined ? { tags } : {}),
      ...(category !== undefined ? { category } : {}),
      ...(chain !== undefined ? { chain } : {}),
      ...(opts.resyncEvents === true ? { resyncEvents: true } : {})
    })
    await node.start()
    const ready: StartReadyJson = {
      peerId: node.peerId,
      address: node.address,
      role: node.config.role,
      multiaddrs: node.multiaddrs(),
      api: node.apiUrl(),
      dataDir,
      pid: process.pid
    }
    for (const w of node.warnings) io.err(`iexec-p2p: warning: ${w}\n`)
    if (opts.json === true) {
      printJson(io, ready)
    } else {
      io.out([
        `iexec-p2p node started (${ready.role})`,
        `peer id    ${ready.peerId}`,
        `address    ${ready.address}`,
        `api        ${ready.api}`,
        ...ready.multiaddrs.map((m, i) => `${i === 0 ? 'listening ' : '          '} ${m}`),
        'stop with Ctrl-C (or `iexec-p2p shutdown`)'
      ].join('\n') + '\n')
    }
    nodeReady()
    if (stopRequested) void stopWithBound(node, io)
    else reportBootstrap(node, io)
    await node.whenStopped()
    if (opts.json !== true) io.out('iexec-p2p node stopped\n')
    return 0
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/** Says which bootstrap peers did not answer: the node runs anyway (others may dial it). */
function reportBootstrap (node: import('../node.js').IexecNode, io: CliIo): void {
  node.network.bootstrapSettled().then((list) => {
    const failed = list.filter((b) => b.state === 'failed')
    for (const b of failed) {
      io.err(`iexec-p2p: warning: bootstrap peer ${b.addr} is unreachable (${b.error ?? 'no answer'}); the node keeps running (BOOTSTRAP_UNREACHABLE)\n`)
    }
    if (list.length > 0 && failed.length === list.length) {
      io.err('iexec-p2p: warning: no bootstrap peer reachable: this node is alone until a peer dials it\n')
    }
  }).catch(() => {})
}

async function stopWithBound (node: import('../node.js').IexecNode, io: CliIo): Promise<void> {
  const timer = setTimeout(() => {
    io.err(`iexec-p2p: the node did not stop within ${CLI_DEFAULTS.nodeStopTimeoutMs} ms, exiting\n`)
    process.exit(1)
  }, CLI_DEFAULTS.nodeStopTimeoutMs)
  timer.unref()
  try {
    await node.stop()
  } finally {
    clearTimeout(timer)
  }
}
