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
