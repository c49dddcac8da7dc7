/**
 * Node configuration and the data dir: config.json (validated), the libp2p
 * peer key, the Ethereum wallet and the local API token.
 *
 * @example
 * ```ts
 * const { peerId } = await initDataDir({ dataDir, password })
 * const loaded = await loadDataDir(dataDir, password)
 * ```
 */
export { defaultDataDir, dataDirPaths } from './paths.js'
export { defaultNodeConfig, CONFIG_LIMITS } from './options.js'
export type { NodeConfig, NodeChainConfig, NodeConfigRole } from './options.js'
export { validateConfig, loadConfig, saveConfig } from './config-file.js'
export { initDataDir, loadDataDir, DEFAULT_SCRYPT_N } from './data-dir.js'
export type { InitDataDirOptions, InitDataDirResult, LoadedDataDir } from './data-dir.js'
export { ConfigError } from './errors.js'
export { createWallet, importWallet, exportWallet, parsePrivateKeyText, decryptKeystoreText } from './wallet-file.js'
export type { WalletSource, WriteWalletOptions, WalletWriteResult, ExportWalletOptions } from './wallet-file.js'
export type { ConfigErrorCode } from './errors.js'
export { checkChainSettings, checkRpcUrl, checkAddress } from './chain-settings.js'
export type { RawChainSettings } from './chain-settings.js'
