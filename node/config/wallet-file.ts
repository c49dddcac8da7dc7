import { mkdir, stat, writeFile } from 'node:fs/promises'
import { Wallet, decryptKeystoreJson, encryptKeystoreJson, isKeystoreJson } from 'ethers'
import { dataDirPaths } from './paths.js'
import { ConfigError } from './errors.js'
import { DEFAULT_SCRYPT_N, readWalletFile, unlockWallet } from './data-dir.js'

// The wallet commands (issue 24): create, import and export the data dir's
// Ethereum wallet. Every check runs before the single write, and the write
// never replaces a file ('wx'), so a refused call leaves the disk as it was.

/** Where an imported key comes from. */
export type WalletSource =
  | { kind: 'privateKey', privateKey: string }
  | { kind: 'keystore', json: string, password: string }

export interface WriteWalletOptions {
  dataDir: string
  /** encrypts the stored keystore; required unless devUnprotectedKey */
  password?: string
  /** dev only: store the key in clear, as `init --dev-unprotected-key` does */
  devUnprotectedKey?: boolean
  /** scrypt N of the stored keystore (power of two), default DEFAULT_SCRYPT_N */
  scryptN?: number
}

export interface WalletWriteResult {
  dataDir: string
  file: string
  address: string
  unprotected: boolean
}

async function exists (file: string): Promise<boolean> {
  try {
    await stat(file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

/**
 * A private key given as text: its first line, 0x (optional) and 64 hex
 * digits, a valid secp256k1 scalar. The key never appears in an error.
 * @throws ConfigError PRIVATE_KEY_MALFORMED
 */
export function parsePrivateKeyText (text: string): string {
  const line = text.split(/\r?\n/)[0].trim()
  const hex = line.startsWith('0x') || line.startsWith('0X') ? `0x${line.slice(2)}` : `0x${line}`
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) {
    throw new ConfigError('PRIVATE_KEY_MALFORMED', 'the private key file\'s first line must be a private key: 0x and 64 hex digits')
  }
  try {
    return new Wallet(hex.toLowerCase()).privateKey
  } catch {
    // zero or at least the curve order
    throw new ConfigError('PRIVATE_KEY_MALFORMED', 'the private key is not a valid secp256k1 key (zero or out of range)')
  }
}

/**
 * Decrypts a standard Ethereum JSON keystore (v3, scrypt or pbkdf2).
 * @throws ConfigError KEYSTORE_MALFORMED, KEYSTORE_BAD_PASSWORD
 */
export async function decryptKeystoreText (json: string, password: string): Promise<Wallet> {
  let ok = false
  try {
    ok = isKeystoreJson(json)
  } catch {}
  if (!ok) throw new ConfigError('KEYSTORE_MALFORMED', 'the file is not an Ethereum JSON keystore (version 3, with crypto.kdf and crypto.ciphertext)')
  let account
  try {
    account = await decryptKeystoreJson(json, password)
  } catch (err) {
    // ethers checks the MAC first: a mismatch is a wrong password; anything
    // else (unknown kdf or cipher, bad parameters, bad hex) a broken file
    const msg = (err as Error).message ?? ''
    if (/incorrect password/i.test(msg)) throw new ConfigError('KEYSTORE_BAD_PASSWORD', 'the keystore password does not decrypt the keystore')
    throw new ConfigError('KEYSTORE_MALFORMED', `the keystore cannot be decrypted: ${msg.split('(')[0].trim()}`, undefined, { cause: err })
  }
  try {
    return new Wallet(account.privateKey)
  } catch (err) {
    throw new ConfigError('KEYSTORE_MALFORMED', 'the keystore holds no valid private key', undefined, { cause: err })
  }
}

async function storeWallet (wallet: Wallet, opts: WriteWalletOptions): Promise<WalletWriteResult> {
  const file = dataDirPaths(opts.dataDir).wallet
  if (await exists(file)) {
    throw new ConfigError('WALLET_EXISTS', `${file} exists: a wallet is never overwritten (export it, then use another --data-dir)`, { file })
  }
  let text: string
  if (opts.devUnprotectedKey === true) {
    text = JSON.stringify({ unprotected: true, privateKey: wallet.privateKey }) + '\n'
  } else {
    if (opts.password === undefined || opts.password.length === 0) {
      throw new ConfigError('PASSWORD_REQUIRED', 'a password is needed to encrypt the wallet: give --password-file or IEXEC_P2P_PASSWORD (or --dev-unprotected-key)')
    }
    text = await encryptKeystoreJson({ address: wallet.address, privateKey: wallet.privateKey }, opts.password, {
      scrypt: { N: opts.scryptN ?? DEFAULT_SCRYPT_N }
    })
  }
  await mkdir(opts.dataDir, { recursive: true, mode: 0o700 })
  try {
    await writeFile(file, text, { mode: 0o600, flag: 'wx' })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ConfigError('WALLET_EXISTS', `${file} exists: a wallet is never overwritten`, { file })
    throw err
  }
  return { dataDir: opts.dataDir, file, address: wallet.address, unprotected: opts.devUnprotectedKey === true }
}

/**
 * Writes a fresh random wallet into the data dir (`init` then keeps it).
 * @throws ConfigError WALLET_EXISTS, PASSWORD_REQUIRED
 */
export async function createWallet (opts: WriteWalletOptions): Promise<WalletWriteResult> {
  const w = Wallet.createRandom()
  return await storeWallet(new Wallet(w.privateKey), opts)
}

/**
 * Writes an existing key into the data dir, re-encrypted with the node's
 * password at `scryptN`.
 * @throws ConfigError WALLET_EXISTS, PASSWORD_REQUIRED, PRIVATE_KEY_MALFORMED, KEYSTORE_MALFORMED, KEYSTORE_BAD_PASSWORD
 */
export async function importWallet (source: WalletSource, opts: WriteWalletOptions): Promise<WalletWriteResult> {
  // decrypt before anything else: a bad source must not leave a data dir behind
  const wallet = source.kind === 'privateKey'
    ? new Wallet(parsePrivateKeyText(source.privateKey))
    : await decryptKeystoreText(source.json, source.password)
  return await storeWallet(wallet, opts)
}

export interface ExportWalletOptions {
  dataDir: string
  /** unlocks an encrypted wallet, and encrypts a dev key's export */
  password?: string
  scryptN?: number
}

/**
 * The data dir's wallet as a standard JSON keystore, checked to open with
 * `password` when the wallet is encrypted (so an export never hands out a
 * keystore its owner cannot open). A dev unprotected key is encrypted with
 * `password`.
 * @throws ConfigError DATA_DIR_NOT_INITIALIZED, DATA_DIR_CORRUPT, PASSWORD_REQUIRED, WALLET_BAD_PASSWORD
 */
export async function exportWallet (opts: ExportWalletOptions): Promise<{ address: string, json: string }> {
  const file = dataDirPaths(opts.dataDir).wallet
  const wf = await readWalletFile(file)
  if (opts.password === undefined || opts.password.length === 0) {
    throw new ConfigError('PASSWORD_REQUIRED', wf.kind === 'plain'
      ? 'the wallet is a dev key in clear: give --password-file or IEXEC_P2P_PASSWORD to encrypt the export'
      : 'give the wallet\'s password (--password-file or IEXEC_P2P_PASSWORD): the export is checked to open with it')
  }
  const wallet = await unlockWallet(wf, opts.password, file)
  if (wf.kind === 'keystore') return { address: wf.address, json: wf.json }
  const json = await encryptKeystoreJson({ address: wallet.address, privateKey: wallet.privateKey }, opts.password, {
    scrypt: { N: opts.scryptN ?? DEFAULT_SCRYPT_N }
  })
  return { address: wallet.address, json }
}

