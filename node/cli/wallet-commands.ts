import { readFile, writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { defaultDataDir } from '../config/paths.js'
import type { AccountView, StakeWithdrawView, UnstakeView, WalletSendView } from '../api/routes/wallet.js'
import { clientFor, type ClientCommandOptions } from './client-commands.js'
import { CliError, UsageError } from './errors.js'
import { printJson, type CliIo } from './output.js'
import { formatAmount, formatEth, parseAddress, parseAmount, readPasswordFile, resolvePassword } from './parse.js'

// The wallet commands of issue 24. create / import / export work on the data
// dir's files, offline (stop the node first: it reads its wallet at start);
// send, account show and stake withdraw / unstake ask the running node.

export interface WalletFileCommandOptions {
  dataDir?: string
  passwordFile?: string
  devUnprotectedKey?: boolean
  json?: boolean
}

export interface WalletImportCommandOptions extends WalletFileCommandOptions {
  privateKeyFile?: string
  keystore?: string
  keystorePasswordFile?: string
}

export interface WalletExportCommandOptions {
  dataDir?: string
  passwordFile?: string
  out?: string
  json?: boolean
}

/** What `wallet create --json` and `wallet import --json` print. */
export interface WalletWriteJson {
  dataDir: string
  file: string
  address: string
  unprotected: boolean
}

async function readInputFile (flag: string, file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new CliError('CLI_FILE_UNREADABLE', `cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { file })
  }
}

function printWritten (io: CliIo, r: WalletWriteJson, verb: string, json: boolean | undefined): void {
  if (json === true) {
    printJson(io, r)
    return
  }
  io.out([
    `${verb} wallet ${r.address}`,
    `file      ${r.file}${r.unprotected ? ' (dev key in clear: do not hold real funds with it)' : ' (keystore, scrypt 2^17)'}`,
    `next      iexec-p2p init --data-dir ${r.dataDir} ... (init keeps this wallet)`,
    ''
  ].join('\n'))
}

/** `iexec-p2p wallet create`: a new random wallet in the data dir, encrypted with the node's password. */
export async function walletCreateCommand (io: CliIo, opts: WalletFileCommandOptions): Promise<void> {
  const dataDir = resolve(opts.dataDir ?? defaultDataDir())
  const password = opts.devUnprotectedKey === true ? undefined : await resolvePassword(opts.passwordFile)
  const { createWallet } = await import('../config/wallet-file.js')
  const r = await createWallet({ dataDir, ...(password !== undefined ? { password } : {}), devUnprotectedKey: opts.devUnprotectedKey === true })
  printWritten(io, r, 'created', opts.json)
}

/**
 * `iexec-p2p wallet import --private-key-file F | --keystore F
 * --keystore-password-file P`: an existing key into the data dir,
 * re-encrypted with the node's password (the keystore's when none is given).
 */
export async function walletImportCommand (io: CliIo, opts: WalletImportCommandOptions): Promise<void> {
  if ((opts.privateKeyFile === undefined) === (opts.keystore === undefined)) {
    throw new UsageError('CLI_USAGE', 'give exactly one of --private-key-file <file> and --keystore <file>')
  }
  if (opts.keystore !== undefined && opts.keystorePasswordFile === undefined) {
    throw new UsageError('CLI_MISSING_ARGUMENT', '--keystore needs --keystore-password-file <file> (the password that opens it)')
  }
  if (opts.privateKeyFile !== undefined && opts.keystorePasswordFile !== undefined) {
    throw new UsageError('CLI_USAGE', '--keystore-password-file goes with --keystore, not --private-key-file')
  }
  const dataDir = resolve(opts.dataDir ?? defaultDataDir())
  const { importWallet } = await import('../config/wallet-file.js')
  let r
  if (opts.keystore !== undefined) {
    const json = await readInputFile('--keystore', resolve(opts.keystore))
    const keystorePassword = await readPasswordFile(resolve(opts.keystorePasswordFile as string))
    const password = opts.devUnprotectedKey === true ? undefined : (await resolvePassword(opts.passwordFile)) ?? keystorePassword
    r = await importWallet({ kind: 'keystore', json, password: keystorePassword }, { dataDir, ...(password !== undefined ? { password } : {}), devUnprotectedKey: opts.devUnprotectedKey === true })
  } else {
    const privateKey = await readInputFile('--private-key-file', resolve(opts.privateKeyFile as string))
    const password = opts.devUnprotectedKey === true ? undefined : await resolvePassword(opts.passwordFile)
    r = await importWallet({ kind: 'privateKey', privateKey }, { dataDir, ...(password !== undefined ? { password } : {}), devUnprotectedKey: opts.devUnprotectedKey === true })
  }
  printWritten(io, r, 'imported', opts.json)
}

/**
 * `iexec-p2p wallet export`: the data dir's wallet as a standard JSON
 * keystore (checked to open with the password), to --out or stdout.
 */
export async function walletExportCommand (io: CliIo, opts: WalletExportCommandOptions): Promise<void> {
  const dataDir = resolve(opts.dataDir ?? defaultDataDir())
  const password = await resolvePassword(opts.passwordFile)
  const { exportWallet } = await import('../config/wallet-file.js')
  const r = await exportWallet({ dataDir, ...(password !== undefined ? { password } : {}) })
  if (opts.out === undefined) {
    if (opts.json === true) printJson(io, { address: r.address, keystore: JSON.parse(r.json) as unknown })
    else io.out(r.json.endsWith('\n') ? r.json : r.json + '\n')
    return
  }
  const file = resolve(opts.out)
  try {
    await writeFile(file, r.json, { mode: 0o600, flag: 'wx' })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') throw new CliError('CLI_FILE_EXISTS', `${file} exists: an export never overwrites a file`, { file })
    throw new CliError('CLI_FILE_UNREADABLE', `cannot write ${file}: ${code ?? String(err)}`, { file })
  }
  if (opts.json === true) printJson(io, { address: r.address, file })
  else io.out(`wallet ${r.address} exported to ${file} (JSON keystore, mode 0600)\n`)
}

/** An ETH amount: `0.5`, `0.5ETH` (up to 18 decimals) or `1000wei`; zero is refused. */
export function parseEthAmount (flag: string, raw: string): bigint {
  const s = raw.trim()
  const wei = /^(\d{1,30})\s*wei$/i.exec(s)
  let n: bigint
  if (wei !== null) {
    n = BigInt(wei[1])
  } else {
    const m = /^(\d{1,12})(?:\.(\d{1,18}))?(?:\s*eth)?$/i.exec(s)
    if (m === null) throw new UsageError('CLI_BAD_OPTION', `${flag} must be an amount of ETH like 0.5 or 0.5ETH, or of wei like 1000wei, got "${raw}"`)
    n = BigInt(m[1]) * 10n ** 18n + BigInt((m[2] ?? '').padEnd(18, '0'))
  }
  if (n === 0n) throw new UsageError('CLI_BAD_OPTION', `${flag} must be more than 0, got "${raw}"`)
  return n
}

/** `iexec-p2p wallet send-rlc TO AMOUNT` and `wallet send-eth TO AMOUNT`, from the running node's wallet. */
export async function walletSendCommand (io: CliIo, asset: 'eth' | 'rlc', toRaw: string, amountRaw: string, opts: ClientCommandOptions): Promise<void> {
  const to = parseAddress('TO', toRaw)
  const amount = asset === 'rlc' ? parseAmount('AMOUNT', amountRaw) : parseEthAmount('AMOUNT', amountRaw)
  const api = await clientFor(opts)
  const r = await api.call<WalletSendView>('POST', '/v1/wallet/send', { asset, to, amount: amount.toString() })
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  const fmt = asset === 'rlc' ? formatAmount : formatEth
  io.out(`sent ${fmt(amount)} to ${r.to} (tx ${r.txHash})\nwallet now holds ${fmt(r.balance)}\n`)
}

function when (unix: number, now: number): string {
  const left = unix - now
  const iso = new Date(unix * 1000).toISOString()
  return left > 0 ? `${iso} (in ${left} s, chain time)` : `${iso} (unlocked)`
}

/** `iexec-p2p account show`: wallet ETH and RLC, hub balance, frozen, stake, pending unstake. */
export async function accountShowCommand (io: CliIo, opts: ClientCommandOptions): Promise<void> {
  const api = await clientFor(opts)
  const a = await api.call<AccountView>('GET', '/v1/account')
  if (opts.json === true) {
    printJson(io, a)
    return
  }
  const lines = [
    `address          ${a.address}`,
    `eth              ${formatEth(a.eth)}`,
    `rlc (wallet)     ${formatAmount(a.rlc)}`,
    `hub balance      ${formatAmount(a.balance)}`,
    `frozen           ${formatAmount(a.frozen)}`,
    `stake            ${formatAmount(a.stake)}`,
    `stake locked     ${formatAmount(a.stakeLocked)}`,
    `pending unstake  ${formatAmount(a.pending)}`
  ]
  if (a.pending !== '0') lines.push(`unlocks at       ${when(a.unlockAt, a.chainTime)}`)
  io.out(lines.join('\n') + '\n')
}

/** `iexec-p2p stake withdraw AMOUNT`: asks the hub to unstake; prints when `stake unstake` may finish it. */
export async function stakeWithdrawCommand (io: CliIo, amountRaw: string, opts: ClientCommandOptions): Promise<void> {
  const amount = parseAmount('AMOUNT', amountRaw)
  const api = await clientFor(opts)
  const r = await api.call<StakeWithdrawView>('POST', '/v1/stake/withdraw', { amount: amount.toString() })
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  io.out([
    ...(r.unstaked !== '0' ? [`returned ${formatAmount(r.unstaked)} of an earlier, unlocked request to the hub balance`] : []),
    `requested the unstake of ${formatAmount(amount)} (tx ${r.txHash}); it is out of the draw now`,
    `pending unstake  ${formatAmount(r.pending)}`,
    `unlocks at       ${when(r.unlockAt, r.chainTime)}`,
    'then run `iexec-p2p stake unstake` to move it to the hub balance (and `account withdraw` to the wallet)',
    ''
  ].join('\n'))
}

/** `iexec-p2p stake unstake`: after the unlock time, the pending unstake goes back to the hub balance. */
export async function stakeUnstakeCommand (io: CliIo, opts: ClientCommandOptions): Promise<void> {
  const api = await clientFor(opts)
  const r = await api.call<UnstakeView>('POST', '/v1/stake/unstake')
  if (opts.json === true) {
    printJson(io, r)
    return
  }
  io.out(`unstaked ${formatAmount(r.amount)} (tx ${r.txHash})\nhub balance now  ${formatAmount(r.balance)}\nstake now        ${formatAmount(r.stake)}\n`)
}
