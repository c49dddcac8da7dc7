import { resolve } from 'node:path'
import { defaultDataDir, dataDirPaths } from '../config/paths.js'
import { isIexecError } from '../common/errors.js'
import type { NodeChainConfig } from '../config/index.js'
import type { ChainFlags } from './chain-commands.js'
import { printJson, type CliIo } from './output.js'
import { resolvePassword } from './parse.js'

export interface InitCommandOptions extends ChainFlags {
  /** a chain profile instead of the four chain flags */
  chain?: string
  chainsFile?: string
  dataDir?: string
  passwordFile?: string
  devUnprotectedKey?: boolean
  /** with chain flags: write them without asking the RPC (a chain not reachable yet) */
  offline?: boolean
  json?: boolean
}

/**
 * `iexec-p2p init`: creates the data dir (keys, wallet, config, API token);
 * idempotent. With --rpc/--hub/--chain-id/--from-block it also writes the
 * chain section of config.json (on a new or an existing data dir), checked
 * first: format offline, then chain id and hub code against the RPC.
 */
export async function initCommand (io: CliIo, opts: InitCommandOptions): Promise<void> {
  const dataDir = resolve(opts.dataDir ?? defaultDataDir())
  const password = await resolvePassword(opts.passwordFile)
  // loaded here, not at CLI start: ethers and libp2p crypto cost ~0.5 s to import
  const { initDataDir, loadConfig, saveConfig } = await import('../config/index.js')
  const { hasChainFlags, resolveInitChain } = await import('./chain-commands.js')
  const configFile = dataDirPaths(dataDir).config
  // --chain NAME: the four flags from a chain profile (issue 24)
  const { chainFlagsFromProfile } = await import('./chain-profiles.js')
  const chainFlags = await chainFlagsFromProfile(opts)

  // checked before anything is written, so bad chain flags leave no half-made dir
  let chain: NodeChainConfig | undefined
  let verified = false
  if (hasChainFlags(chainFlags)) {
    let current: NodeChainConfig = {}
    try {
      current = (await loadConfig(configFile)).chain
    } catch (err) {
      if (!isIexecError(err, 'DATA_DIR_NOT_INITIALIZED')) throw err
    }
    const r = await resolveInitChain(current, chainFlags, opts.offline === true)
    chain = r.chain
    verified = r.verified
  } else if (opts.offline === true) {
    const { UsageError } = await import('./errors.js')
    throw new UsageError('CLI_USAGE', '--offline only applies with --rpc/--hub/--chain-id/--from-block')
  }

  const result = await initDataDir({
    dataDir,
    ...(password !== undefined ? { password } : {}),
    ...(opts.devUnprotectedKey === true ? { devUnprotectedKey: true } : {})
  })
  // the profile's swarm peers, into a config that has none of its own
  const { profileBootstrap } = await import('./chain-profiles.js')
  const bootstrap = await profileBootstrap(opts)
  if (chain !== undefined || bootstrap !== undefined) {
    const config = await loadConfig(configFile)
    if (chain !== undefined) config.chain = chain
    if (bootstrap !== undefined && config.bootstrap.length === 0) config.bootstrap = bootstrap
    await saveConfig(configFile, config)
  }
  if (opts.json === true) {
    printJson(io, { ...result, ...(chain !== undefined ? { chain, chainVerified: verified } : {}) })
    return
  }
  io.out(`${result.created ? 'initialised' : 'already initialised:'} ${result.dataDir}\n`)
  io.out(`peer id  ${result.peerId}\naddress  ${result.address}\n`)
  if (chain !== undefined) {
    io.out(`chain    ${chain.rpc ?? '-'} (chain id ${chain.chainId ?? 'unchecked'}), hub ${chain.hub ?? '-'}, events from block ${chain.fromBlock ?? 0}${verified ? '' : ' (not checked: --offline)'}\n`)
  }
  if (result.unprotected) io.err('iexec-p2p: warning: the wallet key is stored unprotected (dev only): do not hold real funds with it\n')
}
