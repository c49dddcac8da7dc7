import { readFile } from 'node:fs/promises'
import { UsageError, CliError } from './errors.js'

// Validators of raw command-line strings. Each throws a UsageError naming the
// option, so the user sees which flag to fix.

export function parseIntOption (flag: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim())) throw new UsageError('CLI_BAD_OPTION', `${flag} must be a whole number, got "${raw}"`)
  const n = Number(raw.trim())
  if (n < min || n > max) throw new UsageError('CLI_BAD_OPTION', `${flag} must be between ${min} and ${max}, got ${n}`)
  return n
}

export function parsePortOption (flag: string, raw: string): number {
  return parseIntOption(flag, raw, 0, 65535)
}

/** A price in nRLC: a non-negative integer of any size. */
export function parsePriceOption (flag: string, raw: string): bigint {
  if (!/^\d{1,30}$/.test(raw.trim())) throw new UsageError('CLI_BAD_OPTION', `${flag} must be a whole number of nRLC, got "${raw}"`)
  return BigInt(raw.trim())
}

export function parseTagOption (raw: string): string {
  const tag = raw.trim()
  // same bounds as config validation: tags travel in every resource record
  if (tag.length === 0 || tag.length > 64 || /\s/.test(tag)) {
    throw new UsageError('CLI_BAD_OPTION', `a tag is 1-64 characters without spaces (e.g. region:eu), got "${raw}"`)
  }
  return tag
}

/** Reads a password file (first line, without its newline). */
export async function readPasswordFile (file: string): Promise<string> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new CliError('CLI_FILE_UNREADABLE', `cannot read password file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { file })
  }
  const password = text.split(/\r?\n/)[0]
  if (password.length === 0) throw new UsageError('CLI_BAD_OPTION', `password file ${file} is empty`)
  return password
}

/** --password-file wins over IEXEC_P2P_PASSWORD; neither = undefined. */
export async function resolvePassword (passwordFile: string | undefined): Promise<string | undefined> {
  if (passwordFile !== undefined) return await readPasswordFile(passwordFile)
  const env = process.env.IEXEC_P2P_PASSWORD
  return env !== undefined && env.length > 0 ? env : undefined
}

/** 1 RLC = 10^9 nRLC (RLC has 9 decimals). */
export const NRLC_PER_RLC = 1_000_000_000n

// the hub keeps balances in uint96 and refuses deposits above uint64
const MAX_AMOUNT = (1n << 64n) - 1n

/**
 * An RLC amount: `5` or `5nRLC` (nRLC, whole), `1.5RLC` (up to 9 decimals).
 * Units are case-insensitive; zero is refused (the hub refuses it too).
 */
export function parseAmount (flag: string, raw: string): bigint {
  const s = raw.trim()
  const m = /^(\d{1,30})(?:\s*nrlc)?$/i.exec(s)
  let n: bigint
  if (m !== null) {
    n = BigInt(m[1])
  } else {
    const r = /^(\d{1,20})(?:\.(\d{1,9}))?\s*rlc$/i.exec(s)
    if (r === null) {
      throw new UsageError('CLI_BAD_OPTION', `${flag} must be an amount like 5 or 5nRLC (nRLC) or 1.5RLC (up to 9 decimals), got "${raw}"`)
    }
    n = BigInt(r[1]) * NRLC_PER_RLC + BigInt((r[2] ?? '').padEnd(9, '0'))
  }
  if (n === 0n) throw new UsageError('CLI_BAD_OPTION', `${flag} must be more than 0, got "${raw}"`)
  if (n > MAX_AMOUNT) throw new UsageError('CLI_BAD_OPTION', `${flag} is too large (at most ${MAX_AMOUNT} nRLC), got "${raw}"`)
  return n
}

/** `1500000000` -> `1.5 RLC`; `0` -> `0 RLC`. */
export function formatRlc (nrlc: bigint | string): string {
  const n = typeof nrlc === 'bigint' ? nrlc : BigInt(nrlc)
  const neg = n < 0n
  const a = neg ? -n : n
  const whole = a / NRLC_PER_RLC
  const frac = (a % NRLC_PER_RLC).toString().padStart(9, '0').replace(/0+$/, '')
  return `${neg ? '-' : ''}${whole}${frac.length > 0 ? `.${frac}` : ''} RLC`
}

/** Both forms, as human output prints amounts: `1.5 RLC (1500000000 nRLC)`. */
export function formatAmount (nrlc: bigint | string): string {
  return `${formatRlc(nrlc)} (${typeof nrlc === 'bigint' ? nrlc.toString() : BigInt(nrlc).toString()} nRLC)`
}

/** wei -> `1.25 ETH`. */
export function formatEth (wei: bigint | string): string {
  const n = typeof wei === 'bigint' ? wei : BigInt(wei)
  const unit = 10n ** 18n
  const frac = (n % unit).toString().padStart(18, '0').replace(/0+$/, '').slice(0, 6)
  return `${n / unit}${frac.length > 0 ? `.${frac}` : ''} ETH`
}

/** A deal id, task id or order hash: 0x and 64 hex digits. */
export function parseBytes32 (what: string, raw: string): string {
  const s = raw.trim()
  if (!/^0x[0-9a-fA-F]{64}$/.test(s)) throw new UsageError('CLI_BAD_OPTION', `${what} must be 0x followed by 64 hex digits, got "${raw}"`)
  return s.toLowerCase()
}

export function parseAddress (flag: string, raw: string): string {
  const s = raw.trim()
  if (!/^0x[0-9a-fA-F]{40}$/.test(s)) throw new UsageError('CLI_BAD_OPTION', `${flag} must be an Ethereum address (0x and 40 hex digits), got "${raw}"`)
  return s
}

/** `--app`: an address, or an app name the node resolves (1-64 characters, no spaces). */
export function parseAppRef (raw: string): string {
  const s = raw.trim()
  if (s.startsWith('0x')) return parseAddress('--app', s)
  if (s.length === 0 || s.length > 64 || /\s/.test(s)) throw new UsageError('CLI_BAD_OPTION', `--app must be an app address or a name of 1-64 characters without spaces, got "${raw}"`)
  return s
}

/** A CID as text (base32 `b...` CIDv1 or base58 `Qm...` CIDv0); the node checks it fully. */
export function parseCidOption (flag: string, raw: string): string {
  const s = raw.trim()
  if (!/^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,120}|z[1-9A-HJ-NP-Za-km-z]{20,120})$/.test(s)) {
    throw new UsageError('CLI_BAD_OPTION', `${flag} must be a CID (Qm... or bafy...), got "${raw}"`)
  }
  return s
}

/** A sha256 checksum: 64 hex digits, with or without 0x. Returned with 0x. */
export function parseChecksum (raw: string): string {
  const s = raw.trim().replace(/^0x/i, '')
  if (!/^[0-9a-fA-F]{64}$/.test(s)) throw new UsageError('CLI_BAD_OPTION', `--checksum must be a sha256 digest (64 hex digits), got "${raw}"`)
  return `0x${s.toLowerCase()}`
}
