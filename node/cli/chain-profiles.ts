import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { checkAddress, checkChainSettings } from '../config/chain-settings.js'
import { isIexecError } from '../common/errors.js'
import { CliError, UsageError } from './errors.js'

// Chain profiles (issue 24): named chains in a chains file, so a node joins
// one with `init --chain NAME` instead of four flags. `local` is built in:
// the chain of the swarm `swarm up` runs in the default swarm dir.

/** One chain: what a node needs to join it. */
export interface ChainProfile {
  rpc: string
  chainId: number
  hub: string
  rlc?: string
  /** block the hub was deployed in: event followers start there */
  fromBlock?: number
  /** blocks a node may wait before trusting an event (informative: the node's own setting decides) */
  confirmations?: number
  /** seconds between blocks, 0 = a block per transaction (informative) */
  blockTime?: number
  /**
   * peers of this chain's swarm to dial at start (each ending in /p2p/<peerId>,
   * or a /dnsaddr/<name> whose TXT records list them): `init --chain` writes
   * them into a config that has none, `start --chain` uses them when no
   * --bootstrap is given
   */
  bootstrap?: string[]
}

/** A bootstrap list of a profile: checked with the multiaddr parser only (libp2p is not loaded for a profile). */
export async function checkBootstrapList (v: unknown): Promise<string[] | string> {
  if (!Array.isArray(v)) return 'has a bootstrap that is not a list of multiaddrs'
  if (v.length > 64) return 'has more than 64 bootstrap addresses'
  const { multiaddr } = await import('@multiformats/multiaddr')
  for (const a of v) {
    if (typeof a !== 'string' || a.length === 0 || a.length > 512) return 'has a bootstrap address that is not a string of 1-512 characters'
    try {
      multiaddr(a)
    } catch {
      return `has a bootstrap address that is not a multiaddr: ${a}`
    }
    if (!/\/p2p\/[^/]+\/?$/.test(a) && !/^\/dnsaddr\/[^/]+\/?$/.test(a)) return `has a bootstrap address that does not end with /p2p/<peerId> and is no /dnsaddr/<name>: ${a}`
  }
  return [...v] as string[]
}

/** What a chains file holds. */
export interface ChainsFile {
  chains: Record<string, ChainProfile>
}

export const LOCAL_PROFILE = 'local'
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,31}$/

/** $IEXEC_P2P_CHAINS_FILE, else ~/.iexec-p2p/chains.json (shared by every data dir of the user). */
export function defaultChainsFile (): string {
  const env = process.env.IEXEC_P2P_CHAINS_FILE
  return env !== undefined && env !== '' ? resolve(env) : join(homedir(), '.iexec-p2p', 'chains.json')
}

export function checkProfileName (raw: string): string {
  if (!NAME_RE.test(raw)) throw new UsageError('CLI_BAD_OPTION', `a chain profile name is 1-32 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit, got "${raw}"`)
  return raw
}

async function checkProfile (name: string, v: unknown, file: string): Promise<ChainProfile> {
  const invalid = (why: string): CliError => new CliError('CHAINS_FILE_INVALID', `${file}: chain "${name}" ${why}`, { file, chain: name })
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid('is not an object')
  const p = v as Record<string, unknown>
  let base
  try {
    base = checkChainSettings({ rpc: p.rpc, hub: p.hub, chainId: p.chainId, ...(p.fromBlock !== undefined ? { fromBlock: p.fromBlock } : {}) } as never)
  } catch (err) {
    throw invalid(isIexecError(err) ? err.message : String(err))
  }
  if (base.rpc === undefined || base.hub === undefined || base.chainId === undefined) throw invalid('needs rpc, chainId and hub')
  const out: ChainProfile = { rpc: base.rpc, chainId: base.chainId, hub: base.hub, ...(base.fromBlock !== undefined ? { fromBlock: base.fromBlock } : {}) }
  if (p.rlc !== undefined) {
    try {
      out.rlc = checkAddress(String(p.rlc), 'rlc')
    } catch {
      throw invalid('has a bad rlc address')
    }
  }
  for (const f of ['confirmations', 'blockTime'] as const) {
    if (p[f] === undefined) continue
    if (typeof p[f] !== 'number' || !Number.isInteger(p[f]) || p[f] < 0 || p[f] > 1_000_000) throw invalid(`has a bad ${f} (a whole number of ${f === 'blockTime' ? 'seconds' : 'blocks'})`)
    out[f] = p[f]
  }
  if (p.bootstrap !== undefined) {
    const b = await checkBootstrapList(p.bootstrap)
    if (typeof b === 'string') throw invalid(b)
    out.bootstrap = b
  }
  return out
}

/**
 * Reads and checks a chains file; a missing file has no chains.
 * @throws CliError CHAINS_FILE_INVALID, CLI_FILE_UNREADABLE
 */
export async function readChainsFile (file: string): Promise<ChainsFile> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { chains: {} }
    throw new CliError('CLI_FILE_UNREADABLE', `cannot read the chains file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { file })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new CliError('CHAINS_FILE_INVALID', `${file} is not JSON`, { file })
  }
  const chains = (parsed as { chains?: unknown })?.chains
  if (typeof chains !== 'object' || chains === null || Array.isArray(chains)) throw new CliError('CHAINS_FILE_INVALID', `${file} must be {"chains": {"NAME": {...}}}`, { file })
  const out: Record<string, ChainProfile> = {}
  for (const [name, v] of Object.entries(chains)) {
    if (!NAME_RE.test(name) || name === LOCAL_PROFILE) throw new CliError('CHAINS_FILE_INVALID', `${file}: "${name}" is not a usable chain name`, { file, chain: name })
    out[name] = await checkProfile(name, v, file)
  }
  return { chains: out }
}

/** The built-in `local` profile: the chain of the swarm in the default swarm dir. */
async function localProfile (): Promise<ChainProfile> {
  const { defaultSwarmDir, readSwarmFile } = await import('./swarm.js')
  const dir = defaultSwarmDir()
  const swarm = await readSwarmFile(dir)
  const c = swarm?.chain
  if (c == null || c.hub === '') {
    throw new CliError('CHAIN_PROFILE_NOT_FOUND', `the built-in chain "local" is the chain of \`iexec-p2p swarm up\` in ${dir}, and none runs there`, { chain: LOCAL_PROFILE, dir })
  }
  return { rpc: c.rpc, chainId: c.chainId, hub: c.hub, rlc: c.rlc, fromBlock: c.blockNumber }
}

/**
 * A profile by name: `local`, or one of the chains file.
 * @throws CliError CHAIN_PROFILE_NOT_FOUND, CHAINS_FILE_INVALID
 */
export async function resolveChainProfile (name: string, file: string = defaultChainsFile()): Promise<ChainProfile> {
  checkProfileName(name)
  if (name === LOCAL_PROFILE) return await localProfile()
  const { chains } = await readChainsFile(file)
  const p = chains[name]
  if (p === undefined) {
    const known = [LOCAL_PROFILE, ...Object.keys(chains)].join(', ')
    throw new CliError('CHAIN_PROFILE_NOT_FOUND', `no chain "${name}" in ${file} (known: ${known})`, { chain: name, file })
  }
  return p
}

/**
 * Adds a profile to the chains file (written whole, then renamed over the
 * old one). An existing name is never replaced.
 * @throws CliError CHAIN_PROFILE_EXISTS, CHAINS_FILE_INVALID
 */
export async function saveChainProfile (file: string, name: string, profile: ChainProfile): Promise<void> {
  await assertProfileFree(file, name)
  const current = await readChainsFile(file)
  current.chains[name] = profile
  await mkdir(dirname(file), { recursive: true, mode: 0o700 })
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(current, null, 2) + '\n', { mode: 0o600 })
  await rename(tmp, file)
}

/** Checked before a deployment, so a taken name costs no gas. */
export async function assertProfileFree (file: string, name: string): Promise<void> {
  checkProfileName(name)
  if (name === LOCAL_PROFILE) throw new CliError('CHAIN_PROFILE_EXISTS', `"${LOCAL_PROFILE}" is built in: choose another profile name`, { chain: name })
  const { chains } = await readChainsFile(file)
  if (chains[name] !== undefined) throw new CliError('CHAIN_PROFILE_EXISTS', `${file} already has a chain "${name}": a profile is never replaced (remove it by hand, or choose another name)`, { chain: name, file })
}

/** `--chain NAME` as the four chain flags; refuses a mix of both. */
export async function chainFlagsFromProfile (opts: ChainFlags & { chain?: string, chainsFile?: string }): Promise<ChainFlags> {
  if (opts.chain === undefined) {
    if (opts.chainsFile !== undefined) throw new UsageError('CLI_USAGE', '--chains-file goes with --chain NAME')
    return opts
  }
  if (opts.rpc !== undefined || opts.hub !== undefined || opts.chainId !== undefined || opts.fromBlock !== undefined) {
    throw new UsageError('CLI_USAGE', '--chain NAME gives the RPC, hub, chain id and start block: do not add --rpc/--hub/--chain-id/--from-block')
  }
  const p = await resolveChainProfile(opts.chain, opts.chainsFile !== undefined ? resolve(opts.chainsFile) : defaultChainsFile())
  return { rpc: p.rpc, hub: p.hub, chainId: String(p.chainId), ...(p.fromBlock !== undefined ? { fromBlock: String(p.fromBlock) } : {}) }
}

/** The bootstrap list of `--chain NAME` (none without --chain or when the profile has none). */
export async function profileBootstrap (opts: { chain?: string, chainsFile?: string }): Promise<string[] | undefined> {
  if (opts.chain === undefined) return undefined
  const p = await resolveChainProfile(opts.chain, opts.chainsFile !== undefined ? resolve(opts.chainsFile) : defaultChainsFile())
  return p.bootstrap !== undefined && p.bootstrap.length > 0 ? p.bootstrap : undefined
}

/** Chain flags as commander hands them over. */
export interface ChainFlags {
  rpc?: string
  hub?: string
  chainId?: string
  fromBlock?: string
}
