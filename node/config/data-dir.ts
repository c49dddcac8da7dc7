import { mkdir, readFile, stat, chmod } from 'node:fs/promises'
import { writeFileDurable } from '../common/durable-file.js'
import { randomBytes } from 'node:crypto'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Wallet, encryptKeystoreJson, decryptKeystoreJson, isKeystoreJson, getAddress } from 'ethers'
import type { PrivateKey } from '@libp2p/interface'
import { dataDirPaths } from './paths.js'
import { ConfigError } from './errors.js'
import { defaultNodeConfig } from './options.js'
import type { NodeConfig } from './options.js'
import { loadConfig, saveConfig, validateConfig } from './config-file.js'

/**
 * scrypt cost of a new wallet keystore: ethers' and geth's standard 2^17
 * (128 MiB, about a second), so a keystore made here is as costly to guess
 * offline as one made by any other Ethereum wallet. Tests that create many
 * wallets pass a smaller `scryptN`.
 */
export const DEFAULT_SCRYPT_N = 1 << 17

export interface InitDataDirOptions {
  dataDir: string
  /** encrypts the wallet keystore; required unless devUnprotectedKey */
  password?: string
  /** dev swarms only: store the wallet key in clear (the node logs a warning) */
  devUnprotectedKey?: boolean
  /** settings for a new config.json (ignored when one exists) */
  config?: Partial<NodeConfig>
  /** scrypt N for a new keystore (power of two), default DEFAULT_SCRYPT_N */
  scryptN?: number
}

export interface InitDataDirResult {
  dataDir: string
  peerId: string
  address: string
  /** false when every file already existed (nothing was written) */
  created: boolean
  /** true when the wallet is a plain dev key */
  unprotected: boolean
}

/** Everything a node needs from its data dir, decrypted. */
export interface LoadedDataDir {
  dataDir: string
  privateKey: PrivateKey
  peerId: string
  wallet: Wallet
  address: string
  unprotected: boolean
  config: NodeConfig
  apiToken: string
}

interface UnprotectedWalletFile { unprotected: true, privateKey: string }

// What an operator does about a damaged file: the message of the coded error says it.
// A new wallet would be a new account with none of the node's funds, so the wallet is never re-made.
const WALLET_FIX = 'restore it from a backup (move it away, then `iexec-p2p wallet import`); never delete it: its key holds the node\'s funds and stake'
const TOKEN_FIX = 'delete it and run `iexec-p2p init` on the data dir for a new one (clients read it again)'

async function exists (file: string): Promise<boolean> {
  try {
    await stat(file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

// 'wx' fails if the file appeared meanwhile: an existing secret is never overwritten
async function writeSecret (file: string, data: string | Uint8Array): Promise<void> {
  await writeFileDurable(file, data, { mode: 0o600, exclusive: true })
}

async function readPeerKey (file: string): Promise<PrivateKey> {
  try {
    return privateKeyFromProtobuf(await readFile(file))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError('DATA_DIR_NOT_INITIALIZED', `no peer key at ${file}: run \`iexec-p2p init\``, { file })
    }
    throw new ConfigError('DATA_DIR_CORRUPT', `peer key ${file} is unreadable or not a libp2p key (truncated?): restore it from a backup, or delete it and run \`iexec-p2p init\` for a new peer id (the wallet is kept)`, { file }, { cause: err })
  }
}

export type WalletFile = { kind: 'keystore', json: string, address: string } | { kind: 'plain', privateKey: string, address: string }

export async function readWalletFile (file: string): Promise<WalletFile> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError('DATA_DIR_NOT_INITIALIZED', `no wallet at ${file}: run \`iexec-p2p init\``, { file })
    }
    throw new ConfigError('DATA_DIR_CORRUPT', `wallet ${file} is unreadable: ${WALLET_FIX}`, { file }, { cause: err })
  }
  try {
    if (isKeystoreJson(text)) {
      const parsed = JSON.parse(text) as { address: string }
      return { kind: 'keystore', json: text, address: getAddress(parsed.address) }
    }
    const plain = JSON.parse(text) as Partial<UnprotectedWalletFile>
    if (plain.unprotected === true && typeof plain.privateKey === 'string') {
      return { kind: 'plain', privateKey: plain.privateKey, address: new Wallet(plain.privateKey).address }
    }
  } catch (err) {
    throw new ConfigError('DATA_DIR_CORRUPT', `wallet ${file} is not a keystore (truncated?): ${WALLET_FIX}`, { file }, { cause: err })
  }
  throw new ConfigError('DATA_DIR_CORRUPT', `wallet ${file} is neither a keystore nor a dev key file: ${WALLET_FIX}`, { file })
}

export async function unlockWallet (wf: WalletFile, password: string | undefined, file: string): Promise<Wallet> {
  if (wf.kind === 'plain') return new Wallet(wf.privateKey)
  if (password === undefined) {
    throw new ConfigError('WALLET_LOCKED', 'the wallet is encrypted: give --password-file or IEXEC_P2P_PASSWORD', { file })
  }
  try {
    const account = await decryptKeystoreJson(wf.json, password)
    return new Wallet(account.privateKey)
  } catch (err) {
    // a keystore whose ciphertext or MAC was damaged fails the same check as a wrong password
    throw new ConfigError('WALLET_BAD_PASSWORD', `the password does not decrypt the wallet ${file} (or the keystore is damaged: ${WALLET_FIX})`, { file }, { cause: err })
  }
}

/**
 * Creates a data dir, or loads the one that exists: never overwrites a file.
 * Writes the libp2p Ed25519 key (peer.key), the Ethereum wallet (wallet.json,
 * an encrypted keystore, or a plain dev key), config.json and the API token.
 * @throws ConfigError PASSWORD_REQUIRED, CONFIG_INVALID, DATA_DIR_CORRUPT
 */
export async function initDataDir (init: InitDataDirOptions): Promise<InitDataDirResult> {
  const paths = dataDirPaths(init.dataDir)
  await mkdir(init.dataDir, { recursive: true, mode: 0o700 })
  let created = false

  // validate before writing anything, so a bad flag leaves no half-made dir
  const configExists = await exists(paths.config)
  const config = configExists ? undefined : validateConfig({ ...defaultNodeConfig(), ...(init.config ?? {}) })

  if (!await exists(paths.peerKey)) {
    const key = await generateKeyPair('Ed25519')
    await writeSecret(paths.peerKey, privateKeyToProtobuf(key))
    created = true
  }
  if (!await exists(paths.wallet)) {
    const wallet = Wallet.createRandom()
    if (init.devUnprotectedKey === true) {
      const plain: UnprotectedWalletFile = { unprotected: true, privateKey: wallet.privateKey }
      await writeSecret(paths.wallet, JSON.stringify(plain) + '\n')
    } else {
      if (init.password === undefined || init.password.length === 0) {
        throw new ConfigError('PASSWORD_REQUIRED', 'a password is needed to encrypt the new wallet (or use a dev unprotected key)')
      }
      const json = await encryptKeystoreJson({ address: wallet.address, privateKey: wallet.privateKey }, init.password, {
        scrypt: { N: init.scryptN ?? DEFAULT_SCRYPT_N }
      })
      await writeSecret(paths.wallet, json)
    }
    created = true
  }
  if (!await exists(paths.apiToken)) {
    await writeSecret(paths.apiToken, randomBytes(32).toString('hex') + '\n')
    created = true
  }
  if (config !== undefined) {
    // written last: its presence marks a complete data dir
    await saveConfig(paths.config, config)
    created = true
  }
  await chmod(init.dataDir, 0o700)

  const key = await readPeerKey(paths.peerKey)
  const wf = await readWalletFile(paths.wallet)
  return {
    dataDir: init.dataDir,
    peerId: peerIdFromPrivateKey(key).toString(),
    address: wf.address,
    created,
    unprotected: wf.kind === 'plain'
  }
}

/**
 * Loads an initialised data dir: keys (wallet decrypted with `password`),
 * config and API token.
 * @throws ConfigError DATA_DIR_NOT_INITIALIZED, WALLET_LOCKED, WALLET_BAD_PASSWORD, CONFIG_INVALID, DATA_DIR_CORRUPT
 */
export async function loadDataDir (dataDir: string, password?: string): Promise<LoadedDataDir> {
  const paths = dataDirPaths(dataDir)
  if (!await exists(paths.config)) {
    throw new ConfigError('DATA_DIR_NOT_INITIALIZED', `${dataDir} is not an initialised data dir: run \`iexec-p2p init\``, { dataDir })
  }
  const config = await loadConfig(paths.config)
  const privateKey = await readPeerKey(paths.peerKey)
  const wf = await readWalletFile(paths.wallet)
  const wallet = await unlockWallet(wf, password, paths.wallet)
  let apiToken: string
  try {
    apiToken = (await readFile(paths.apiToken, 'utf8')).trim()
  } catch (err) {
    throw new ConfigError('DATA_DIR_CORRUPT', `cannot read the API token ${paths.apiToken}: ${TOKEN_FIX}`, { file: paths.apiToken }, { cause: err })
  }
  if (!/^[0-9a-f]{64}$/.test(apiToken)) {
    throw new ConfigError('DATA_DIR_CORRUPT', `the API token ${paths.apiToken} is malformed (truncated?): ${TOKEN_FIX}`, { file: paths.apiToken })
  }
  return {
    dataDir,
    privateKey,
    peerId: peerIdFromPrivateKey(privateKey).toString(),
    wallet,
    address: wallet.address,
    unprotected: wf.kind === 'plain',
    config,
    apiToken
  }
}
