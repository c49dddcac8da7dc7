import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { accessSync, constants, statSync } from 'node:fs'
import { delimiter, dirname, join } from 'node:path'
import { createServer } from 'node:net'
import { ChainError } from './errors.js'

/** anvil's well-known dev mnemonic: its first accounts are funded with 10000 ETH */
export const ANVIL_MNEMONIC = 'test test test test test test test test test test test junk'

export interface LocalChainOptions {
  /** seconds between blocks; undefined = automine (a block per transaction) */
  blockTime?: number
  /** port on 127.0.0.1; 0 or undefined = a free one */
  port?: number
  /** funded dev accounts to create */
  accounts?: number
  chainId?: number
  /** how long to wait for the RPC to answer */
  readyTimeoutMs?: number
  /** persist the chain state to this file and reload it on start (anvil --state) */
  stateFile?: string
}

export interface LocalChain {
  rpcUrl: string
  chainId: number
  port: number
  pid: number
  /** private keys of the funded dev accounts, derived from ANVIL_MNEMONIC */
  privateKeys: string[]
  stop: () => Promise<void>
}

/** The npm package that ships anvil for Linux x86-64: an optional dependency, absent elsewhere. */
export const ANVIL_PACKAGE = '@foundry-rs/anvil-linux-amd64'

/** Where `anvilBinary` looks; tests replace parts to simulate an install without the package. */
export interface AnvilLookup {
  /** the packaged binary's path, or undefined when the package is not installed */
  packaged?: () => string | undefined
  /** process.env by default: PATH, IEXEC_P2P_ANVIL, IEXEC_P2P_ANVIL_PACKAGE */
  env?: NodeJS.ProcessEnv
}

function packagedAnvil (): string | undefined {
  try {
    const require = createRequire(import.meta.url)
    return join(dirname(require.resolve(`${ANVIL_PACKAGE}/package.json`)), 'bin', 'anvil')
  } catch {
    return undefined
  }
}

function executable (file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return statSync(file).isFile()
  } catch {
    return false
  }
}

/**
 * Path of the anvil binary: $IEXEC_P2P_ANVIL when set, else the one shipped
 * in the optional npm package (Linux x86-64; no download at run time), else
 * an `anvil` on PATH (Foundry, any platform). IEXEC_P2P_ANVIL_PACKAGE=off
 * ignores the package, as an install on another platform would lack it.
 * Only a local chain needs it: a node joining a remote chain never asks.
 * @throws ChainError LOCAL_CHAIN_UNAVAILABLE
 */
export function anvilBinary (lookup: AnvilLookup = {}): string {
  const env = lookup.env ?? process.env
  const explicit = env.IEXEC_P2P_ANVIL
  if (explicit !== undefined && explicit !== '') {
    if (!executable(explicit)) throw new ChainError('LOCAL_CHAIN_UNAVAILABLE', `IEXEC_P2P_ANVIL=${explicit} is not an executable file`, { path: explicit })
    return explicit
  }
  if (env.IEXEC_P2P_ANVIL_PACKAGE !== 'off') {
    const packaged = (lookup.packaged ?? packagedAnvil)()
    if (packaged !== undefined && executable(packaged)) return packaged
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, process.platform === 'win32' ? 'anvil.exe' : 'anvil')
    if (executable(candidate)) return candidate
  }
  throw new ChainError('LOCAL_CHAIN_UNAVAILABLE',
    `a local chain needs Linux x86-64 (the optional npm package ${ANVIL_PACKAGE}, not installed here: ${process.platform}-${process.arch}) ` +
    'or an `anvil` on PATH (Foundry: https://getfoundry.sh); without one, join a remote chain with `iexec-p2p init --rpc URL --hub ADDRESS`',
    { platform: process.platform, arch: process.arch })
}

/** A free TCP port on 127.0.0.1, chosen by the OS. */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => { resolve(port) })
    })
  })
}

/** True when nothing listens on 127.0.0.1:port. */
export async function portIsFree (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', () => { resolve(false) })
    srv.listen(port, '127.0.0.1', () => { srv.close(() => { resolve(true) }) })
  })
}

/** The chain id an RPC endpoint answers, or undefined when it does not answer within 1 s. */
export async function rpcChainId (url: string): Promise<number | undefined> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(1000)
    })
    const body = await res.json() as { result?: string }
    return body.result !== undefined ? Number(body.result) : undefined
  } catch {
    return undefined
  }
}

/**
 * Starts anvil on 127.0.0.1 and resolves once its RPC answers. The caller owns
 * the process: `stop()` ends it (SIGTERM, then SIGKILL) and waits for its exit.
 */
export async function startLocalChain (opts: LocalChainOptions = {}): Promise<LocalChain> {
  const port = opts.port !== undefined && opts.port !== 0 ? opts.port : await freePort()
  // another process on the port would answer our ready check in anvil's place
  if (!(await portIsFree(port))) {
    throw new ChainError('CHAIN_START_FAILED', `port ${port} on 127.0.0.1 is already in use`, { port })
  }
  const chainId = opts.chainId ?? 31337
  const accounts = opts.accounts ?? 20
  const args = [
    '--host', '127.0.0.1',
    '--port', String(port),
    '--chain-id', String(chainId),
    '--accounts', String(accounts),
    '--mnemonic', ANVIL_MNEMONIC,
    '--silent'
  ]
  if (opts.blockTime !== undefined) args.push('--block-time', String(opts.blockTime))
  if (opts.stateFile !== undefined) args.push('--state', opts.stateFile)

  const child: ChildProcess = spawn(anvilBinary(), args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000) })
  const exited = new Promise<number | null>((resolve) => { child.once('exit', (code) => { resolve(code) }) })
  let dead = false
  void exited.then(() => { dead = true })

  const rpcUrl = `http://127.0.0.1:${port}`
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000)
  for (;;) {
    if (dead) {
      throw new ChainError('CHAIN_START_FAILED', `anvil exited before it was ready: ${stderr.trim() || 'no output'}`, { port })
    }
    const id = await rpcChainId(rpcUrl)
    if (id === chainId) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new ChainError('CHAIN_START_FAILED', `anvil did not answer on ${rpcUrl} within ${opts.readyTimeoutMs ?? 15_000} ms`, { port })
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }

  const { HDNodeWallet, Mnemonic } = await import('ethers')
  const mnemonic = Mnemonic.fromPhrase(ANVIL_MNEMONIC)
  const privateKeys: string[] = []
  for (let i = 0; i < accounts; i++) {
    privateKeys.push(HDNodeWallet.fromMnemonic(mnemonic, `m/44'/60'/0'/0/${i}`).privateKey)
  }

  const stop = async (): Promise<void> => {
    if (dead) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 3000)
    await exited
    clearTimeout(timer)
  }

  return { rpcUrl, chainId, port, pid: child.pid ?? -1, privateKeys, stop }
}
